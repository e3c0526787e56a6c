"""The stream processors on the real broker: records, lineage out of order, recalls, DLQ, several workers, SIGKILL.

Workers are real `ocop-trace worker` processes. Each scenario compares the live records (the compacted
ocop.records) with the pure projection of the same events (streams.fold.project) — the auditor's definition.
"""

from __future__ import annotations

import random
import uuid

import pytest

from ocop_trace.config import Settings
from producers.client import EventProducer, canonical
from schemas import codec, topics
from schemas.events import encode_event, event_key, new_event
from streams.fold import project
from tests.kafka_io import latest, read_all, wait_for
from tests.samples import GTIN, SAMPLE_EVENTS, SUBJECT
from tests.workers import Worker

pytestmark = pytest.mark.kafka
KEY_ID = Settings().stamp_active_key


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


def _setup(bootstrap: str, prefix: str) -> Settings:
    s = Settings(bootstrap=bootstrap, topic_prefix=prefix)
    topics.create_topics(bootstrap, prefix)
    return s


def _records(s: Settings) -> dict[str, dict]:
    return latest(s.bootstrap, topics.RECORDS.full(s.topic_prefix), codec.LOT_RECORD)


def _converged(s: Settings, expected: dict[str, dict]):
    def check():
        live = _records(s)
        return live if all(live.get(k) == v for k, v in expected.items()) and set(live) == set(expected) else None
    return check


def _diff(live: dict, expected: dict) -> str:
    out = []
    for lot in sorted(set(live) | set(expected)):
        a, b = live.get(lot), expected.get(lot)
        if a != b:
            fields = sorted(k for k in (a or b) if (a or {}).get(k) != (b or {}).get(k))
            out.append(f"{lot}: {fields}")
    return "; ".join(out)


def _send(s: Settings, events) -> None:
    with EventProducer(s) as p:
        p.send_many(events)


class Pipeline:
    """One worker on one prefix, shared by the scenarios of this module (each uses its own lots). It remembers
    what was sent, so that the expected records are the projection of everything on the topics."""

    def __init__(self, s: Settings, worker: Worker):
        self.s, self.worker, self.sent = s, worker, []

    def send(self, events) -> None:
        events = list(events)
        _send(self.s, events)
        self.sent += events

    def expected(self, lot_prefix: str) -> dict[str, dict]:
        return {k: v for k, v in project(self.sent, stamp_key_id=KEY_ID).items() if k.startswith(lot_prefix)}

    def converge(self, lot_prefix: str, timeout: float = 60) -> dict[str, dict]:
        expected = self.expected(lot_prefix)
        try:
            return wait_for(lambda: (lambda r: r if all(r.get(k) == v for k, v in expected.items()) else None)(
                _records(self.s)), timeout, f"live records of {lot_prefix}* equal the projection")
        except AssertionError:
            raise AssertionError(_diff({k: v for k, v in _records(self.s).items() if k in expected}, expected)) from None


@pytest.fixture(scope="module")
def pipeline(kafka_broker, tmp_path_factory):
    prefix = _prefix()
    s = _setup(kafka_broker.bootstrap, prefix)
    d = tmp_path_factory.mktemp("worker")
    w = Worker(kafka_broker.bootstrap, prefix, d, d / "worker.log").start()
    w.wait_ready()
    yield Pipeline(s, w)
    w.stop()


def _chain(tag: str, t0: int = 0):
    """A small named chain: two gardens -> blend -> split into packs; each pack packaged; one sold."""
    def ev(i, t, p, minute):
        at = f"2026-11-0{1 + minute // 1440}T{(minute % 1440) // 60:02d}:{minute % 60:02d}:00+07:00"
        return canonical(new_event(t, p, subject_id=SUBJECT, occurred_at=at, recorded_at=at,
                                   event_id=str(uuid.UUID(int=random.Random(f"{tag}{i}").getrandbits(128), version=4))))
    kg = lambda v: {"value": float(v), "unit": "kg"}  # noqa: E731
    return [
        ev(1, "area", dict(SAMPLE_EVENTS["area"]["payload"], area_code=f"{tag}-A"), t0),
        ev(2, "harvest", {"lot": f"{tag}-H1", "area_code": f"{tag}-A", "crop": "chè", "quantity": kg(100), "crate_tags": []}, t0 + 1),
        ev(3, "harvest", {"lot": f"{tag}-H2", "area_code": f"{tag}-B", "crop": "chè", "quantity": kg(80), "crate_tags": []}, t0 + 2),
        ev(4, "transform", {"process": "drying", "inputs": [{"lot": f"{tag}-H1", "quantity": kg(100)}, {"lot": f"{tag}-H2", "quantity": kg(80)}],
                            "outputs": [{"lot": f"{tag}-B", "quantity": kg(40)}], "duration_hours": 12.0}, t0 + 60),
        ev(5, "transform", {"process": "splitting", "inputs": [{"lot": f"{tag}-B", "quantity": kg(40)}],
                            "outputs": [{"lot": f"{tag}-P1", "quantity": kg(20)}, {"lot": f"{tag}-P2", "quantity": kg(20)}],
                            "duration_hours": None}, t0 + 120),
        ev(6, "package", {"lot": f"{tag}-P1", "gtin": GTIN, "units": 100, "quantity": kg(20), "production_date": "2026-11-01",
                          "expiry_date": "2027-11-01", "stamps_requested": 100}, t0 + 180),
        ev(7, "package", {"lot": f"{tag}-P2", "gtin": GTIN, "units": 100, "quantity": kg(20), "production_date": "2026-11-01",
                          "expiry_date": "2027-11-01", "stamps_requested": 50}, t0 + 181),
        ev(8, "sell", {"lot": f"{tag}-P1", "units": 3, "point_of_sale": "POS-QV"}, t0 + 300),
    ]


def test_chain_end_to_end_with_master_data_and_dlq(pipeline):
    s = pipeline.s
    master = [SAMPLE_EVENTS[t] for t in ("subject", "product", "rating", "facility")]
    pipeline.send(master + _chain("E2E"))
    # garbage and an invalid event go to the DLQ with their original bytes
    bad = dict(SAMPLE_EVENTS["harvest"], event_id=str(uuid.uuid4()))
    bad = dict(bad, payload=dict(bad["payload"], quantity={"value": -5.0, "unit": "kg"}))
    invalid_bytes = encode_event(bad)
    with EventProducer(s) as p:
        supply = topics.SUPPLY.full(s.topic_prefix)
        p.send_raw(supply, b"E2E-junk", b"\x00\x01garbage", headers=[("origin", b"test")]).get(10)
        p.send_raw(supply, event_key(bad).encode(), invalid_bytes).get(10)
    live = pipeline.converge("E2E")
    p1 = live["E2E-P1"]
    assert [o["area_code"] for o in p1["origins"]] == ["E2E-A", "E2E-B"]
    assert p1["rating"]["stars"] == 4 and p1["product"]["name_vi"] == "Chè Tân Cương Hảo Đạt"
    assert p1["stamp_ranges"] == [{"key_id": KEY_ID, "first_index": 0, "count": 100}]
    assert {f["rule"] for f in live["E2E-H2"]["flags"]} == {"area_unregistered"}

    dlq = wait_for(lambda: [v for _, v in read_all(s.bootstrap, topics.DLQ.full(s.topic_prefix), codec.DLQ_ENTRY)
                            if v["original_key"] in (b"E2E-junk", event_key(bad).encode())] or None
                   if len(read_all(s.bootstrap, topics.DLQ.full(s.topic_prefix))) >= 2 else None, 30, "two DLQ entries")
    by_key = {d["original_key"]: d for d in dlq}
    junk = by_key[b"E2E-junk"]
    assert junk["original_value"] == b"\x00\x01garbage" and junk["error"] == "undecodable"
    assert junk["headers"] == [{"key": "origin", "value": b"test"}] and junk["source_topic"] == supply
    inv = by_key[event_key(bad).encode()]
    assert inv["original_value"] == invalid_bytes
    assert inv["error"] == "invalid" and inv["field"] == "payload.quantity.value" and "≥ 0" in inv["reason"]

    # what the client produced comes out of the validate agent unchanged after the Avro round trip
    sent = {e["event_id"]: e for e in master + _chain("E2E")}
    accepted = {v["event_id"]: v for _, v in read_all(s.bootstrap, topics.ACCEPTED.full(s.topic_prefix), codec.EVENT)
                if v["event_id"] in sent}
    assert accepted == sent

    stamps = [v for _, v in read_all(s.bootstrap, topics.STAMPS.full(s.topic_prefix), codec.STAMP_RANGE)
              if v["lot"].startswith("E2E")]
    assert sorted((r["lot"], r["first_index"], r["count"]) for r in stamps) == [("E2E-P1", 0, 100), ("E2E-P2", 0, 50)]


def test_lineage_arriving_out_of_order_and_recall_propagation(pipeline):
    s = pipeline.s
    chain = _chain("OOO")
    # children first: packages and transforms before the harvests they come from, with duplicates
    pipeline.send([chain[6], chain[5], chain[4], chain[3], chain[7], chain[2], chain[1], chain[0], chain[3], chain[1]])
    pipeline.converge("OOO")
    # a recall of one garden reaches every descendant within seconds
    recall = canonical(new_event("recall", {"scope": "area", "target": "OOO-B", "reason": "dư lượng thuốc BVTV",
                                            "authority": "Chi cục Trồng trọt"}, subject_id=SUBJECT,
                                 occurred_at="2026-11-05T08:00:00+07:00"))
    pipeline.send([recall])
    live = wait_for(lambda: (lambda r: r if all(r.get(l, {}).get("status") == "recalled" for l in
                                                ("OOO-H2", "OOO-B", "OOO-P1", "OOO-P2")) else None)(_records(s)),
                    20, "recall reached every descendant")
    assert live["OOO-H1"]["status"] == "active"
    for lot in ("OOO-P1", "OOO-P2"):
        assert live[lot]["recall"]["event_id"] == recall["event_id"]
        assert live[lot]["recall"]["reason"] == "dư lượng thuốc BVTV"
    alerts = [v for _, v in read_all(s.bootstrap, topics.ALERTS.full(s.topic_prefix), codec.ALERT)
              if v["rule"] == "recalled" and (v["lot"] or "").startswith("OOO")]
    assert {a["lot"] for a in alerts} >= {"OOO-P1", "OOO-P2", "OOO-B", "OOO-H2"}


def _generated(n_lots: int, seed: int) -> list[dict]:
    """A larger deterministic load: chains of 8 events."""
    events = []
    for i in range(n_lots):
        events += _chain(f"G{seed}x{i}", t0=i % 500)
    return events


def _run_workers(bootstrap, tmp_path, n_workers: int, events, kill_after: int | None = None):
    prefix = _prefix()
    s = _setup(bootstrap, prefix)
    ws = [Worker(bootstrap, prefix, tmp_path / f"w{i}", tmp_path / f"w{i}.log").start() for i in range(n_workers)]
    for w in ws:
        w.wait_ready(90)
    try:
        if kill_after is None:
            _send(s, events)
        else:
            _send(s, events[:kill_after])
            # let the worker get going, then kill it mid-stream and restart it on the same data dir
            wait_for(lambda: len(_records(s)) > 10, 60, "worker made progress")
            ws[0].kill()
            _send(s, events[kill_after:])
            ws[0] = Worker(bootstrap, prefix, tmp_path / "w0", tmp_path / "w0.log").start()
            ws[0].wait_ready(90)
        expected = project(events, stamp_key_id=KEY_ID)
        try:
            return wait_for(_converged(s, expected), 300, f"{n_workers} worker(s) converge")
        except AssertionError:
            raise AssertionError(f"not converged: {_diff(_records(s), expected) or 'equal only after the deadline'}") from None
    finally:
        for w in ws:
            w.stop()


def test_three_workers_equal_one_worker(kafka_broker, tmp_path):
    events = _generated(60, seed=3)
    one = _run_workers(kafka_broker.bootstrap, tmp_path / "one", 1, events)
    three = _run_workers(kafka_broker.bootstrap, tmp_path / "three", 3, events)
    assert one == three


def test_worker_killed_mid_stream_and_restarted_yields_identical_records(kafka_broker, tmp_path):
    events = _generated(150, seed=9)
    killed = _run_workers(kafka_broker.bootstrap, tmp_path, 1, events, kill_after=600)
    assert killed == project(events, stamp_key_id=KEY_ID)
