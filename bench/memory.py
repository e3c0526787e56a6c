"""Memory: the worker's resident memory (RSS) as its RocksDB tables fill with lots, measured up to 1,000,000 lots.

    python -m bench.memory [--quick] [--events 16000] [--stages 4] [--lots 1000000] [--timeout 900]
                           [--recovery-timeout 3600] [--what-if 1]

Worker A (``python -m ocop_trace.cli worker``, ``OCOP_TABLE_STORE=rocksdb://``, as deployed) on a fresh prefix. Its
RSS is read from ``/proc/<pid>/status`` once it is ready (the baseline: no lots), then the generated events are sent
in ``--stages`` equal parts; after each part, once the worker's consumer-group lag is 0 and has stayed 0 for a few
seconds, RSS (and its peak, VmHWM), the number of lots in its tables and their size on disk are recorded.

Feeding 1,000,000 lots (~6 million events) through one worker takes hours here, so the tables are filled through
faust's own recovery instead: worker A's tables are read back from their changelogs (latest value per key) and
copied N times under new lot codes (``-L-`` → ``-L<c>-`` in every key and value: areas, GTINs and subjects stay
shared, as many lots share a growing area) into the changelogs of a second prefix: ``lots`` and ``stamp-state`` on
the new lot's partition, ``master`` as it is, ``master-index`` rebuilt for the partitions of the new lots,
``scan-state`` empty. Worker B starts on that prefix with an empty data dir, recovers every table partition into
RocksDB before it is ready, then processes one more stage of new events (another seed: new lots); its RSS once its
lag is 0 is the figure at ``--lots`` (``--lots 0``: not loaded, the figure is the line through A's points, labelled
extrapolated). With ``--what-if 1`` the events of A then go through a worker with other RocksDB options (``TUNED``,
set on faust's ``RocksDBOptions`` in a wrapper process, ``python -m bench.memory --worker-child``; the project's
code is unchanged). Goal: < 1 GiB at 1,000,000 lots.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from bench.common import (Proc, Run, create_catalog, goal, kafka, log, main_args, ratio, row, settings_for,
                          start_worker)

SIZES = {"events": 16_000, "stages": 4, "lots": 1_000_000, "timeout": 900, "recovery_timeout": 3600, "what_if": 0}
QUICK = {"events": 1_200, "stages": 2, "lots": 20_000, "timeout": 300, "recovery_timeout": 600, "what_if": 0}
TUNED = {"write_buffer_size": 8 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20}
FEED_SEED, LIVE_SEED = 21, 22  # other seeds, other lot codes (the generator's tag: "CHE-L-00026-H1", "CHE-M-...")

Tables = dict[str, dict[tuple[int, str], bytes]]  # table -> {(changelog partition, key): latest value (JSON)}


def worker_child() -> None:  # pragma: no cover - subprocess
    """``ocop-trace worker`` with faust's RocksDB defaults replaced by ``OCOP_BENCH_ROCKSDB`` (JSON)."""
    from faust.stores.rocksdb import RocksDBOptions

    for k, v in json.loads(os.environ.get("OCOP_BENCH_ROCKSDB", "{}")).items():
        setattr(RocksDBOptions, k, v)
    from ocop_trace.config import get_settings
    from streams.app import run_worker

    run_worker(get_settings(), loglevel="info")


def du_mib(path: Path) -> float:
    """Size of the files under ``path`` (RocksDB deletes files while compacting: those are skipped)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total / 2**20


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b·x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def measure(worker: Proc, folder: Path) -> dict:
    m = worker.rss_mib()
    return {"rss_mib": m["rss"], "peak_mib": m["hwm"], "tables_disk_mib": du_mib(folder / "faust")}


def settle(worker: Proc, bootstrap: str, prefix: str, msgs: list, deadline: float) -> None:
    """Send ``msgs``, then wait until the worker's consumer-group lag is 0 and has stayed 0 for a few seconds."""
    from bench.pipeline import send_all, worker_lag

    send_all(bootstrap, msgs)
    zero_since = None
    while True:
        if not worker.alive():
            raise RuntimeError(f"worker died: {worker.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not catch up within --timeout")
        if worker_lag(bootstrap, prefix) == 0:
            zero_since = zero_since or time.monotonic()
            if time.monotonic() - zero_since > 4:
                return
        else:
            zero_since = None
        time.sleep(1)


def feed(bootstrap: str, folder: Path, events: list[dict], sizes: dict, argv: list[str] | None = None,
         env: dict[str, str] | None = None) -> tuple[str, dict, list[dict]]:
    """One worker on a fresh prefix; the events sent in stages; (prefix, idle RSS, one point per stage)."""
    from bench.pipeline import encoded
    from schemas.events import lots_touched

    prefix = f"bench-mem-{uuid.uuid4().hex[:8]}."
    create_catalog(bootstrap, prefix)
    msgs = encoded(events, prefix)
    worker = start_worker(bootstrap, prefix, folder, argv=argv, env=env)
    points = []
    t_start = time.monotonic()
    try:
        time.sleep(3)
        idle = worker.rss_mib()
        log(f"idle worker: {idle['rss']:.0f} MiB")
        lots: set[str] = set()
        k = sizes["stages"]
        lo = 0
        for hi in (round(len(msgs) * (i + 1) / k) for i in range(k)):
            settle(worker, bootstrap, prefix, msgs[lo:hi], t_start + sizes["timeout"])
            for ev in events[lo:hi]:
                lots.update(lots_touched(ev))
            lo = hi
            p = {"events": hi, "lots": len(lots), **measure(worker, folder), "t": round(time.monotonic() - t_start)}
            points.append(p)
            log(f"  {hi:,} events, {len(lots):,} lots: RSS {p['rss_mib']:.0f} MiB (peak {p['peak_mib']:.0f}), "
                f"tables {p['tables_disk_mib']:.0f} MiB on disk")
    finally:
        worker.stop()
    return prefix, idle, points


# ------------------------------------------------------------------------------------------- tables by recovery
def changelogs(bootstrap: str, prefix: str, data_dir: Path) -> tuple[dict[str, str], int]:
    """(table -> changelog topic, partitions) of a worker on ``prefix``; the compacted changelog topics are created
    as the worker creates them (``streams.app.ensure_changelogs``)."""
    from streams.app import create_app, ensure_changelogs

    s = settings_for(bootstrap, prefix, data_dir)
    app = create_app(s)
    ensure_changelogs(app, s)
    return {t.name: t.changelog_topic.get_topic_name() for t in app.tables.values()}, s.partitions


def read_tables(bootstrap: str, topics: dict[str, str]) -> Tables:
    """The latest value of every key of each table's changelog (deleted keys left out; faust writes the keys of a
    changelog as JSON)."""
    import orjson
    from kafka import KafkaConsumer, TopicPartition

    from consumers.audit.replay import FETCH

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      client_id="ocop-bench-read", **FETCH)
    try:
        tps = [TopicPartition(t, p) for t in topics.values() for p in sorted(c.partitions_for_topic(t) or ())]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        latest: dict[str, dict] = {t: {} for t in topics.values()}
        todo = {tp for tp in tps if end[tp] > 0}
        while todo:
            for tp, records in c.poll(timeout_ms=500).items():
                for r in records:
                    latest[tp.topic][(tp.partition, orjson.loads(r.key))] = r.value
            todo = {tp for tp in todo if c.position(tp) < end[tp]}
    finally:
        c.close()
    return {name: {k: v for k, v in latest[t].items() if v is not None} for name, t in topics.items()}


def copied(src: Tables, n_copies: int, partitions: int) -> Iterator[tuple[str, int, bytes, bytes]]:
    """(table, partition, key, value) of ``n_copies`` copies of ``src``'s lots: copy c renames every lot code
    ``<pfx>-<tag>-<n>...`` to ``<pfx>-<tag><c>-<n>...`` in keys and values (values otherwise byte for byte); the
    master replicas once, as they are; the master index rebuilt: each entry lists the lots of its own partition."""
    import orjson

    from streams.app import partition_of

    tags = {key.split("-")[1] for _p, key in src["lots"]}
    if len(tags) != 1:
        raise ValueError(f"lot codes without one common generator tag: {sorted(tags)[:5]}")
    tag = tags.pop()
    old = f"-{tag}-"
    if any(key.count(old) != 1 for _p, key in src["lots"]) or \
            any(old in key or old.encode() in value for (_p, key), value in src["master"].items()):
        raise ValueError(f"{old!r} is not only in lot codes: renaming it would not rename just the lots")
    for c in range(n_copies):
        new = f"-{tag}{c}-"
        for table in ("lots", "stamp-state"):
            for (_p, key), value in src[table].items():
                k = key.replace(old, new)
                yield table, partition_of(k, partitions), orjson.dumps(k), value.replace(old.encode(), new.encode())
    for (p, key), value in src["master"].items():
        yield "master", p, orjson.dumps(key), value
    members: dict[str, list[str]] = defaultdict(list)  # "<kind>|<id>" -> its lots on every partition
    for (_p, key), value in src["master-index"].items():
        members[key.split("|", 1)[1]] += orjson.loads(value)
    for entry, lots in members.items():
        by_partition: dict[int, list[str]] = defaultdict(list)
        for c in range(n_copies):
            for lot in lots:
                renamed = lot.replace(old, f"-{tag}{c}-")
                by_partition[partition_of(renamed, partitions)].append(renamed)
        for q, lots_q in by_partition.items():
            yield "master-index", q, orjson.dumps(f"{q}|{entry}"), orjson.dumps(lots_q)


def produce(bootstrap: str, topics: dict[str, str], messages: Iterator[tuple[str, int, bytes, bytes]]) -> dict:
    """Send each (table, partition, key, value) to the table's changelog; per table: messages, bytes, largest value."""
    from kafka import KafkaProducer
    from kafka.errors import MessageSizeTooLargeError

    stats = {t: {"messages": 0, "bytes": 0, "max_value_bytes": 0} for t in topics}
    failed: list[Exception] = []
    p = KafkaProducer(bootstrap_servers=bootstrap, client_id="ocop-bench-load", acks=1, linger_ms=50,
                      batch_size=256 << 10)
    try:
        for i, (table, part, key, value) in enumerate(messages, 1):
            try:
                p.send(topics[table], key=key, value=value, partition=part).add_errback(failed.append)
            except MessageSizeTooLargeError as e:
                raise RuntimeError(f"{table} {key.decode()}: a value of {len(value):,} bytes is over the "
                                   "1 MiB message limit") from e
            s = stats[table]
            s["messages"] += 1
            s["bytes"] += len(value)
            s["max_value_bytes"] = max(s["max_value_bytes"], len(value))
            if i % 20_000 == 0:  # kafka-python's buffer is unbounded: flush every ~70 MiB
                p.flush()
                if failed:
                    break
                if i % 100_000 == 0:
                    log(f"  {i:,} messages, {sum(s['bytes'] for s in stats.values()) / 2**20:,.0f} MiB")
        p.flush()
    finally:
        p.close()
    if failed:
        raise RuntimeError(f"producing the copies failed: {failed[0]!r}")
    return stats


def drop_topics(bootstrap: str, prefix: str) -> None:
    """Delete the topics of ``prefix`` (gigabytes at 1M lots, on a broker that may be shared with other benchmarks)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ocop-bench")
    try:
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix)])
    finally:
        admin.close()


def loaded(bootstrap: str, folder: Path, src: Tables, sizes: dict) -> dict:
    """Worker B on tables holding ``sizes["lots"]`` lots (copies of ``src`` loaded by faust's changelog recovery),
    after it processed one more stage of new lots: its RSS, peak, tables on disk, recovery time."""
    from bench.pipeline import encoded, generated
    from schemas.events import lots_touched
    from streams.master import entries_of

    n_src = len(src["lots"])
    n_copies = max(1, -(-sizes["lots"] // n_src))
    prefix = f"bench-mem-{uuid.uuid4().hex[:8]}."
    create_catalog(bootstrap, prefix)
    topics, partitions = changelogs(bootstrap, prefix, folder)
    try:
        log(f"loading {n_copies:,} copies of worker A's {n_src:,} lots ({n_copies * n_src:,}) into {prefix}")
        t = time.monotonic()
        stats = produce(bootstrap, topics, copied(src, n_copies, partitions))
        produce_s = time.monotonic() - t
        log(f"  produced in {produce_s:.0f} s: " + ", ".join(
            f"{k} {s['messages']:,} ({s['bytes'] / 2**20:,.0f} MiB, largest {s['max_value_bytes']:,} B)"
            for k, s in stats.items() if s["messages"]))

        # the live stage: new lots; master events for entries the tables hold are left out, since each one would
        # re-derive every copied lot that depends on the entry
        known = {key.split("|", 1)[1] for t in ("master", "master-index") for _p, key in src[t]}
        stage = generated(sizes["events"] // sizes["stages"], seed=LIVE_SEED)
        events = [ev for ev in stage if not any(f"{k}|{i}" in known for k, i in entries_of(ev))]
        new_lots = {lot for ev in events for lot in lots_touched(ev)}

        t = time.monotonic()
        worker = start_worker(bootstrap, prefix, folder, timeout=sizes["recovery_timeout"])
        try:
            recovery_s = time.monotonic() - t
            recovered = measure(worker, folder)
            log(f"worker B ready after {recovery_s:.0f} s of recovery: RSS {recovered['rss_mib']:.0f} MiB (peak "
                f"{recovered['peak_mib']:.0f}), tables {recovered['tables_disk_mib']:,.0f} MiB on disk; live stage: "
                f"{len(events):,} events, {len(new_lots):,} new lots")
            t = time.monotonic()
            settle(worker, bootstrap, prefix, encoded(events, prefix), t + sizes["timeout"])
            live_s = time.monotonic() - t
            end = measure(worker, folder)
        finally:
            worker.stop()
    finally:
        drop_topics(bootstrap, prefix)
    lots = n_copies * n_src + len(new_lots)
    log(f"  {lots:,} lots: RSS {end['rss_mib']:.0f} MiB (peak {end['peak_mib']:.0f}), tables "
        f"{end['tables_disk_mib']:,.0f} MiB on disk")
    return {"lots": lots, "copies": n_copies, "source_lots": n_src, "new_lots": len(new_lots),
            "live_events": len(events), "master_events_left_out": len(stage) - len(events), "produce_s": produce_s,
            "changelog_mib": sum(s["bytes"] for s in stats.values()) / 2**20,
            "largest_index_value_bytes": stats["master-index"]["max_value_bytes"], "changelogs": stats,
            "recovery_s": recovery_s, "after_recovery": recovered, "live_s": live_s, **end}


# ------------------------------------------------------------------------------------------------------ run
def run(quick: bool = False, out: str | None = None, **override: int) -> dict:
    sizes = {**(QUICK if quick else SIZES), **{k: v for k, v in override.items() if v is not None}}
    from bench.pipeline import generated

    with Run("memory", "Worker RSS vs lots in its RocksDB tables (loaded by changelog recovery)", quick, out) as run_, \
            tempfile.TemporaryDirectory(prefix="ocop-bench-memory-") as tmpdir, kafka() as bootstrap:
        tmp = Path(tmpdir)
        events = generated(sizes["events"], seed=FEED_SEED)
        prefix, idle, points = feed(bootstrap, tmp / "default", events, sizes)
        big = None
        if sizes["lots"]:
            log("reading worker A's tables back from their changelogs")
            src = read_tables(bootstrap, changelogs(bootstrap, prefix, tmp / "default")[0])
            big = loaded(bootstrap, tmp / "loaded", src, sizes)
            del src
        tuned = None
        if sizes.get("what_if"):
            log(f"what-if: the same events through a worker with RocksDB options {TUNED}")
            _, t_idle, t_points = feed(bootstrap, tmp / "tuned", events, sizes, argv=[
                sys.executable, "-m", "bench.memory", "--worker-child"],
                env={"OCOP_BENCH_ROCKSDB": json.dumps(TUNED)})
            tuned = {"options": TUNED, "idle": t_idle, "points": t_points}

        # the line through the fed points (the step from idle to the first one is start-up work, not lots)
        use = points if len(points) >= 2 else [{"lots": 0, "rss_mib": idle["rss"]}, *points]
        xs, ys = [p["lots"] for p in use], [p["rss_mib"] for p in use]
        a, b = fit(xs, ys)
        target = big["lots"] if big else 1_000_000
        est = a + b * target
        last = points[-1]
        first = points[0]
        from ocop_trace.config import Settings
        from streams.app import ROCKSDB_OPTIONS as opts

        n_part = Settings(_env_file=None).partitions
        disk_per_lot_kib = ((last["tables_disk_mib"] - first["tables_disk_mib"]) * 1024 /
                            max(last["lots"] - first["lots"], 1)) if len(points) >= 2 else \
            last["tables_disk_mib"] * 1024 / max(last["lots"], 1)
        line = (f"the least-squares line {a:.0f} MiB + {b * 1000:.2f} MiB per 1,000 lots through the {len(xs)} points "
                f"measured up to {last['lots']:,} lots")
        if big:
            run_.note(
                f"MEASURED at {big['lots']:,} lots, loaded: worker A's real table states after {len(events):,} events "
                f"({big['source_lots']:,} lots) copied {big['copies']:,}× under new lot codes ('-L-' → '-L<copy>-' in "
                "keys and values; areas, GTINs and subjects shared), master replicas copied, master index rebuilt "
                f"for the new lots' partitions, scan-state empty: {big['changelog_mib']:,.0f} MiB of changelogs "
                f"(largest master-index value {big['largest_index_value_bytes']:,} B), recovered by faust into "
                f"RocksDB by worker B on an empty data dir in {big['recovery_s']:.0f} s (RSS "
                f"{big['after_recovery']['rss_mib']:.0f} MiB once ready); then {big['live_events']:,} live events "
                f"of {big['new_lots']:,} new lots processed until its lag was 0: RSS {big['rss_mib']:.0f} MiB, peak "
                f"(VmHWM, recovery included) {big['peak_mib']:.0f} MiB, tables {big['tables_disk_mib']:,.0f} MiB "
                "on disk")
            run_.note(
                "Not covered: the copied lots were not processed live by worker B (their RocksDB files come from "
                "faust's bulk recovery writes, not from rewriting each state once per event) and the live stage "
                "touches none of them (their recorded digests are stale, so touching one would re-publish it); "
                f"the live stage's {big['master_events_left_out']} master events for entries the tables already "
                "held were left out, as each would re-derive every copied lot depending on that entry (its "
                f"master-index values hold up to {big['largest_index_value_bytes']:,} B of lot codes here): a load "
                "not measured here; no scans (scan-state empty)")
            run_.note(f"the extrapolation this replaces: {line} gives {est:,.0f} MiB at {big['lots']:,} lots "
                      f"(measured {big['rss_mib']:,.0f} MiB)")
        else:
            run_.note(f"EXTRAPOLATED (--lots 0): the 1,000,000-lot RSS ({est:,.0f} MiB) is {line}: a straight line "
                      "100-1000× beyond the data, and RocksDB flushes its memtables at "
                      f"{opts['write_buffer_size'] >> 20} MiB per table partition, so growth does not stay linear")
        per_partition = opts["write_buffer_size"] * opts["max_write_buffer_number"] + opts["block_cache_size"]
        run_.note(f"RocksDB bounds (streams/app.py ROCKSDB_OPTIONS): {opts['max_write_buffer_number']} × "
                  f"{opts['write_buffer_size'] >> 20} MiB memtables + {opts['block_cache_size'] >> 20} MiB block cache "
                  f"per table partition; 5 tables × {n_part} partitions bound them at "
                  f"{per_partition * 5 * n_part >> 20} MiB in all, whatever the number of lots; table files on "
                  f"disk changed by {disk_per_lot_kib:.1f} KiB per lot over worker A's run (compaction shrinks them)")
        rows_extra = []
        if tuned:
            tl = tuned["points"][-1]
            ta, tb = fit([p["lots"] for p in tuned["points"]], [p["rss_mib"] for p in tuned["points"]])
            tuned["fit"] = {"intercept_mib": ta, "mib_per_lot": tb}
            run_.note(f"what-if (lower RocksDB options, project code unchanged): RSS {tl['rss_mib']:.0f} MiB at "
                      f"{tl['lots']:,} lots vs {last['rss_mib']:.0f} MiB with the project's; slope "
                      f"{tb * 1000:.2f} vs {b * 1000:.2f} MiB per 1,000 lots")
            rows_extra.append(row(f"  what-if: 8 MiB×2 write buffers @ {tl['lots']:,} lots", f"{tl['rss_mib']:.0f} MiB",
                                  f"idle {tuned['idle']['rss']:.0f} MiB",
                                  f"{ratio(tl['rss_mib'], tuned['idle']['rss']):.2f}×"))
        if big:
            rss = big["rss_mib"]
            g = goal(f"worker RSS at {big['lots']:,} lots (measured)", "< 1 GiB at 1,000,000 lots", rss,
                     rss < 1024 if big["lots"] >= 1_000_000 else None, "MiB")
            big_row = row(f"worker RSS @ {big['lots']:,} lots (loaded)",
                          f"{rss:,.0f} MiB (peak {big['peak_mib']:,.0f})", f"idle {idle['rss']:.0f} MiB",
                          f"{ratio(rss, idle['rss']):.2f}×", "< 1 GiB at 1M", g["pass"])
            figures = {"lots_loaded": big["lots"], "rss_mib_loaded": rss, "peak_mib_loaded": big["peak_mib"],
                       "rss_mib_after_recovery": big["after_recovery"]["rss_mib"], "recovery_s": big["recovery_s"],
                       "tables_disk_mib_loaded": big["tables_disk_mib"], "changelog_mib_loaded": big["changelog_mib"],
                       "largest_index_value_bytes": big["largest_index_value_bytes"]}
        else:
            g = goal("worker RSS at 1,000,000 lots (extrapolated)", "< 1 GiB", est, None, "MiB")
            big_row = row("worker RSS @ 1M lots (extrapolated)", f"≈ {est:,.0f} MiB", f"idle {idle['rss']:.0f} MiB",
                          f"{ratio(est, idle['rss']):.2f}×", "< 1 GiB at 1M", None)
            figures = {}
        return run_.finish(
            sizes={**sizes, "events_produced": len(events), "lots_measured": last["lots"]},
            figures={**figures, "rss_mib_at_measured": last["rss_mib"], "lots_measured": last["lots"],
                     "rss_mib_per_1000_lots": b * 1000, "rss_mib_extrapolated": est, "extrapolated_to_lots": target,
                     "extrapolated": big is None, "tables_disk_kib_per_lot": disk_per_lot_kib},
            baseline={"description": "the same worker, ready, with no lots", "figures": {"idle_rss_mib": idle["rss"]}},
            ratio={"rss_measured_vs_idle": ratio(last["rss_mib"], idle["rss"]),
                   "rss_loaded_vs_idle": ratio(big["rss_mib"], idle["rss"]) if big else None,
                   "rss_extrapolated_vs_idle": ratio(est, idle["rss"])},
            goals=[g],
            rows=[row(f"worker RSS @ {last['lots']:,} lots (fed)", f"{last['rss_mib']:.0f} MiB",
                      f"idle {idle['rss']:.0f} MiB", f"{ratio(last['rss_mib'], idle['rss']):.2f}×", "< 1 GiB at 1M"),
                  big_row, *rows_extra],
            extra={"points": points, "idle": idle, "fit": {"intercept_mib": a, "mib_per_lot": b}, "loaded": big,
                   "what_if": tuned},
        )


def main() -> None:
    if "--worker-child" in sys.argv:
        worker_child()
        return
    a = main_args("memory", __doc__, SIZES)
    run(a.quick, a.out, **{k: getattr(a, k) for k in SIZES})


if __name__ == "__main__":
    main()
