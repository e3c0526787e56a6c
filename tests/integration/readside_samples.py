"""Values for the read-side tests: LotRecords, alerts, stamp ranges, scans and master events that pass the
contract's validation (``schemas.validation.validate`` / ``schemas.events.validate_event``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from schemas import codec
from schemas.events import new_event, validate_event
from schemas.validation import validate

VN = timezone(timedelta(hours=7))
SUBJECT = "HTX-HAODAT"
GTIN = "8930000000019"  # GTIN-13, GS1 Vietnam prefix, valid check digit
GTIN14 = "0" + GTIN
AREA = "VT-TN-001"


def uid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "ocop-test/" + "/".join(map(str, parts))))


def at(day: int, hour: int = 8) -> str:
    """An ISO time with the Vietnamese offset, on day ``day`` of March 2026."""
    return datetime(2026, 3, day, hour, 0, tzinfo=VN).isoformat()


def step(lot: str, n: int, event_type: str, occurred_at: str, *, quantity: float | None = None,
         units: int | None = None, facility: str | None = "FAC-1", detail: str = "") -> dict:
    return {"event_id": uid(lot, n, event_type), "event_type": event_type, "occurred_at": occurred_at,
            "facility": facility, "subject_id": SUBJECT, "user": "lan",
            "quantity": {"value": quantity, "unit": "kg"} if quantity is not None else None,
            "units": units, "detail": detail or f"{event_type} {lot}", "voided": False}


def record(lot: str, *, parents: list[str] | None = None, children: list[str] | None = None,
           origins: list[tuple[str, str]] | None = None, day: int = 1, packaged: bool = False,
           status: str = "active", gtin: str = GTIN, rating: bool = True, steps: list[dict] | None = None,
           recall: dict | None = None, units_sold: int = 0, version: int = 0) -> dict:
    """A LotRecord. ``version`` changes the chain head (a later version of the same lot)."""
    parents, children = sorted(parents or []), sorted(children or [])
    origins = origins if origins is not None else ([(AREA, lot)] if not parents else [])
    if steps is None:
        steps = [step(lot, 0, "transform" if parents else "harvest", at(day), quantity=100.0)]
        if packaged:
            steps.append(step(lot, 1, "package", at(day, 14), units=200))
    rec = {
        "lot": lot,
        "subject_id": SUBJECT,
        "product": {"gtin": gtin, "name_vi": "Chè Tân Cương", "name_en": "Tan Cuong tea", "ocop_group": "beverage",
                    "owner_subject_id": SUBJECT} if packaged else None,
        "rating": {"stars": 4, "score": 82, "level": "province", "decision_no": "123/QĐ-UBND",
                   "decision_date": "2025-06-01", "valid_from": "2025-06-01", "valid_to": "2028-06-01"}
        if packaged and rating else None,
        "packaging": {"event_id": uid(lot, 1, "package"), "gtin": gtin, "units": 200,
                      "production_date": f"2026-03-{day:02d}", "expiry_date": "2027-03-01"} if packaged else None,
        "origins": [{"area_code": a, "harvest_lot": h} for a, h in sorted(set(origins))],
        "parents": parents,
        "children": children,
        "steps": steps,
        "quantity_in": {"value": 100.0, "unit": "kg"},
        "quantity_out": None,
        "units_packaged": 200 if packaged else 0,
        "units_shipped": 0,
        "units_sold": units_sold,
        "inspections": [],
        "status": status,
        "recall": recall,
        "flags": [],
        "stamp_ranges": [],
        "event_count": len(steps),
        "chain_head": f"{version:064x}",
        "chain_length": len(steps),
    }
    validate(codec.LOT_RECORD, rec)
    return rec


def alert(alert_id: str, *, rule: str = "oversold", lot: str | None = "L1", serial: str | None = None,
          state: str = "open", raised_at: str | None = None, severity: str = "warning") -> dict:
    a = {"alert_id": alert_id, "rule": rule, "severity": severity, "lot": lot, "serial": serial,
         "event_id": uid(alert_id, "ev"), "detail": f"{rule} on {lot or serial}", "raised_at": raised_at or at(5),
         "state": state}
    validate(codec.ALERT, a)
    return a


def stamp_range(lot: str, first_index: int, count: int, *, gtin: str = GTIN, n: int = 0) -> dict:
    r = {"range_id": uid(lot, "range", n), "lot": lot, "gtin": gtin, "key_id": "dev1", "first_index": first_index,
         "count": count, "issued_at": at(2), "request_id": uid(lot, 1, "package")}
    validate(codec.STAMP_RANGE, r)
    return r


def scan(serial: str, n: int, *, day: int = 10, hour: int = 9, region: str | None = "VN-TN", lot: str = "L1") -> dict:
    s = {"scan_id": uid(serial, "scan", n), "serial": serial, "gtin": GTIN14, "lot": lot,
         "scanned_at": at(day, hour), "region": region, "location": {"lat": 21.6, "lon": 105.8},
         "client_hash": f"c{n:04d}", "verdict": "genuine"}
    validate(codec.SCAN, s)
    return s


def master(event_type: str, payload: dict, *, n: int = 0, occurred_at: str | None = None) -> dict:
    ev = new_event(event_type, payload, subject_id=SUBJECT, user="admin", event_id=uid(event_type, payload, n),
                   occurred_at=occurred_at or at(1, 7), recorded_at=occurred_at or at(1, 7), source="cli")
    validate_event(ev)
    return ev


def subject_event(name: str = "HTX Chè Hảo Đạt", *, n: int = 0, occurred_at: str | None = None) -> dict:
    return master("subject", {"subject_id": SUBJECT, "name": name, "kind": "cooperative", "tax_id": None,
                              "province_code": "19", "commune_code": "05500", "address": "Tân Cương, Thái Nguyên",
                              "contact": None}, n=n, occurred_at=occurred_at)


def area_event(code: str = AREA, *, n: int = 0, occurred_at: str | None = None) -> dict:
    return master("area", {"area_code": code, "owner_subject_id": SUBJECT, "name": "Đồi chè Tân Cương",
                           "crops": ["tea"], "area_ha": 12.5, "location": [{"lat": 21.5906, "lon": 105.7623}],
                           "certifications": [{"scheme": "VietGAP", "number": "VG-1", "valid_from": "2025-01-01",
                                               "valid_to": "2027-01-01"}],
                           "valid_from": "2025-01-01", "valid_to": None, "revoked": False}, n=n,
                  occurred_at=occurred_at)


def product_event(name_vi: str = "Chè Tân Cương", *, gtin: str = GTIN, n: int = 0,
                  occurred_at: str | None = None) -> dict:
    return master("product", {"gtin": gtin, "owner_subject_id": SUBJECT, "name_vi": name_vi,
                              "name_en": "Tan Cuong tea", "ocop_group": "beverage",
                              "net_content": {"value": 0.2, "unit": "kg"}, "shelf_life_days": 365}, n=n,
                  occurred_at=occurred_at)


def rating_event(action: str = "granted", stars: int = 4, *, gtin: str = GTIN, n: int = 0,
                 occurred_at: str | None = None) -> dict:
    return master("rating", {"gtin": gtin, "action": action, "stars": stars, "score": 60 + 8 * stars,
                             "level": "province", "decision_no": f"{n + 1}/QĐ-UBND", "decision_date": "2025-06-01",
                             "valid_from": "2025-06-01", "valid_to": "2028-06-01"}, n=n, occurred_at=occurred_at)


def facility_event(fid: str = "FAC-1", *, n: int = 0) -> dict:
    return master("facility", {"facility_id": fid, "owner_subject_id": SUBJECT, "name": "Xưởng chế biến",
                               "kind": "plant", "address": "Tân Cương", "location": {"lat": 21.59, "lon": 105.76}},
                  n=n)
