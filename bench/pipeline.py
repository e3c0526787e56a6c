"""Pipeline: sustained events/s from the producer to the SQL read side, one worker, the full rule set.

    python -m bench.pipeline [--quick] [--events 10000] [--timeout 1200]

On a fresh topic prefix: one ``python -m ocop_trace.cli worker`` (RocksDB tables, as deployed) and one
``ocop-trace sink`` (SQLite) as subprocesses. The generated events (``producers.generator.generate``, validated and
Avro-encoded beforehand, so the producer is not what is measured) are sent as fast as a kafka-python producer
(``acks=all``, idempotent) goes; the clock runs from the first send until the sink's database holds every lot's
final record — exactly the record ``streams.fold.project`` derives from the same events, compared as the stored
JSON text. Along the way the worker's consumer-group lag and the sink's position are sampled, which says which
stage finished when (the bottleneck).

Baseline, same run, same messages: a bare aiokafka consume → produce pass-through (bench/passthrough.py), timed
from the first send until every message is on its output topic; run before and after the pipeline (mean).
Goal: ≥ 5,000 events/s on 2 cores and ≥ 0.33 of the pass-through.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import (Proc, Run, create_catalog, goal, group_lag, kafka, log, main_args, ratio, row, si,
                          start_sink, start_worker, times, topic_messages)

SIZES = {"events": 10_000, "timeout": 1200}
QUICK = {"events": 1_500, "timeout": 300}


# ------------------------------------------------------------------------------------------------------ inputs
def generated(n_events: int, seed: int = 5) -> list[dict]:
    from producers.generator import generate

    return generate(subjects=20, lots=max(1, n_events // 15), seed=seed)


def encoded(events: list[dict], prefix: str) -> list[tuple[str, bytes, bytes, list]]:
    """(topic, key, value, headers) of each event, validated and encoded as ``EventProducer`` sends them."""
    from producers.client import SOURCE_HEADER, topic_for
    from schemas.events import encode_event, event_key, validate_event

    out = []
    for ev in events:
        validate_event(ev)
        out.append((topic_for(ev).full(prefix), event_key(ev).encode(), encode_event(ev),
                    [(SOURCE_HEADER, ev["source"].encode())]))
    return out


def producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, client_id="ocop-bench-producer", acks="all",
                         enable_idempotence=True, linger_ms=20, retries=2**31 - 1,
                         max_in_flight_requests_per_connection=5)


def send_all(bootstrap: str, msgs, rename=None) -> float:
    """Send every message, flush; returns the seconds it took. ``rename(topic)`` maps topic names."""
    p = producer(bootstrap)
    try:
        t = time.perf_counter()
        for topic, key, value, headers in msgs:
            p.send(rename(topic) if rename else topic, key=key, value=value, headers=headers)
        p.flush()
        return time.perf_counter() - t
    finally:
        p.close()


def expected_records(events: list[dict]) -> dict[str, tuple[int, str, str]]:
    """lot → (event_count, chain_head, record JSON as the sink stores it) of the reference projection."""
    from consumers.store import dumps
    from ocop_trace.config import Settings
    from schemas import codec
    from streams.fold import project

    c = codec.codec(codec.LOT_RECORD)
    out = {}
    for lot, rec in project(events, stamp_key_id=Settings(_env_file=None).stamp_active_key).items():
        r = c.decode(c.encode(rec))
        out[lot] = (r["event_count"], r["chain_head"], dumps(r))
    return out


# ------------------------------------------------------------------------------------------------------ read side
class ReadSide:
    """Watches the sink's database until it holds exactly the expected records."""

    def __init__(self, db_path: Path, expected: dict[str, tuple[int, str, str]]) -> None:
        self.path = db_path
        self.expected = expected
        self.sig = {lot: (n, head) for lot, (n, head, _text) in expected.items()}
        self.left = set(expected)

    def _con(self):
        import sqlite3

        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        con.execute("PRAGMA busy_timeout=30000")
        return con

    def ready(self) -> bool:
        if not self.path.exists():
            return False
        try:
            con = self._con()
            try:
                return con.execute("SELECT count(*) FROM sqlite_master WHERE name='lots'").fetchone()[0] == 1
            finally:
                con.close()
        except Exception:  # noqa: BLE001 - not created yet
            return False

    def check(self) -> int:
        """How many lots still differ: a cheap signature (event count, chain head: columns stored before the record
        JSON, so the record's overflow pages are not read), then the full JSON text of the candidates."""
        con = self._con()
        try:
            rows = con.execute("SELECT lot, event_count, chain_head FROM lots").fetchall()
            cand = [lot for lot, n, head in rows if lot in self.left and self.sig[lot] == (n, head)]
            for i in range(0, len(cand), 500):
                part = cand[i:i + 500]
                q = f"SELECT lot, record FROM lots WHERE lot IN ({','.join('?' * len(part))})"  # noqa: S608
                for lot, text in con.execute(q, part):
                    if text == self.expected[lot][2]:
                        self.left.discard(lot)
            return len(self.left)
        finally:
            con.close()

    def sink_lag(self, bootstrap: str, prefix: str) -> int | None:
        """Messages on the sink's topics not yet applied (its positions are in the database)."""
        from consumers.sink import SOURCES
        from kafka import KafkaConsumer, TopicPartition

        con = self._con()
        try:
            pos = {(t, p): o for t, p, o in con.execute("SELECT topic, partition, next_offset FROM sink_offsets")}
        finally:
            con.close()
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, client_id="ocop-bench-lag")
        try:
            tps = [TopicPartition(s.full(prefix), p) for s in SOURCES
                   for p in (c.partitions_for_topic(s.full(prefix)) or ())]
            ends = c.end_offsets(tps)
            return sum(ends[tp] - pos.get((tp.topic, tp.partition), 0) for tp in tps)
        finally:
            c.close()


def worker_lag(bootstrap: str, prefix: str) -> int | None:
    from streams.lots import SOURCES

    names = [s.full(prefix) for s in SOURCES]
    return group_lag(bootstrap, f"{prefix}ocop-trace", names)


# ------------------------------------------------------------------------------------------------------ baseline
def passthrough(bootstrap: str, events: list[dict], tmp: Path) -> dict:
    """The same events through bench/passthrough.py (its own copy of the input topics, under its own prefix):
    seconds from the first send until every message is on the output topic."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    from schemas import topics

    prefix = f"bench-pt-{uuid.uuid4().hex[:8]}."
    msgs = encoded(events, prefix)
    create_catalog(bootstrap, prefix)
    out_topic = f"{prefix}bench.passthrough"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ocop-bench")
    try:
        admin.create_topics([NewTopic(out_topic, 6, 1)])
    finally:
        admin.close()
    inputs = [topics.MASTER.full(prefix), topics.SUPPLY.full(prefix)]
    proc = Proc([sys.executable, "-m", "bench.passthrough", "--bootstrap", bootstrap, "--group", f"{prefix}pt",
                 "--out-topic", out_topic, *inputs], tmp / f"{prefix}log", {}).start()
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, client_id="ocop-bench-count")
    try:
        deadline = time.monotonic() + 120
        while b"READY" not in proc.log_file.read_bytes():
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"pass-through did not start: {proc.tail()}")
            time.sleep(0.2)
        cpu0 = proc.cpu_seconds()
        tps = [TopicPartition(out_topic, p) for p in range(6)]
        t0 = time.perf_counter()
        send_s = send_all(bootstrap, msgs)
        while sum(c.end_offsets(tps).values()) < len(msgs):
            if time.perf_counter() - t0 > 600:
                raise RuntimeError("pass-through did not finish within 600 s")
            time.sleep(0.05)
        total = time.perf_counter() - t0
        return {"seconds": total, "send_seconds": send_s, "events_per_s": len(msgs) / total,
                "cpu_s": proc.cpu_seconds() - cpu0}
    finally:
        c.close()
        proc.stop()


# ------------------------------------------------------------------------------------------------------ run
def run(quick: bool = False, out: str | None = None, **override: int) -> dict:
    sizes = {**(QUICK if quick else SIZES), **{k: v for k, v in override.items() if v}}
    with Run("pipeline", "Producer → worker (full rules) → sink → SQL, events/s", quick, out) as run_, \
            tempfile.TemporaryDirectory(prefix="ocop-bench-pipeline-") as tmpdir, kafka() as bootstrap:
        tmp = Path(tmpdir)
        events = generated(sizes["events"])
        log(f"{len(events):,} events; reference projection")
        expected = expected_records(events)

        log("baseline: aiokafka pass-through (before)")
        pt1 = passthrough(bootstrap, events, tmp)
        log(f"  {pt1['events_per_s']:,.0f} events/s")

        prefix = f"bench-pipe-{uuid.uuid4().hex[:8]}."
        create_catalog(bootstrap, prefix)
        msgs = encoded(events, prefix)
        db = tmp / "sink" / "ocop.sqlite3"
        log("starting the worker (RocksDB tables) and the sink (SQLite)")
        worker = start_worker(bootstrap, prefix, tmp / "worker")
        sink = start_sink(bootstrap, prefix, tmp / "sink", f"sqlite:///{db}")
        rs = ReadSide(db, expected)
        try:
            t_ready = time.monotonic() + 120
            while not rs.ready():
                if not sink.alive() or time.monotonic() > t_ready:
                    raise RuntimeError(f"sink did not start: {sink.tail()}")
                time.sleep(0.2)
            rss0 = worker.rss_mib()
            cpu_w0, cpu_s0 = worker.cpu_seconds(), sink.cpu_seconds()
            log(f"sending {len(msgs):,} events")
            t0 = time.perf_counter()
            send_s = send_all(bootstrap, msgs)
            log(f"  sent in {send_s:.1f}s ({len(msgs) / send_s:,.0f}/s)")
            samples = []
            worker_done = sink_done = None
            left = len(expected)
            last_lag = last_check = 0.0
            while True:
                el = time.perf_counter() - t0
                if not worker.alive() or not sink.alive():
                    raise RuntimeError(f"a process died: worker {worker.tail()} sink {sink.tail()}")
                if time.monotonic() - last_lag > 3:
                    last_lag = time.monotonic()
                    wl = worker_lag(bootstrap, prefix)
                    sl = rs.sink_lag(bootstrap, prefix)
                    left = rs.check()
                    samples.append({"t": round(el, 1), "worker_lag": wl, "sink_lag": sl, "lots_left": left,
                                    "worker_rss_mib": round(worker.rss_mib()["rss"], 1)})
                    log(f"  t={el:6.1f}s worker lag {wl} sink lag {sl} lots left {left:,}/{len(expected):,}")
                    if worker_done is None and wl == 0:
                        worker_done = el
                elif time.monotonic() - last_check > 1.0:
                    last_check = time.monotonic()
                    left = rs.check()
                if left == 0:
                    sink_done = time.perf_counter() - t0
                    break
                if el > sizes["timeout"]:
                    break
                time.sleep(0.5)
            total = sink_done if sink_done is not None else time.perf_counter() - t0
            cpu_w, cpu_s = worker.cpu_seconds() - cpu_w0, sink.cpu_seconds() - cpu_s0
            rss1 = worker.rss_mib()
            written = topic_messages(bootstrap, prefix)
        finally:
            sink.stop()
            worker.stop()

        log("baseline: aiokafka pass-through (after)")
        pt2 = passthrough(bootstrap, events, tmp)
        log(f"  {pt2['events_per_s']:,.0f} events/s")

        done = sink_done is not None
        rate = len(events) / total if done else (len(expected) - left) / len(expected) * len(events) / total
        base = (pt1["events_per_s"] + pt2["events_per_s"]) / 2
        r = ratio(rate, base)
        if not done:
            run_.note(f"did not converge within {sizes['timeout']} s: {left:,} of {len(expected):,} lots not final; "
                      "the rate is the share of lots final × events / elapsed (an upper bound)")
        if worker_done is not None:
            run_.note(f"the worker's consumer lag reached 0 at {worker_done:.0f} s, the read side was final at "
                      f"{total:.0f} s: the sink is {'the' if total > 1.5 * worker_done else 'not the'} bottleneck")
        per_event = sum(written.values()) / len(events)
        run_.note(f"Kafka messages written per input event: {per_event:.1f} in all ("
                  + ", ".join(f"{k} {v / len(events):.2f}" for k, v in written.items() if v) + ")")
        run_.note(f"CPU over the run: worker {cpu_w:.0f} s ({cpu_w / total:.0%} of a core), sink {cpu_s:.0f} s "
                  f"({cpu_s / total:.0%} of a core), on {len(events):,} events")
        g1 = goal("pipeline events/s", "≥ 5,000 events/s", rate, done and rate >= 5000, "events/s")
        g2 = goal("ratio to pass-through", "≥ 0.33", r, done and r is not None and r >= 0.33)
        return run_.finish(
            sizes={**sizes, "events_produced": len(events), "lots": len(expected)},
            figures={"events_per_s": rate, "seconds": total, "worker_caught_up_s": worker_done,
                     "send_s": send_s, "worker_cpu_s": cpu_w, "sink_cpu_s": cpu_s,
                     "worker_cpu_ms_per_event": cpu_w / len(events) * 1000,
                     "kafka_messages_per_event": per_event,
                     "sink_cpu_ms_per_lot": cpu_s / len(expected) * 1000,
                     "worker_rss_mib_start": rss0["rss"], "worker_rss_mib_end": rss1["rss"],
                     "worker_rss_peak_mib": rss1["hwm"], "converged": done},
            baseline={"description": "bare aiokafka consume → produce pass-through of the same messages, first send "
                                     "to last message out; mean of a run before and one after",
                      "figures": {"passthrough_events_per_s": base, "before": pt1, "after": pt2}},
            ratio={"pipeline_vs_passthrough": r},
            goals=[g1, g2],
            rows=[row("pipeline events/s (1 worker)", si(rate, "/s"), f"pass-through {si(base, '/s')}", times(r),
                      "≥ 5 k/s and ≥ 0.33×", (g1["pass"] and g2["pass"]) if done else False)],
            extra={"samples": samples, "topic_messages": written},
        )


def main() -> None:
    a = main_args("pipeline", __doc__, SIZES)
    run(a.quick, a.out, **{k: getattr(a, k) for k in SIZES})


if __name__ == "__main__":
    main()
