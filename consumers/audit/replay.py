"""Replay: read the raw event log from Kafka and fold it, read-only, into an isolated in-memory projection.

The auditor reads ``ocop.events.supply`` and ``ocop.events.master`` (and the issued stamp ranges on ``ocop.stamps``,
facts the records list) — the log with aiokafka (:func:`read_bulk`), metadata, offsets and the small topics with
kafka-python — by manual partition assignment, no consumer group, no commits, so it leaves no trace on the cluster
and never writes to an operational topic. It reads from the beginning (or, for the supply
topic, from the offsets :meth:`KafkaConsumer.offsets_for_times` gives for ``--since``) up to the end offsets captured
when it starts, so a replay is a fixed slice of the log even while producers keep writing.

Every message goes through :func:`streams.accept.accept` (what the validate agent does: decode, validate, right topic,
right key) — rejected ones are counted as the workers would dead-letter them — and the accepted events are folded by
:class:`streams.fold.Projection`, the same pure functions the lot workers run.

Speed (docs/AUDIT.md): accepting (decode + validate) and deriving the records dominate; with ``workers > 1`` the
partitions are split across processes that each consume and accept their share and hand back accepted events in
batches, while the parent folds; the cyclic garbage collector is paused meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import marshal
import multiprocessing as mp
import pickle
import queue as queue_mod
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timezone
from typing import Callable, Iterable, Iterator

from ocop_trace.config import Settings
from schemas import codec, topics
from schemas.events import canonical_hash
from streams.accept import Source, accept
from streams.fold import Projection
from streams.master import order_key
from schemas.validation import gtin_problem, parse_datetime

# The topics the auditor reads, by catalog name. Supply and master are the history; stamps are facts of the records.
LOG_TOPICS: tuple[topics.TopicSpec, ...] = (topics.SUPPLY, topics.MASTER)
# kafka-python (metadata, offsets, the small topics): large fetches, many records per poll, and CRC checks on (an
# auditor checks what it reads; with the `crc32c` package kafka-python checks them in C, else in pure Python at
# ~30 µs a record).
FETCH = dict(fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20, fetch_min_bytes=1, fetch_max_wait_ms=100,
             max_poll_records=20_000, check_crcs=True, receive_buffer_bytes=8 << 20,
             enable_incremental_fetch_sessions=False)
# The bulk read of the log (:func:`read_bulk`): aiokafka, the workers' own client (faust's), whose record-batch
# parsing and CRC-32C check are compiled: ≈ 2-4 µs a record where kafka-python parses in Python (≈ 10-12 µs).
BULK_FETCH = dict(fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20, fetch_min_bytes=1,
                  fetch_max_wait_ms=100, max_poll_records=20_000, check_crcs=True)


class AuditError(Exception):
    """An error the command line shows as a message and an exit code (not a traceback)."""

    exit_code = 1


class BadFilter(AuditError):
    exit_code = 2


class BrokerUnreachable(AuditError):
    exit_code = 3


# ---------------------------------------------------------------------------------------------------------------
# Kafka access (read-only)
# ---------------------------------------------------------------------------------------------------------------

def connect(settings: Settings, *, timeout_s: float = 10.0, **overrides):
    """A KafkaConsumer with no group (manual assignment, nothing committed). Unreachable → :class:`BrokerUnreachable`."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    cfg = dict(bootstrap_servers=settings.bootstrap_servers, client_id="ocop-trace-auditor", group_id=None,
               enable_auto_commit=False, request_timeout_ms=max(int(timeout_s * 1000), 5000),
               bootstrap_timeout_ms=int(timeout_s * 1000), **FETCH)
    cfg.update(overrides)
    try:
        return KafkaConsumer(**cfg)
    except (KafkaError, OSError) as e:
        raise BrokerUnreachable(
            f"Kafka broker unreachable at {settings.bootstrap_servers} ({type(e).__name__}: {e}). "
            "Start it with `ocop-trace broker up` or set OCOP_BOOTSTRAP / --bootstrap.") from None


def partitions(consumer, spec: topics.TopicSpec, settings: Settings) -> list:
    from kafka import TopicPartition

    name = spec.full(settings.topic_prefix)
    parts = consumer.partitions_for_topic(name)
    if not parts:
        raise BrokerUnreachable(
            f"topic {name!r} does not exist on {settings.bootstrap_servers} (prefix {settings.topic_prefix!r}); "
            "create the catalog with `ocop-trace topics create`")
    return [TopicPartition(name, p) for p in sorted(parts)]


@dataclass(frozen=True)
class Slice:
    """A fixed slice of one partition: ``start`` ≤ offsets < ``end``."""

    topic: str  # catalog name, e.g. ocop.events.supply
    full: str  # name on the broker (with the prefix)
    partition: int
    start: int
    end: int

    @property
    def ref(self) -> str:
        return f"{self.topic}:{self.partition}"

    @property
    def size(self) -> int:
        return max(self.end - self.start, 0)


def to_millis(value: datetime | date | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, dtime.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


def plan(consumer, settings: Settings, specs: Iterable[topics.TopicSpec], *, since_ms: int | None = None,
         until_ms: int | None = None, end_at: dict[str, int] | None = None) -> list[Slice]:
    """The slices to read: from the beginning (or the first offset at/after ``since_ms``) to the end offsets now (or
    the first offset at/after ``until_ms``; or the explicit ``end_at`` {"topic:partition": offset})."""
    out: list[Slice] = []
    for spec in specs:
        tps = partitions(consumer, spec, settings)
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        start = dict(begin)
        if since_ms is not None:
            found = consumer.offsets_for_times({tp: since_ms for tp in tps})
            start = {tp: (found[tp].offset if found.get(tp) else end[tp]) for tp in tps}
        stop = dict(end)
        if until_ms is not None:
            found = consumer.offsets_for_times({tp: until_ms for tp in tps})
            stop = {tp: (found[tp].offset if found.get(tp) else end[tp]) for tp in tps}
        for tp in tps:
            ref = f"{spec.name}:{tp.partition}"
            e = stop[tp] if end_at is None else min(end[tp], end_at.get(ref, 0))
            out.append(Slice(spec.name, tp.topic, tp.partition, max(start[tp], begin[tp]), e))
    return out


def _in_slices(todo: dict, batch: dict) -> Iterator[tuple[Slice, list]]:
    """A poll's records per slice, those past a slice's end left out (both readers below)."""
    for tp, records in batch.items():
        s = todo.get(tp)
        if s is None:
            continue
        if records[-1].offset >= s.end:
            records = [r for r in records if r.offset < s.end]
        if records:
            yield s, records


def read(consumer, slices: list[Slice], *, idle_timeout_s: float = 30.0) -> Iterator[tuple[Slice, list]]:
    """Yield ``(slice, records)`` batches until every slice is read to its end (records in offset order)."""
    from kafka import TopicPartition

    todo = {TopicPartition(s.full, s.partition): s for s in slices if s.size > 0}
    if not todo:
        return
    consumer.assign(list(todo))
    for tp, s in todo.items():
        consumer.seek(tp, s.start)
    idle = 0.0  # seconds of consecutive empty polls
    while todo:
        t = time.monotonic()
        batch = consumer.poll(timeout_ms=200)
        idle = 0.0 if batch else idle + (time.monotonic() - t)
        yield from _in_slices(todo, batch)
        for tp in [tp for tp, s in todo.items() if consumer.position(tp) >= s.end]:
            consumer.pause(tp)
            del todo[tp]
        if todo and idle > idle_timeout_s:
            left = ", ".join(f"{s.ref}@{consumer.position(tp)}<{s.end}" for tp, s in todo.items())
            raise BrokerUnreachable(f"no data from {consumer.config['bootstrap_servers']} for {idle_timeout_s:.0f}s "
                                    f"while reading {left}")


def read_bulk(settings: Settings, slices: list[Slice], *, timeout_s: float = 10.0,
              idle_timeout_s: float = 30.0) -> Iterator[tuple[Slice, list]]:
    """:func:`read`, with its own aiokafka consumer (no group, manual assignment, nothing committed): ``(slice,
    records)`` batches until every slice is read to its end. Inside a running event loop (where it cannot run its
    own), it reads with kafka-python."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        consumer = connect(settings, timeout_s=timeout_s)
        try:
            yield from read(consumer, slices, idle_timeout_s=idle_timeout_s)
        finally:
            consumer.close()
        return
    loop = asyncio.new_event_loop()
    batches = _read_bulk(settings, [s for s in slices if s.size > 0], timeout_s, idle_timeout_s)
    try:
        while True:
            try:
                yield loop.run_until_complete(batches.__anext__())
            except StopAsyncIteration:
                return
    finally:
        try:
            loop.run_until_complete(batches.aclose())
        finally:
            loop.close()


async def _read_bulk(settings: Settings, slices: list[Slice], timeout_s: float, idle_timeout_s: float):
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    if not slices:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, client_id="ocop-trace-auditor",
                                group_id=None, enable_auto_commit=False,
                                request_timeout_ms=max(int(timeout_s * 1000), 5000), **BULK_FETCH)
    try:
        await consumer.start()
    except (KafkaError, OSError) as e:
        await consumer.stop()
        raise BrokerUnreachable(
            f"Kafka broker unreachable at {settings.bootstrap_servers} ({type(e).__name__}: {e}). "
            "Start it with `ocop-trace broker up` or set OCOP_BOOTSTRAP / --bootstrap.") from None
    try:
        todo = {TopicPartition(s.full, s.partition): s for s in slices}
        consumer.assign(list(todo))
        for tp, s in todo.items():
            consumer.seek(tp, s.start)
        idle = 0.0  # seconds of consecutive empty polls
        while todo:
            t = time.monotonic()
            batch = await consumer.getmany(timeout_ms=200)
            idle = 0.0 if batch else idle + (time.monotonic() - t)
            for item in _in_slices(todo, batch):
                yield item
            for tp, s in list(todo.items()):
                if await consumer.position(tp) >= s.end:
                    consumer.pause(tp)
                    del todo[tp]
            if todo and idle > idle_timeout_s:
                left = ", ".join(f"{s.ref}<{s.end}" for s in todo.values())
                raise BrokerUnreachable(f"no data from {settings.bootstrap_servers} for {idle_timeout_s:.0f}s "
                                        f"while reading {left}")
    finally:
        await consumer.stop()


# ---------------------------------------------------------------------------------------------------------------
# The log: every message of the slice, accepted or not
# ---------------------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class Msg:
    """One input message as the auditor saw it. ``event`` is the accepted event (None: it would be dead-lettered,
    ``error`` says why); ``ehash`` its :func:`schemas.events.canonical_hash`."""

    topic: str  # catalog name
    partition: int
    offset: int
    timestamp: int  # ms (producer create time / log append time)
    key: str | None
    event: dict | None
    error: str | None = None
    ehash: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.topic}:{self.partition}@{self.offset}"


_SPEC = {s.name: s for s in LOG_TOPICS}


def accept_rows(topic: str, records: list, hashes: bool = True) -> list[tuple]:
    """Run consumer records of one catalog topic through the validate agent's :func:`accept`; the fields of a
    :class:`Msg` per record, as a plain tuple (cheap to pickle). ``hashes``: also each event's canonical hash, which
    verification needs and a plain replay does not."""
    spec = _SPEC[topic]
    out: list[tuple] = []
    append = out.append
    for r in records:
        key, headers = r.key, r.headers
        ev, bad = accept(Source(r.topic, r.partition, r.offset, key, r.value,
                                tuple((k, v) for k, v in headers) if headers else ()), spec)
        skey = key.decode("utf-8", "replace") if key is not None else None
        if ev is None:
            append((topic, r.partition, r.offset, r.timestamp, skey, None, f"{bad['error']}: {bad['reason']}", None))
        else:
            append((topic, r.partition, r.offset, r.timestamp, skey, ev, None, canonical_hash(ev) if hashes else None))
    return out


def accept_record(topic: str, r, hashes: bool = True) -> Msg:
    """One consumer record through :func:`accept_rows`."""
    return Msg(*accept_rows(topic, [r], hashes)[0])


def _worker(settings: Settings, slices: list[Slice], out, batch_size: int,
            hashes: bool) -> None:  # pragma: no cover - subprocess
    gc.disable()  # what it builds is acyclic and short-lived: the cyclic collector would only walk it
    try:
        for s, records in read_bulk(settings, slices):
            rows = accept_rows(s.topic, records, hashes)
            for i in range(0, len(rows), batch_size):
                out.put(_pack(rows[i:i + batch_size]))
        out.put(("done", None))
    except AuditError as e:
        out.put(("error", (type(e).__name__, str(e))))
    except BaseException as e:  # noqa: BLE001 - report anything to the parent rather than hang it
        out.put(("error", ("AuditError", f"{type(e).__name__}: {e}")))


def _pack(rows: list[tuple]) -> tuple[str, bytes]:
    """A batch of rows as the readers send it: marshal (decoded events hold plain values, which it encodes exactly,
    and it encodes and decodes them faster than pickle), pickle for anything it cannot encode."""
    try:
        return "marshal", marshal.dumps(rows)
    except ValueError:
        return "pickle", pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)


PARALLEL_MIN_MESSAGES = 20_000  # fewer are read faster by one process than processes start and connect


def read_log(settings: Settings, slices: list[Slice], *, workers: int = 1,
             progress: Callable[[int], None] | None = None, batch_size: int = 2000,
             hashes: bool = True) -> Iterator[list[Msg]]:
    """Yield batches of :class:`Msg` for ``slices`` (per partition in offset order). ``workers`` > 1 splits the
    partitions over that many processes (each its own consumer) unless the slices hold fewer than
    :data:`PARALLEL_MIN_MESSAGES`; ``progress(n)`` is told of every n messages read."""
    busy = [s for s in slices if s.size > 0]
    if workers <= 1 or len(busy) < 2 or sum(s.size for s in busy) < PARALLEL_MIN_MESSAGES:
        for s, records in read_bulk(settings, busy):
            msgs = [Msg(*row) for row in accept_rows(s.topic, records, hashes)]
            if progress:
                progress(len(msgs))
            yield msgs
        return
    workers = min(workers, len(busy))
    shares: list[list[Slice]] = [[] for _ in range(workers)]
    load = [0] * workers
    for s in sorted(busy, key=lambda s: -s.size):  # balance by size
        i = load.index(min(load))
        shares[i].append(s)
        load[i] += s.size
    ctx = mp.get_context("fork")
    out = ctx.Queue(maxsize=64)
    procs = [ctx.Process(target=_worker, args=(settings, share, out, batch_size, hashes), daemon=True) for share in shares]
    for p in procs:
        p.start()
    try:
        running = len(procs)
        while running:
            try:
                kind, body = out.get(timeout=5.0)
            except queue_mod.Empty:
                if not any(p.is_alive() for p in procs):
                    raise AuditError("replay workers died without finishing") from None
                continue
            if kind == "marshal" or kind == "pickle":
                rows = marshal.loads(body) if kind == "marshal" else pickle.loads(body)
                if progress:
                    progress(len(rows))
                yield [Msg(*t) for t in rows]
            elif kind == "done":
                running -= 1
            else:
                name, text = body
                raise (BrokerUnreachable if name == "BrokerUnreachable" else AuditError)(text)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


def read_stamp_ranges(settings: Settings, consumer=None) -> list[dict]:
    """Every issued stamp range on ``ocop.stamps`` (facts the records list). Undecodable messages are skipped."""
    own = consumer is None
    consumer = consumer or connect(settings)
    try:
        slices = plan(consumer, settings, [topics.STAMPS])
        c = codec.codec(codec.STAMP_RANGE)
        out = []
        for _s, records in read(consumer, slices):
            for r in records:
                try:
                    out.append(c.decode(r.value))
                except codec.CodecError:
                    continue
        return out
    finally:
        if own:
            consumer.close()


# ---------------------------------------------------------------------------------------------------------------
# The replay
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Stats:
    messages: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)  # error kind -> count (what the workers dead-letter)
    duplicates: int = 0  # accepted events whose event id was seen before (idempotent no-ops)
    stamp_ranges: int = 0
    lots: int = 0
    read_seconds: float = 0.0
    fold_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.read_seconds + self.fold_seconds

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {"messages": self.messages, "accepted": self.accepted, "rejected": dict(self.rejected),
                "duplicates": self.duplicates, "stamp_ranges": self.stamp_ranges, "lots": self.lots,
                "seconds": round(self.seconds, 3), "events_per_second": round(self.rate)}


@dataclass
class Replay:
    """The result of a replay: the log slice as read, the projection folded from it, and the records."""

    log: list[Msg]
    projection: Projection
    records: dict[str, dict]
    stats: Stats
    slices: list[Slice]
    stamp_ranges: list[dict] = field(default_factory=list)
    partial: bool = False  # True when --since/--until cut the supply history
    _area_recalls: dict | None = field(default=None, repr=False)

    def events(self) -> Iterator[Msg]:
        return (m for m in self.log if m.event is not None)

    def lot_events(self, lot: str) -> list[dict]:
        """The accepted events of a lot's record: those touching it, and recalls of a growing area it comes from."""
        if self._area_recalls is None:
            self._area_recalls = {}
            for m in self.events():
                ev = m.event
                if ev["event_type"] == "recall" and ev["payload"]["scope"] == "area":
                    self._area_recalls.setdefault(ev["payload"]["target"], {})[ev["event_id"]] = ev
        st = self.projection.states.get(lot)
        out = list(st["events"].values()) if st else []
        for area in sorted({o["area_code"] for o in (self.records.get(lot) or {}).get("origins", [])}):
            out += self._area_recalls.get(area, {}).values()
        return out

    @property
    def offsets(self) -> dict[str, int]:
        return {s.ref: s.end for s in self.slices}


class Folder:
    """Adds accepted messages to a fresh :class:`Projection` as they arrive; :meth:`finish` derives the records."""

    def __init__(self, stats: Stats | None = None) -> None:
        self.stats = stats or Stats()
        self.proj = Projection()
        self.seen: set[str] = set()

    def add(self, msgs: Iterable[Msg]) -> None:
        proj, seen, stats = self.proj, self.seen, self.stats
        for m in msgs:
            stats.messages += 1
            ev = m.event
            if ev is None:
                stats.rejected[m.error.split(":", 1)[0]] += 1
                continue
            stats.accepted += 1
            if ev["event_id"] in seen:
                stats.duplicates += 1
            else:
                seen.add(ev["event_id"])
            proj.add(ev, m.ehash)  # the chain reuses the reader's hash (hashes=True), else computes it

    def finish(self, stamp_ranges: Iterable[dict] = ()) -> tuple[Projection, dict]:
        for rng in stamp_ranges:
            self.proj.add_stamp_range(rng)
        records = self.proj.run()
        self.stats.lots = len(records)
        return self.proj, records


def fold(log: Iterable[Msg], stamp_ranges: Iterable[dict] = (), stats: Stats | None = None) -> tuple[Projection, dict]:
    """Fold accepted messages (in log order) into a fresh projection and derive every record."""
    f = Folder(stats)
    f.add(log)
    return f.finish(stamp_ranges)


def replay(settings: Settings, *, since: datetime | date | None = None, until: datetime | date | None = None,
           workers: int = 1, progress: Callable[[int, int], None] | None = None, stamps: bool = True,
           end_at: dict[str, int] | None = None, hashes: bool = True) -> Replay:
    """Read the log slice and fold it. ``progress(done, total)`` is called as messages arrive; ``hashes=False``
    skips the per-message canonical hash (a replay that will not be verified).

    The cyclic garbage collector is paused meanwhile: a replay builds millions of acyclic objects (events, states,
    records) that it would walk again and again for nothing (~15 % of the time)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _replay(settings, since, until, workers, progress, stamps, end_at, hashes)
    finally:
        if paused:
            gc.enable()


def _replay(settings: Settings, since, until, workers: int, progress, stamps: bool, end_at, hashes: bool) -> Replay:
    since_ms, until_ms = to_millis(since), to_millis(until)
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise BadFilter("--since must be before --until")
    stats = Stats()
    t0 = time.perf_counter()
    consumer = connect(settings)
    try:
        # Master data is always read whole (it is needed to interpret any period). The period skips the supply
        # messages recorded before it: an event that occurred at/after --since was recorded at most a day before
        # (validation allows occurred_at up to 24 h after recorded_at), so the read starts two days early; nothing
        # is cut at --until (a late recording of an event in the period comes after it). The period itself is
        # then applied to occurred_at by select() / events_of().
        start_ms = None if since_ms is None else since_ms - 2 * 24 * 3600 * 1000
        slices = plan(consumer, settings, [topics.SUPPLY], since_ms=start_ms, end_at=end_at)
        slices += plan(consumer, settings, [topics.MASTER], end_at=end_at)
        ranges = read_stamp_ranges(settings, consumer) if stamps else []
    finally:
        consumer.close()
    total = sum(s.size for s in slices)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    if progress:
        progress(0, total)
    log: list[Msg] = []
    folder = Folder(stats)  # folds while the rest of the log is still being read and decoded
    for batch in read_log(settings, slices, workers=workers, progress=tick, hashes=hashes):
        log.extend(batch)
        folder.add(batch)
    stats.read_seconds = time.perf_counter() - t0
    stats.stamp_ranges = len(ranges)
    t1 = time.perf_counter()
    proj, records = folder.finish(ranges)
    stats.fold_seconds = time.perf_counter() - t1
    partial = since_ms is not None
    return Replay(log, proj, records, stats, slices, ranges, partial)


# ---------------------------------------------------------------------------------------------------------------
# Filters: which lots of the projection an auditor asked for
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    lot: str | None = None
    subject: str | None = None
    area: str | None = None
    product: str | None = None  # GTIN
    since: datetime | None = None
    until: datetime | None = None

    def check(self) -> None:
        if self.product is not None:
            problem = gtin_problem(self.product)
            if problem:
                raise BadFilter(f"--product {self.product!r} is not a GTIN: {problem}")
        if self.since and self.until and self.since >= self.until:
            raise BadFilter(f"--since {self.since.isoformat()} is not before --until {self.until.isoformat()}")

    @property
    def empty(self) -> bool:
        return not any((self.lot, self.subject, self.area, self.product, self.since, self.until))


def parse_when(value: str | None, name: str) -> datetime | None:
    """``YYYY-MM-DD`` or an ISO 8601 date-time (UTC when no offset is given)."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), dtime.min, tzinfo=timezone.utc)
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise BadFilter(f"{name} {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def lineage_closure(records: dict[str, dict], lot: str) -> set[str]:
    """The lot with every ancestor (through ``parents``) and every descendant (through ``children``)."""
    out = {lot}
    for direction in ("parents", "children"):
        todo = deque([lot])
        seen = {lot}
        while todo:
            cur = todo.popleft()
            rec = records.get(cur)
            for nxt in (rec or {}).get(direction, []):
                if nxt not in seen:
                    seen.add(nxt)
                    out.add(nxt)
                    todo.append(nxt)
    return out


def _in_period(ev: dict, since: datetime | None, until: datetime | None) -> bool:
    at = parse_datetime(ev["occurred_at"])
    return (since is None or at >= since) and (until is None or at < until)


def select(rep: Replay, f: Filters) -> list[str]:
    """The lots matching every given filter (sorted). Unknown lot / subject / area / product → :class:`BadFilter`."""
    f.check()
    records, master = rep.records, rep.projection.master
    lots = set(records)
    if f.lot is not None:
        if f.lot not in records:
            raise BadFilter(f"unknown lot {f.lot!r}: no event of the replayed log names it")
        lots &= lineage_closure(records, f.lot)
    if f.subject is not None:
        mine = {lot for lot, rec in records.items()
                if rec["subject_id"] == f.subject
                or any(e["actor"]["subject_id"] == f.subject for e in rep.projection.states[lot]["events"].values())}
        if not mine and master.get("subject", f.subject) is None:
            raise BadFilter(f"unknown subject {f.subject!r}: not registered and no event names it")
        lots &= mine
    if f.area is not None:
        mine = {lot for lot, rec in records.items() if any(o["area_code"] == f.area for o in rec["origins"])}
        if not mine and master.get("area", f.area) is None:
            raise BadFilter(f"unknown growing area {f.area!r}: not registered and no harvest names it")
        lots &= mine
    if f.product is not None:
        mine = {lot for lot, rec in records.items()
                if (rec["packaging"] or {}).get("gtin") == f.product or (rec["product"] or {}).get("gtin") == f.product}
        if not mine and master.get("product", f.product) is None:
            raise BadFilter(f"unknown product {f.product!r}: not registered and no lot is packaged as it")
        lots &= mine
    if f.since is not None or f.until is not None:
        lots = {lot for lot in lots if any(_in_period(e, f.since, f.until) for e in rep.lot_events(lot))}
    return sorted(lots)


def events_of(rep: Replay, lots: Iterable[str], f: Filters | None = None) -> list[dict]:
    """The accepted events of ``lots`` (each once; see :meth:`Replay.lot_events`), ordered by time then id; within
    the period if given."""
    out: dict[str, dict] = {}
    for lot in lots:
        for ev in rep.lot_events(lot):
            if f is None or (f.since is None and f.until is None) or _in_period(ev, f.since, f.until):
                out[ev["event_id"]] = ev
    return sorted(out.values(), key=order_key)
