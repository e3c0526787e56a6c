"""Benchmark: replay throughput of the auditor (events/s) on a generated chain, against a real broker.

    python bench/audit_replay.py --lots 20000 [--workers 2] [--out bench/results/audit_replay.json]

Creates the catalog under a fresh topic prefix, produces ``lots`` lots of 7 events each (+ master data), then replays
them with :func:`consumers.audit.replay.replay` and writes the measured rate as JSON: wall-clock events/s, and the CPU
seconds used (parent + worker processes) — on a shared machine the CPU figure is the one to compare. Needs
OCOP_BOOTSTRAP (or the project's local broker).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from pathlib import Path

from ocop_trace.config import get_settings
from schemas.topics import create_topics


def chain_events(n_lots: int, *, seed: str = "bench") -> list[dict]:
    """A deterministic chain: master data, then per lot harvest → receive → transform (into a dried lot) → inspect →
    package → ship → sell."""
    from schemas.events import new_event

    subject, gtin, area = "HTX-BENCH", "08938505974194", "VN-TN-BENCH-01"
    at = "2026-03-01T08:00:00+07:00"
    ns = uuid.uuid5(uuid.NAMESPACE_URL, seed)

    def ev(i: int, t: str, p: dict, facility: str | None = "FAC-BENCH-01") -> dict:
        return new_event(t, p, subject_id=subject, user="bench", facility=facility, occurred_at=at, recorded_at=at,
                         event_id=str(uuid.uuid5(ns, str(i))))

    out = [
        ev(0, "subject", {"subject_id": subject, "name": "HTX Bench", "kind": "cooperative", "tax_id": None,
                          "province_code": "19", "commune_code": None, "address": "", "contact": None}),
        ev(1, "area", {"area_code": area, "owner_subject_id": subject, "name": "Bench hill", "crops": ["chè"],
                       "area_ha": 2.0, "location": [{"lat": 21.6, "lon": 105.8}], "certifications": [],
                       "valid_from": "2024-01-01", "valid_to": None, "revoked": False}),
        ev(2, "product", {"gtin": gtin, "owner_subject_id": subject, "name_vi": "Chè bench", "name_en": "Bench tea",
                          "ocop_group": "beverage", "net_content": None, "shelf_life_days": 365}),
        ev(3, "rating", {"gtin": gtin, "action": "granted", "stars": 4, "score": 80, "level": "province",
                         "decision_no": "1/QĐ", "decision_date": "2025-01-01", "valid_from": "2025-01-01",
                         "valid_to": "2028-01-01"}),
    ]
    q = {"value": 100.0, "unit": "kg"}
    i = 10
    for n in range(n_lots):
        raw, dry = f"B{n:06d}R", f"B{n:06d}D"
        for t, p in (
            ("harvest", {"lot": raw, "area_code": area, "crop": "chè", "quantity": q, "crate_tags": []}),
            ("receive", {"lot": raw, "quantity": q, "from_facility": "FARM-1", "document_ref": f"PN-{n}"}),
            ("transform", {"process": "drying", "inputs": [{"lot": raw, "quantity": q}],
                           "outputs": [{"lot": dry, "quantity": {"value": 25.0, "unit": "kg"}}],
                           "duration_hours": 12.0}),
            ("inspect", {"lot": dry, "lab": "Lab TN", "result": "pass", "parameters": [], "certificate_no": None}),
            ("package", {"lot": dry, "gtin": gtin, "units": 100, "quantity": None, "production_date": "2026-03-01",
                         "expiry_date": "2027-03-01", "stamps_requested": 0}),
            ("ship", {"lot": dry, "units": 50, "to_facility": "POS-1", "carrier": None, "document_ref": None}),
            ("sell", {"lot": dry, "units": 5, "point_of_sale": "POS-1"}),
        ):
            out.append(ev(i, t, p))
            i += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lots", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--prefix", default=None, help="Reuse topics under this prefix (skip producing).")
    ap.add_argument("--out", default="bench/results/audit_replay.json")
    a = ap.parse_args()
    from consumers.audit.replay import replay
    from producers.client import EventProducer

    s = get_settings()
    prefix = a.prefix
    produced = 0
    if prefix is None:
        prefix = f"bench-audit-{uuid.uuid4().hex[:8]}."
        s = s.model_copy(update={"topic_prefix": prefix})
        create_topics(s.bootstrap_servers, prefix, s.partitions)
        evs = chain_events(a.lots)
        t = time.perf_counter()
        with EventProducer(s, linger_ms=20) as p:
            produced = p.send_many(evs)
        print(f"produced {produced} events in {time.perf_counter() - t:.1f}s under prefix {prefix}")
    else:
        s = s.model_copy(update={"topic_prefix": prefix})
    import resource

    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0, load0 = cpu(), os.getloadavg()[0]
    rep = replay(s, workers=a.workers)
    cpu_s = cpu() - c0
    st = rep.stats
    result = {"benchmark": "audit_replay", "messages": st.messages, "lots": st.lots, "workers": a.workers,
              "read_seconds": round(st.read_seconds, 3), "fold_seconds": round(st.fold_seconds, 3),
              "events_per_second": round(st.rate), "cpu_seconds": round(cpu_s, 2),
              "events_per_cpu_second": round(st.messages / cpu_s) if cpu_s else None,
              "load_average_before": round(load0, 2), "cpus": os.cpu_count(), "python": platform.python_version(),
              "machine": platform.machine(), "prefix": prefix}
    print(json.dumps(result))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
