"""Scan: requests/s and p99 of the GS1 Digital Link resolver (JSON and HTML) beside ``/ping`` of the same server.

    python -m bench.scan [--quick] [--chains 400] [--urls 2000] [--seconds 10] [--connections 8]

The read side is a SQLite store filled by the sink's own apply functions (``consumers.sink.apply_master``,
``apply_record``, ``apply_stamp_range``) with the records ``streams.fold.Projection`` derives from ``--chains``
generated chains. ``ocop_trace.server.create_app`` (intake API + scan web, as ``ocop-trace serve`` builds it) is
served by uvicorn (one process, its defaults) in a subprocess on a loopback port; scan events go to a producer that
validates and encodes them but sends nothing (no broker in the request path either way: the scan service queues
them for a background thread), and the per-client rate limit is lifted (one load generator = one client).

Load: ``wrk`` (Debian package; ``scripts/setup.sh`` installs it) with one thread and ``--connections``
connections for ``--seconds`` per route, after a 2-second warm-up, cycling through ``--urls`` genuine stamp URLs
(``/01/{gtin}/10/{lot}/21/{serial}?17=…``) of every packaged lot; ``Accept: application/json`` for JSON, the
browser default for HTML. Baseline: ``GET /ping`` of the same server. The resolver caches a lot's view for 2 s;
with this many URLs most requests miss. Goal: ≥ 2,000 req/s and p99 < 25 ms for JSON.
"""

from __future__ import annotations

import os
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
    """``uvicorn --factory bench.scan:app_factory``: the server's app over ``OCOP_*`` settings, null producer."""
    from ocop_trace.config import Settings
    from ocop_trace.server import create_app

    return create_app(Settings(), producer=NullProducer())


def fill_store(db: Path, chains: int) -> tuple[list[str], dict]:
    """Fill a SQLite read side through the sink's apply functions; return stamp URL paths and counts."""
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
        for idx in range(rng["first_index"], rng["first_index"] + min(rng["count"], 8)):
            serial = signer.serial(rng["gtin"], rng["lot"], idx, key_id=rng["key_id"])
            full = DigitalLink(rng["gtin"], rng["lot"], serial, expiry).build("http://127.0.0.1")
            urls.append(full.removeprefix("http://127.0.0.1"))
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
    import httpx

    with Run("scan", "Resolver requests/s and p99 (JSON, HTML) vs /ping", quick, out) as run_, \
            tempfile.TemporaryDirectory(prefix="ocop-bench-scan-") as tmpdir:
        tmp = Path(tmpdir)
        db = tmp / "ocop.sqlite3"
        log(f"filling the read side with {sizes['chains']} generated chains (sink apply functions)")
        t = time.perf_counter()
        urls, counts = fill_store(db, sizes["chains"])
        fill_s = time.perf_counter() - t
        step = max(1, len(urls) // sizes["urls"])
        urls = urls[::step][:sizes["urls"]]
        paths_file, ping_file, script = tmp / "paths.txt", tmp / "ping.txt", tmp / "cycle.lua"
        paths_file.write_text("\n".join(urls) + "\n")
        ping_file.write_text("/ping\n")
        script.write_text(LUA)
        port = free_ports(1)[0]
        env = {"OCOP_DATABASE_URL": f"sqlite:///{db}", "OCOP_DATA_DIR": str(tmp), "OCOP_BOOTSTRAP": "127.0.0.1:9",
               "OCOP_SCAN_RATE_PER_MINUTE": "1000000000", "OCOP_RESOLVER_BASE": f"http://127.0.0.1:{port}"}
        server = Proc([sys.executable, "-m", "uvicorn", "bench.scan:app_factory", "--factory", "--host", "127.0.0.1",
                       "--port", str(port), "--log-level", "warning", "--no-access-log"], tmp / "server.log",
                      env).start()
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
            check = httpx.get(f"http://127.0.0.1:{port}{urls[0]}", headers={"Accept": "application/json"}, timeout=10)
            verdict = check.json().get("verdict", {}).get("code")
            if check.status_code != 200 or verdict != "genuine":
                raise RuntimeError(f"{urls[0]} → {check.status_code} {verdict}: {check.text[:300]}")
            cpu0 = server.cpu_seconds()
            for name, file, kind in (("ping", ping_file, "plain"), ("json", paths_file, "json"),
                                     ("html", paths_file, "html")):
                wrk(port, file, script, kind, 2, sizes["connections"])  # warm-up
                res = wrk(port, file, script, kind, sizes["seconds"], sizes["connections"])
                results[name] = res
                log(f"  {name}: {res['rps']:,.0f} req/s, p50 {res['latency_ms'].get('p50')} ms, "
                    f"p99 {res['latency_ms'].get('p99')} ms, non-2xx {res['non_2xx']}")
            server_cpu = server.cpu_seconds() - cpu0
        finally:
            server.stop()

        ping, js, html = results["ping"], results["json"], results["html"]
        for name, res in results.items():
            if res["non_2xx"] or res["socket_errors"]:
                run_.note(f"{name}: {res['non_2xx']} non-2xx responses, {res['socket_errors']} socket errors")
        j99 = js["latency_ms"].get("p99")
        g1 = goal("JSON requests/s", "≥ 2,000 req/s", js["rps"], js["rps"] >= 2000, "req/s")
        g2 = goal("JSON p99", "< 25 ms", j99, j99 is not None and j99 < 25, "ms")
        rj, rh = ratio(js["rps"], ping["rps"]), ratio(html["rps"], ping["rps"])
        run_.note(f"wrk: 1 thread, {sizes['connections']} connections, {sizes['seconds']} s per route, "
                  f"{len(urls):,} stamp URLs over {counts['lots']:,} lots; uvicorn single process "
                  f"(server CPU {server_cpu:.0f} s over the three runs)")
        return run_.finish(
            sizes={**sizes, "urls_used": len(urls), **counts},
            figures={"json_rps": js["rps"], "json_p50_ms": js["latency_ms"].get("p50"), "json_p99_ms": j99,
                     "html_rps": html["rps"], "html_p50_ms": html["latency_ms"].get("p50"),
                     "html_p99_ms": html["latency_ms"].get("p99"), "fill_s": fill_s},
            baseline={"description": "GET /ping of the same server, same load generator",
                      "figures": {"ping_rps": ping["rps"], "ping_p50_ms": ping["latency_ms"].get("p50"),
                                  "ping_p99_ms": ping["latency_ms"].get("p99")}},
            ratio={"json_vs_ping_rps": rj, "html_vs_ping_rps": rh},
            goals=[g1, g2],
            rows=[row("scan JSON req/s | p99", f"{si(js['rps'], '/s')} | {j99:.1f} ms",
                      f"/ping {si(ping['rps'], '/s')} | {ping['latency_ms'].get('p99', 0):.1f} ms", times(rj),
                      "≥ 2 k/s, p99 < 25 ms", g1["pass"] and g2["pass"]),
                  row("scan HTML req/s | p99", f"{si(html['rps'], '/s')} | {html['latency_ms'].get('p99', 0):.1f} ms",
                      f"/ping {si(ping['rps'], '/s')}", times(rh))],
            extra={"wrk": results},
        )


def main() -> None:
    a = main_args("scan", __doc__, SIZES)
    run(a.quick, a.out, **{k: getattr(a, k) for k in SIZES})


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    main()
