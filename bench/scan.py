"""Scan: requests/s and p99 of the GS1 Digital Link resolver (JSON and HTML) beside ``/ping`` of the same server.

    python -m bench.scan [--quick] [--chains 400] [--urls 2000] [--seconds 10] [--connections 8]

The read side is a SQLite store filled by the sink's own apply functions (``consumers.sink.apply_master``,
``apply_record``, ``apply_stamp_range``) with the records ``streams.fold.Projection`` derives from ``--chains``
generated chains. ``ocop_trace.server.create_app`` (intake API + scan web, as ``ocop-trace serve`` builds it) is
served by uvicorn (uvloop + httptools, no access log) in a subprocess on a loopback port, as
``ocop-trace serve --workers N`` runs it, once with 1 worker process and once with 2 (:data:`WORKERS`); the
headline figures are those of :data:`HEADLINE_WORKERS`, both are in ``figures`` (``*_1w``, ``*_2w``). Scan events
go to a producer that validates and encodes them but sends nothing (no broker in the request path either way: the
scan service queues them for a background thread), and the per-client rate limit is lifted (one load generator =
one client).

Load: ``wrk`` (Debian package; ``scripts/setup.sh`` installs it) with one thread and ``--connections``
connections for ``--seconds`` per route, after a warm-up (``--seconds`` for JSON and HTML, whose answers are cached
on first use; 2 s for ``/ping`` and ``json_fresh``), cycling through ``--urls`` genuine stamp URLs
(``/01/{gtin}/10/{lot}/21/{serial}?17=…``, up to 8 stamps of every issued range); ``Accept: application/json`` for
JSON, the browser default for HTML. Baseline: ``GET /ping`` of the same server. Goal: ≥ 2,000 req/s and
p99 < 25 ms for JSON.

The resolver answers from memory validated against the sink's positions (consumers/web/cache.py); nothing changes
the read side during the run, so after the first request of a URL (per worker process) everything it needs is in
memory. That is the case of lots (hundreds of stamps share one) but not of real scans, where one stamp is rarely
scanned twice: ``json_fresh`` (headline configuration only) therefore cycles through every issued stamp (up to
50,000, shuffled) so that nearly every request reads its serial's facts from SQL (one statement) while its lot's
page data is in memory.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Proc, Run, free_ports, goal, log, main_args, ratio, row, si, times

SIZES = {"chains": 400, "urls": 2000, "seconds": 10, "connections": 8}
QUICK = {"chains": 20, "urls": 50, "seconds": 2, "connections": 4}
WORKERS = (1, 2)  # uvicorn worker processes, as `ocop-trace serve --workers N`
HEADLINE_WORKERS = 2  # the configuration of the headline figures (2 cores: one process each; wrk shares them)
FRESH_MAX = 50_000

LUA = r"""
local paths = {}
local i = 0
local headers = {}
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  if args[2] == "json" then headers["Accept"] = "application/json" end
  if args[2] == "html" then headers["Accept"] = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8" end
  i = math.random(#paths)
end
request = function()
  i = (i % #paths) + 1
  return wrk.format("GET", paths[i], headers)
end
"""


class NullProducer:
    """Validates and encodes a scan value like ``EventProducer.send_value``, then drops it."""

    def send_value(self, spec, key, value, *, wait=True, timeout=30.0):
        from schemas import codec
        from schemas.validation import validate

        validate(spec.value, value)
        codec.codec(spec.value).encode(value)

    def flush(self, timeout=None) -> None:
        pass

    def close(self) -> None:
        pass


def app_factory():
    """``uvicorn --factory bench.scan:app_factory``: the server's app over ``OCOP_*`` settings, null producer, as
    ``ocop-trace serve`` builds it (``freeze_gc``)."""
    from ocop_trace.config import Settings
    from ocop_trace.server import create_app

    return create_app(Settings(), producer=NullProducer(), freeze_gc=True)


def fill_store(db: Path, chains: int, *, every_stamp: list[str] | None = None) -> tuple[list[str], dict]:
    """Fill a SQLite read side through the sink's apply functions; return stamp URL paths (up to 8 per issued
    range) and counts. ``every_stamp``: a list that gets the URL of every issued stamp (up to FRESH_MAX)."""
    from consumers.sink import apply_master, apply_record, apply_stamp_range
    from consumers.store import Store
    from ocop_trace.config import Settings
    from producers.generator import generate
    from qr.digital_link import DigitalLink
    from qr.serials import StampSigner
    from schemas.events import MASTER_TYPES
    from streams.fold import Projection

    s = Settings(_env_file=None)
    events = generate(subjects=20, lots=chains, seed=13)
    proj = Projection(s.stamp_active_key)
    for ev in events:
        proj.add(ev)
    records = proj.run()
    store = Store(f"sqlite:///{db}")
    store.migrate()
    try:
        with store.write() as c:
            for i, ev in enumerate(e for e in events if e["event_type"] in MASTER_TYPES):
                apply_master(c, ev, 0, i)
            for i, lot in enumerate(sorted(records)):
                apply_record(c, records[lot], 1, i)
            for rng in proj.stamp_ranges:
                apply_stamp_range(c, rng)
    finally:
        store.close()
    signer = StampSigner.from_settings(s)
    urls = []
    from datetime import date

    for rng in proj.stamp_ranges:
        rec = records[rng["lot"]]
        exp = (rec.get("packaging") or {}).get("expiry_date")
        expiry = date.fromisoformat(exp) if exp else None
        n = rng["count"] if every_stamp is not None else min(rng["count"], 8)
        for idx in range(rng["first_index"], rng["first_index"] + n):
            serial = signer.serial(rng["gtin"], rng["lot"], idx, key_id=rng["key_id"])
            path = DigitalLink(rng["gtin"], rng["lot"], serial, expiry).build("http://127.0.0.1") \
                .removeprefix("http://127.0.0.1")
            if idx < rng["first_index"] + 8:
                urls.append(path)
            if every_stamp is not None and len(every_stamp) < FRESH_MAX:
                every_stamp.append(path)
    return urls, {"lots": len(records), "stamp_ranges": len(proj.stamp_ranges), "events": len(events)}


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(out: str) -> dict:
    def num(pattern: str) -> float | None:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|75|90|99)(?:\.\d+)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[f"p{pct}"] = float(val) * _UNIT[unit]
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    non2xx = num(r"Non-2xx or 3xx responses:\s+(\d+)")
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"requests": int(m.group(1)) if m else None, "rps": num(r"Requests/sec:\s+([\d.]+)"),
            "latency_ms": lat, "non_2xx": int(non2xx or 0), "socket_errors": errors}


def wrk(port: int, paths_file: Path, script: Path, kind: str, seconds: int, connections: int) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s", "-s", str(script),
           f"http://127.0.0.1:{port}", "--", str(paths_file), kind]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed: {p.stderr or p.stdout}")
    return parse_wrk(p.stdout)


def run(quick: bool = False, out: str | None = None, **override: int) -> dict:
    sizes = {**(QUICK if quick else SIZES), **{k: v for k, v in override.items() if v}}
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (scripts/setup.sh does)")

    with Run("scan", "Resolver requests/s and p99 (JSON, HTML) vs /ping", quick, out) as run_, \
            tempfile.TemporaryDirectory(prefix="ocop-bench-scan-") as tmpdir:
        tmp = Path(tmpdir)
        db = tmp / "ocop.sqlite3"
        log(f"filling the read side with {sizes['chains']} generated chains (sink apply functions)")
        t = time.perf_counter()
        every: list[str] = []
        urls, counts = fill_store(db, sizes["chains"], every_stamp=every)
        fill_s = time.perf_counter() - t
        step = max(1, len(urls) // sizes["urls"])
        urls = urls[::step][:sizes["urls"]]
        random.Random(13).shuffle(every)
        paths_file, fresh_file, ping_file, script = (tmp / "paths.txt", tmp / "fresh.txt", tmp / "ping.txt",
                                                     tmp / "cycle.lua")
        paths_file.write_text("\n".join(urls) + "\n")
        fresh_file.write_text("\n".join(every) + "\n")
        ping_file.write_text("/ping\n")
        script.write_text(LUA)
        runs: dict[int, dict] = {}
        cpu: dict[int, float] = {}
        for workers in WORKERS:
            routes = [("ping", ping_file, "plain"), ("json", paths_file, "json"), ("html", paths_file, "html")]
            if workers == HEADLINE_WORKERS:
                routes.append(("json_fresh", fresh_file, "json"))
            log(f"uvicorn with {workers} worker process{'es' if workers > 1 else ''}")
            runs[workers], cpu[workers] = serve_and_load(tmp, db, urls[0], script, routes, workers, sizes)

        head = runs[HEADLINE_WORKERS]
        ping, js, html, fresh = head["ping"], head["json"], head["html"], head["json_fresh"]
        for workers, results in runs.items():
            for name, res in results.items():
                if res["non_2xx"] or res["socket_errors"]:
                    run_.note(f"{workers} worker(s), {name}: {res['non_2xx']} non-2xx responses, "
                              f"{res['socket_errors']} socket errors")
        j99 = js["latency_ms"].get("p99")
        g1 = goal("JSON requests/s", "≥ 2,000 req/s", js["rps"], js["rps"] >= 2000, "req/s")
        g2 = goal("JSON p99", "< 25 ms", j99, j99 is not None and j99 < 25, "ms")
        rj, rh, rf = ratio(js["rps"], ping["rps"]), ratio(html["rps"], ping["rps"]), ratio(fresh["rps"], ping["rps"])
        run_.note(f"wrk: 1 thread, {sizes['connections']} connections, {sizes['seconds']} s per route after a warm-up "
                  f"({max(2, sizes['seconds'])} s for JSON and HTML, 2 s for /ping and json_fresh), {len(urls):,} "
                  f"stamp URLs over {counts['lots']:,} lots; json_fresh: {len(every):,} stamps, shuffled")
        run_.note(f"headline: uvicorn with {HEADLINE_WORKERS} worker processes (uvloop, httptools); server CPU "
                  + ", ".join(f"{w} worker(s) {c:.0f} s" for w, c in cpu.items()))
        figures = {"json_rps": js["rps"], "json_p50_ms": js["latency_ms"].get("p50"), "json_p99_ms": j99,
                   "html_rps": html["rps"], "html_p50_ms": html["latency_ms"].get("p50"),
                   "html_p99_ms": html["latency_ms"].get("p99"), "json_fresh_rps": fresh["rps"],
                   "json_fresh_p99_ms": fresh["latency_ms"].get("p99"), "headline_workers": HEADLINE_WORKERS,
                   "fill_s": fill_s}
        for workers, results in runs.items():
            for name, res in results.items():
                figures[f"{name}_rps_{workers}w"] = res["rps"]
                figures[f"{name}_p50_ms_{workers}w"] = res["latency_ms"].get("p50")
                figures[f"{name}_p99_ms_{workers}w"] = res["latency_ms"].get("p99")
        other = [w for w in WORKERS if w != HEADLINE_WORKERS]
        rows = [row(f"scan JSON req/s | p99 ({HEADLINE_WORKERS} proc)", f"{si(js['rps'], '/s')} | {j99:.1f} ms",
                    f"/ping {si(ping['rps'], '/s')} | {ping['latency_ms'].get('p99', 0):.1f} ms", times(rj),
                    "≥ 2 k/s, p99 < 25 ms", g1["pass"] and g2["pass"]),
                row(f"scan HTML req/s | p99 ({HEADLINE_WORKERS} proc)",
                    f"{si(html['rps'], '/s')} | {html['latency_ms'].get('p99', 0):.1f} ms",
                    f"/ping {si(ping['rps'], '/s')}", times(rh)),
                row(f"scan JSON, a new stamp each ({HEADLINE_WORKERS} proc)",
                    f"{si(fresh['rps'], '/s')} | {fresh['latency_ms'].get('p99', 0):.1f} ms",
                    f"/ping {si(ping['rps'], '/s')}", times(rf))]
        for w in other:
            o = runs[w]
            rows.append(row(f"scan JSON req/s | p99 ({w} proc)",
                            f"{si(o['json']['rps'], '/s')} | {o['json']['latency_ms'].get('p99', 0):.1f} ms",
                            f"/ping {si(o['ping']['rps'], '/s')} | {o['ping']['latency_ms'].get('p99', 0):.1f} ms",
                            times(ratio(o["json"]["rps"], o["ping"]["rps"]))))
        return run_.finish(
            sizes={**sizes, "urls_used": len(urls), "fresh_urls": len(every), "workers": list(WORKERS), **counts},
            figures=figures,
            baseline={"description": f"GET /ping of the same server ({HEADLINE_WORKERS} worker processes), "
                                     f"same load generator",
                      "figures": {"ping_rps": ping["rps"], "ping_p50_ms": ping["latency_ms"].get("p50"),
                                  "ping_p99_ms": ping["latency_ms"].get("p99")}},
            ratio={"json_vs_ping_rps": rj, "html_vs_ping_rps": rh, "json_fresh_vs_ping_rps": rf},
            goals=[g1, g2],
            rows=rows,
            extra={"wrk": {f"{w}w": r for w, r in runs.items()}, "server_cpu_s": {f"{w}w": c for w, c in cpu.items()}},
        )


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (uvicorn's workers)."""
    total, todo, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(x) for x in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def serve_and_load(tmp: Path, db: Path, check_url: str, script: Path, routes: list[tuple[str, Path, str]],
                   workers: int, sizes: dict) -> tuple[dict, float]:
    """Start uvicorn with ``workers`` processes, check a stamp, run wrk on each route; (results, server CPU s)."""
    import httpx

    port = free_ports(1)[0]
    env = {"OCOP_DATABASE_URL": f"sqlite:///{db}", "OCOP_DATA_DIR": str(tmp), "OCOP_BOOTSTRAP": "127.0.0.1:9",
           "OCOP_SCAN_RATE_PER_MINUTE": "1000000000", "OCOP_RESOLVER_BASE": f"http://127.0.0.1:{port}"}
    server = Proc([sys.executable, "-m", "uvicorn", "bench.scan:app_factory", "--factory", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
                   "--log-level", "warning", "--no-access-log"], tmp / f"server-{workers}.log", env).start()
    results = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if not server.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {server.tail()}")
            time.sleep(0.2)
        time.sleep(1.0 if workers > 1 else 0)  # every worker up, not just the first to answer
        check = httpx.get(f"http://127.0.0.1:{port}{check_url}", headers={"Accept": "application/json"}, timeout=10)
        verdict = check.json().get("verdict", {}).get("code")
        if check.status_code != 200 or verdict != "genuine":
            raise RuntimeError(f"{check_url} → {check.status_code} {verdict}: {check.text[:300]}")
        cpu0 = tree_cpu(server.pid)
        for name, file, kind in routes:
            # warm-up: the resolver fills its cache on first use (per worker process), so the cached routes get as
            # long a warm-up as their run; json_fresh (a new stamp per request) and /ping need none
            warm = max(2, sizes["seconds"]) if name in ("json", "html") else 2
            wrk(port, file, script, kind, warm, sizes["connections"])
            res = wrk(port, file, script, kind, sizes["seconds"], sizes["connections"])
            results[name] = res
            log(f"  {name}: {res['rps']:,.0f} req/s, p50 {res['latency_ms'].get('p50')} ms, "
                f"p99 {res['latency_ms'].get('p99')} ms, non-2xx {res['non_2xx']}")
        server_cpu = tree_cpu(server.pid) - cpu0
    finally:
        server.stop()
    return results, server_cpu


def main() -> None:
    a = main_args("scan", __doc__, SIZES)
    run(a.quick, a.out, **{k: getattr(a, k) for k in SIZES})


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    main()
