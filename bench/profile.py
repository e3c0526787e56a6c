"""Where the pipeline's time goes: cProfile of the worker, the sink and the auditor's replay on the same events.

    python -m bench.profile [--events 5000] [--top 25]

1. the worker (``streams.app.run_worker``, RocksDB tables) runs in a subprocess under cProfile
   (``python -m bench.profile --worker-child OUT``); the generated events are sent, and once its consumer-group lag
   is 0 it gets SIGTERM and writes its stats;
2. the sink (``consumers.sink.Sink.run_until_idle``) applies everything the worker published into a fresh SQLite
   database, under cProfile, in this process;
3. ``consumers.audit.replay.replay(workers=1)`` reads and folds the same input topics, under cProfile;
4. the scan service: ``--scan-requests`` JSON resolutions of genuine stamp URLs (bench/scan.py's read side,
   filled by the sink's apply functions) as the route runs them (parse, ``Resolver.resolve``, ``trace_json``,
   JSON encoding), in this thread, under cProfile; the resolver's 2-second cache is cleared first.

Writes ``bench/results/profile.json``: per stage the wall and CPU time, the messages handled, and the functions
with the most own time (``tottime``) and the project functions with the most cumulative time. cProfile slows
Python code down (about 1.5-2×); compare shares within a stage, not absolute times with the benchmarks. The
profiler's clock is CPU time (``time.process_time``), not wall time: the machine is shared, and time spent
waiting (for the broker, for a CPU) is not a hot spot.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import (RESULTS_DIR, ROOT, LoadSampler, Proc, create_catalog, free_ports, kafka, log, machine,
                          ocop_env, wait_for)

PROJECT_DIRS = ("streams/", "consumers/", "schemas/", "producers/", "qr/", "ocop_trace/")


def worker_child(out: str) -> None:  # pragma: no cover - subprocess
    """The worker under cProfile; the stats are written when it exits (SIGTERM → mode's clean shutdown)."""
    import atexit

    prof = cProfile.Profile(time.process_time)

    def dump() -> None:
        prof.disable()
        prof.dump_stats(out)

    atexit.register(dump)
    from ocop_trace.config import get_settings
    from streams.app import run_worker

    prof.enable()
    run_worker(get_settings(), loglevel="info")


def summarize(stats: pstats.Stats, top: int) -> dict:
    """Top own-time functions (any module) and top cumulative project functions, as rows."""
    st = stats.stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = sum(v[2] for v in st.values()) or 1.0

    def name(k) -> str:
        f, line, fn = k
        p = f.replace(str(ROOT) + "/", "")
        if "site-packages/" in p:
            p = p.split("site-packages/", 1)[1]
        return f"{p}:{line}({fn})"

    own = sorted(st.items(), key=lambda kv: -kv[1][2])[:top]
    proj = [kv for kv in st.items() if kv[0][0].startswith(str(ROOT)) and
            any(d in kv[0][0] for d in PROJECT_DIRS)]
    cum = sorted(proj, key=lambda kv: -kv[1][3])[:top]
    return {
        "profiled_cpu_s": round(total, 2),
        "own_time": [{"function": name(k), "calls": v[1], "own_s": round(v[2], 3), "own_share": round(v[2] / total, 3),
                      "cum_s": round(v[3], 3)} for k, v in own],
        "project_cumulative": [{"function": name(k), "calls": v[1], "cum_s": round(v[3], 3),
                                "cum_share": round(v[3] / total, 3), "per_call_ms": round(v[3] / max(v[1], 1) * 1000, 3)}
                               for k, v in cum],
    }


def text(source, sort: str, n: int) -> str:
    """pstats' own listing of ``source`` (a stats file name or a Profile), sorted by ``sort``."""
    buf = io.StringIO()
    pstats.Stats(source, stream=buf).sort_stats(sort).print_stats(n)
    return buf.getvalue()


def run(events_n: int, top: int, out_dir: Path, scan_requests: int = 400) -> dict:
    from bench.pipeline import encoded, generated, send_all, worker_lag
    from consumers.audit.replay import replay
    from consumers.sink import Sink
    from consumers.store import Store
    from ocop_trace.config import Settings

    load = LoadSampler()
    result: dict = {"name": "profile", "events": None, "stages": {}}
    with tempfile.TemporaryDirectory(prefix="ocop-bench-profile-") as tmpdir, kafka() as bootstrap:
        tmp = Path(tmpdir)
        prefix = f"bench-prof-{uuid.uuid4().hex[:8]}."
        create_catalog(bootstrap, prefix)
        events = generated(events_n)
        result["events"] = len(events)
        msgs = encoded(events, prefix)

        # 1. the worker
        stats_file = tmp / "worker.pstats"
        env = ocop_env(bootstrap, prefix, tmp / "worker", OCOP_TABLE_STORE="rocksdb://",
                       OCOP_WORKER_WEB_PORT=free_ports(1)[0])
        w = Proc([sys.executable, "-m", "bench.profile", "--worker-child", str(stats_file)], tmp / "worker.log",
                 env).start()
        wait_for(lambda: b"Worker]: Ready" in w.log_file.read_bytes() or not w.alive(), 240, "worker ready")
        if not w.alive():
            raise RuntimeError(w.tail())
        cpu0 = w.cpu_seconds()
        t0 = time.perf_counter()
        send_all(bootstrap, msgs)
        log(f"sent {len(msgs):,} events to the profiled worker")
        wait_for(lambda: worker_lag(bootstrap, prefix) == 0, 3600, "worker caught up", interval=3)
        wall = time.perf_counter() - t0
        cpu = w.cpu_seconds() - cpu0
        w.stop(120)
        st = pstats.Stats(str(stats_file))
        result["stages"]["worker"] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                                      "cpu_ms_per_event": round(cpu / len(events) * 1000, 2), **summarize(st, top)}
        (out_dir / "profile-worker.txt").write_text(text(str(stats_file), "tottime", 40) +
                                                    text(str(stats_file), "cumulative", 60))
        log(f"worker: {wall:.0f}s wall, {cpu:.0f}s CPU")

        # 2. the sink, in this process
        store = Store(f"sqlite:///{tmp / 'sink.sqlite3'}")
        store.migrate()
        sink = Sink(store, bootstrap=bootstrap, prefix=prefix)
        prof = cProfile.Profile(time.process_time)
        t0, c0 = time.perf_counter(), time.process_time()
        prof.enable()
        stats = sink.run_until_idle(timeout=3600)
        prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        sink.close()
        store.close()
        st = pstats.Stats(prof)
        result["stages"]["sink"] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "messages": stats.messages,
                                    "applied": stats.applied, "batches": stats.batches,
                                    "cpu_ms_per_message": round(cpu / max(stats.messages, 1) * 1000, 2),
                                    **summarize(st, top)}
        (out_dir / "profile-sink.txt").write_text(text(prof, "tottime", 40) + text(prof, "cumulative", 60))
        log(f"sink: {stats.messages:,} messages, {wall:.0f}s wall, {cpu:.0f}s CPU")

        # 3. the auditor's replay, one process
        s = Settings(_env_file=None, bootstrap=bootstrap, topic_prefix=prefix, data_dir=tmp)
        prof = cProfile.Profile(time.process_time)
        t0, c0 = time.perf_counter(), time.process_time()
        prof.enable()
        rep = replay(s, workers=1, hashes=False)
        prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        st = pstats.Stats(prof)
        result["stages"]["replay"] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                                      "messages": rep.stats.messages,
                                      "cpu_ms_per_event": round(cpu / max(rep.stats.messages, 1) * 1000, 3),
                                      **summarize(st, top)}
        (out_dir / "profile-replay.txt").write_text(text(prof, "tottime", 40) + text(prof, "cumulative", 60))
        log(f"replay: {rep.stats.messages:,} events, {wall:.1f}s wall, {cpu:.1f}s CPU")
        # 4. the scan service, in this process
        result["stages"]["scan"] = profile_scan(tmp, scan_requests, top, out_dir)
    result.update(machine=machine(), load=load.stop(), date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  command=" ".join([Path(sys.executable).name, *sys.argv]))
    return result


def profile_scan(tmp: Path, n: int, top: int, out_dir: Path) -> dict:
    """What a JSON scan request does, in this thread (the HTTP server runs it in a thread pool, which cProfile
    would not see): parse the Digital Link, ``Resolver.resolve`` (read side), ``trace_json``, JSON encoding. Also
    counts the SQL statements per request."""
    from sqlalchemy import event

    from bench.scan import NullProducer, fill_store
    from consumers.web.app import scan_router, trace_json
    from ocop_trace.config import Settings
    from qr.digital_link import DigitalLink
    from starlette.responses import JSONResponse

    db = tmp / "scan.sqlite3"
    urls, counts = fill_store(db, 200)
    s = Settings(_env_file=None, database_url=f"sqlite:///{db}", data_dir=tmp, bootstrap="127.0.0.1:9",
                 scan_rate_per_minute=10**9)
    router = scan_router(s, producer=NullProducer())
    resolver, store = router.resolver, router.store
    statements = [0]
    event.listen(store.engine, "before_cursor_execute", lambda *a, **k: statements.__setitem__(0, statements[0] + 1))

    def one(path: str) -> None:
        link = DigitalLink.parse(path)
        r = resolver.resolve(link)
        JSONResponse(trace_json(r, store, uri="http://127.0.0.1" + path, lang="vi"))

    for u in urls[:20]:
        one(u)  # warm-up (statement caches)
    resolver.clear()
    statements[0] = 0
    prof = cProfile.Profile(time.process_time)
    t0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    for i in range(n):
        one(urls[i % len(urls)])
    prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    store.close()
    (out_dir / "profile-scan.txt").write_text(text(prof, "tottime", 40) + text(prof, "cumulative", 60))
    log(f"scan: {n} JSON resolutions, {wall:.1f}s wall, {cpu:.1f}s CPU, {statements[0] / n:.1f} SQL statements each")
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "requests": n, "lots": counts["lots"],
            "urls": len(urls), "sql_statements_per_request": round(statements[0] / n, 1),
            "cpu_ms_per_request": round(cpu / n * 1000, 2), **summarize(pstats.Stats(prof), top)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--scan-requests", type=int, default=400)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--worker-child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker_child:
        worker_child(a.worker_child)
        return
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res = run(a.events, a.top, out, a.scan_requests)
    (out / "profile.json").write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {out / 'profile.json'} and profile-*.txt")
    os._exit(0)


if __name__ == "__main__":
    main()
