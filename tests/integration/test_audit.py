"""The auditor against the real broker: replay equals the expected projection and the live records of a real
worker; a clean log verifies clean under a signed checkpoint; tampering with the topics (an event altered, removed,
reordered or injected in a rewritten copy of the topic, or a same-id event produced later) is detected and located
at the exact event; a forged checkpoint is rejected; the command line's exports and error codes."""

from __future__ import annotations

import copy
import csv
import io
import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from typer.testing import CliRunner

from consumers.audit.diff import replay_equals_live
from consumers.audit.replay import Filters, fold, replay, select
from consumers.audit.verify import (key_paths, keygen, load_private_key, make_checkpoint, publish_checkpoint,
                                    read_checkpoints, read_live_records, verify_log, walk)
from ocop_trace.config import Settings
from producers.client import EventProducer
from schemas import codec, topics
from schemas.events import encode_event, event_key, new_event
from schemas.topics import create_topics
from tests.kafka_io import wait_for
from tests.workers import Worker

SUBJECT, AREA, GTIN = "HTX-AUDIT", "VN-TN-AUD-01", "08938505974194"


def _events(seed: str) -> list[dict]:
    ns = uuid.uuid5(uuid.NAMESPACE_URL, seed)
    n = iter(range(1000))

    def ev(t: str, p: dict, day: int, facility: str | None = "FAC-AUD") -> dict:
        at = f"2026-04-{day:02d}T09:00:00+07:00"
        return new_event(t, p, subject_id=SUBJECT, user="thu", facility=facility, occurred_at=at, recorded_at=at,
                         event_id=str(uuid.uuid5(ns, str(next(n)))))

    q = lambda v: {"value": v, "unit": "kg"}  # noqa: E731
    return [
        ev("subject", {"subject_id": SUBJECT, "name": "HTX kiểm toán", "kind": "cooperative", "tax_id": None,
                       "province_code": "19", "commune_code": None, "address": "", "contact": None}, 1, None),
        ev("area", {"area_code": AREA, "owner_subject_id": SUBJECT, "name": "Đồi chè", "crops": ["chè"],
                    "area_ha": 2.5, "location": [{"lat": 21.6, "lon": 105.8}], "certifications": [],
                    "valid_from": "2024-01-01", "valid_to": None, "revoked": False}, 1, None),
        ev("product", {"gtin": GTIN, "owner_subject_id": SUBJECT, "name_vi": "Chè Tân Cương", "name_en": "Tea",
                       "ocop_group": "beverage", "net_content": None, "shelf_life_days": 365}, 1, None),
        ev("rating", {"gtin": GTIN, "action": "granted", "stars": 4, "score": 85, "level": "province",
                      "decision_no": "12/QĐ", "decision_date": "2025-06-01", "valid_from": "2025-06-01",
                      "valid_to": "2028-06-01"}, 1, None),
        ev("facility", {"facility_id": "FAC-AUD", "owner_subject_id": SUBJECT, "name": "Xưởng kiểm toán",
                        "kind": "plant", "address": "", "location": None}, 1, None),
        ev("harvest", {"lot": "AUD-R1", "area_code": AREA, "crop": "chè", "quantity": q(100.0),
                       "crate_tags": ["K1"]}, 2),
        ev("receive", {"lot": "AUD-R1", "quantity": q(100.0), "from_facility": "FARM", "document_ref": "PN-1"}, 3),
        ev("harvest", {"lot": "AUD-R2", "area_code": AREA, "crop": "chè", "quantity": q(80.0), "crate_tags": []}, 2),
        ev("inspect", {"lot": "AUD-R1", "lab": "Lab TN", "result": "pass", "parameters": [],
                       "certificate_no": "KN-9"}, 4),
        ev("ship", {"lot": "AUD-R1", "units": 1, "to_facility": "FAC-AUD", "carrier": None,
                    "document_ref": "VD-1"}, 5),
        ev("transform", {"process": "drying", "inputs": [{"lot": "AUD-R1", "quantity": q(100.0)},
                                                          {"lot": "AUD-R2", "quantity": q(80.0)}],
                         "outputs": [{"lot": "AUD-D1", "quantity": q(45.0)}], "duration_hours": 20.0}, 6),
        ev("package", {"lot": "AUD-D1", "gtin": GTIN, "units": 200, "quantity": q(45.0),
                       "production_date": "2026-04-07", "expiry_date": "2027-04-07", "stamps_requested": 0}, 7),
        ev("ship", {"lot": "AUD-D1", "units": 120, "to_facility": "POS-1", "carrier": "VNPost",
                    "document_ref": "VD-2"}, 8),
        ev("sell", {"lot": "AUD-D1", "units": 10, "point_of_sale": "POS-1"}, 9),
    ]


@pytest.fixture(scope="module")
def world(kafka_broker, tmp_path_factory):
    """A chain produced to fresh topics, folded by a real worker into ocop.records, and a signed checkpoint."""
    tmp = tmp_path_factory.mktemp("audit")
    prefix = f"a{uuid.uuid4().hex[:8]}."
    s = Settings(_env_file=None, bootstrap=kafka_broker.bootstrap, topic_prefix=prefix, data_dir=tmp,
                 database_url=f"sqlite:///{tmp / 'ocop.sqlite3'}", table_store="memory://")
    create_topics(s.bootstrap_servers, prefix, s.partitions)
    events = _events(prefix)
    with EventProducer(s) as p:
        p.send_many(events)
        p.send_raw(topics.SUPPLY.full(prefix), b"AUD-R1", b"not an event")  # dead-lettered by the workers
        p.flush()
    w = Worker(kafka_broker.bootstrap, prefix, tmp / "worker", tmp / "worker.log").start()
    try:
        w.wait_ready(120)
        expected = fold_events(events)
        wait_for(lambda: all((read_live_records(s).get(lot) or {}).get("chain_length") == rec["chain_length"]
                             and read_live_records(s)[lot] == rec for lot, rec in expected.items()),
                 120, "the worker's records")
    finally:
        w.stop()
    from consumers.sink import Sink
    from consumers.store import Store

    store = Store(s.sqlalchemy_url)
    store.migrate()
    sink = Sink.from_settings(s, store, poll_timeout_ms=200)
    try:
        sink.run_until_idle(timeout=90)  # the SQL read side, as `ocop-trace sink` fills it
    finally:
        sink.close()
        store.close()
    keygen(s)
    cp = make_checkpoint(walk(replay(s).log), replay(s).offsets, load_private_key(key_paths(s)[0]))
    publish_checkpoint(s, cp)
    return {"settings": s, "events": events, "tmp": tmp, "checkpoint": cp}


def fold_events(events: list[dict]) -> dict[str, dict]:
    from consumers.audit.replay import Msg

    return fold([Msg("x", 0, i, 0, event_key(e), e) for i, e in enumerate(events)])[1]


def _pub(s: Settings):
    from consumers.audit.verify import load_public_key

    return load_public_key(key_paths(s)[1])


def verify(s: Settings, pub=None):
    rep = replay(s)
    return verify_log(rep.log, live=read_live_records(s), checkpoints=read_checkpoints(s),
                      public_key=pub, log_ends=rep.offsets)


# ------------------------------------------------------------------------------------------------ clean system

def test_replay_equals_the_expected_projection(world):
    s = world["settings"]
    rep = replay(s, workers=2)
    assert rep.records == fold_events(world["events"])
    assert rep.stats.messages == len(world["events"]) + 1 and rep.stats.rejected == {"undecodable": 1}
    assert select(rep, Filters(lot="AUD-R2")) == ["AUD-D1", "AUD-R2"]
    assert set(rep.offsets) == {f"{t}:{p}" for t in ("ocop.events.supply", "ocop.events.master") for p in range(6)}


def test_replay_in_several_processes_equals_one(world, monkeypatch):
    """The log split over reading processes gives the replay of one process."""
    from consumers.audit import replay as R

    s = world["settings"]
    one = replay(s, workers=1)
    monkeypatch.setattr(R, "PARALLEL_MIN_MESSAGES", 0)  # small logs are read by one process otherwise
    many = replay(s, workers=3)
    assert many.records == one.records and list(many.records) == list(one.records)

    def where(m):
        return (m.topic, m.partition, m.offset)

    assert sorted(many.log, key=where) == sorted(one.log, key=where)
    assert many.stats.rejected == one.stats.rejected == {"undecodable": 1}


def test_replay_equals_live(world):
    report = replay_equals_live(world["settings"])
    assert report.clean, [d.describe() for d in report.lots]
    assert report.compared == {"records": 3, "sql": 3} and report.skipped == {}


def test_diff_reports_a_drifted_sql_row_field_by_field(world, tmp_path):
    import shutil

    from consumers.audit.diff import diff, live_sources

    s = world["settings"]
    db = tmp_path / "drift.sqlite3"
    shutil.copy(s.sqlalchemy_url.removeprefix("sqlite:///"), db)
    drifted = s.model_copy(update={"database_url": f"sqlite:///{db}"})
    import sqlite3

    with sqlite3.connect(db) as c:
        (rec,) = c.execute("select record from lots where lot = 'AUD-D1'").fetchone()
        rec = json.loads(rec)
        rec["units_sold"] = 99
        c.execute("update lots set record = ? where lot = 'AUD-D1'", (json.dumps(rec),))
        c.execute("delete from lots where lot = 'AUD-R2'")
    records, sql, skipped = live_sources(drifted)
    report = diff(replay(drifted).records, records=records, sql=sql, skipped=skipped)
    assert not report.clean
    by = {(d.lot, d.source): d for d in report.lots}
    assert set(by) == {("AUD-D1", "sql"), ("AUD-R2", "sql")}
    assert by["AUD-R2", "sql"].kind == "missing_in_live"
    (f,) = by["AUD-D1", "sql"].fields
    assert (f.field, f.live, f.replay) == ("units_sold", 99, 10)


def test_clean_log_verifies_under_its_signed_checkpoint(world):
    s = world["settings"]
    report = verify(s, _pub(s))
    assert report.clean, report.as_dict()
    (chk,) = report.checkpoints
    assert chk.valid_signature and chk.root_reproduced
    assert report.chains == 3 + 4  # 3 lots + 4 master entities (a rating shares its product's key)


# ------------------------------------------------------------------------------------------------ tampering

def _copy(src: Settings, edit=None, *, records: dict[str, dict] | None = None) -> Settings:
    """Recreate every input topic under a fresh prefix — the supply topic through ``edit(partition, records) ->
    [(key, value)]`` — as someone with write access to the cluster could. Records and checkpoints are copied as
    they are (or the records replaced by ``records``)."""
    dst = src.model_copy(update={"topic_prefix": f"x{uuid.uuid4().hex[:8]}."})
    create_topics(dst.bootstrap_servers, dst.topic_prefix, dst.partitions)
    c = KafkaConsumer(bootstrap_servers=src.bootstrap_servers, enable_auto_commit=False)
    prod = KafkaProducer(bootstrap_servers=dst.bootstrap_servers, acks="all", max_in_flight_requests_per_connection=1)
    try:
        for spec in (topics.SUPPLY, topics.MASTER, topics.RECORDS, topics.CHECKPOINTS, topics.STAMPS):
            if spec is topics.RECORDS and records is not None:
                for lot, rec in records.items():
                    prod.send(spec.full(dst.topic_prefix), key=lot.encode(),
                              value=codec.codec(codec.LOT_RECORD).encode(rec))
                continue
            name = spec.full(src.topic_prefix)
            for p in sorted(c.partitions_for_topic(name)):
                tp = TopicPartition(name, p)
                c.assign([tp])
                c.seek_to_beginning(tp)
                end = c.end_offsets([tp])[tp]
                msgs = []
                while c.position(tp) < end:
                    for batch in c.poll(timeout_ms=1000).values():
                        msgs += batch
                pairs = [(m.key, m.value) for m in msgs]
                if spec is topics.SUPPLY and edit is not None:
                    pairs = edit(p, pairs)
                for k, v in pairs:
                    prod.send(spec.full(dst.topic_prefix), key=k, value=v, partition=p)
                prod.flush()
    finally:
        prod.close()
        c.close()
    return dst


def _find(world, event_type: str, lot: str) -> dict:
    return next(e for e in world["events"] if e["event_type"] == event_type and e["payload"].get("lot") == lot)


def _at(pairs, ev) -> int:
    return next(i for i, (_k, v) in enumerate(pairs) if v == encode_event(ev))


def _one_break(dst: Settings, pub):
    report = verify(dst, pub)
    assert not report.clean
    assert len(report.breaks) == 1, [b.describe() for b in report.breaks]
    return report, report.breaks[0]


def test_altered_event_in_a_rewritten_topic_is_located(world):
    s, target = world["settings"], _find(world, "receive", "AUD-R1")
    forged = copy.deepcopy(target)
    forged["payload"]["quantity"]["value"] = 60.0
    where = {}

    def edit(p, pairs):
        if key_of(target).encode() in [k for k, _ in pairs]:
            i = _at(pairs, target)
            where["offset"] = (p, i)
            pairs[i] = (pairs[i][0], encode_event(forged))
        return pairs

    dst = _copy(s, edit)
    report, br = _one_break(dst, _pub(s))
    assert (br.key, br.kind, br.event_id) == ("AUD-R1", "altered", target["event_id"])
    assert br.ref == f"ocop.events.supply:{where['offset'][0]}@{where['offset'][1]}"
    assert "quantity" in br.detail
    assert report.checkpoints[0].root_reproduced is False


def key_of(ev: dict) -> str:
    return event_key(ev)


def test_removed_event_is_located(world):
    s, target = world["settings"], _find(world, "inspect", "AUD-R1")

    def edit(p, pairs):
        return [x for x in pairs if x[1] != encode_event(target)]

    _report, br = _one_break(_copy(s, edit), _pub(s))
    assert (br.key, br.kind, br.event_id) == ("AUD-R1", "removed", target["event_id"])
    assert br.position == 3  # harvest, receive, [inspect], ship: the chain breaks at the third event


def test_reordered_events_are_located(world):
    s = world["settings"]
    a, b = _find(world, "inspect", "AUD-R1"), _find(world, "ship", "AUD-R1")

    def edit(p, pairs):
        if key_of(a).encode() in [k for k, _ in pairs]:
            i, j = _at(pairs, a), _at(pairs, b)
            pairs[i], pairs[j] = pairs[j], pairs[i]
        return pairs

    _report, br = _one_break(_copy(s, edit), _pub(s))
    assert (br.key, br.kind, br.event_id, br.position, br.confirmed) == ("AUD-R1", "reordered", b["event_id"], 3,
                                                                         True)


def test_injected_event_is_located(world):
    s = world["settings"]
    before = _find(world, "ship", "AUD-D1")
    forged = new_event("sell", {"lot": "AUD-D1", "units": 150, "point_of_sale": "POS-9"}, subject_id=SUBJECT,
                       facility="FAC-AUD", occurred_at="2026-04-08T10:00:00+07:00",
                       recorded_at="2026-04-08T10:00:00+07:00")

    def edit(p, pairs):
        if key_of(before).encode() in [k for k, _ in pairs]:
            i = _at(pairs, before)
            pairs.insert(i, (b"AUD-D1", encode_event(forged)))
        return pairs

    _report, br = _one_break(_copy(s, edit), _pub(s))
    assert (br.key, br.kind, br.event_id, br.confirmed) == ("AUD-D1", "injected", forged["event_id"], True)
    assert br.position == 3  # transform, package, [forged sale], ship


def test_same_id_produced_later_is_flagged_at_its_offset(world):
    s, target = world["settings"], _find(world, "harvest", "AUD-R2")
    forged = copy.deepcopy(target)
    forged["payload"]["quantity"]["value"] = 800.0
    dst = _copy(s)
    md = EventProducer(dst).send(forged)  # a "correction" that reuses the event id
    report = verify(dst, _pub(s))
    assert report.breaks == [] and not report.clean
    (c,) = report.conflicts
    assert c.event_id == target["event_id"] and c.later.ref == f"ocop.events.supply:{md.partition}@{md.offset}"
    assert "payload.quantity.value: 80.0 → 800.0" in c.describe()


def test_whole_history_rewritten_with_rebuilt_records_is_caught_by_the_checkpoint(world):
    s, target = world["settings"], _find(world, "harvest", "AUD-R1")
    forged = copy.deepcopy(target)
    forged["payload"]["crate_tags"] = ["K7"]  # invisible in the records
    bad_events = [forged if e["event_id"] == target["event_id"] else e for e in world["events"]]

    def edit(p, pairs):
        return [(k, encode_event(forged) if v == encode_event(target) else v) for k, v in pairs]

    dst = _copy(s, edit, records=fold_events(bad_events))
    assert replay_equals_live(dst, use_sql=False).clean  # the forgery is consistent with the rebuilt records ...
    report, br = _one_break(dst, _pub(s))  # ... but not with the signed checkpoint
    assert report.checkpoints[0].valid_signature and report.checkpoints[0].root_reproduced is False
    assert (br.key, br.event_id, br.position) == ("AUD-R1", target["event_id"], 1)
    assert br.anchor.startswith("checkpoint")


def test_forged_checkpoint_is_rejected(world):
    s = world["settings"]
    dst = _copy(s)
    rep = replay(dst)
    publish_checkpoint(dst, make_checkpoint(walk(rep.log), rep.offsets, Ed25519PrivateKey.generate()))
    report = verify(dst, _pub(s))
    good, forged = report.checkpoints
    assert good.ok and not forged.ok and not forged.valid_signature
    assert "not the auditor's" in forged.problems[0]
    assert not report.clean and report.breaks == []


# ------------------------------------------------------------------------------------------------ command line

def _cli(world, *args, bootstrap=None):
    from ocop_trace.cli import app

    s = world["settings"]
    return CliRunner().invoke(app, ["audit", "--bootstrap", bootstrap or s.bootstrap_servers, "--topic-prefix",
                                    s.topic_prefix, *args], catch_exceptions=False)


def test_cli_replay_verify_and_exports(world, tmp_path):
    r = _cli(world, "replay", "--lot", "AUD-R2", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["lots"] == ["AUD-D1", "AUD-R2"]
    r = _cli(world, "replay", "--since", "2026-04-07", "--until", "2026-04-30", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["lots"] == ["AUD-D1"]  # the only lot with an event (by occurred_at) in the period
    r = _cli(world, "replay", "--since", "2099-01-01", "--json")  # recorded before: nothing read from supply
    assert r.exit_code == 0 and json.loads(r.stdout)["lots"] == []
    pub = key_paths(world["settings"])[1]
    r = _cli(world, "verify", "--public-key", str(pub))
    assert r.exit_code == 0 and "intact" in r.stdout
    r = _cli(world, "export", "--format", "epcis", "--subject", SUBJECT, "-o", str(tmp_path / "e.jsonld"))
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "e.jsonld").read_text())
    assert doc["type"] == "EPCISDocument" and len(doc["epcisBody"]["eventList"]) == 9
    r = _cli(world, "export", "--format", "csv", "--product", GTIN, "--lot", "AUD-D1")
    assert r.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {x["traceability_lot_code"] for x in rows} == {"AUD-D1"}
    assert [x["cte_type"] for x in rows] == ["transformation", "initial_packing", "shipping", "retail_sale"]
    r = _cli(world, "export", "--format", "html", "--lot", "AUD-D1", "--verify", "--public-key", str(pub),
             "-o", str(tmp_path / "r.html"))
    assert r.exit_code == 0, r.output
    page = (tmp_path / "r.html").read_text()
    assert "<svg" in page and "Nguyên vẹn / intact" in page


def test_cli_errors(world):
    r = _cli(world, "replay", "--lot", "NO-SUCH-LOT")
    assert r.exit_code == 2 and "unknown lot" in r.output
    r = _cli(world, "export", "--product", "12345")
    assert r.exit_code == 2 and "not a GTIN" in r.output
    r = _cli(world, "replay", bootstrap="127.0.0.1:9")
    assert r.exit_code == 3 and "127.0.0.1:9" in r.output
