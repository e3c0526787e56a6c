"""Helpers of the fault suite (tests/integration/test_faults.py): loads, live-record tails, the checks every fault
scenario ends with, and a dedicated PostgreSQL instance that a test may stop and start.

The reference of every check is the pure projection (``streams.fold.Projection``) of the events that were sent:
records, stamp ranges and the alerts a record's flags imply. A live run is compared with it, never with a second
uninterrupted run (which would double the time and prove less).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from ocop_trace.config import Settings
from producers.client import EventProducer
from producers.generator import generate_detailed
from schemas import codec, topics
from streams import rules
from streams.fold import Projection
from tests.helpers import free_port, wait_until

KEY_ID = Settings(_env_file=None).stamp_active_key
EVENTS_PER_CHAIN = 14.6  # what generate() makes per lot chain on average (harvest .. sales), measured
_RECORD = codec.codec(codec.LOT_RECORD)


def prefix() -> str:
    return f"f{uuid.uuid4().hex[:8]}."


# ---------------------------------------------------------------------------------------------------------- loads
def load(target_events: int, seed: int, faulty: float = 0.05, subjects: int = 12):
    """A deterministic generated load of about ``target_events`` events (whole chains): ``Generated``."""
    lots = max(1, round(target_events / EVENTS_PER_CHAIN))
    return generate_detailed(subjects=subjects, lots=lots, seed=seed, faulty=faulty)


def expected(events: Iterable[dict]) -> Projection:
    """The reference: the projection of ``events`` in log order, stamps issued as the stamps agent does."""
    proj = Projection(KEY_ID)
    for ev in events:
        proj.add(ev)
    proj.run()
    return proj


def send(s: Settings, events: list[dict]) -> None:
    with EventProducer(s) as p:
        p.send_many(events)


# ------------------------------------------------------------------------------------------------- record tail
class Tail:
    """Reads a topic incrementally from the beginning (all partitions, no group): ``messages`` in arrival order per
    partition and ``latest`` raw value per key. Cheap to poll again and again while a scenario converges."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                      reconnect_backoff_max_ms=2000)
        self.latest: dict[bytes | None, bytes | None] = {}
        self.messages: list = []
        self._assigned = False

    def _assign(self) -> bool:
        parts = self.consumer.partitions_for_topic(self.topic)
        if not parts:
            return False
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self._assigned = True
        return True

    def poll(self, rounds: int = 20, timeout_ms: int = 200) -> int:
        """Read what is there now (up to ``rounds`` polls); returns the number of new messages."""
        if not self._assigned and not self._assign():
            return 0
        n = 0
        for _ in range(rounds):
            got = self.consumer.poll(timeout_ms=timeout_ms, max_records=20000)
            if not got:
                break
            for msgs in got.values():
                for m in msgs:
                    self.latest[m.key] = m.value
                    self.messages.append(m)
                    n += 1
        return n

    def drain(self, timeout: float = 60) -> None:
        """Read up to the current end offsets of every partition."""
        if not self._assigned:
            wait_until(self._assign, timeout, 0.2, f"topic {self.topic} exists")
        tps = list(self.consumer.assignment())
        end = self.consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while any(self.consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {self.topic} to its end within {timeout}s")
            self.poll(rounds=1, timeout_ms=500)

    def close(self) -> None:
        self.consumer.close()


def record_diff(live: dict[str, dict], want: dict[str, dict], limit: int = 15) -> str:
    """Which lots differ and in which fields (for failure messages)."""
    out = []
    for lot in sorted(set(live) | set(want)):
        a, b = live.get(lot), want.get(lot)
        if a != b:
            if a is None or b is None:
                out.append(f"{lot}: {'missing' if a is None else 'unexpected'}")
            else:
                out.append(f"{lot}: {sorted(k for k in b if a.get(k) != b.get(k))}")
        if len(out) >= limit:
            out.append("...")
            break
    return "; ".join(out) or "(equal)"


def wait_records(tail: Tail, want: dict[str, dict], timeout: float, what: str) -> dict[str, dict]:
    """Wait until the live records (latest per lot on ocop.records) are exactly ``want`` — compared as encoded Avro
    bytes, which are equal exactly when the values are — and return them decoded."""
    want_bytes = {lot.encode(): _RECORD.encode(rec) for lot, rec in want.items()}
    deadline = time.monotonic() + timeout
    while True:
        tail.poll()
        if tail.latest == want_bytes:
            return {k.decode(): _RECORD.decode(v) for k, v in tail.latest.items()}
        if time.monotonic() > deadline:
            live = {k.decode(): _RECORD.decode(v) for k, v in tail.latest.items() if k is not None and v is not None}
            equal = sum(1 for k, v in want_bytes.items() if tail.latest.get(k) == v)
            raise AssertionError(f"{what}: live records not equal to the projection within {timeout:.0f}s "
                                 f"({equal}/{len(want)} equal, {len(live)} live): {record_diff(live, want)}")
        time.sleep(1.0)


def wait_progress(tail: Tail, n: int, timeout: float, what: str) -> int:
    """Wait until at least ``n`` lots have a record (the worker is demonstrably in the middle of the load)."""
    def enough():
        tail.poll()
        return len(tail.latest) if len(tail.latest) >= n else None
    return wait_until(enough, timeout, 0.5, f"{what}: {n} lots have a record")


# ------------------------------------------------------------------------------------------------------- checks
def eventually(check, timeout: float = 30, interval: float = 1.0):
    """Run ``check`` until it stops raising AssertionError (the last effects of a converged run — alerts sent after
    their record, stamp ranges — may still be in flight); at the deadline the last failure propagates."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def expected_alert_ids(records: dict[str, dict]) -> tuple[set[str], set[str]]:
    """(ids of the rule alerts the final records imply, ids of their recall alerts)."""
    flags, recalls = set(), set()
    for lot, rec in records.items():
        flags |= {a["alert_id"] for a in rules.alert_changes(lot, [], rec["flags"], "")}
        if rec["recall"]:
            recalls.add(rules.recall_alert(lot, rec["recall"], "")["alert_id"])
    return flags, recalls


def check_alerts(alerts: list[dict], records: dict[str, dict]) -> dict[str, dict]:
    """No duplicate effects on ocop.alerts, and the final alert states are the ones the records imply.

    * an alert id always carries the same violation (rule, severity, lot, serial, event, detail): a repeated
      "open" (a worker re-sends the alerts of a redelivered fact) is the same alert again, never a second one;
    * the latest state of every rule alert is open exactly for the flags of the final records; every final recall
      has its open recall alert (a recall alert is a notice: it is never resolved).
    Returns the latest alert per id."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        by_id[a["alert_id"]].append(a)
    facts = {aid: {(a["rule"], a["severity"], a["lot"], a["serial"], a["event_id"], a["detail"]) for a in msgs}
             for aid, msgs in by_id.items()}
    mixed = {aid: f for aid, f in facts.items() if len(f) > 1}
    assert not mixed, f"alert ids carrying different violations: {list(mixed.items())[:3]}"
    latest = {aid: msgs[-1] for aid, msgs in by_id.items()}  # one id = one lot = one partition: in order
    want_flags, want_recalls = expected_alert_ids(records)
    open_rules = {aid for aid, a in latest.items() if a["state"] == "open" and a["rule"] != "recalled"}
    assert open_rules == want_flags, (
        f"open rule alerts differ from the records' flags: missing {sorted(want_flags - open_rules)[:5]}, "
        f"extra {[latest[a] for a in sorted(open_rules - want_flags)][:3]}")
    open_recalls = {aid for aid, a in latest.items() if a["state"] == "open" and a["rule"] == "recalled"}
    assert want_recalls <= open_recalls, f"recall alerts missing: {sorted(want_recalls - open_recalls)[:5]}"
    return latest


def check_stamps(ranges: list[dict], proj: Projection) -> None:
    """Exactly one stamp range per package request (re-sends identical), the ranges the projection issues, and no
    two ranges of a lot overlap."""
    by_request: dict[tuple[str, str], set] = defaultdict(set)
    for r in ranges:
        by_request[(r["lot"], r["request_id"])].add(frozenset(r.items()))
    doubled = {k: v for k, v in by_request.items() if len(v) > 1}
    assert not doubled, f"package requests with more than one distinct range: {list(doubled.items())[:3]}"
    live = {k: dict(next(iter(v))) for k, v in by_request.items()}
    want = {(r["lot"], r["request_id"]): r for r in proj.stamp_ranges}
    assert set(live) == set(want), (f"stamp ranges: missing {sorted(set(want) - set(live))[:5]}, "
                                    f"extra {sorted(set(live) - set(want))[:5]}")
    assert all(live[k] == want[k] for k in want), [k for k in want if live[k] != want[k]][:5]
    per_lot: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in live.values():
        per_lot[r["lot"]].append((r["first_index"], r["first_index"] + r["count"]))
    for lot, spans in per_lot.items():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"overlapping stamp ranges of {lot}: {spans}"


def decoded(tail: Tail, schema: str) -> list[dict]:
    c = codec.codec(schema)
    return [c.decode(m.value) for m in tail.messages]


def read_decoded(bootstrap: str, topic: str, schema: str) -> list[dict]:
    tail = Tail(bootstrap, topic)
    try:
        tail.drain()
        return decoded(tail, schema)
    finally:
        tail.close()


def end_offsets(bootstrap: str, names: Iterable[str]) -> dict[tuple[str, int], int]:
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(n, p) for n in names for p in sorted(c.partitions_for_topic(n) or ())]
        return {(tp.topic, tp.partition): o for tp, o in c.end_offsets(tps).items()}
    finally:
        c.close()


# -------------------------------------------------------------------------------------------------- PostgreSQL
def _pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    which = shutil.which("pg_ctl")
    if which:
        return Path(which).parent
    raise AssertionError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin): run scripts/setup.sh")


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PgInstance:
    """A throw-away PostgreSQL cluster of one test, which the test may stop (as a crash: ``-m immediate``) and start
    again on the same port. ``fsync=off`` for speed; commits stay synchronous, so a committed transaction survives
    a server crash (the guarantee the sink relies on; with ``synchronous_commit=off`` a crash may lose the last
    commits, rows and offsets together)."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="ocop-fault-pg-", dir="/tmp"))  # the postgres user must enter it
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.port: int | None = None
        self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                   "--no-locale", "--no-sync"], "initdb")

    def _run(self, cmd: list[str], what: str, timeout: float = 120) -> None:
        proc = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            tail = self.log.read_text()[-1500:] if self.log.exists() else ""
            out = (proc.stdout + proc.stderr)[-1500:]
            raise AssertionError(f"{what} failed (exit {proc.returncode}): {out}\n{tail}")

    def start(self) -> None:
        """Start (the first time on a free port, later on the same one)."""
        for attempt in range(3):
            port = self.port or free_port()
            opts = (f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
                    "-c max_connections=100")
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "90",
                           "-o", opts, "start"], "pg_ctl start")
                self.port = port
                return
            except AssertionError:
                if self.port is not None or attempt == 2:  # a restart must get its port back
                    raise

    def stop(self, mode: str = "immediate") -> None:
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
                  "pg_ctl stop")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                                     "-t", "60", "stop"]), capture_output=True, timeout=90)
        shutil.rmtree(self.root, ignore_errors=True)
