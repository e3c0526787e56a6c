"""Micro benchmark of the sink's SQL side: CPU per record message of ``consumers.sink.Applier.apply_batch``.

No broker: the generator's chains (``producers.generator.generate``) are folded by ``streams.fold.Projection`` into
lot records, Avro-encoded as the workers publish them and wrapped in :class:`consumers.sink.Message` s with
offsets, then applied in batches (``--batch``) to a fresh, migrated database, three times:

* ``insert``: every lot is new;
* ``update``: the same records at later offsets: every lot applies again and its steps, edges and origins are
  replaced;
* ``stale``: the first offsets redelivered: nothing applies (the versions are older).

Master data and stamp ranges are applied first (not timed). The figure is the process CPU time
(``time.process_time``: the sink's own CPU, not the database server's) per record message; wall time beside it.

    python -m bench.sink_micro                                  # SQLite file in a temp folder, 2,000 records
    python -m bench.sink_micro --db postgresql+psycopg://u@host/db --records 2000 --batch 500

A database given with ``--db`` must be empty (it is migrated, then emptied again at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import zlib
from pathlib import Path

PARTITIONS = 3


def build(records: int, seed: int) -> tuple[list[dict], list[dict], list[dict]]:
    """``(master events, lot records, stamp ranges)``: enough chains for at least ``records`` lot records."""
    from ocop_trace.config import Settings
    from producers.generator import generate
    from schemas.events import MASTER_TYPES
    from streams.fold import Projection

    chains = max(1, records * 3 // 7)  # ≈ 2.3 records per chain
    while True:
        events = generate(subjects=20, lots=chains, seed=seed)
        proj = Projection(Settings(_env_file=None).stamp_active_key)
        for ev in events:
            proj.add(ev)
        recs = proj.run()
        if len(recs) >= records:
            break
        chains += max(1, (records - len(recs)) // 2)
    lots = sorted(recs)[:records]
    keep = set(lots)
    master = [ev for ev in events if ev["event_type"] in MASTER_TYPES]
    return master, [recs[x] for x in lots], [r for r in proj.stamp_ranges if r["lot"] in keep]


def messages(master: list[dict], records: list[dict], stamps: list[dict]):
    from consumers.sink import Message
    from schemas import codec, topics
    from schemas.events import encode_event, event_key

    enc = codec.codec(codec.LOT_RECORD).encode
    stamp = codec.codec(codec.STAMP_RANGE).encode
    pre = [Message(topics.MASTER.full(""), 0, i, event_key(ev).encode(), encode_event(ev))
           for i, ev in enumerate(master)]
    pre += [Message(topics.STAMPS.full(""), 0, i, r["lot"].encode(), stamp(r)) for i, r in enumerate(stamps)]

    def records_at(start: int) -> list:
        nxt = [start] * PARTITIONS
        out = []
        for rec in records:
            key = rec["lot"].encode()
            p = zlib.crc32(key) % PARTITIONS
            out.append(Message(topics.RECORDS.full(""), p, nxt[p], key, enc(rec)))
            nxt[p] += 1
        return out

    return pre, records_at(0), records_at(len(records))


def run(url: str, records: int, batch: int, seed: int) -> dict:
    from sqlalchemy import delete

    from consumers.sink import Applier
    from consumers.store import Base, Store

    master, recs, stamps = build(records, seed)
    pre, first, later = messages(master, recs, stamps)
    store = Store(url)
    store.migrate()
    if any(store.counts().values()):
        store.close()
        raise SystemExit(f"{store!r} is not empty: give an empty database")
    out: dict = {"db": store.dialect, "records": len(recs), "batch": batch}
    try:
        applier = Applier(store)
        applier.apply_batch(pre)
        for phase, msgs in (("insert", first), ("update", later), ("stale", first)):
            cpu = wall = 0.0
            applied = 0
            for i in range(0, len(msgs), batch):
                chunk = msgs[i:i + batch]
                c0, w0 = time.process_time(), time.perf_counter()
                st = applier.apply_batch(chunk)
                cpu += time.process_time() - c0
                wall += time.perf_counter() - w0
                applied += st.applied
            out[phase] = {"cpu_ms_per_record": round(cpu * 1000 / len(msgs), 4),
                          "wall_ms_per_record": round(wall * 1000 / len(msgs), 4), "applied": applied}
        counts = store.counts()
        out["rows"] = {k: counts[k] for k in ("lots", "steps", "lineage_edges", "lot_origins", "stamps")}
    finally:
        with store.write() as c:  # empty again (it was empty before)
            for t in reversed(Base.metadata.sorted_tables):
                c.execute(delete(t))
        store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", action="append", help="database URL (repeatable); default: a temp SQLite file")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sink-micro-") as tmp:
        for url in a.db or [f"sqlite:///{Path(tmp) / 'read.db'}"]:
            res = run(url, a.records, a.batch, a.seed)
            res["load_1m"] = round(os.getloadavg()[0], 2)
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
