"""Intake builders, parsers, messages and the scanner station's pure logic (no broker)."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from producers import i18n, intake
from producers.intake import Envelope, Invalid
from producers.station import STEPS, CodeError, Station, StationConfig, parse_inline, read_code
from qr.digital_link import DigitalLink
from schemas.events import decode_event, encode_event, event_key, validate_event

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone(timedelta(hours=7)))
ENV = Envelope("HTX-CHE-HAODAT", user="ba-hao", facility="HAODAT-XUONG", now=NOW)
GTIN = "08936045200018"  # 893 (GS1 Vietnam) + check digit

SCHEMA_UNITS = st.sampled_from(intake.UNITS)
VALUES = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


def make_gtin(body12: str) -> str:
    from qr.gtin import make_gtin as mk

    return mk(body12)


# ------------------------------------------------------------------------------------------------ quantities
@settings(deadline=None)  # the first example pays for building the schema codecs
@given(VALUES, SCHEMA_UNITS)
def test_quantity_text_round_trips(value, unit):
    q = {"value": value, "unit": unit}
    assert intake.parse_quantity(intake.quantity_text(q)) == q


@settings(deadline=None)  # the first example pays for building the schema codecs
@given(VALUES, SCHEMA_UNITS, st.sampled_from(["{v} {u}", "{v}{u}", "  {v}   {u} ", "{v} {U}"]))
def test_any_valid_quantity_string_parses_and_survives_avro(value, unit, form):
    text = form.format(v=repr(value), u=unit, U=unit.upper())
    ev = intake.harvest(ENV, lot="TC-2026-001", area="VN-TN-TC-001", crop="chè", qty=text)
    assert ev["payload"]["quantity"] == {"value": value, "unit": unit}
    assert decode_event(encode_event(ev))["payload"]["quantity"] == {"value": value, "unit": unit}


@settings(deadline=None)  # the first example pays for building the schema codecs
@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=99))
def test_vietnamese_decimal_comma(whole, frac):
    q = intake.parse_quantity(f"{whole},{frac:02d} kg")
    assert math.isclose(q["value"], whole + frac / 100)
    assert q["unit"] == "kg"


@pytest.mark.parametrize("text,expected", [
    ("500 g", {"value": 0.5, "unit": "kg"}), ("3 tạ", {"value": 300.0, "unit": "kg"}),
    ("2 tấn", {"value": 2.0, "unit": "t"}), ("1,5 lít", {"value": 1.5, "unit": "l"}),
    ("250 ml", {"value": 0.25, "unit": "l"}), ("24 hộp", {"value": 24.0, "unit": "unit"}),
    ("12.5KG", {"value": 12.5, "unit": "kg"}), (7, None),
])
def test_unit_words(text, expected):
    if expected is None:
        assert intake.parse_quantity(text, "kg") == {"value": 7.0, "unit": "kg"}
    else:
        assert intake.parse_quantity(text) == expected


@settings(deadline=None)  # the first example pays for building the schema codecs
@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False), SCHEMA_UNITS)
def test_negative_quantity_rejected_naming_the_field(value, unit):
    with pytest.raises(Invalid) as e:
        intake.receive(ENV, lot="L1", qty=f"-{value!r} {unit}")
    assert e.value.field == "payload.quantity.value"
    assert "≥ 0" in e.value.reason


@settings(deadline=None)  # the first example pays for building the schema codecs
@given(st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu")), min_size=1, max_size=8))
def test_unknown_unit_rejected_naming_the_field(word):
    assume(word.lower() not in intake.UNIT_WORDS and word.lower()[:1] not in "e")  # "e" would read as an exponent
    with pytest.raises(Invalid) as e:
        intake.harvest(ENV, lot="L1", area="A1", crop="chè", qty=f"12 {word}")
    assert e.value.field == "payload.quantity.unit"
    assert "unknown unit" in e.value.reason


@pytest.mark.parametrize("qty", ["", "kg", "twelve kg", "1.2.3 kg", "--5 kg"])
def test_not_a_number(qty):
    with pytest.raises(Invalid) as e:
        intake.harvest(ENV, lot="L1", area="A1", crop="chè", qty=qty)
    assert e.value.field.startswith("payload.quantity")


def test_quantity_needs_a_unit():
    with pytest.raises(Invalid) as e:
        intake.harvest(ENV, lot="L1", area="A1", crop="chè", qty="120")
    assert (e.value.field, e.value.reason) == ("payload.quantity.unit", "needs a unit (use kg, t, l, unit)")
    assert intake.harvest(ENV, lot="L1", area="A1", crop="chè", qty="120", unit="kg")["payload"]["quantity"]["value"] == 120


# ------------------------------------------------------------------------------------------------ GTINs, dates
@settings(deadline=None)  # the first example pays for building the schema codecs
@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_valid_gtin13_is_stored_as_gtin14(tail):
    gtin = make_gtin("893" + tail)
    ev = intake.product(ENV, gtin=gtin, owner="HTX-CHE-HAODAT", name_vi="Chè", group="beverage")
    assert ev["payload"]["gtin"] == "0" + gtin
    assert event_key(ev) == "0" + gtin


@settings(deadline=None)  # the first example pays for building the schema codecs
@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.integers(min_value=1, max_value=9))
def test_bad_gtin_check_digit_rejected(tail, delta):
    good = make_gtin("893" + tail)
    bad = good[:-1] + str((int(good[-1]) + delta) % 10)
    with pytest.raises(Invalid) as e:
        intake.package(ENV, lot="L1", gtin=bad, units=10)
    assert e.value.field == "payload.gtin"
    assert "check digit" in e.value.reason


@settings(deadline=None)  # the first example pays for building the schema codecs
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 1, 1)), st.integers(min_value=1, max_value=3000))
def test_expiry_before_production_rejected(prod, days):
    exp = prod - timedelta(days=days)
    with pytest.raises(Invalid) as e:
        intake.package(ENV, lot="L1", gtin=GTIN, units=1, production_date=prod.isoformat(), expiry_date=exp.isoformat())
    assert e.value.field == "payload.expiry_date"
    ok = intake.package(ENV, lot="L1", gtin=GTIN, units=1, production_date=prod.strftime("%d/%m/%Y"),
                        expiry_date=(prod + timedelta(days=days)).isoformat())
    assert ok["payload"]["production_date"] == prod.isoformat()


@settings(deadline=None)  # the first example pays for building the schema codecs
@given(st.integers(max_value=0))
def test_units_must_be_positive(units):
    with pytest.raises(Invalid) as e:
        intake.ship(ENV, lot="L1", units=units, to="QV-DINHHOA")
    assert e.value.field == "payload.units"


@pytest.mark.parametrize("text,expected", [
    ("2026-11-20 07:30", "2026-11-20T07:30:00+07:00"),
    ("20/11/2026 7:30", "2026-11-20T07:30:00+07:00"),
    ("2026-11-20T07:30:00+00:00", "2026-11-20T07:30:00+00:00"),
    ("2026-11-20", "2026-11-20T00:00:00+07:00"),
    ("07:15", "2026-11-20T07:15:00+07:00"),
])
def test_times_are_local(text, expected):
    assert intake.parse_at(text, "Asia/Ho_Chi_Minh", NOW) == expected
    ev = intake.sell(ENV.with_(at=text), lot="L1", units=2, pos="QV-DINHHOA")
    assert ev["occurred_at"] == expected


def test_bad_and_future_times_rejected():
    with pytest.raises(Invalid) as e:
        intake.sell(ENV.with_(at="tomorrow-ish"), lot="L1", units=2, pos="P")
    assert e.value.field == "occurred_at"
    with pytest.raises(Invalid) as e:
        intake.sell(ENV.with_(at="2026-12-25 08:00"), lot="L1", units=2, pos="P")
    assert e.value.field == "occurred_at" and "future" in e.value.reason


def test_default_time_is_now_in_the_local_zone():
    ev = intake.harvest(ENV, lot="L1", area="A1", crop="chè", qty="1 kg")
    assert ev["occurred_at"] == ev["recorded_at"] == "2026-11-20T09:00:00.000+07:00"
    live = intake.harvest(Envelope("S1"), lot="L1", area="A1", crop="chè", qty="1 kg")
    assert live["occurred_at"].endswith("+07:00")


# ------------------------------------------------------------------------------------------------ builders
def test_every_builder_gives_a_valid_event_of_its_type():
    e = ENV.with_(at="2026-11-20 07:30")
    events = [
        intake.subject(e, subject_id="HTX-CHE-HAODAT", name="Hợp tác xã Chè Hảo Đạt", kind="htx", province="VN-69",
                       commune="TAN-CUONG"),
        intake.area(e, code="VN-TN-TC-001", owner="HTX-CHE-HAODAT", crops="chè Trung du, chè lai", area_ha="5,2",
                    location=["21.5712,105.7651", "21.5731,105.7680", "21.5702,105.7699"],
                    certifications=["VietGAP:VG-TN-0231:01/05/2024:2027-04-30"]),
        intake.product(e, gtin="8936045200018", owner="HTX-CHE-HAODAT", name_vi="Chè Tân Cương Hảo Đạt",
                       name_en="Hảo Đạt green tea", group="2", net_content="200 g", shelf_life_days="540"),
        intake.rating(e, gtin="8936045200018", stars="4", score=82, level="province", decision_no="1532/QĐ-UBND",
                      decision_date="10/07/2024"),
        intake.facility(e, facility_id="HAODAT-XUONG", owner="HTX-CHE-HAODAT", name="Xưởng chè", kind="xưởng",
                        location="21.5689, 105.7633"),
        intake.harvest(e, lot="TC-2026-001", area="VN-TN-TC-001", crop="chè", qty="120 kg", crate_tags=["TC-001#01"]),
        intake.receive(e, lot="TC-2026-001", qty="119,5kg", from_facility="FARM-1", document_ref="PN-1"),
        intake.transform(e, process="blending", inputs=["TC-2026-001=26.5kg", "TC-2026-002=17,5 kg"],
                         outputs=["TC-2026-T01=44kg"], duration="2h"),
        intake.inspect(e, lot="TC-2026-T01", lab="QUATEST 1", result="đạt", params=["Pb=0.04<=2", "E.coli=KPH"]),
        intake.package(e, lot="TC-2026-T01", gtin="8936045200018", units="200", expiry_date="01/04/2028", stamps=200,
                       qty="40 kg"),
        intake.ship(e, lot="TC-2026-T01", units=120, to="QV-DINHHOA", carrier="VNPost"),
        intake.sell(e, lot="TC-2026-T01", units=35, pos="QV-DINHHOA"),
        intake.recall(e, scope="lô", target="TC-2026-T01", reason="Nhãn sai"),
        intake.void(e, lot="TC-2026-T01", voids="1b2c3d4e-0000-4000-8000-000000000000", reason="nhập nhầm"),
    ]
    assert [ev["event_type"] for ev in events] == list(intake.BUILDERS)
    for ev in events:
        validate_event(ev)
        assert ev["occurred_at"] == "2026-11-20T07:30:00+07:00"
    subj, area, prod, rating, fac = (ev["payload"] for ev in events[:5])
    assert subj["kind"] == "cooperative"
    assert area["crops"] == ["chè Trung du", "chè lai"] and area["area_ha"] == 5.2 and len(area["location"]) == 3
    assert area["certifications"][0] == {"scheme": "VietGAP", "number": "VG-TN-0231", "valid_from": "2024-05-01",
                                         "valid_to": "2027-04-30"}
    assert area["valid_from"] == "2026-11-20"  # default: the day it happened
    assert prod["ocop_group"] == "beverage" and prod["net_content"] == {"value": 0.2, "unit": "kg"}
    assert (rating["valid_from"], rating["valid_to"]) == ("2024-07-10", "2027-07-09")  # 36 months
    assert fac["kind"] == "plant" and fac["location"] == {"lat": 21.5689, "lon": 105.7633}
    t = events[7]["payload"]
    assert t["duration_hours"] == 2.0 and t["inputs"][1]["quantity"] == {"value": 17.5, "unit": "kg"}
    params = events[8]["payload"]["parameters"]
    assert events[8]["payload"]["result"] == "pass"
    assert params[0] == {"name": "Pb", "value": "0.04", "limit": "≤ 2", "passed": True}
    assert events[9]["payload"]["production_date"] == "2026-11-20" and events[9]["payload"]["expiry_date"] == "2028-04-01"
    assert events[12]["payload"]["scope"] == "lot"


@pytest.mark.parametrize("text,passed,limit", [
    ("Pb=0.5<=0.3", False, "≤ 0.3"), ("Pb=0.1 ≤ 0.3", True, "≤ 0.3"), ("Brix=70>=65", True, "≥ 65"),
    ("moisture=9.5;fail", False, None), ("aflatoxin=KPH", True, None),
])
def test_inspection_parameters(text, passed, limit):
    p = intake.parse_param(text)
    assert (p["passed"], p["limit"]) == (passed, limit)


def test_transform_lot_quantities_and_duration():
    assert intake.parse_duration("40d") == 960 and intake.parse_duration("40 ngày") == 960
    assert intake.parse_duration("90 min") == 1.5 and intake.parse_duration(12) == 12
    with pytest.raises(Invalid) as e:
        intake.transform(ENV, process="blending", inputs=["TC-1"], outputs=["TC-2=1kg"])
    assert e.value.field == "payload.inputs[0]"
    with pytest.raises(Invalid) as e:
        intake.transform(ENV, process="fermentation", inputs=["TA-1=500kg"], outputs=["TA-1=320kg"])
    assert e.value.field == "payload.outputs"  # a lot both in and out
    ev = intake.transform(ENV, process="fermentation", inputs=["TA-1=500"], outputs=["TA-F=320"], unit="kg",
                          duration="40d")
    assert event_key(ev) == "TA-F" and ev["payload"]["duration_hours"] == 960


def test_malformed_master_values():
    with pytest.raises(Invalid) as e:
        intake.rating(ENV, gtin=GTIN, stars=6, score=95, level="central", decision_no="1/QĐ", decision_date="2024-01-01")
    assert e.value.field == "payload.stars"
    with pytest.raises(Invalid) as e:
        intake.rating(ENV, gtin=GTIN, stars=4, score=80, level="province", decision_no="1/QĐ",
                      decision_date="2024-01-01", valid_to="2023-01-01")
    assert e.value.field == "payload.valid_to"
    with pytest.raises(Invalid) as e:
        intake.area(ENV, code="A1", owner="S", crops="chè", area_ha="-1", location="21,105")
    assert e.value.field == "payload.area_ha"
    with pytest.raises(Invalid) as e:
        intake.area(ENV, code="A1", owner="S", crops="chè", area_ha="1", location="95,105")
    assert e.value.field == "payload.location[0].lat"
    with pytest.raises(Invalid) as e:
        intake.subject(ENV, subject_id="S", name="X", kind="pirate", province="VN-69")
    assert e.value.field == "payload.kind"
    with pytest.raises(Invalid) as e:
        intake.harvest(ENV, lot="lô 1", area="A1", crop="chè", qty="1 kg")
    assert e.value.field == "payload.lot"


def test_unknown_references_are_allowed():
    ev = intake.harvest(ENV, lot="NEVER-SEEN", area="NOT-REGISTERED-YET", crop="chè", qty="1 kg")
    validate_event(ev)


# ------------------------------------------------------------------------------------------------ messages
def test_confirmation_in_vietnamese_and_english():
    ev = intake.harvest(ENV, lot="TC-2026-001", area="VN-TN-TC-001", crop="chè", qty="120 kg")
    assert intake.confirmation(ev) == "Đã ghi nhận thu hoạch lô TC-2026-001: 120 kg chè từ vùng trồng VN-TN-TC-001"
    assert intake.confirmation(ev, "en") == "Recorded harvest of lot TC-2026-001: 120 kg of chè from growing area VN-TN-TC-001"
    r = intake.receive(ENV, lot="L1", qty="12,5 kg")
    assert "12,5 kg" in intake.confirmation(r) and "12.5 kg" in intake.confirmation(r, "en")
    for typ, build in intake.BUILDERS.items():  # every type has its own sentence in both languages
        assert typ in i18n.MESSAGES[f"{typ}.ok"]["en"].lower() or i18n.MESSAGES[f"{typ}.ok"]["en"]


def test_invalid_messages_name_the_option_and_translate_the_reason():
    try:
        intake.harvest(ENV, lot="L1", area="A1", crop="chè", qty="-5 kg")
    except Invalid as e:
        vi = intake.describe_invalid(e, {"payload.quantity": "--qty"})
        en = intake.describe_invalid(e, {"payload.quantity": "--qty"}, "en")
    assert vi == "Dữ liệu không hợp lệ — --qty (payload.quantity.value): phải ≥ 0, nhận được -5.0"
    assert en == "Invalid input — --qty (payload.quantity.value): must be ≥ 0, got -5.0"
    assert intake.option_for("actor.subject_id", {}) == "--subject (actor.subject_id)"
    assert intake.option_for("payload.x", {}) == "payload.x"


def test_catalog_has_both_languages():
    for key, entry in i18n.MESSAGES.items():
        assert set(entry) == {"vi", "en"}, key
        names = lambda s: set(re.findall(r"{(\w+)}", s))  # noqa: E731
        assert names(entry["vi"]) == names(entry["en"]), key
    assert i18n.t("no.such.key", "en") == "no.such.key"
    assert i18n.t("inspect.pass", "fr") == "đạt"  # falls back to Vietnamese


# ------------------------------------------------------------------------------------------------ station
BASE = "https://ocop.example.vn"


def test_read_code_kinds():
    assert read_code("TC-2026-001").lot == "TC-2026-001"
    c = read_code("TC-2026-001#07")
    assert (c.lot, c.crate, c.kind) == ("TC-2026-001", "07", "crate")
    assert read_code("CRATE:ABC-9").crate == "ABC-9" and read_code("CRATE:ABC-9").lot is None
    dl = DigitalLink(GTIN, "TC-2026-T01", "123ABCD", date(2028, 4, 1))
    for text in (dl.build(BASE), dl.element_string(hri=True), dl.element_string(), "]d2" + dl.element_string()):
        c = read_code(text)
        assert (c.lot, c.gtin, c.serial, c.expiry, c.kind) == ("TC-2026-T01", GTIN, "123ABCD", date(2028, 4, 1), "gs1")


@pytest.mark.parametrize("text", [
    "https://ocop.example.vn/01/08936045200017/10/L1",  # bad check digit
    "https://ocop.example.vn/01/08936045200018",  # no lot
    "(01)08936045200018",
    "8936045200018",  # a bare GTIN names no lot
    "@/nonexistent/photo.jpg",
])
def test_read_code_rejects(text):
    with pytest.raises(CodeError):
        read_code(text, photo=lambda p: (_ for _ in ()).throw(LookupError("no_qr_in_photo")))


def test_photo_codes_are_decoded():
    dl = DigitalLink(GTIN, "TC-2026-T01").build(BASE)
    assert read_code("@/tmp/x.jpg", photo=lambda p: dl).lot == "TC-2026-T01"


def test_inline_values():
    assert parse_inline(["12,5", "kg"], "receive") == {"qty": "12,5 kg"}
    assert parse_inline(["12.5kg"], "receive") == {"qty": "12.5 kg"}
    assert parse_inline(["24"], "ship") == {"units": "24"}
    assert parse_inline(["24", "to=QV-DINHHOA"], "ship") == {"units": "24", "to": "QV-DINHHOA"}
    assert parse_inline(["fail"], "inspect") == {"result": "fail"}
    assert parse_inline(["hsd=2028-01-01"], "package") == {"expiry_date": "2028-01-01"}
    with pytest.raises(CodeError):
        parse_inline(["banana"], "receive")


def _station(step, interactive=False, answers=(), **defaults):
    sent, said = [], []
    answers = list(answers)
    cfg = StationConfig(step=step, facility="HAODAT-XUONG", subject_id="HTX-CHE-HAODAT", defaults=defaults,
                        interactive=interactive, lang="en")
    asked = []

    def ask(prompt):
        asked.append(prompt)
        return answers.pop(0) if answers else None

    st_ = Station(cfg, send=sent.append, ask=ask if interactive else None, say=lambda ok, m: said.append((ok, m)), now=NOW)
    return st_, sent, said, asked


def test_station_pipe_mode_records_good_lines_and_rejects_bad_ones():
    station, sent, said, _ = _station("receive")
    dl = DigitalLink(GTIN, "TC-2026-T01", "SER1").build(BASE)
    summary = station.run([
        "TC-2026-001 12,5 kg\n", "TC-2026-002 8kg\n", f"{dl} 3 kg\n", "TC-2026-003#04 2 kg\n",
        "TC-2026-004\n",  # quantity missing: rejected, never waits
        "https://ocop.example.vn/01/08936045200017/10/X 1 kg\n",  # bad check digit
        "TC-2026-005 -3 kg\n",  # negative
        "\n", "AFTER-BLANK 1 kg\n",
    ])
    assert (summary.ok, summary.rejected) == (4, 3)
    assert [e["payload"]["lot"] for e in sent] == ["TC-2026-001", "TC-2026-002", "TC-2026-T01", "TC-2026-003"]
    assert sent[0]["payload"]["quantity"] == {"value": 12.5, "unit": "kg"}
    assert sent[2]["payload"]["document_ref"] == dl and sent[3]["payload"]["document_ref"] == "TC-2026-003#04"
    assert all(e["source"] == "scanner" and e["facility"] == "HAODAT-XUONG" for e in sent)
    msgs = [m for ok, m in said if not ok]
    assert "Missing quantity" in msgs[0] and "--qty" in msgs[0]
    assert "check digit" in msgs[1]
    assert "qty (--qty/--unit) (payload.quantity.value)" in msgs[2]
    assert summary.message("en") == "Done: 4 recorded, 3 rejected."


def test_station_defaults_fill_what_is_missing():
    station, sent, _, _ = _station("receive", unit="kg")
    assert station.run(["L1 5", "L2 7,5"]).ok == 2
    assert [e["payload"]["quantity"]["value"] for e in sent] == [5.0, 7.5]
    station, sent, _, _ = _station("ship", to="QV-DINHHOA")
    dl = DigitalLink(GTIN, "TC-2026-T01", "SER1").build(BASE)
    s = station.run(["TC-2026-T01 24", dl, "TC-2026-T01"])  # a stamp counts as one unit; a bare lot lacks units
    assert (s.ok, s.rejected) == (2, 1)
    assert [e["payload"]["units"] for e in sent] == [24, 1]
    station, sent, _, _ = _station("sell")
    assert station.run(["TC-2026-T01 2"]).ok == 1 and sent[0]["payload"]["point_of_sale"] == "HAODAT-XUONG"
    station, sent, _, _ = _station("package", units=100, stamps=100)
    dl = DigitalLink(GTIN, "TC-2026-T01", None, date(2028, 4, 1)).build(BASE)
    assert station.run([dl]).ok == 1
    p = sent[0]["payload"]
    assert (p["gtin"], p["units"], p["expiry_date"], p["stamps_requested"]) == (GTIN, 100, "2028-04-01", 100)
    station, sent, _, _ = _station("harvest", area="VN-TN-TC-001", crop="chè")
    assert station.run(["TC-2026-009#03 30 kg"]).ok == 1 and sent[0]["payload"]["crate_tags"] == ["03"]
    station, sent, _, _ = _station("inspect")
    assert station.run(["TC-2026-T01 pass", "TC-2026-T02"]).ok == 1


def test_station_interactive_asks_only_for_what_is_missing():
    station, sent, said, asked = _station("receive", interactive=True, answers=["12,5 kg", "7", "kg"])
    s = station.run(["TC-2026-001", "TC-2026-002 3 kg", "TC-2026-003"])
    assert s.ok == 3
    assert [e["payload"]["quantity"] for e in sent] == [{"value": 12.5, "unit": "kg"}, {"value": 3.0, "unit": "kg"},
                                                        {"value": 7.0, "unit": "kg"}]
    assert asked == ["Quantity for lot TC-2026-001 (e.g. 12.5 kg)", "Quantity for lot TC-2026-003 (e.g. 12.5 kg)",
                     "Unit (kg, t, l, unit)"]
    station, sent, said, asked = _station("ship", interactive=True, answers=["10", ""])
    s = station.run(["TC-2026-T01"])  # units answered, destination left empty: rejected, not sent
    assert (s.ok, s.rejected, sent) == (0, 1, [])


def test_station_carries_on_when_sending_fails():
    calls = []

    def flaky(ev):
        calls.append(ev)
        if len(calls) == 1:
            raise ConnectionError("broker down")

    cfg = StationConfig(step="receive", facility="F", subject_id="S", lang="en")
    s = Station(cfg, send=flaky, now=NOW).run(["L1 1 kg", "L2 1 kg"])
    assert (s.ok, s.rejected) == (1, 1)
    assert "broker down" in s.outcomes[0].message


def test_all_steps_known():
    assert set(STEPS) == {"harvest", "receive", "inspect", "package", "ship", "sell"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.text(min_size=0, max_size=30),
    st.from_regex(r"[A-Z]{2}-[0-9]{4}-[0-9]{3}( [0-9]{1,3}(,[0-9])? ?(kg|t|l|g)?)?", fullmatch=True),
), max_size=12))
def test_station_never_crashes_on_any_input(lines):
    station, sent, said, _ = _station("receive")
    s = station.run(lines)
    assert s.ok == len(sent)
    for ev in sent:
        validate_event(ev)


def test_photo_path_decoded_with_qr_decode(tmp_path):
    import qrcode

    uri = DigitalLink(GTIN, "TC-2026-T01", "PHOTO1").build(BASE)
    path = tmp_path / "photo.png"
    qrcode.make(uri, box_size=6, border=4).save(path)
    c = read_code(f"@{path}")
    assert (c.lot, c.gtin, c.serial) == ("TC-2026-T01", GTIN, "PHOTO1")
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(blank)
    with pytest.raises(CodeError, match="no QR code"):
        read_code(f"@{blank}", "en")


@pytest.mark.parametrize("kwargs,field", [
    (dict(valid_from="2025-01-01", valid_to="2024-12-31"), "payload.valid_to"),
    (dict(certifications=["VietGAP:VG-1:2025-01-01:2024-01-01"]), "payload.certifications[0].valid_to"),
])
def test_validity_periods_must_not_end_before_they_start(kwargs, field):
    with pytest.raises(Invalid) as e:
        intake.area(ENV, code="A1", owner="S", crops="chè", area_ha=1, location="21.5,105.7", **kwargs)
    assert e.value.field == field


def test_stamps_requested_is_bounded():
    with pytest.raises(Invalid) as e:
        intake.package(ENV, lot="L1", gtin=GTIN, units=5, stamps=1_000_001)
    assert e.value.field == "payload.stamps_requested"
    assert intake.package(ENV, lot="L1", gtin=GTIN, units=5, stamps=5)["payload"]["stamps_requested"] == 5
