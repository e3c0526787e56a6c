"""The scan verdict (consumers.web.verdict): codes, reasons and precedence. Pure: no database, no broker."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.web.verdict import CODES, PRECEDENCE, Verdict, expiry_of, unverifiable, verdict
from qr.digital_link import DigitalLink
from qr.serials import StampSigner, Verification

GTIN = "08938505974194"
LOT = "TC-2026-101"
TODAY = date(2026, 12, 1)
SIGNER = StampSigner({"k1": b"0123456789abcdef0123"}, "k1", 8)
SERIAL = SIGNER.serial(GTIN, LOT, 7)
LINK = DigitalLink(GTIN, LOT, SERIAL)

OK = SIGNER.verify(GTIN, LOT, SERIAL)
BAD_TAG = SIGNER.verify(GTIN, LOT, SERIAL[:-1] + ("0" if SERIAL[-1] != "0" else "1"))
UNKNOWN_KEY = Verification(False, 7, None, "unknown_key")
MALFORMED = SIGNER.verify(GTIN, LOT, "NOT-A-SERIAL")
RECALL = {"event_id": "e-recall", "scope": "lot", "target": LOT, "reason": "Nhãn sai hạn sử dụng",
          "authority": "Sở NN&PTNT Thái Nguyên", "occurred_at": "2026-11-25T09:00:00+07:00"}


def lot_view(*, recalled: bool = False, expiry: str | None = "2027-11-20", gtin: str = GTIN,
             ancestor_recalled: bool = False, status: str | None = None) -> dict:
    return {
        "lot": LOT, "gtin": gtin, "status": status or ("recalled" if recalled else "active"),
        "expiry_date": expiry, "recall_reason": RECALL["reason"] if recalled else None,
        "record": {"lot": LOT, "recall": RECALL if recalled else None},
        "ancestor_recalls": [{"lot": "TC-2026-001", "recall_reason": "Vùng trồng nhiễm bẩn"}]
        if ancestor_recalled else [],
    }


def test_fixture_sanity():
    assert OK.ok and OK.index == 7 and OK.key_id == "k1"
    assert BAD_TAG.reason == "bad_tag" and MALFORMED.reason == "malformed"


@pytest.mark.parametrize(
    "ver, view, range_ok, flagged, today, code, reason",
    [
        (OK, lot_view(), True, False, TODAY, "genuine", "tag_ok"),
        (BAD_TAG, lot_view(), True, False, TODAY, "forged", "bad_tag"),
        (UNKNOWN_KEY, lot_view(), True, False, TODAY, "forged", "unknown_key"),
        (MALFORMED, lot_view(), True, False, TODAY, "forged", "malformed"),
        (OK, lot_view(), False, False, TODAY, "unknown", "not_issued"),
        (OK, None, False, False, TODAY, "unknown", "lot_unknown"),
        (OK, lot_view(gtin="08930000000019"), True, False, TODAY, "unknown", "gtin_mismatch"),
        (unverifiable(7), None, False, False, TODAY, "unknown", "lot_unresolved"),
        (OK, lot_view(recalled=True), True, False, TODAY, "recalled", "recalled"),
        (OK, lot_view(ancestor_recalled=True), True, False, TODAY, "recalled", "recalled"),
        (OK, lot_view(), True, True, TODAY, "suspicious", "suspicious_copy"),
        (OK, lot_view(expiry="2026-11-30"), True, False, TODAY, "expired", "expired"),
        (OK, lot_view(status="expired", expiry=None), True, False, TODAY, "expired", "expired"),
    ],
)
def test_each_code(ver, view, range_ok, flagged, today, code, reason):
    v = verdict(LINK, ver, view, range_ok, flagged, today)
    assert isinstance(v, Verdict)
    assert v.code == code
    assert reason in v.reasons
    assert v.code in CODES


def test_expiry_day_itself_is_still_good():
    assert verdict(LINK, OK, lot_view(expiry="2026-12-01"), True, False, TODAY).code == "genuine"
    assert verdict(LINK, OK, lot_view(expiry="2026-12-01"), True, False, date(2026, 12, 2)).code == "expired"


def test_recorded_expiry_beats_the_printed_one():
    printed_later = DigitalLink(GTIN, LOT, SERIAL, date(2030, 1, 1))
    v = verdict(printed_later, OK, lot_view(expiry="2026-11-01"), True, False, TODAY)
    assert v.code == "expired" and "expiry_mismatch" in v.reasons and v.expiry == date(2026, 11, 1)
    assert v.detail["printed_expiry"] == "2030-01-01"
    # no recorded expiry: the stamp's ?17= counts
    v = verdict(DigitalLink(GTIN, LOT, SERIAL, date(2026, 1, 31)), OK, lot_view(expiry=None), True, False, TODAY)
    assert v.code == "expired" and "expiry_mismatch" not in v.reasons
    assert expiry_of(DigitalLink(GTIN, LOT, SERIAL), lot_view(expiry=None)) == (None, False)


def test_recall_carries_reason_and_ancestor():
    v = verdict(LINK, OK, lot_view(recalled=True), True, False, TODAY)
    assert v.recall["reason"] == "Nhãn sai hạn sử dụng" and v.recall["authority"]
    v = verdict(LINK, OK, lot_view(ancestor_recalled=True), True, False, TODAY)
    assert v.recall["via"] == "TC-2026-001" and v.recall["reason"] == "Vùng trồng nhiễm bẩn"


def test_forged_and_unknown_never_show_a_lot_recall():
    for ver, rng in ((BAD_TAG, True), (OK, False)):
        v = verdict(LINK, ver, lot_view(recalled=True), rng, True, TODAY)
        assert v.code in ("forged", "unknown") and v.recall is None
        assert "recalled" in v.reasons  # the finding is kept, the verdict does not tie it to this package


# Every combination of findings: the code is the strongest that applies, in the documented order.
FINDINGS = {
    "forged": dict(ver=BAD_TAG),
    "unknown": dict(range_ok=False),
    "recalled": dict(recalled=True),
    "suspicious": dict(flagged=True),
    "expired": dict(expiry="2026-01-01"),
}


@pytest.mark.parametrize("present", [c for n in range(len(FINDINGS) + 1)
                                     for c in itertools.combinations(FINDINGS, n)])
def test_precedence_every_combination(present):
    kw = dict(ver=OK, range_ok=True, flagged=False, recalled=False, expiry="2027-11-20")
    for name in present:
        kw.update(FINDINGS[name])
    v = verdict(LINK, kw["ver"], lot_view(recalled=kw["recalled"], expiry=kw["expiry"]), kw["range_ok"],
                kw["flagged"], TODAY)
    expected = next((c for c in PRECEDENCE if c in present), "genuine")
    assert v.code == expected, (present, v)


def test_precedence_order_is_the_documented_one():
    assert PRECEDENCE == ("forged", "unknown", "recalled", "suspicious", "expired", "genuine")


def test_lot_without_serial_has_no_stamp_verdict():
    lot_link = DigitalLink(GTIN, LOT)
    assert verdict(lot_link, None, lot_view(), False, False, TODAY).code == "info"
    assert verdict(lot_link, None, lot_view(recalled=True), False, False, TODAY).code == "recalled"
    assert verdict(lot_link, None, lot_view(expiry="2020-01-01"), False, False, TODAY).code == "expired"
    assert verdict(lot_link, None, None, False, False, TODAY).code == "unknown"
    # flags are about stamps: without a serial they do not apply
    assert verdict(lot_link, None, lot_view(), False, True, TODAY).code == "info"
    assert not verdict(lot_link, None, lot_view(), False, False, TODAY).is_stamp_verdict


def test_as_dict_is_json_ready():
    import json

    v = verdict(LINK, OK, lot_view(recalled=True), True, True, TODAY)
    d = json.loads(json.dumps(v.as_dict()))
    assert d["code"] == "recalled" and d["reasons"][0] == "tag_ok" and d["recall"]["target"] == LOT


@given(ver=st.sampled_from([OK, BAD_TAG, UNKNOWN_KEY, MALFORMED, unverifiable(7)]),
       has_lot=st.booleans(), recalled=st.booleans(), range_ok=st.booleans(), flagged=st.booleans(),
       expiry=st.one_of(st.none(), st.dates(date(2020, 1, 1), date(2030, 1, 1))),
       today=st.dates(date(2024, 1, 1), date(2028, 1, 1)))
def test_pure_and_total(ver, has_lot, recalled, range_ok, flagged, expiry, today):
    view = lot_view(recalled=recalled, expiry=expiry.isoformat() if expiry else None) if has_lot else None
    a = verdict(LINK, ver, view, range_ok, flagged, today)
    b = verdict(LINK, ver, view, range_ok, flagged, today)
    assert a == b and a.code in PRECEDENCE
    if not ver.ok and ver.reason != "unverifiable":
        assert a.code == "forged"
    if a.code == "genuine":
        assert ver.ok and has_lot and range_ok and not recalled and not flagged
