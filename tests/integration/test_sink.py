"""The sink against the real Kafka broker, into SQLite and PostgreSQL (``db_url``).

Values are Avro-encoded with ``schemas.codec`` exactly as the workers publish them; master data goes on the raw
``ocop.events.master`` topic as the producers write it.
"""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaProducer
from sqlalchemy import delete, event, text
from sqlalchemy.exc import OperationalError

from consumers.sink import Sink
from consumers.store import SINK_OFFSETS, Base, Store
from schemas import codec, topics
from schemas.events import encode_event
from tests.integration import readside_samples as S
from tests.integration.test_store import snapshot

pytestmark = pytest.mark.kafka

PARTITIONS = 3


@pytest.fixture
def kafka(kafka_broker, topic_prefix):
    bootstrap = kafka_broker.bootstrap
    topics.create_topics(bootstrap, topic_prefix, partitions=PARTITIONS)
    return bootstrap, topic_prefix


def produce(kafka, items: list[tuple[topics.TopicSpec, str, bytes | None]]) -> None:
    bootstrap, prefix = kafka
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for spec, key, value in items:
            producer.send(spec.full(prefix), key=key.encode(), value=value)
        producer.flush(30)
    finally:
        producer.close()


def make_sink(store: Store, kafka, **kw) -> Sink:
    bootstrap, prefix = kafka
    kw.setdefault("poll_timeout_ms", 200)
    return Sink(store, bootstrap=bootstrap, prefix=prefix, **kw)


def run_once(store: Store, kafka, **kw):
    sink = make_sink(store, kafka, **kw)
    try:
        return sink.run_until_idle(timeout=90)
    finally:
        sink.close()


REC = codec.codec(codec.LOT_RECORD)
ALERT = codec.codec(codec.ALERT)
STAMP = codec.codec(codec.STAMP_RANGE)
SCAN = codec.codec(codec.SCAN)


def demo_messages() -> list[tuple[topics.TopicSpec, str, bytes | None]]:
    bad_product = S.product_event(n=9)
    bad_product["payload"]["gtin"] = "8930000000018"  # bad check digit: the validate agent dead-letters it
    master = [S.subject_event("HTX Chè Hảo Đạt", n=2, occurred_at=S.at(2)), S.area_event(),
              S.area_event("VT-TN-002", n=1), S.product_event(), S.rating_event("granted", 3, n=1, occurred_at=S.at(1)),
              S.rating_event("renewed", 4, n=2, occurred_at=S.at(2)), S.facility_event(), bad_product,
              S.subject_event("HTX Chè Hảo Đạt", n=2, occurred_at=S.at(2)),  # a duplicate
              S.subject_event("HTX cũ", n=1, occurred_at=S.at(1))]  # an older version, consumed later
    msgs: list[tuple[topics.TopicSpec, str, bytes | None]] = [
        (topics.MASTER, ev["payload"].get("subject_id") or ev["payload"].get("area_code")
         or ev["payload"].get("gtin") or ev["payload"]["facility_id"], encode_event(ev)) for ev in master]
    records = [
        S.record("H1", children=["T1"], day=1, origins=[(S.AREA, "H1")]),
        S.record("H2", children=["T1"], day=2, origins=[("VT-TN-002", "H2")]),
        S.record("T1", parents=["H1", "H2"], day=5, packaged=True, origins=[(S.AREA, "H1"), ("VT-TN-002", "H2")]),
        S.record("T1", parents=["H1", "H2"], day=5, packaged=True, units_sold=12, version=1,
                 origins=[(S.AREA, "H1"), ("VT-TN-002", "H2")]),
        S.record("GONE", day=3),
    ]
    msgs += [(topics.RECORDS, r["lot"], REC.encode(r)) for r in records]
    msgs.append((topics.RECORDS, "GONE", None))  # a tombstone
    msgs.append((topics.RECORDS, "BROKEN", b"not avro"))
    msgs += [(topics.ALERTS, "T1", ALERT.encode(S.alert("a1", lot="T1"))),
             (topics.ALERTS, "T1", ALERT.encode(S.alert("a1", lot="T1", state="resolved"))),
             (topics.ALERTS, "SER9", ALERT.encode(S.alert("a2", rule="suspicious_copy", lot=None, serial="SER9")))]
    msgs += [(topics.STAMPS, "T1", STAMP.encode(S.stamp_range("T1", 1, 100, n=0))),
             (topics.STAMPS, "T1", STAMP.encode(S.stamp_range("T1", 101, 100, n=1)))]
    msgs += [(topics.SCANS, "SER9", SCAN.encode(S.scan("SER9", i, day=10 + i, lot="T1"))) for i in range(3)]
    return msgs


def check_demo(store: Store, rejects: int = 1) -> None:
    counts = store.counts()
    assert counts["lots"] == 3 and store.lot("GONE") is None
    t1 = store.lot("T1")
    assert t1["units_sold"] == 12 and t1["record"]["units_sold"] == 12
    assert t1["product"]["name_vi"] == "Chè Tân Cương" and t1["subject"]["name"] == "HTX Chè Hảo Đạt"
    assert [a["area_code"] for a in t1["areas"]] == [S.AREA, "VT-TN-002"]
    assert [(r["action"], r["stars"]) for r in t1["ratings"]] == [("granted", 3), ("renewed", 4)]
    assert [a["state"] for a in t1["alerts"]] == ["resolved"]
    assert [s["first_index"] for s in t1["stamps"]] == [1, 101]
    assert [x["lot"] for x in store.lineage("T1")["ancestors"]] == ["H1", "H2"]
    assert [x["lot"] for x in store.lineage("H2")["descendants"]] == ["T1"]
    assert [x["lot"] for x in store.lots_by_area("VT-TN-002")] == ["H2", "T1"]
    assert store.stamp_range_for(S.GTIN14, "T1", 150)["first_index"] == 101
    assert store.scan_stats("SER9")["count"] == 3
    assert store.serial_flagged("SER9") is True
    assert store.product("8930000000018") is None  # the invalid master event was skipped
    assert counts["subjects"] == 1 and counts["areas"] == 2 and counts["facilities"] == 1
    assert counts["sink_rejects"] == rejects  # the undecodable record(s)


def test_sink_applies_every_topic_and_twice_is_once(store, kafka):
    msgs = demo_messages()
    produce(kafka, msgs)
    stats = run_once(store, kafka, batch_size=7)
    assert stats.messages == len(msgs)
    assert stats.rejected == 1 and stats.invalid == 1
    check_demo(store)
    first = snapshot(store)

    again = run_once(store, kafka)  # a second sink resumes from the offsets in the database
    assert again.messages == 0
    assert snapshot(store) == first

    with store.write() as c:  # forget the offsets: everything is consumed again, and changes nothing
        c.execute(delete(SINK_OFFSETS))
    replay = run_once(store, kafka, batch_size=50)
    assert replay.messages == len(msgs) and replay.applied == 0
    assert snapshot(store) == first


def test_sink_survives_database_failures_without_loss_or_doubles(store, kafka):
    """The database fails in the middle of batches: each failed transaction rolls back (rows and offsets) and the
    batch is polled again from the database's offsets. The end state equals an undisturbed run."""
    msgs = demo_messages()
    produce(kafka, msgs)
    state = {"n": 0, "failures": 0}

    def flaky(conn, cursor, statement, parameters, context, executemany):
        state["n"] += 1
        if state["failures"] < 4 and state["n"] % 9 == 0:
            state["failures"] += 1
            raise OperationalError(statement, parameters, Exception("server closed the connection (injected)"))

    event.listen(store.engine, "before_cursor_execute", flaky)
    try:
        stats = run_once(store, kafka, batch_size=5)
    finally:
        event.remove(store.engine, "before_cursor_execute", flaky)
    assert state["failures"] == 4 and stats.retries == 4
    check_demo(store)
    disturbed = snapshot(store)

    with store.write() as c:
        for t in reversed(Base.metadata.sorted_tables):
            c.execute(delete(t))
    run_once(store, kafka, batch_size=5)
    assert snapshot(store) == disturbed


def test_sink_run_loop_follows_new_messages(store, kafka):
    sink = make_sink(store, kafka, batch_size=10)
    stop = threading.Event()
    worker = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    worker.start()
    try:
        produce(kafka, [(topics.RECORDS, "L1", REC.encode(S.record("L1")))])
        deadline = time.monotonic() + 60
        while store.lot("L1") is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.lot("L1") is not None
        produce(kafka, [(topics.RECORDS, "L1", REC.encode(S.record("L1", status="recalled", version=1)))])
        while store.lot("L1")["status"] != "recalled" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.lot("L1")["status"] == "recalled"
    finally:
        stop.set()
        worker.join(30)
        sink.close()
    assert not worker.is_alive()


@pytest.fixture
def pg_store(pg_database_url):
    st = Store(pg_database_url)
    st.migrate()
    yield st
    st.close()


def test_sink_reconnects_after_postgres_kills_its_connections(pg_store, pg_database_url, kafka):
    """A real outage on PostgreSQL: the server terminates the sink's connections while it works.
    (PostgreSQL only: SQLite has no server connection to kill; the injected-failure test covers both.)"""
    store, db_url = pg_store, pg_database_url
    msgs = demo_messages() * 3  # the same values again: later offsets, identical end state
    produce(kafka, msgs)
    sink = make_sink(store, kafka, batch_size=3)
    done = threading.Event()
    killed = {"n": 0}

    def killer() -> None:
        admin = Store(db_url)
        try:
            while not done.is_set() and killed["n"] < 5:
                with admin.write() as c:
                    n = c.execute(text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
                killed["n"] += 1 if n else 0
                time.sleep(0.05)
        finally:
            admin.close()

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        stats = sink.run_until_idle(timeout=120)
    finally:
        done.set()
        t.join(30)
        sink.close()
    assert killed["n"] >= 1 and stats.retries >= 1  # the sink really lost its connection, and recovered
    assert stats.messages == len(msgs)
    check_demo(store, rejects=3)
    assert store.sink_offsets()  # positions were committed with the rows
