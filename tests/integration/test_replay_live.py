"""The auditor's replay equals the live system: after the demo chain and after thousands of generated lots.

Real broker, a real `ocop-trace worker`, the real sink into SQLite; the auditor replays the raw topics with the
same pure functions and diffs against ocop.records and SQL. A clean system reports no difference.
"""

from __future__ import annotations

import uuid

import pytest

from consumers.audit.diff import replay_equals_live
from consumers.sink import Sink
from ocop_trace.config import Settings
from producers.client import EventProducer
from producers.generator import demo_chain, generate
from schemas import codec, topics
from schemas.events import lots_touched
from tests.kafka_io import latest, wait_for
from tests.workers import Worker

pytestmark = pytest.mark.kafka


def test_replay_equals_live_after_demo_and_generated_chains(kafka_broker, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    s = Settings(bootstrap=kafka_broker.bootstrap, topic_prefix=prefix, data_dir=tmp_path,
                 database_url=f"sqlite:///{tmp_path / 'read.sqlite3'}")
    topics.create_topics(kafka_broker.bootstrap, prefix)
    events = demo_chain() + generate(subjects=12, lots=900, seed=11, faulty=0.03)
    lots = {lot for e in events for lot in lots_touched(e)}
    assert len(lots) >= 2000, "thousands of lots"
    worker = Worker(kafka_broker.bootstrap, prefix, tmp_path / "w", tmp_path / "w.log").start()
    try:
        worker.wait_ready()
        with EventProducer(s) as p:
            p.send_many(events)
        records = topics.RECORDS.full(prefix)

        def settled():
            report = replay_equals_live(s, use_sql=False)
            return report if report.clean and report.compared.get("records", 0) >= len(lots) else None

        wait_for(lambda: len(latest(s.bootstrap, records, codec.LOT_RECORD)) >= len(lots), 600, "every lot live")
        wait_for(settled, 600, "replay equals ocop.records", interval=5)
    finally:
        worker.stop()
    sink = Sink.from_settings(s)
    sink.store.migrate()
    sink.run_until_idle(300)
    sink.close()
    report = replay_equals_live(s)
    assert report.clean, report.as_dict()["lots"][:5]
    assert not report.skipped, report.skipped
    # both live sides compared, every lot: the compacted topic and the SQL read side
    assert report.compared == {"records": report.compared["records"], "sql": report.compared["sql"]}
    assert min(report.compared.values()) >= len(lots), report.compared
