"""Exports: the EPCIS document validates against the official EPCIS 2.0 JSON schema and every eventID is the
standard's canonical event hash; the mapping follows CBV; the KDE CSV has every column and sorts; the HTML report
draws the lineage."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from consumers.audit.export import KDE_COLUMNS, epcis_document, html_report, kde_csv, kde_rows, layout
from consumers.audit.replay import Filters, Replay, Stats, fold, select
from schemas.epcis import (EXPORT_CONTEXT, document_events, epcis_event_hash, from_epcis, lot_class, place_uri,
                           to_epcis)
from tests.unit.test_audit_verify import AREA, GTIN, _ev, as_log, history

DATA = Path(__file__).resolve().parent.parent / "data" / "epcis"


def _extra() -> list[dict]:
    return [
        _ev(3, "facility", {"facility_id": "FAC-1", "owner_subject_id": "HTX-HAODAT", "name": "Xưởng Hảo Đạt",
                            "kind": "plant", "address": "", "location": None}),
        _ev(4, "subject", {"subject_id": "HTX-HAODAT", "name": "HTX chè Hảo Đạt", "kind": "cooperative",
                           "tax_id": None, "province_code": "19", "commune_code": None, "address": "",
                           "contact": None}),
        _ev(90, "package", {"lot": "L-AB", "gtin": GTIN, "units": 200, "quantity": {"value": 150.0, "unit": "kg"},
                            "production_date": "2026-03-09", "expiry_date": "2027-03-09", "stamps_requested": 200}, 9),
        _ev(91, "void", {"lot": "L-B", "voided_event_id": history()[-2]["event_id"], "reason": "nhập nhầm"}, 10),
        _ev(92, "recall", {"scope": "lot", "target": "L-AB", "reason": "Nhãn sai", "authority": "Sở NN"}, 11),
        _ev(93, "recall", {"scope": "area", "target": AREA, "reason": "Dư lượng", "authority": "Cục BVTV"}, 12),
    ]


@pytest.fixture(scope="module")
def rep() -> Replay:
    log = as_log(history() + _extra())
    proj, records = fold(log)
    return Replay(log, proj, records, Stats(messages=len(log), accepted=len(log)), [])


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((DATA / "EPCIS-JSON-Schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    fc = jsonschema.FormatChecker()

    @fc.checks("date-time", raises=ValueError)
    def _dt(v):  # RFC 3339 with an offset
        return not isinstance(v, str) or datetime.fromisoformat(v.replace("Z", "+00:00")).tzinfo is not None

    @fc.checks("uri", raises=ValueError)
    def _uri(v):
        return not isinstance(v, str) or (bool(urlsplit(v).scheme) and " " not in v)

    return jsonschema.Draft7Validator(schema, format_checker=fc)


def test_the_vendored_schema_accepts_gs1_examples_and_rejects_nonsense(validator):
    plain = jsonschema.Draft7Validator(validator.schema)  # structure only: one example uses 2.0.1's certificationInfo
    for f in DATA.glob("*.jsonld"):
        assert not list(plain.iter_errors(json.loads(f.read_text()))), f.name
    bad = {"type": "EPCISDocument", "@context": EXPORT_CONTEXT, "schemaVersion": "2.0",
           "creationDate": "2026-01-01T00:00:00Z",
           "epcisBody": {"eventList": [{"type": "ObjectEvent", "eventTime": "x", "eventTimeZoneOffset": "+7"}]}}
    assert len(list(validator.iter_errors(bad))) >= 2


def test_epcis_export_validates_against_the_official_schema(rep, validator):
    doc = epcis_document(rep, sorted(rep.records))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
    types = {e["type"] for e in doc["epcisBody"]["eventList"]}
    assert types == {"ObjectEvent", "TransformationEvent"}
    assert doc["schemaVersion"] == "2.0" and doc["type"] == "EPCISDocument"
    assert len(doc["epcisBody"]["eventList"]) == len([m for m in rep.log if m.topic == "ocop.events.supply"])


def test_event_ids_are_the_canonical_epcis_hash(rep):
    doc = json.loads(json.dumps(epcis_document(rep, sorted(rep.records))))  # as a reader gets it
    events, ctx = document_events(doc)
    for e in events:
        assert e["eventID"].startswith("ni:///sha-256;") and e["eventID"].endswith("?ver=CBV2.0")
        assert epcis_event_hash(e, ctx) == e["eventID"]
    assert len({e["eventID"] for e in events if "errorDeclaration" not in e}) == \
        len([e for e in events if "errorDeclaration" not in e])


@pytest.mark.parametrize("name", ["various_event_types", "transformation_with_user_extensions",
                                  "timestamp_round_off"])
def test_hash_matches_the_standards_published_examples(name):
    doc = json.loads((DATA / f"{name}.jsonld").read_text())
    expected = (DATA / f"{name}.hashes").read_text().split()
    events, ctx = document_events(doc)
    assert [epcis_event_hash(e, ctx) for e in events] == expected


def test_mapping_follows_cbv(rep):
    by = {}
    for e in epcis_document(rep, sorted(rep.records))["epcisBody"]["eventList"]:
        key = "void" if "errorDeclaration" in e else e.get("ocop:eventId")
        by.setdefault(e["bizStep"] if key != "void" else "void", []).append(e)
    harvest = by["commissioning"][0] if by["commissioning"][0]["type"] == "ObjectEvent" else by["commissioning"][1]
    assert harvest["action"] == "ADD" and harvest["ilmd"]["ocop:areaCode"] == AREA
    assert harvest["ilmd"]["ocop:crop"] == "chè" and harvest["eventTimeZoneOffset"] == "+07:00"
    assert harvest["quantityList"][0] == {"epcClass": lot_class("L-A", GTIN), "quantity": 100.0, "uom": "KGM"}
    assert harvest["quantityList"][0]["epcClass"] == f"https://id.gs1.org/01/{GTIN}/10/L-A"
    assert harvest["readPoint"] == {"id": place_uri("FAC-1")} == {"id": "urn:ocop-trace:epcis:facility:FAC-1"}
    (tr,) = [e for e in by["commissioning"] if e["type"] == "TransformationEvent"]
    assert [q["epcClass"][-4:] for q in tr["inputQuantityList"]] == ["/L-A", "/L-B"]
    assert tr["outputQuantityList"][0]["quantity"] == 150.0 and tr["ilmd"]["ocop:process"] == "blending"
    assert {e["disposition"] for e in by["holding"]} == {"recalled"}
    assert by["inspecting"][0]["disposition"] == "conformant"
    assert by["retail_selling"][0]["disposition"] == "retail_sold"
    assert by["shipping"][0]["destinationList"][0]["type"] == "location"
    assert by["packing"][0]["quantityList"][0]["uom"] == "H87"
    assert by["packing"][0]["ilmd"]["cbvmda:itemExpirationDate"] == "2027-03-04"
    (void,) = by["void"]
    sells = [e for e in by["retail_selling"] if e["ocop:eventId"] == void["ocop:eventId"]]
    assert sells and void["eventID"] == sells[0]["eventID"]  # the error declaration names the original event
    assert void["errorDeclaration"]["reason"] == "incorrect_data"
    assert void["errorDeclaration"]["declarationTime"].startswith("2026-03-10")


def test_unpackaged_lots_use_the_project_class_namespace():
    ev = history()[2]  # a harvest
    out = to_epcis(ev)
    assert out["quantityList"][0]["epcClass"] == "urn:ocop-trace:epcis:lot:L-A"
    assert place_uri("8934567000017") == "https://id.gs1.org/414/8934567000017"  # a GLN


@pytest.mark.parametrize("i", range(2, 9))
def test_exported_events_import_back_to_the_same_facts(i):
    ev = history()[i]
    back = from_epcis(to_epcis(ev, gtin_of={"L-A": GTIN}), context=EXPORT_CONTEXT,
                      subject_id=ev["actor"]["subject_id"])
    assert back["event_type"] == ev["event_type"]
    keep = {k: v for k, v in ev["payload"].items() if k not in ("parameters",)}
    assert {k: back["payload"][k] for k in keep} == keep


def test_kde_csv_has_every_column_one_row_per_cte_per_lot_and_sorts(rep):
    rows = kde_rows(rep, sorted(rep.records))
    text = kde_csv(rows)
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == KDE_COLUMNS
    parsed = list(reader)
    assert len(parsed) == len(rows)
    for col in ("traceability_lot_code", "cte_type", "event_date", "event_time", "time_zone_offset", "event_id"):
        assert all(r[col] for r in parsed), col
    key = [(r["traceability_lot_code"], r["event_date"], r["event_time"], r["event_id"]) for r in parsed]
    assert key == sorted(key)
    # a transformation is a CTE of every lot it touches (inputs and output), once per lot
    tr = [r for r in parsed if r["cte_type"] == "transformation"]
    assert sorted(r["traceability_lot_code"] for r in tr) == ["L-A", "L-AB", "L-B"]
    h = next(r for r in parsed if r["cte_type"] == "harvesting" and r["traceability_lot_code"] == "L-A")
    assert (h["quantity"], h["unit_of_measure"], h["location_id"], h["location_description"]) == \
        ("100.0", "KGM", "FAC-1", "Xưởng Hảo Đạt")
    assert h["event_date"] == "2026-03-01" and h["time_zone_offset"] == "+07:00"
    assert h["traceability_lot_code_source"] == "FAC-1"
    rcv = next(r for r in parsed if r["cte_type"] == "receiving")
    assert rcv["reference_document_number"] == "PN"
    assert any(r["cte_type"] == "recall" and r["traceability_lot_code"] == "L-A" for r in parsed)  # area recall
    assert len({(r["traceability_lot_code"], r["event_id"]) for r in parsed}) == len(parsed)


def test_filters_select_lineage_and_reject_unknowns(rep):
    assert select(rep, Filters(lot="L-A")) == ["L-A", "L-AB"]
    assert select(rep, Filters(lot="L-AB")) == ["L-A", "L-AB", "L-B"]
    assert select(rep, Filters(area=AREA)) == ["L-A", "L-AB", "L-B"]
    assert select(rep, Filters(product=GTIN, lot="L-A")) == ["L-A", "L-AB"]
    from consumers.audit.replay import BadFilter, parse_when

    with pytest.raises(BadFilter, match="unknown lot"):
        select(rep, Filters(lot="NOPE"))
    with pytest.raises(BadFilter, match="not a GTIN"):
        select(rep, Filters(product="123"))
    with pytest.raises(BadFilter, match="unknown subject"):
        select(rep, Filters(subject="NOBODY"))
    with pytest.raises(BadFilter):
        parse_when("2026-13-45", "--since")
    assert select(rep, Filters(since=parse_when("2026-03-08", "s"), until=parse_when("2026-03-09", "u"))) == \
        ["L-A", "L-AB", "L-B"]  # the transform of 8 March touches all three
    assert select(rep, Filters(since=parse_when("2026-03-09", "s"))) == ["L-A", "L-AB", "L-B"]


def test_html_report_draws_the_lineage(rep):
    text = html_report(rep, sorted(rep.records), Filters(lot="L-AB"), verification={"clean": True})
    assert "<svg" in text and "Phả hệ lô hàng" in text and "Traceability audit report" in text
    assert text.count("<rect") == 3 and "marker-end" in text
    assert "Xưởng Hảo Đạt" in text and "Đã thu hồi" in text
    pos = layout(["L-A", "L-B", "L-AB"], [("L-A", "L-AB"), ("L-B", "L-AB")])
    assert pos["L-A"][0] == pos["L-B"][0] == 0 and pos["L-AB"][0] == 1 and pos["L-A"][1] != pos["L-B"][1]
