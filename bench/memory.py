"""Memory: the worker's resident memory (RSS) as its RocksDB tables fill with lots; 1,000,000 lots extrapolated.

    python -m bench.memory [--quick] [--events 16000] [--stages 4] [--timeout 900]

One ``python -m ocop_trace.cli worker`` (``OCOP_TABLE_STORE=rocksdb://``, as deployed) on a fresh prefix. Its RSS
is read from ``/proc/<pid>/status`` once it is ready (the baseline: no lots), then the generated events are sent in
``--stages`` equal parts; after each part, once the worker's consumer-group lag is 0 and has stayed 0 for a few
seconds, RSS (and its peak, VmHWM), the number of lots in its tables and their size on disk are recorded.

Feeding 1,000,000 lots (~6 million events) through one worker does not fit the time box on this machine, so the
figure at 1,000,000 lots is a least-squares line through the measured points, EXTRAPOLATED (and labelled so in
the result). RocksDB keeps recent writes in memtables and reads in a block cache, both capped per table partition
by ``streams.app.ROCKSDB_OPTIONS``, so growth is not linear forever: the note gives the bound those settings allow.
With ``--what-if 1`` the same events then go through a second worker with other RocksDB options (``TUNED``, set on
faust's ``RocksDBOptions`` in a wrapper process, ``python -m bench.memory --worker-child``; the project's code is
unchanged). Goal: < 1 GiB at 1,000,000 lots.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Run, create_catalog, goal, kafka, log, main_args, ratio, row, start_worker

SIZES = {"events": 16_000, "stages": 4, "timeout": 900, "what_if": 0}
QUICK = {"events": 1_200, "stages": 2, "timeout": 300, "what_if": 0}
TUNED = {"write_buffer_size": 8 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20}


def worker_child() -> None:  # pragma: no cover - subprocess
    """``ocop-trace worker`` with faust's RocksDB defaults replaced by ``OCOP_BENCH_ROCKSDB`` (JSON)."""
    import json
    import os

    from faust.stores.rocksdb import RocksDBOptions

    for k, v in json.loads(os.environ.get("OCOP_BENCH_ROCKSDB", "{}")).items():
        setattr(RocksDBOptions, k, v)
    from ocop_trace.config import get_settings
    from streams.app import run_worker

    run_worker(get_settings(), loglevel="info")


def du_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b·x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def feed(bootstrap: str, folder: Path, events: list[dict], sizes: dict, argv: list[str] | None = None,
         env: dict[str, str] | None = None) -> tuple[dict, list[dict]]:
    """One worker on a fresh prefix; the events sent in stages; (idle RSS, one point per stage)."""
    from bench.pipeline import encoded, send_all, worker_lag
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
        bounds = [round(len(msgs) * (i + 1) / k) for i in range(k)]
        lo = 0
        for hi in bounds:
            send_all(bootstrap, msgs[lo:hi])
            for ev in events[lo:hi]:
                lots.update(lots_touched(ev))
            lo = hi
            zero_since = None
            while True:
                if not worker.alive():
                    raise RuntimeError(f"worker died: {worker.tail()}")
                if time.monotonic() - t_start > sizes["timeout"]:
                    raise TimeoutError(f"worker did not catch up within {sizes['timeout']} s")
                lag = worker_lag(bootstrap, prefix)
                if lag == 0:
                    zero_since = zero_since or time.monotonic()
                    if time.monotonic() - zero_since > 4:
                        break
                else:
                    zero_since = None
                time.sleep(1)
            m = worker.rss_mib()
            p = {"events": hi, "lots": len(lots), "rss_mib": m["rss"], "peak_mib": m["hwm"],
                 "tables_disk_mib": du_mib(folder / "faust"), "t": round(time.monotonic() - t_start)}
            points.append(p)
            log(f"  {hi:,} events, {len(lots):,} lots: RSS {m['rss']:.0f} MiB (peak {m['hwm']:.0f}), "
                f"tables {p['tables_disk_mib']:.0f} MiB on disk")
    finally:
        worker.stop()
    return idle, points


def run(quick: bool = False, out: str | None = None, **override: int) -> dict:
    sizes = {**(QUICK if quick else SIZES), **{k: v for k, v in override.items() if v is not None}}
    from bench.pipeline import generated

    with Run("memory", "Worker RSS vs lots in its RocksDB tables (1M extrapolated)", quick, out) as run_, \
            tempfile.TemporaryDirectory(prefix="ocop-bench-memory-") as tmpdir, kafka() as bootstrap:
        tmp = Path(tmpdir)
        events = generated(sizes["events"], seed=21)
        idle, points = feed(bootstrap, tmp / "default", events, sizes)
        tuned = None
        if sizes.get("what_if"):
            log(f"what-if: the same events through a worker with RocksDB options {TUNED}")
            t_idle, t_points = feed(bootstrap, tmp / "tuned", events, sizes, argv=[
                sys.executable, "-m", "bench.memory", "--worker-child"],
                env={"OCOP_BENCH_ROCKSDB": json.dumps(TUNED)})
            tuned = {"options": TUNED, "idle": t_idle, "points": t_points}

        # the line through the loaded points (the step from idle to the first one is start-up work, not lots)
        use = points if len(points) >= 2 else [{"lots": 0, "rss_mib": idle["rss"]}, *points]
        xs, ys = [p["lots"] for p in use], [p["rss_mib"] for p in use]
        a, b = fit(xs, ys)
        est = a + b * 1_000_000
        last = points[-1]
        first = points[0]
        from ocop_trace.config import Settings
        from streams.app import ROCKSDB_OPTIONS as opts

        n_part = Settings(_env_file=None).partitions
        disk_per_lot_kib = ((last["tables_disk_mib"] - first["tables_disk_mib"]) * 1024 /
                            max(last["lots"] - first["lots"], 1)) if len(points) >= 2 else \
            last["tables_disk_mib"] * 1024 / max(last["lots"], 1)
        run_.note(f"EXTRAPOLATED: measured up to {last['lots']:,} lots; the 1,000,000-lot RSS ({est:,.0f} MiB) is "
                  f"the least-squares line {a:.0f} MiB + {b * 1000:.2f} MiB per 1,000 lots through the {len(xs)} "
                  "measured points: a straight line 100-1000× beyond the data, and RocksDB flushes its memtables "
                  f"at {opts['write_buffer_size'] >> 20} MiB per table partition, so growth does not stay linear")
        per_partition = opts["write_buffer_size"] * opts["max_write_buffer_number"] + opts["block_cache_size"]
        run_.note(f"RocksDB bounds (streams/app.py ROCKSDB_OPTIONS): {opts['max_write_buffer_number']} × "
                  f"{opts['write_buffer_size'] >> 20} MiB memtables + {opts['block_cache_size'] >> 20} MiB block cache "
                  f"per table partition; 5 tables × {n_part} partitions bound them at "
                  f"{per_partition * 5 * n_part >> 20} MiB in all, whatever the number of lots; table files on "
                  f"disk changed by {disk_per_lot_kib:.1f} KiB per lot over the run (compaction shrinks them)")
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
        g = goal("worker RSS at 1,000,000 lots (extrapolated)", "< 1 GiB", est, None, "MiB")
        return run_.finish(
            sizes={**sizes, "events_produced": len(events), "lots_measured": last["lots"]},
            figures={"rss_mib_at_measured": last["rss_mib"], "lots_measured": last["lots"],
                     "rss_mib_per_1000_lots": b * 1000, "rss_mib_at_1m_extrapolated": est,
                     "extrapolated": True, "tables_disk_kib_per_lot": disk_per_lot_kib},
            baseline={"description": "the same worker, ready, with no lots", "figures": {"idle_rss_mib": idle["rss"]}},
            ratio={"rss_measured_vs_idle": ratio(last["rss_mib"], idle["rss"]),
                   "rss_1m_extrapolated_vs_idle": ratio(est, idle["rss"])},
            goals=[g],
            rows=[row(f"worker RSS @ {last['lots']:,} lots", f"{last['rss_mib']:.0f} MiB", f"idle {idle['rss']:.0f} MiB",
                      f"{ratio(last['rss_mib'], idle['rss']):.2f}×", "< 1 GiB at 1M"),
                  row("worker RSS @ 1M lots (extrapolated)", f"≈ {est:,.0f} MiB", f"idle {idle['rss']:.0f} MiB",
                      f"{ratio(est, idle['rss']):.2f}×", "< 1 GiB at 1M", None), *rows_extra],
            extra={"points": points, "idle": idle, "fit": {"intercept_mib": a, "mib_per_lot": b},
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
