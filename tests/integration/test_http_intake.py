"""The HTTP intake API against the real broker: every endpoint's Avro event on the right topic with the right key,
tokens and ownership (403 and nothing produced), idempotent retries, 413 (Content-Length and chunked), 422 naming
the field, EPCIS capture (accepted / rejected / duplicate)."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from typing import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition
from pydantic import SecretStr

from ocop_trace.config import Settings
from ocop_trace.server import create_app
from producers.tokens import PROVINCIAL, TokenStore
from schemas import topics
from schemas.epcis import OCOP_CONTEXT, epcis_event_hash
from schemas.events import decode_event, event_key
from tests.helpers import free_port

A, B = "HTX-HAODAT", "HTX-TRUONGAN"
PROVINCIAL_SECRET = "provincial-test-secret-0123456789"
GTIN = "08930000000019"  # GS1 Vietnam prefix 893, valid check digit
EPCIS_CTX = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", OCOP_CONTEXT]


# ---------------------------------------------------------------------------------------------------------- helpers
def consume(settings: Settings, spec: topics.TopicSpec) -> list[dict]:
    """Every message of a catalog topic, to the end: key, decoded event, partition, offset."""
    topic = spec.full(settings.topic_prefix)
    c = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        assert tps, f"topic {topic} has no partitions"
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out: list[dict] = []
        deadline = time.monotonic() + 30
        while any(c.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "could not read the topic to its end"
            for tp, msgs in c.poll(timeout_ms=1000).items():
                for m in msgs:
                    out.append({"key": m.key.decode(), "event": decode_event(m.value), "partition": m.partition,
                                "offset": m.offset, "topic": m.topic})
        return out
    finally:
        c.close()


def by_id(msgs: list[dict]) -> dict[str, dict]:
    return {m["event"]["event_id"]: m for m in msgs}


class Api:
    """A TestClient with the three tokens of the scenario."""

    def __init__(self, client: TestClient, tokens: dict[str, str]):
        self.client = client
        self.tokens = tokens

    def post(self, path: str, body=None, who: str | None = A, **kw) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        if body is not None:
            kw["json"] = body
        return self.client.post(path, headers=headers, **kw)


@pytest.fixture
def intake_settings(settings: Settings, kafka_broker) -> Settings:
    topics.create_topics(kafka_broker.bootstrap, settings.topic_prefix, partitions=3)
    return settings.model_copy(update={"provincial_token": SecretStr(PROVINCIAL_SECRET)})


@pytest.fixture
def api(intake_settings: Settings) -> Iterator[Api]:
    store = TokenStore.from_settings(intake_settings)
    tokens = {A: store.create(A)[0], B: store.create(B)[0], PROVINCIAL: PROVINCIAL_SECRET,
              "provincial-file": store.create(None, PROVINCIAL, "Sở NN&PTNT Thái Nguyên")[0]}
    with TestClient(create_app(intake_settings)) as client:  # the real EventProducer, the real broker
        yield Api(client, tokens)


def _uuid() -> str:
    return str(uuid.uuid4())


# The Tân Cương tea chain: master data, then every supply step.
MASTER = [
    ("subjects", PROVINCIAL, {"subject_id": A, "name": "Hợp tác xã chè Hảo Đạt", "kind": "cooperative",
                              "province_code": "19", "commune_code": "05716", "tax_id": "4600123456"}),
    ("subjects", "provincial-file", {"subject_id": B, "name": "Công ty tỏi đen Trường An", "kind": "sme",
                                     "province_code": "34"}),
    ("areas", A, {"area_code": "VT-TN-0001", "owner_subject_id": A, "crops": ["chè"], "area_ha": 12.5,
                  "location": [{"lat": 21.5672, "lon": 105.7703}], "valid_from": "2024-01-01",
                  "certifications": [{"scheme": "VietGAP", "number": "VG-2024-01"}]}),
    ("products", A, {"gtin": "8930000000019", "owner_subject_id": A, "name_vi": "Chè Tân Cương Hảo Đạt",
                     "name_en": "Hao Dat Tan Cuong tea", "ocop_group": "beverage",
                     "net_content": {"value": 0.2, "unit": "kg"}}),
    ("ratings", PROVINCIAL, {"gtin": GTIN, "action": "granted", "stars": 4, "score": 82, "level": "province",
                             "decision_no": "123/QĐ-UBND", "decision_date": "2024-03-01",
                             "valid_from": "2024-03-01", "valid_to": "2027-03-01"}),
    ("facilities", A, {"facility_id": "XUONG-HAODAT", "owner_subject_id": A, "name": "Xưởng sao chè Hảo Đạt",
                       "kind": "plant", "location": {"lat": 21.57, "lon": 105.77}}),
]


def supply_chain(harvest_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("harvest", A, {"lot": "TC-001", "area_code": "VT-TN-0001", "crop": "chè búp tươi",
                        "quantity": {"value": 120, "unit": "kg"}, "event_id": harvest_id,
                        "occurred_at": "2026-04-02T06:30:00+07:00", "user": "chi.lan", "facility": "DOI-CHE-1"}),
        ("receive", A, {"lot": "TC-001", "quantity": {"value": 118.5, "unit": "kg"}, "facility": "XUONG-HAODAT",
                        "document_ref": "PHIEU-0042", "subject_id": A}),
        ("transform", A, {"process": "sao-che", "duration_hours": 6,
                          "inputs": [{"lot": "TC-001", "quantity": {"value": 118.5, "unit": "kg"}}],
                          "outputs": [{"lot": "TC-001K", "quantity": {"value": 24, "unit": "kg"}}]}),
        ("inspect", A, {"lot": "TC-001K", "lab": "Trung tâm Kiểm nghiệm Thái Nguyên", "result": "pass",
                        "parameters": [{"name": "Pb", "value": "0.05", "limit": "0.3", "passed": True}]}),
        ("package", A, {"lot": "TC-001K", "gtin": GTIN, "units": 120, "production_date": "2026-04-03",
                        "expiry_date": "2027-04-03", "stamps_requested": 120}),
        ("ship", A, {"lot": "TC-001K", "units": 40, "to_facility": "OCOP-SHOWROOM-TN", "carrier": "Viettel Post"}),
        ("sell", A, {"lot": "TC-001K", "units": 2, "point_of_sale": "OCOP-SHOWROOM-TN"}),
        ("recall", A, {"scope": "lot", "target": "TC-001K", "reason": "dư lượng vượt ngưỡng"}),
        ("void", A, {"lot": "TC-001", "voided_event_id": harvest_id, "reason": "nhập sai khối lượng"}),
    ]


# -------------------------------------------------------------------------------------------------------- the tests
def test_every_endpoint_produces_its_event(api: Api, intake_settings: Settings):
    answers: list[tuple[str, dict, dict]] = []
    for route, who, body in MASTER:
        r = api.post(f"/api/v1/{route}", body, who)
        assert r.status_code == 200, (route, r.text)
        answers.append((route, body, r.json()))
    harvest_id = _uuid()
    for kind, who, body in supply_chain(harvest_id):
        r = api.post(f"/api/v1/events/{kind}", body, who)
        assert r.status_code == 200, (kind, r.text)
        answers.append((kind, body, r.json()))

    master = by_id(consume(intake_settings, topics.MASTER))
    supply = by_id(consume(intake_settings, topics.SUPPLY))
    assert len(master) == len(MASTER) and len(supply) == 9
    for route, body, ans in answers:
        assert ans["status"] == "accepted" and ans["message_vi"]
        is_master = route in ("subjects", "areas", "products", "ratings", "facilities")
        spec = topics.MASTER if is_master else topics.SUPPLY
        msg = (master if is_master else supply)[ans["event_id"]]
        ev = msg["event"]
        assert ans["topic"] == spec.full(intake_settings.topic_prefix) == msg["topic"]
        assert (ans["partition"], ans["offset"]) == (msg["partition"], msg["offset"])
        assert msg["key"] == ans["key"] == event_key(ev)
        assert ev["source"] == "http" and ev["schema_version"] == 2
        for field, value in body.items():  # every field sent is in the payload (GTINs as GTIN-14)
            if field in ("event_id", "occurred_at", "facility", "user", "subject_id"):
                continue
            expected = GTIN if field == "gtin" else value
            got = ev["payload"][field]
            assert got == expected or (isinstance(expected, (int, float)) and got == float(expected)) or \
                _loosely_equal(got, expected), (route, field, got, expected)

    # envelope fields and actors
    harvest = supply[harvest_id]["event"]
    assert harvest["occurred_at"] == "2026-04-02T06:30:00+07:00"
    assert harvest["actor"] == {"subject_id": A, "user": "chi.lan"} and harvest["facility"] == "DOI-CHE-1"
    assert supply[harvest_id]["key"] == "TC-001"
    keys = {m["event"]["event_type"]: m["key"] for m in supply.values()}
    assert keys == {"harvest": "TC-001", "receive": "TC-001", "transform": "TC-001K", "inspect": "TC-001K",
                    "package": "TC-001K", "ship": "TC-001K", "sell": "TC-001K", "recall": "TC-001K", "void": "TC-001"}
    subjects = [m["event"] for m in master.values() if m["event"]["event_type"] == "subject"]
    assert {s["actor"]["subject_id"] for s in subjects} == {"provincial"}
    assert {m["key"] for m in master.values()} == {A, B, "VT-TN-0001", GTIN, "XUONG-HAODAT"}


def _loosely_equal(got, expected) -> bool:
    """A sent object vs its Avro form (defaults filled in, ints as doubles)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        return all(_loosely_equal(got.get(k), v) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(got, list):
        return len(got) == len(expected) and all(_loosely_equal(g, e) for g, e in zip(got, expected))
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return got == float(expected)
    return got == expected


def test_tokens_and_ownership(api: Api, intake_settings: Settings):
    harvest = {"lot": "TC-777", "area_code": "VT-TN-0001", "crop": "chè", "quantity": {"value": 50, "unit": "kg"}}
    assert api.post("/api/v1/events/harvest", harvest, A).status_code == 200
    assert api.post("/api/v1/areas", MASTER[2][2], A).status_code == 200

    def forbidden(path, body, who, field):
        r = api.post(path, body, who)
        assert r.status_code == 403, (path, r.text)
        err = r.json()["error"]
        assert err["field"] == field and err["reason"] and err["message_vi"], err
        return err

    # authentication
    r = api.post("/api/v1/events/harvest", harvest, None)
    assert r.status_code == 401 and r.json()["error"]["field"] == "Authorization"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = api.post("/api/v1/events/harvest", harvest, None, headers={"Authorization": "Bearer ocop_deadbeef_nope"})
    assert r.status_code == 401
    # another subject's lot: appending, transforming it, voiding it, recalling it
    forbidden("/api/v1/events/receive", {"lot": "TC-777", "quantity": {"value": 5, "unit": "kg"}}, B, "payload.lot")
    forbidden("/api/v1/events/transform", {"process": "len-men",
                                           "inputs": [{"lot": "TGA-1", "quantity": {"value": 1, "unit": "kg"}},
                                                      {"lot": "TC-777", "quantity": {"value": 1, "unit": "kg"}}],
                                           "outputs": [{"lot": "TGA-2", "quantity": {"value": 1, "unit": "kg"}}]},
              B, "payload.inputs[1].lot")
    forbidden("/api/v1/events/recall", {"scope": "lot", "target": "TC-777", "reason": "x"}, B, "payload.target")
    forbidden("/api/v1/events/recall", {"scope": "area", "target": "VT-TN-0001", "reason": "x"}, B, "payload.target")
    # writing as someone else, registering what is not yours or not your role's
    forbidden("/api/v1/events/harvest", {**harvest, "lot": "TGA-9", "subject_id": A}, B, "actor.subject_id")
    forbidden("/api/v1/events/harvest", {**harvest, "lot": "TGA-9", "actor": {"subject_id": A}}, B, "actor.subject_id")
    forbidden("/api/v1/areas", {**MASTER[2][2], "owner_subject_id": A}, B, "payload.owner_subject_id")
    forbidden("/api/v1/areas", {**MASTER[2][2], "owner_subject_id": B}, B, "payload.area_code")  # A registered it
    forbidden("/api/v1/subjects", MASTER[1][2], B, "event_type")
    forbidden("/api/v1/ratings", MASTER[4][2], A, "event_type")
    forbidden("/api/v1/events/harvest", {**harvest, "lot": "TINH-1"}, PROVINCIAL, "event_type")
    # the provincial office may recall anything and register master data for any subject
    assert api.post("/api/v1/events/recall", {"scope": "area", "target": "VT-TN-0001", "reason": "kiểm tra"},
                    PROVINCIAL).status_code == 200
    # B's own lots are fine
    assert api.post("/api/v1/events/harvest", {**harvest, "lot": "TGA-1", "area_code": "VT-TB-01", "crop": "tỏi"},
                    B).status_code == 200

    supply = consume(intake_settings, topics.SUPPLY)
    master = consume(intake_settings, topics.MASTER)
    produced = [(m["event"]["event_type"], m["event"]["actor"]["subject_id"], m["key"]) for m in supply]
    assert sorted(produced) == sorted([("harvest", A, "TC-777"), ("recall", "provincial", "VT-TN-0001"),
                                       ("harvest", B, "TGA-1")])
    assert [(m["event"]["event_type"], m["key"]) for m in master] == [("area", "VT-TN-0001")]
    # nothing of B's touches A's lot, even after all the refusals
    assert not [m for m in supply if m["key"] == "TC-777" and m["event"]["actor"]["subject_id"] == B]


def test_idempotent_retry(api: Api, intake_settings: Settings):
    eid = _uuid()
    body = {"lot": "TC-100", "area_code": "VT-TN-0001", "crop": "chè", "quantity": {"value": 10, "unit": "kg"},
            "event_id": eid}
    first = api.post("/api/v1/events/harvest", body)
    again = api.post("/api/v1/events/harvest", dict(reversed(list(body.items()))))  # same JSON, other key order
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers.get("idempotent-replay") == "true"
    other = api.post("/api/v1/events/harvest", {**body, "quantity": {"value": 11, "unit": "kg"}})
    assert other.status_code == 409 and other.json()["error"]["field"] == "event_id"
    # another subject reusing the id is a conflict too, and gets nothing of A's answer
    stolen = api.post("/api/v1/events/harvest", {**body, "lot": "TGA-100"}, B)
    assert stolen.status_code == 409 and "offset" not in stolen.json()
    # a failed request does not burn the event id
    eid2 = _uuid()
    bad = api.post("/api/v1/events/harvest", {**body, "event_id": eid2, "quantity": {"value": -1, "unit": "kg"}})
    assert bad.status_code == 422
    assert api.post("/api/v1/events/harvest", {**body, "event_id": eid2, "lot": "TC-101"}).status_code == 200

    msgs = consume(intake_settings, topics.SUPPLY)
    assert [m["event"]["event_id"] for m in msgs].count(eid) == 1
    assert len(msgs) == 2


def test_oversized_bodies_are_413(api: Api, intake_settings: Settings):
    limit = intake_settings.max_body_bytes
    big = {"lot": "TC-200", "area_code": "VT-TN-0001", "crop": "x" * (limit + 10),
           "quantity": {"value": 1, "unit": "kg"}}
    r = api.post("/api/v1/events/harvest", big)  # Content-Length over the limit
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"

    def chunks():  # no Content-Length: Transfer-Encoding chunked, counted as it streams
        yield b'{"lot": "TC-201", "crop": "'
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    r = api.post("/api/v1/events/harvest", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = api.post("/epcis/capture", content=chunks())
    assert r.status_code == 413
    # just under the limit is fine (and then it is a schema question, not a size one)
    r = api.post("/api/v1/events/harvest", {**big, "crop": "chè"})
    assert r.status_code == 200
    assert len(consume(intake_settings, topics.SUPPLY)) == 1


def test_413_chunked_through_a_real_server(intake_settings: Settings):
    """The same through uvicorn and a real socket: a chunked body is cut off by counting, not by Content-Length."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(intake_settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        token = TokenStore.from_settings(intake_settings).create(A)[0]

        def chunks():
            for _ in range(intake_settings.max_body_bytes // 8192 + 2):
                yield b" " * 8192

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            assert http.get("/healthz").json()["status"] == "ok"
            r = http.post("/api/v1/events/harvest", content=chunks(), headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 413, r.text
            r = http.post("/api/v1/events/harvest", headers={"Authorization": f"Bearer {token}"},
                          json={"lot": "TC-300", "area_code": "VT-1", "crop": "chè",
                                "quantity": {"value": 3, "unit": "kg"}})
            assert r.status_code == 200, r.text
    finally:
        server.should_exit = True
        thread.join(20)
    assert [m["key"] for m in consume(intake_settings, topics.SUPPLY)] == ["TC-300"]


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/events/harvest", {"lot": "TC-1", "area_code": "VT-1", "crop": "chè",
                                "quantity": {"value": -3, "unit": "kg"}}, "payload.quantity.value"),
    ("/api/v1/events/harvest", {"lot": "TC-1", "area_code": "VT-1", "crop": "chè",
                                "quantity": {"value": 3, "unit": "bao"}}, "payload.quantity.unit"),
    ("/api/v1/events/harvest", {"lot": "TC-1", "area_code": "VT-1", "quantity": {"value": 3, "unit": "kg"}},
     "payload.crop"),
    ("/api/v1/events/harvest", {"lot": "TC-1", "area_code": "VT-1", "crop": "chè", "cropp": "x",
                                "quantity": {"value": 3, "unit": "kg"}}, "payload.cropp"),
    ("/api/v1/events/harvest", {"lot": "lô có dấu cách", "area_code": "VT-1", "crop": "chè",
                                "quantity": {"value": 3, "unit": "kg"}}, "payload.lot"),
    ("/api/v1/events/harvest", {"lot": "TC-1", "area_code": "VT-1", "crop": "chè", "event_id": "not-a-uuid",
                                "quantity": {"value": 3, "unit": "kg"}}, "event_id"),
    ("/api/v1/events/harvest", {"lot": "TC-1", "area_code": "VT-1", "crop": "chè", "occurred_at": "hôm qua",
                                "quantity": {"value": 3, "unit": "kg"}}, "occurred_at"),
    ("/api/v1/events/package", {"lot": "TC-1", "gtin": GTIN, "units": 10, "production_date": "2026-04-03",
                                "expiry_date": "2026-01-01"}, "payload.expiry_date"),
    ("/api/v1/events/transform", {"process": "sao-che", "inputs": [],
                                  "outputs": [{"lot": "X", "quantity": {"value": 1, "unit": "kg"}}]}, "payload.inputs"),
    ("/api/v1/products", {"gtin": "8930000000018", "owner_subject_id": A, "name_vi": "Chè",
                          "ocop_group": "beverage"}, "payload.gtin"),
    ("/api/v1/events/harvest", [1, 2, 3], "body"),
])
def test_422_names_the_field(api: Api, intake_settings: Settings, path, body, field):
    r = api.post(path, body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == field and err["reason"] and err["message_vi"], err
    assert consume(intake_settings, topics.SUPPLY) == [] and consume(intake_settings, topics.MASTER) == []


def test_malformed_json_is_400(api: Api, intake_settings: Settings):
    r = api.post("/api/v1/events/harvest", content=b'{"lot": "TC-1",', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "body"
    r = api.post("/epcis/capture", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert consume(intake_settings, topics.SUPPLY) == []


def _commissioning(lot: str, kg: float = 120) -> dict:
    return {"type": "ObjectEvent", "eventTime": "2026-04-02T06:30:00+07:00", "eventTimeZoneOffset": "+07:00",
            "action": "ADD", "bizStep": "commissioning", "disposition": "active",
            "quantityList": [{"epcClass": f"urn:epc:class:lgtin:8930000.000001.{lot}", "quantity": kg, "uom": "KGM"}],
            "readPoint": {"id": "urn:epc:id:sgln:8930000.00001.0"},
            "ilmd": {"ocop:crop": "chè búp tươi", "ocop:areaCode": "VT-TN-0001"}}


def test_epcis_capture(api: Api, intake_settings: Settings):
    harvest = _commissioning("TC-500")
    transform = {"type": "TransformationEvent", "eventTime": "2026-04-02T14:00:00+07:00",
                 "eventTimeZoneOffset": "+07:00", "bizStep": "transforming", "ocop:process": "sao-che",
                 "inputQuantityList": [{"epcClass": "https://id.gs1.org/01/08930000000019/10/TC-500",
                                        "quantity": 118, "uom": "KGM"}],
                 "outputQuantityList": [{"epcClass": "https://id.gs1.org/01/08930000000019/10/TC-500K",
                                         "quantity": 24000, "uom": "GRM"}]}
    packing = {"type": "AggregationEvent", "eventTime": "2026-04-03T09:00:00+07:00", "eventTimeZoneOffset": "+07:00",
               "action": "ADD", "bizStep": "packing", "parentID": "urn:epc:id:sscc:8930000.0000000011",
               "childQuantityList": [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-500K", "quantity": 120}],
               "ilmd": {"cbvmda:itemExpirationDate": "2027-04-03"}}
    unknown_step = {**copy.deepcopy(harvest), "bizStep": "destroying"}
    bad_uom = _commissioning("TC-501")
    bad_uom["quantityList"][0]["uom"] = "LBR"
    doc = {"@context": EPCIS_CTX, "type": "EPCISDocument", "schemaVersion": "2.0",
           "creationDate": "2026-04-03T10:00:00+07:00",
           "epcisBody": {"eventList": [harvest, unknown_step, dict(reversed(list(harvest.items()))), transform,
                                       bad_uom, packing, "not an event"]}}
    r = api.post("/epcis/capture", doc)
    assert r.status_code == 200, r.text
    rep = r.json()
    statuses = [x["status"] for x in rep["results"]]
    assert statuses == ["accepted", "rejected", "duplicate", "accepted", "rejected", "accepted", "rejected"]
    assert (rep["accepted"], rep["rejected"], rep["duplicate"]) == (3, 3, 1)
    res = rep["results"]
    assert res[0]["epcis_event_hash"] == epcis_event_hash(harvest, EPCIS_CTX)
    assert res[2]["event_id"] == res[0]["event_id"]  # the duplicate names the event it repeats
    assert res[1]["error"]["field"] == "bizStep" and res[4]["error"]["field"] == "quantityList[0].uom"
    assert [x.get("event_type") for x in res] == ["harvest", None, None, "transform", None, "package", None]

    # the same document again: everything already captured is a duplicate, nothing is produced twice
    again = api.post("/epcis/capture", doc).json()
    assert [x["status"] for x in again["results"]] == ["duplicate", "rejected", "duplicate", "duplicate",
                                                        "rejected", "duplicate", "rejected"]

    # one event at a time: duplicate -> 409, new -> 200, unmappable -> 422, another subject's lot -> 403
    r = api.post("/epcis/events", {"@context": EPCIS_CTX, **harvest})
    assert r.status_code == 409 and r.json()["event_id"] == res[0]["event_id"]
    sell = {"@context": EPCIS_CTX, "type": "ObjectEvent", "eventTime": "2026-04-05T09:00:00+07:00",
            "eventTimeZoneOffset": "+07:00", "action": "OBSERVE", "bizStep": "retail_selling",
            "disposition": "retail_sold", "bizLocation": {"id": "urn:ocop-trace:epcis:facility:OCOP-SHOWROOM-TN"},
            "quantityList": [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-500K", "quantity": 2}]}
    r = api.post("/epcis/events", sell)
    assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["event_type"] == "sell"
    r = api.post("/epcis/events", {**sell, "eventTime": "2026-04-05T10:00:00+07:00"}, B)
    assert r.status_code == 403 and r.json()["error"]["field"] == "payload.lot"
    r = api.post("/epcis/events", {**sell, "bizStep": "destroying"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "bizStep"
    r = api.post("/epcis/capture", {"type": "EPCISDocument"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "epcisBody"

    msgs = consume(intake_settings, topics.SUPPLY)
    events = {m["event"]["event_id"]: m for m in msgs}
    assert len(msgs) == 4 == len(events)
    assert sorted(m["event"]["event_type"] for m in msgs) == ["harvest", "package", "sell", "transform"]
    assert all(m["event"]["source"] == "epcis" and m["event"]["actor"]["subject_id"] == A for m in msgs)
    h = events[res[0]["event_id"]]
    assert h["key"] == "TC-500" and h["event"]["payload"]["quantity"] == {"value": 120.0, "unit": "kg"}
    assert h["event"]["occurred_at"] == "2026-04-02T06:30:00+07:00"
    t = events[res[3]["event_id"]]["event"]["payload"]
    assert t["outputs"] == [{"lot": "TC-500K", "quantity": {"value": 24.0, "unit": "kg"}}]
    p = events[res[5]["event_id"]]
    assert p["key"] == "TC-500K" and p["event"]["payload"]["gtin"] == GTIN
    assert p["event"]["payload"]["expiry_date"] == "2027-04-03"


def test_openapi_and_health(unit_settings: Settings):
    with TestClient(create_app(unit_settings)) as client:  # no Kafka needed to start or to describe itself
        assert client.get("/healthz").json()["status"] == "ok"
        spec = client.get("/openapi.json").json()
        paths = set(spec["paths"])
        assert {f"/api/v1/{x}" for x in ("subjects", "areas", "products", "ratings", "facilities")} <= paths
        assert {f"/api/v1/events/{x}" for x in ("harvest", "receive", "transform", "inspect", "package", "ship",
                                                "sell", "recall", "void")} <= paths
        assert {"/epcis/capture", "/epcis/events"} <= paths
        harvest = spec["paths"]["/api/v1/events/harvest"]["post"]["requestBody"]["content"]["application/json"]
        props = harvest["schema"]["properties"]
        assert props["quantity"]["properties"]["unit"]["enum"] == ["kg", "t", "l", "unit"]
        assert props["quantity"]["properties"]["value"]["minimum"] == 0
        assert {"event_id", "occurred_at", "facility", "user"} <= set(props)
        assert harvest["example"]["lot"]
        assert client.get("/docs").status_code == 200
        # Kafka is unreachable: an event is a clean 503 and the event id is not burnt
        token = TokenStore.from_settings(unit_settings).create(A)[0]
        eid = _uuid()
        body = {"lot": "TC-1", "area_code": "VT-1", "crop": "chè", "quantity": {"value": 1, "unit": "kg"},
                "event_id": eid}
        r = client.post("/api/v1/events/harvest", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503 and r.json()["error"]["message_vi"]
        assert client.app.state.intake.store.reserve(eid, "x", A).state == "new"
