"""Latency: intake → visible on the read side the scan page reads, p50/p99, at a steady 1,000 events/s.

    python -m bench.latency [--quick] [--rate 1000] [--seconds 20] [--low-rate 10] [--drain 600] [--workers 1]

One worker (``--workers``: more, in one group, each with its share of the partitions; RocksDB tables) and one sink
(SQLite) as subprocesses on a fresh prefix; the generated master data is
loaded first (and the worker caught up). Then the generated supply events are sent at a steady ``--rate`` for
``--seconds`` (kafka-python, ``acks=all``, each send stamped with its time). An event is *visible* when its step
is in the lot's record on the read side: a row ``(lot = its key lot, event_id)`` in ``steps``, the table the scan
page's journey comes from (``Store.lot`` / ``Store.steps``); a thread polls for pending events every 50 ms, so
latencies carry up to ~50 ms of polling granularity. Events still invisible ``--drain`` seconds after the last
send count as censored (reported, and counted at the drain limit in the percentiles).

Baseline, same run, same processes: the same measurement at a low rate (``--low-rate`` events/s for
``--seconds``), i.e. the pipeline's own latency without queueing. Goal: p99 < 1 s at 1,000 events/s.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.common import (Run, create_catalog, goal, kafka, log, main_args, percentiles, ratio, row, start_sink,
                          start_worker, wait_for)

SIZES = {"rate": 1000, "seconds": 20, "low_rate": 10, "drain": 600, "workers": 1}
QUICK = {"rate": 100, "seconds": 3, "low_rate": 5, "drain": 180, "workers": 1}


class Watcher(threading.Thread):
    """Polls the sink's database for (lot, event_id) rows of pending events; records when each appears."""

    def __init__(self, db: Path, interval: float = 0.05) -> None:
        super().__init__(name="bench-watcher", daemon=True)
        self.db, self.interval = db, interval
        self.pending: dict[str, tuple[str, float]] = {}  # event id -> (lot, sent at)
        self.seen: dict[str, float] = {}  # event id -> latency (s)
        self.lock = threading.Lock()
        self.stop_ = threading.Event()

    def add(self, event_id: str, lot: str, at: float) -> None:
        with self.lock:
            self.pending[event_id] = (lot, at)

    def run(self) -> None:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            while not self.stop_.wait(self.interval):
                with self.lock:
                    ids = list(self.pending)
                for i in range(0, len(ids), 500):
                    part = ids[i:i + 500]
                    q = f"SELECT lot, event_id FROM steps WHERE event_id IN ({','.join('?' * len(part))})"  # noqa: S608
                    rows = con.execute(q, part).fetchall()
                    now = time.perf_counter()
                    with self.lock:
                        for lot, eid in rows:
                            p = self.pending.get(eid)
                            if p is not None and p[0] == lot:
                                self.seen[eid] = now - p[1]
                                del self.pending[eid]
        finally:
            con.close()


class LagSampler(threading.Thread):
    """Samples the worker group's lag and the sink's lag every ``interval`` s (which stage a queue stands in)."""

    def __init__(self, bootstrap: str, prefix: str, db: Path, interval: float = 2.0) -> None:
        super().__init__(name="bench-lag", daemon=True)
        self.args, self.db, self.interval = (bootstrap, prefix), db, interval
        self.samples: list[tuple[float, int | None, int | None]] = []
        self.stop_ = threading.Event()

    def run(self) -> None:
        from bench.pipeline import ReadSide, worker_lag

        t0 = time.perf_counter()
        while not self.stop_.wait(self.interval):
            w, s = worker_lag(*self.args), ReadSide(self.db, {}).sink_lag(*self.args)
            self.samples.append((round(time.perf_counter() - t0, 1), w, s))
            log(f"  t={self.samples[-1][0]:5.1f}s worker lag {w} sink lag {s}")


def paced(bootstrap: str, msgs: list, rate: float, seconds: float, watcher: Watcher) -> dict:
    """Send ``rate × seconds`` messages of ``msgs`` (event id, lot, topic, key, value, headers) at a steady pace."""
    from bench.pipeline import producer

    n = min(len(msgs), int(rate * seconds))
    p = producer(bootstrap)
    try:
        t0 = time.perf_counter()
        i = 0
        while i < n:
            due = min(n, int((time.perf_counter() - t0) * rate) + 1)
            while i < due:
                eid, lot, topic, key, value, headers = msgs[i]
                watcher.add(eid, lot, time.perf_counter())
                p.send(topic, key=key, value=value, headers=headers)
                i += 1
            time.sleep(0.005)
        p.flush()
        el = time.perf_counter() - t0
    finally:
        p.close()
    return {"sent": n, "seconds": el, "achieved_rate": n / el}


def measure(bootstrap: str, msgs: list, rate: float, seconds: float, drain: float, watcher: Watcher) -> dict:
    before = set(watcher.seen)
    sent = paced(bootstrap, msgs, rate, seconds, watcher)
    ids = [m[0] for m in msgs[:sent["sent"]]]
    t_end = time.perf_counter()
    while time.perf_counter() - t_end < drain:
        with watcher.lock:
            if not any(e in watcher.pending for e in ids):
                break
        time.sleep(0.2)
    with watcher.lock:
        lat = [watcher.seen[e] for e in ids if e in watcher.seen and e not in before]
        censored = [e for e in ids if e in watcher.pending]
        for e in censored:
            del watcher.pending[e]
    values = lat + [drain + seconds] * len(censored)
    return {**sent, "visible": len(lat), "censored": len(censored),
            "latency_ms": {k: (v * 1000 if k not in ("n",) else v) for k, v in percentiles(values).items()}}


def run(quick: bool = False, out: str | None = None, **override: int) -> dict:
    sizes = {**(QUICK if quick else SIZES), **{k: v for k, v in override.items() if v}}
    from bench.pipeline import ReadSide, encoded, generated, send_all, worker_lag
    from producers.client import topic_for  # noqa: F401 - encoded() uses it
    from schemas.events import MASTER_TYPES, event_key

    n_main = int(sizes["rate"] * sizes["seconds"])
    n_low = int(sizes["low_rate"] * sizes["seconds"])
    with Run("latency", "Intake → visible on the read side (scan page data), p50/p99", quick, out) as run_, \
            tempfile.TemporaryDirectory(prefix="ocop-bench-latency-") as tmpdir, kafka() as bootstrap:
        tmp = Path(tmpdir)
        events = generated(int((n_main + n_low) * 1.15) + 100, seed=9)
        master = [e for e in events if e["event_type"] in MASTER_TYPES]
        supply = [e for e in events if e["event_type"] not in MASTER_TYPES and e["event_type"] != "recall"]
        prefix = f"bench-lat-{uuid.uuid4().hex[:8]}."
        create_catalog(bootstrap, prefix)
        enc = encoded(supply, prefix)
        msgs = [(ev["event_id"], event_key(ev), *m) for ev, m in zip(supply, enc, strict=True)]
        if len(msgs) < n_main + n_low:
            run_.note(f"only {len(msgs):,} supply events generated for {n_main + n_low:,} wanted")
        db = tmp / "sink" / "ocop.sqlite3"
        workers = [start_worker(bootstrap, prefix, tmp / f"worker{i}") for i in range(sizes["workers"])]
        sink = start_sink(bootstrap, prefix, tmp / "sink", f"sqlite:///{db}")
        try:
            wait_for(lambda: ReadSide(db, {}).ready(), 120, "sink database")
            log(f"loading {len(master)} master events")
            send_all(bootstrap, encoded(master, prefix))
            wait_for(lambda: worker_lag(bootstrap, prefix) == 0, 300, "worker caught up on master data", 1)
            watcher = Watcher(db)
            watcher.start()
            log(f"baseline: {sizes['low_rate']} events/s for {sizes['seconds']} s")
            low = measure(bootstrap, msgs[:n_low], sizes["low_rate"], sizes["seconds"], sizes["drain"], watcher)
            log(f"  p50 {low['latency_ms'].get('p50', 0):.0f} ms p99 {low['latency_ms'].get('p99', 0):.0f} ms")
            log(f"main: {sizes['rate']} events/s for {sizes['seconds']} s")
            lags = LagSampler(bootstrap, prefix, db)
            lags.start()
            main_ = measure(bootstrap, msgs[n_low:n_low + n_main], sizes["rate"], sizes["seconds"], sizes["drain"],
                            watcher)
            lags.stop_.set()
            main_["lag_samples"] = lags.samples
            log(f"  p50 {main_['latency_ms'].get('p50', 0):.0f} ms p99 {main_['latency_ms'].get('p99', 0):.0f} ms, "
                f"{main_['censored']} censored")
            watcher.stop_.set()
        finally:
            sink.stop()
            for worker in workers:
                worker.stop()

        p99, p50 = main_["latency_ms"].get("p99"), main_["latency_ms"].get("p50")
        b99 = low["latency_ms"].get("p99")
        if main_["censored"]:
            run_.note(f"{main_['censored']:,} of {main_['sent']:,} events not visible {sizes['drain']} s after the "
                      "last send (censored: counted at the limit)")
        if main_["achieved_rate"] < 0.95 * sizes["rate"]:
            run_.note(f"the sender reached only {main_['achieved_rate']:,.0f} events/s")
        g = goal(f"p99 at {sizes['rate']:,} events/s", "< 1 s", p99, p99 is not None and p99 < 1000
                 and sizes["rate"] >= 1000 and not main_["censored"], "ms")
        r = ratio(p99, b99)
        return run_.finish(
            sizes={**sizes, "events_main": main_["sent"], "events_low": low["sent"]},
            figures={"p50_ms": p50, "p99_ms": p99, "max_ms": main_["latency_ms"].get("max"),
                     "visible": main_["visible"], "censored": main_["censored"],
                     "achieved_rate": main_["achieved_rate"]},
            baseline={"description": f"the same pipeline at {sizes['low_rate']} events/s (no queueing)",
                      "figures": {"p50_ms": low["latency_ms"].get("p50"), "p99_ms": b99,
                                  "censored": low["censored"]}},
            ratio={"p99_vs_low_rate_p99": r},
            goals=[g],
            rows=[row(f"latency p99 @ {sizes['rate']:,}/s"
                      + (f", {sizes['workers']} workers" if sizes["workers"] > 1 else ""), f"{p99 / 1000:.2f} s (p50 {p50 / 1000:.2f} s)"
                      if p99 is not None else "–",
                      f"@ {sizes['low_rate']}/s: p99 {b99 / 1000:.2f} s" if b99 is not None else "–",
                      f"{r:.1f}×" if r is not None else "–", "p99 < 1 s", g["pass"])],
            extra={"main": main_, "low": low},
        )


def main() -> None:
    a = main_args("latency", __doc__, SIZES)
    run(a.quick, a.out, **{k: getattr(a, k) for k in SIZES})


if __name__ == "__main__":
    main()
