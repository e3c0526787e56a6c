"""One canonical sample of every event type and top-level value (all fields present, as Avro gives them back)."""

from schemas import codec

SUBJECT = "HTX-HAODAT"
GTIN = "08938505974194"  # GS1 Vietnam prefix 893, valid check digit
AT = "2026-11-20T07:30:00+07:00"


def _ev(n: int, event_type: str, payload: dict, facility: str | None = "FAC-HAODAT-01") -> dict:
    return {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "event_type": event_type,
        "occurred_at": AT,
        "recorded_at": AT,
        "actor": {"subject_id": SUBJECT, "user": "lan"},
        "facility": facility,
        "source": "cli",
        "schema_version": 2,
        "payload": payload,
    }


Q = {"value": 120.5, "unit": "kg"}
SAMPLE_EVENTS = {
    "subject": _ev(1, "subject", {"subject_id": SUBJECT, "name": "Hợp tác xã chè Hảo Đạt", "kind": "cooperative",
                                  "tax_id": "4600123456", "province_code": "19", "commune_code": "05518",
                                  "address": "xã Tân Cương, TP Thái Nguyên", "contact": None}),
    "area": _ev(2, "area", {"area_code": "VN-TN-TC-001", "owner_subject_id": SUBJECT, "name": "Đồi chè Hảo Đạt",
                            "crops": ["chè"], "area_ha": 3.2, "location": [{"lat": 21.5927, "lon": 105.7628}],
                            "certifications": [{"scheme": "VietGAP", "number": "VG-19-001", "valid_from": "2024-01-01",
                                                "valid_to": "2027-01-01"}],
                            "valid_from": "2024-01-01", "valid_to": None, "revoked": False}),
    "product": _ev(3, "product", {"gtin": GTIN, "owner_subject_id": SUBJECT, "name_vi": "Chè Tân Cương Hảo Đạt",
                                  "name_en": "Hao Dat Tan Cuong tea", "ocop_group": "beverage",
                                  "net_content": {"value": 0.2, "unit": "kg"}, "shelf_life_days": 365}),
    "rating": _ev(4, "rating", {"gtin": GTIN, "action": "granted", "stars": 4, "score": 82, "level": "province",
                                "decision_no": "1234/QĐ-UBND", "decision_date": "2025-06-01",
                                "valid_from": "2025-06-01", "valid_to": "2028-06-01"}),
    "facility": _ev(5, "facility", {"facility_id": "FAC-HAODAT-01", "owner_subject_id": SUBJECT,
                                    "name": "Xưởng chế biến Hảo Đạt", "kind": "plant", "address": "Tân Cương",
                                    "location": {"lat": 21.59, "lon": 105.76}}),
    "harvest": _ev(6, "harvest", {"lot": "TC-2026-001", "area_code": "VN-TN-TC-001", "crop": "chè", "quantity": Q,
                                  "crate_tags": ["CR-01", "CR-02"]}),
    "receive": _ev(7, "receive", {"lot": "TC-2026-001", "quantity": Q, "from_facility": "FARM-1",
                                  "document_ref": "PHIEU-001"}),
    "transform": _ev(8, "transform", {"process": "drying",
                                      "inputs": [{"lot": "TC-2026-001", "quantity": Q}],
                                      "outputs": [{"lot": "TC-2026-101", "quantity": {"value": 30.0, "unit": "kg"}}],
                                      "duration_hours": 18.0}),
    "inspect": _ev(9, "inspect", {"lot": "TC-2026-101", "lab": "Trung tâm kiểm nghiệm Thái Nguyên", "result": "pass",
                                  "parameters": [{"name": "dư lượng BVTV", "value": "KPH", "limit": "MRL",
                                                  "passed": True}], "certificate_no": "KN-2026-77"}),
    "package": _ev(10, "package", {"lot": "TC-2026-101", "gtin": GTIN, "units": 150,
                                   "quantity": {"value": 30.0, "unit": "kg"}, "production_date": "2026-11-20",
                                   "expiry_date": "2027-11-20", "stamps_requested": 150}),
    "ship": _ev(11, "ship", {"lot": "TC-2026-101", "units": 50, "to_facility": "POS-QUANVUONG", "carrier": "VNPost",
                             "document_ref": "VD-1"}),
    "sell": _ev(12, "sell", {"lot": "TC-2026-101", "units": 2, "point_of_sale": "POS-QUANVUONG"}),
    "recall": _ev(13, "recall", {"scope": "lot", "target": "TC-2026-101", "reason": "Nhãn sai hạn sử dụng",
                                 "authority": "Sở NN&PTNT Thái Nguyên"}),
    "void": _ev(14, "void", {"lot": "TC-2026-101", "voided_event_id": "00000000-0000-4000-8000-000000000012",
                             "reason": "nhập nhầm số lượng"}),
}

SAMPLE_VALUES = {
    codec.ALERT: {"alert_id": "a" * 32, "rule": "oversold", "severity": "critical", "lot": "TC-2026-101",
                  "serial": None, "event_id": None, "detail": "3 units sold, 2 packaged", "raised_at": AT,
                  "state": "open"},
    codec.STAMP_RANGE: {"range_id": "r" * 24, "lot": "TC-2026-101", "gtin": GTIN, "key_id": "k1", "first_index": 0,
                        "count": 150, "issued_at": AT, "request_id": "00000000-0000-4000-8000-000000000010"},
    codec.STAMP_REQUEST: {"request_id": "00000000-0000-4000-8000-000000000099", "lot": "TC-2026-101", "count": 20,
                          "requested_at": AT, "actor": {"subject_id": SUBJECT, "user": "lan"}},
    codec.SCAN: {"scan_id": "s1", "serial": "17K1ABCDEFGH", "gtin": GTIN, "lot": "TC-2026-101", "scanned_at": AT,
                 "region": "19", "location": {"lat": 21.6, "lon": 105.8}, "client_hash": "h" * 16,
                 "verdict": "genuine"},
    codec.DLQ_ENTRY: {"original_key": b"k", "original_value": b"\x00\xff", "headers": [{"key": "h", "value": b"v"}],
                      "source_topic": "ocop.events.supply", "source_partition": 3, "source_offset": 42,
                      "error": "undecodable", "field": None, "reason": "bad header", "failed_at": AT},
    codec.CHECKPOINT: {"checkpoint_id": "c1", "created_at": AT, "offsets": {"ocop.events.supply:0": 10},
                       "chain_count": 3, "root": "0" * 64, "key_id": "audit-1", "signature": b"\x01" * 64,
                        "heads": None},
}


def sample_record() -> dict:
    from streams.fold import project

    return project(SAMPLE_EVENTS[t] for t in ("area", "product", "rating", "harvest", "transform", "package"))["TC-2026-101"]


SAMPLE_VALUES[codec.LOT_RECORD] = sample_record()
