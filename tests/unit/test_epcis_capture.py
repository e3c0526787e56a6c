"""schemas/epcis.py: the EPCIS event hash against the published vectors, and the EPCIS → OCOP mapping table."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest

from schemas import codec
from schemas.epcis import (
    HARVESTING,
    OCOP_CONTEXT,
    STEPS,
    UNIT_OF_UOM,
    UNITS,
    constrain_digital_link,
    dedup_key,
    document_events,
    epc_class,
    epc_to_digital_link,
    epcis_event_hash,
    epcis_prehash,
    from_epcis,
    parse_epc_class,
    place_id,
    utc_millis,
)
from schemas.events import SUPPLY_TYPES, event_key, validate_event
from schemas.validation import Invalid

DATA = Path(__file__).resolve().parent.parent / "data" / "epcis"
VECTORS = ("various_event_types", "transformation_with_user_extensions", "timestamp_round_off")


def _vectors():
    for name in VECTORS:
        events, context = document_events(json.loads((DATA / f"{name}.jsonld").read_text(encoding="utf-8")))
        hashes = (DATA / f"{name}.hashes").read_text(encoding="utf-8").splitlines()
        prehashes = (DATA / f"{name}.prehashes").read_text(encoding="utf-8").splitlines()
        assert len(events) == len(hashes) == len(prehashes), name
        for i, (ev, h, p) in enumerate(zip(events, hashes, prehashes)):
            yield pytest.param(ev, context, p, h, id=f"{name}[{i}]")


# ------------------------------------------------------------------------------------------------------------------
# the hash


@pytest.mark.parametrize("event, context, prehash, expected", list(_vectors()))
def test_published_vectors(event, context, prehash, expected):
    assert epcis_prehash(event, context) == prehash
    assert epcis_event_hash(event, context) == expected


def test_vectors_cover_the_event_types_we_map():
    kinds = {ev.values[0].get("type") for ev in _vectors()}
    assert {"ObjectEvent", "AggregationEvent", "TransformationEvent"} <= kinds


TEA = {
    "type": "ObjectEvent",
    "eventTime": "2026-04-02T06:30:00+07:00",
    "eventTimeZoneOffset": "+07:00",
    "action": "ADD",
    "bizStep": "commissioning",
    "disposition": "active",
    "quantityList": [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-2026-001", "quantity": 120, "uom": "KGM"}],
    "readPoint": {"id": "urn:epc:id:sgln:8930000.00001.0"},
    "ilmd": {"ocop:crop": "chè búp tươi", "ocop:areaCode": "VT-TN-0001"},
}
CTX = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", OCOP_CONTEXT]


def test_hash_ignores_representation():
    base = epcis_event_hash(TEA, CTX)
    same = dict(reversed(list(copy.deepcopy(TEA).items())))  # key order
    same["eventTime"] = "2026-04-01T23:30:00.000Z"  # same instant in UTC
    same["bizStep"] = "urn:epcglobal:cbv:bizstep:commissioning"
    same["disposition"] = "https://ref.gs1.org/cbv/Disp-active"
    same["quantityList"] = [{"uom": "KGM", "quantity": 120.0,  # 120.0 == 120
                             "epcClass": "https://example.vn/01/08930000000019/10/TC-2026-001?linkType=all"}]
    same["readPoint"] = {"id": "https://id.gs1.org/414/8930000000019"}
    same["ilmd"] = {"xx:areaCode": "VT-TN-0001", "xx:crop": "chè búp tươi"}  # another prefix, same namespace
    same["eventID"] = "urn:uuid:00000000-0000-4000-8000-000000000000"  # not hashed
    same["recordTime"] = "2026-04-02T07:00:00+07:00"  # not hashed
    assert epcis_event_hash(same, [{"xx": OCOP_CONTEXT["ocop"]}]) == base


@pytest.mark.parametrize("change", [
    lambda e: e.update(eventTime="2026-04-02T06:30:00.001+07:00"),
    lambda e: e["quantityList"][0].update(quantity=121),
    lambda e: e["quantityList"][0].update(uom="TNE"),
    lambda e: e.update(bizStep="receiving"),
    lambda e: e["ilmd"].update({"ocop:crop": "chè khô"}),
    lambda e: e.update({"ocop:note": "added extension"}),
    lambda e: e.pop("disposition"),
])
def test_any_relevant_change_changes_the_hash(change):
    other = copy.deepcopy(TEA)
    change(other)
    assert epcis_event_hash(other, CTX) != epcis_event_hash(TEA, CTX)


def test_hash_format_and_error_declaration_key():
    h = epcis_event_hash(TEA, CTX)
    assert h.startswith("ni:///sha-256;") and h.endswith("?ver=CBV2.0") and len(h.split(";")[1].split("?")[0]) == 64
    corrected = {**TEA, "errorDeclaration": {"declarationTime": "2026-04-03T08:00:00+07:00", "reason": "incorrect_data"}}
    assert epcis_event_hash(corrected, CTX) == h  # the standard: an error declaration repeats the hash...
    assert dedup_key(corrected, CTX) != dedup_key(TEA, CTX)  # ...but it is not a duplicate capture


def test_time_stamps():
    assert utc_millis("2026-04-02T06:30:00+07:00") == "2026-04-01T23:30:00.000Z"
    assert utc_millis("2023-02-02T11:04:03.1415Z") == "2023-02-02T11:04:03.142Z"
    assert utc_millis("2023-02-02T23:59:59.9996Z") == "2023-02-03T00:00:00.000Z"
    assert utc_millis("not a time") == "not a time"


@pytest.mark.parametrize("urn, dl", [
    ("urn:epc:id:sgtin:0614141.107346.2018", "https://id.gs1.org/01/10614141073464/21/2018"),
    ("urn:epc:class:lgtin:4012345.012345.998877", "https://id.gs1.org/01/04012345123456/10/998877"),
    ("urn:epc:id:sscc:5200001.0111111146", "https://id.gs1.org/00/052000011111111461"),
    ("urn:epc:id:sgln:0012345.11111.400", "https://id.gs1.org/414/0012345111112/254/400"),
    ("urn:epc:id:sgln:4012345.00012.0", "https://id.gs1.org/414/4012345000122"),
    ("urn:epc:id:pgln:4012345.00225", "https://id.gs1.org/417/4012345002256"),
    ("urn:epc:id:gsrn:0614141.0000010253", "https://id.gs1.org/8018/061414100000102534"),
    ("urn:epc:id:gdti:0614141.00001.1618034", "https://id.gs1.org/253/06141410000121618034"),
    ("urn:epc:id:giai:4000001.111", "https://id.gs1.org/8004/4000001111"),
    ("urn:epc:idpat:sgtin:4012345.066666.*", "https://id.gs1.org/01/04012345666663"),
])
def test_epc_urn_to_digital_link(urn, dl):
    assert epc_to_digital_link(urn) == dl


def test_constrained_digital_link():
    assert constrain_digital_link("https://id.gs1.de/01/4012345999990/22/A/10/L1/21/XYZ?17=261231") == \
        "https://id.gs1.org/01/04012345999990/21/XYZ"
    assert constrain_digital_link("https://shop.example/p/01/08930000000019/10/TC-1") == \
        "https://id.gs1.org/01/08930000000019/10/TC-1"
    assert constrain_digital_link("https://www.ncbi.nlm.nih.gov/taxonomy/1126011") is None
    assert constrain_digital_link("https://example.com/docs/01/intro") is None


# ------------------------------------------------------------------------------------------------------------------
# the mapping


def test_lots_as_epc_classes_both_ways():
    assert parse_epc_class("urn:epc:class:lgtin:8930000.000001.TC-2026-001") == ("08930000000019", "TC-2026-001")
    assert parse_epc_class("https://id.gs1.org/01/8930000000019/10/TC%2F7") == ("08930000000019", "TC/7")
    assert parse_epc_class(epc_class("08930000000019", "TC/7")) == ("08930000000019", "TC/7")
    with pytest.raises(Invalid) as e:
        parse_epc_class("urn:epc:id:sgtin:8930000.000001.42", "quantityList[0].epcClass")
    assert e.value.field == "quantityList[0].epcClass"


def test_units_table_covers_the_schema_units():
    schema_units = next(f for f in codec.raw_schema("ocop.common.Quantity")["fields"] if f["name"] == "unit")
    assert {u for u, _ in UNITS} == set(schema_units["type"]["symbols"])
    assert UNIT_OF_UOM == {"KGM": "kg", "TNE": "t", "LTR": "l", "H87": "unit"}


def _row_event(step) -> dict:
    """The minimal EPCIS event a row of STEPS describes (what to_epcis will write), with the facts each needs."""
    ev = {"type": step.epcis_type, "eventTime": "2026-04-02T08:00:00+07:00", "eventTimeZoneOffset": "+07:00",
          "bizStep": step.biz_step, "disposition": step.disposition,
          "readPoint": {"id": "urn:epc:id:sgln:8930000.00001.0"},
          "bizLocation": {"id": "urn:ocop-trace:epcis:facility:OCOP-SHOWROOM-TN"}}
    if step.action:
        ev["action"] = step.action
    lot = "urn:epc:class:lgtin:8930000.000001.TC-1"
    if step.epcis_type == "TransformationEvent":
        ev["inputQuantityList"] = [{"epcClass": lot, "quantity": 10, "uom": "KGM"}]
        ev["outputQuantityList"] = [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-1K", "quantity": 2,
                                     "uom": "KGM"}]
    elif step.event_type in ("package", "ship", "sell"):
        ev["quantityList"] = [{"epcClass": lot, "quantity": 20}]
    else:
        ev["quantityList"] = [{"epcClass": lot, "quantity": 10, "uom": "KGM"}]
    if step.event_type == "harvest":
        ev["ilmd"] = {"ocop:crop": "chè", "ocop:areaCode": "VT-TN-0001"}
    if step.event_type == "ship":
        ev["destinationList"] = [{"type": "location", "destination": "urn:epc:id:sgln:8930000.00002.0"}]
    return ev


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.event_type)
def test_every_row_maps_back_to_its_event_type(step):
    ours = from_epcis(_row_event(step), context=CTX, subject_id="HTX-HAODAT")
    validate_event(ours)
    assert ours["event_type"] == step.event_type
    assert ours["source"] == "epcis" and ours["actor"]["subject_id"] == "HTX-HAODAT"
    assert ours["occurred_at"] == "2026-04-02T08:00:00+07:00"  # as written: already at its offset
    assert ours["facility"] == "8930000000019"  # the SGLN's GLN


def test_table_covers_every_supply_type():
    assert {s.event_type for s in STEPS} | {"void"} == set(SUPPLY_TYPES)


def test_harvest_from_commissioning_with_ilmd():
    ev = from_epcis(TEA, context=CTX, subject_id="HTX-HAODAT")
    validate_event(ev)
    assert ev["event_type"] == "harvest"
    assert ev["payload"] == {"lot": "TC-2026-001", "area_code": "VT-TN-0001", "crop": "chè búp tươi",
                             "quantity": {"value": 120.0, "unit": "kg"}, "crate_tags": []}
    assert event_key(ev) == "TC-2026-001"
    # the same EPCIS event always gets the same event id (a UUID-5 of its hash)
    assert ev["event_id"] == from_epcis(copy.deepcopy(TEA), context=CTX, subject_id="X")["event_id"]
    uuid.UUID(ev["event_id"])


def test_harvest_with_the_projects_bizstep_and_eventid():
    e = {**TEA, "bizStep": HARVESTING, "eventID": "urn:uuid:6f1c5a0e-3b7e-4c55-9a57-0d9f3b2f2a10"}
    ev = from_epcis(e, context=CTX)
    assert ev["event_type"] == "harvest" and ev["event_id"] == "6f1c5a0e-3b7e-4c55-9a57-0d9f3b2f2a10"


def test_packing_aggregation_and_commissioning_with_expiry():
    agg = {"type": "AggregationEvent", "eventTime": "2026-04-03T09:00:00Z", "eventTimeZoneOffset": "+07:00",
           "action": "ADD", "bizStep": "packing", "parentID": "urn:epc:id:sscc:8930000.0000000011",
           "childQuantityList": [{"epcClass": "https://id.gs1.org/01/08930000000019/10/TC-2026-001K",
                                  "quantity": 120, "uom": "H87"}],
           "ilmd": {"cbvmda:itemExpirationDate": "2027-04-03", "ocop:productionDate": "2026-04-03"},
           "ocop:stampsRequested": "120"}
    ev = from_epcis(agg, context=CTX)
    validate_event(ev)
    assert ev["event_type"] == "package"
    assert ev["occurred_at"] == "2026-04-03T16:00:00.000+07:00"
    assert ev["payload"]["gtin"] == "08930000000019" and ev["payload"]["units"] == 120
    assert ev["payload"]["expiry_date"] == "2027-04-03" and ev["payload"]["stamps_requested"] == 120
    com = {**TEA, "ilmd": {"cbvmda:bestBeforeDate": "2027-01-01"},
           "quantityList": [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-9", "quantity": 50}]}
    ev = from_epcis(com, context=CTX)
    validate_event(ev)
    assert ev["event_type"] == "package" and ev["payload"]["production_date"] == "2026-04-02"


def test_transformation_inspection_recall_and_void():
    tf = {"type": "TransformationEvent", "eventTime": "2026-04-02T14:00:00+07:00", "eventTimeZoneOffset": "+07:00",
          "bizStep": "transforming", "ocop:durationHours": "6", "ocop:process": "sao-che",
          "inputQuantityList": [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-1", "quantity": 100, "uom": "KGM"},
                                {"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-2", "quantity": 0.05,
                                 "uom": "TNE"}],
          "outputQuantityList": [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-1K", "quantity": 30000,
                                  "uom": "GRM"}]}
    ev = from_epcis(tf, context=CTX)
    validate_event(ev)
    p = ev["payload"]
    assert ev["event_type"] == "transform" and p["process"] == "sao-che" and p["duration_hours"] == 6.0
    assert p["inputs"][1] == {"lot": "TC-2", "quantity": {"value": 0.05, "unit": "t"}}
    assert p["outputs"] == [{"lot": "TC-1K", "quantity": {"value": 30.0, "unit": "kg"}}]

    insp = {"type": "ObjectEvent", "eventTime": "2026-04-04T10:00:00+07:00", "eventTimeZoneOffset": "+07:00",
            "action": "OBSERVE", "bizStep": "inspecting", "disposition": "non_conformant",
            "quantityList": [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-1K", "quantity": 1, "uom": "KGM"}],
            "bizLocation": {"id": "urn:ocop-trace:epcis:facility:LAB-TN"}, "certificationInfo": "KQ-2026-77"}
    ev = from_epcis(insp)
    validate_event(ev)
    assert ev["payload"]["result"] == "fail" and ev["payload"]["lab"] == "LAB-TN"
    assert ev["payload"]["certificate_no"] == "KQ-2026-77"

    rec = {**insp, "bizStep": "holding", "disposition": "recalled", "ocop:reason": "dư lượng vượt ngưỡng"}
    ev = from_epcis(rec, context=CTX)
    validate_event(ev)
    assert ev["payload"] == {"scope": "lot", "target": "TC-1K", "reason": "dư lượng vượt ngưỡng", "authority": ""}

    corrected = {**TEA, "eventID": "urn:uuid:6f1c5a0e-3b7e-4c55-9a57-0d9f3b2f2a10",
                 "errorDeclaration": {"declarationTime": "2026-04-05T08:00:00+07:00", "reason": "incorrect_data"}}
    ev = from_epcis(corrected, context=CTX)
    validate_event(ev)
    assert ev["event_type"] == "void" and ev["occurred_at"] == "2026-04-05T08:00:00+07:00"
    assert ev["payload"] == {"lot": "TC-2026-001", "voided_event_id": "6f1c5a0e-3b7e-4c55-9a57-0d9f3b2f2a10",
                             "reason": "incorrect_data"}
    assert ev["event_id"] != "6f1c5a0e-3b7e-4c55-9a57-0d9f3b2f2a10"


def test_ship_sell_receive_places():
    base = {"type": "ObjectEvent", "eventTime": "2026-04-05T08:00:00+07:00", "eventTimeZoneOffset": "+07:00",
            "action": "OBSERVE", "quantityList": [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-1K",
                                                   "quantity": 40, "uom": "H87"}]}
    ship = from_epcis({**base, "bizStep": "shipping", "disposition": "in_transit",
                       "destinationList": [{"type": "owning_party", "destination": "urn:epc:id:pgln:8930000.00003"},
                                           {"type": "location", "destination": "urn:epc:id:sgln:8930000.00002.7"}],
                       "bizTransactionList": [{"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:8930000000019:VD-1"}]})
    validate_event(ship)
    assert ship["payload"]["to_facility"] == "8930000000026-7"
    assert ship["payload"]["document_ref"] == "urn:epcglobal:cbv:bt:8930000000019:VD-1"
    sell = from_epcis({**base, "bizStep": "retail_selling", "bizLocation": {"id": "OCOP-SHOWROOM-TN"}})
    validate_event(sell)
    assert sell["payload"] == {"lot": "TC-1K", "units": 40, "point_of_sale": "OCOP-SHOWROOM-TN"}
    recv = from_epcis({**base, "bizStep": "receiving", "sourceList": [
        {"type": "location", "source": "https://id.gs1.org/414/8930000000019"}]})
    validate_event(recv)
    assert recv["payload"]["from_facility"] == "8930000000019" and recv["payload"]["quantity"]["unit"] == "unit"
    assert place_id({"id": "urn:ocop-trace:epcis:area:VT-TN-0001"}) == "VT-TN-0001"


@pytest.mark.parametrize("change, field", [
    (lambda e: e.update(type="TransactionEvent"), "type"),
    (lambda e: e.update(type="AssociationEvent"), "type"),
    (lambda e: e.update(bizStep="destroying"), "bizStep"),
    (lambda e: e.update(ilmd={"ocop:areaCode": "VT-1"}), "ilmd.crop"),
    (lambda e: e["quantityList"][0].update(uom="LBR"), "quantityList[0].uom"),
    (lambda e: e["quantityList"][0].update(epcClass="urn:epc:id:sgtin:8930000.000001.7"), "quantityList[0].epcClass"),
    (lambda e: e["quantityList"].append(dict(e["quantityList"][0])), "quantityList"),
    (lambda e: e.pop("quantityList"), "quantityList"),
    (lambda e: e.pop("eventTime"), "eventTime"),
    (lambda e: e.update(eventTimeZoneOffset="7"), "eventTimeZoneOffset"),
])
def test_unmappable_events_name_the_epcis_field(change, field):
    e = copy.deepcopy(TEA)
    change(e)
    with pytest.raises(Invalid) as exc:
        from_epcis(e, context=CTX)
    assert exc.value.field == field, exc.value


def test_schema_violations_surface_on_validation():
    e = copy.deepcopy(TEA)
    e["quantityList"][0]["quantity"] = -5
    with pytest.raises(Invalid) as exc:
        validate_event(from_epcis(e, context=CTX))
    assert exc.value.field == "payload.quantity.value"


def test_document_events_rejects_non_documents():
    with pytest.raises(Invalid) as e:
        document_events({"type": "ObjectEvent"})
    assert e.value.field == "type"
    with pytest.raises(Invalid) as e:
        document_events({"type": "EPCISDocument", "epcisBody": {}})
    assert e.value.field == "epcisBody.eventList"


# ------------------------------------------------------------------------------------------------------------------
# properties


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402


@hsettings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hash_is_independent_of_key_and_list_order(data):
    """Any JSON key order and any order of list members (EPCs, quantities, transactions, ILMD) give the same hash."""
    events, context = document_events(json.loads((DATA / "various_event_types.jsonld").read_text(encoding="utf-8")))
    ev = copy.deepcopy(data.draw(st.sampled_from(events)))

    def shuffle(x):
        if isinstance(x, dict):
            keys = data.draw(st.permutations(list(x)))
            return {k: shuffle(x[k]) for k in keys}
        if isinstance(x, list):
            return [shuffle(v) for v in data.draw(st.permutations(x))]
        return x

    assert epcis_event_hash(shuffle(ev), context) == epcis_event_hash(ev, context)


@hsettings(max_examples=60, deadline=None)
@given(kg=st.floats(min_value=0, max_value=1e6, allow_nan=False), lot=st.from_regex(r"[A-Za-z0-9\-]{1,20}",
                                                                                      fullmatch=True))
def test_mapped_quantities_and_lots_round_trip(kg, lot):
    e = copy.deepcopy(TEA)
    e["quantityList"] = [{"epcClass": epc_class("08930000000019", lot), "quantity": kg, "uom": "KGM"}]
    ev = from_epcis(e, context=CTX)
    validate_event(ev)
    assert ev["payload"]["lot"] == lot and ev["payload"]["quantity"] == {"value": kg, "unit": "kg"}


def test_export_then_capture_gives_back_the_same_events():
    """to_epcis (the auditor's export) and from_epcis (capture) read the same table: a round trip through EPCIS
    returns every event unchanged (same id, times, actor, payload), only its source becomes ``epcis``."""
    from producers.generator import demo_chain
    from schemas.epcis import EXPORT_CONTEXT, to_epcis

    chain = [e for e in demo_chain() if e["event_type"] in SUPPLY_TYPES]
    harvest = next(e for e in chain if e["event_type"] == "harvest")
    lot = harvest["payload"]["lot"]
    extra = [
        {**harvest, "event_id": str(uuid.uuid4()), "event_type": "recall",
         "payload": {"scope": "lot", "target": lot, "reason": "dư lượng vượt ngưỡng", "authority": "Chi cục QLCL"}},
        {**harvest, "event_id": str(uuid.uuid4()), "event_type": "recall",
         "payload": {"scope": "area", "target": harvest["payload"]["area_code"], "reason": "vùng trồng bị thu hồi mã",
                     "authority": ""}},
        {**harvest, "event_id": str(uuid.uuid4()), "event_type": "void",
         "payload": {"lot": lot, "voided_event_id": harvest["event_id"], "reason": "nhập sai khối lượng"}},
    ]
    by_id = {e["event_id"]: e for e in chain}
    gtins = {e["payload"]["lot"]: e["payload"]["gtin"] for e in chain if e["event_type"] == "package"}
    types = set()
    for ev in chain + extra:
        corrects = by_id.get(ev["payload"].get("voided_event_id")) if ev["event_type"] == "void" else None
        exported = to_epcis(ev, gtin_of=gtins, corrects=corrects)
        back = from_epcis(exported, context=EXPORT_CONTEXT, subject_id=ev["actor"]["subject_id"],
                          recorded_at=ev["recorded_at"])
        validate_event(back)
        assert back == {**ev, "source": "epcis"}, ev["event_type"]
        types.add(ev["event_type"])
    assert types == set(SUPPLY_TYPES)
