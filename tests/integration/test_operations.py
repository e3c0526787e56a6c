"""Operations on the real broker: a real `ocop-trace worker` (started ONCE for the module, JSON logs on) answers
/healthz, /readyz (503 with a reason until its partitions are assigned and tables recovered, then 200) and
/metrics (events processed, DLQ entries by reason class, consumer lag per partition); its dead-letter log lines
are JSON with the event id and source position. The web app's /metrics after a scan shows the verdict counter and
the latency histogram by route template (FastAPI TestClient, SQLite read side)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from consumers.store import Store
from ocop_trace.config import Settings
from ocop_trace.server import create_app
from producers.client import EventProducer
from schemas import topics
from schemas.events import encode_event
from tests.kafka_io import wait_for
from tests.samples import GTIN, SAMPLE_EVENTS
from tests.workers import Worker

pytestmark = pytest.mark.kafka


def http(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def sample(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


@dataclass
class Ops:
    s: Settings
    worker: Worker
    readyz: list[tuple[float, int, dict]] = field(default_factory=list)  # (seconds after start, status, body)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.worker.port}{path}"

    def metrics(self) -> str:
        status, body = http(self.url("/metrics"))
        assert status == 200
        return body.decode()


@pytest.fixture(scope="module")
def ops(kafka_broker, tmp_path_factory):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    topics.create_topics(kafka_broker.bootstrap, prefix)
    d = tmp_path_factory.mktemp("ops-worker")
    w = Worker(kafka_broker.bootstrap, prefix, d, d / "worker.log", OCOP_LOG_JSON="1")
    o = Ops(Settings(_env_file=None, bootstrap=kafka_broker.bootstrap, topic_prefix=prefix), w)
    t0 = time.monotonic()
    w.start()
    try:
        # watch /readyz from the moment the process starts: connection refused, then 503s, then 200
        deadline = t0 + 90
        while True:
            if w.proc.poll() is not None:
                raise AssertionError(f"worker exited with {w.proc.returncode}: {w.tail()}")
            try:
                status, body = http(o.url("/readyz"), timeout=1)
                o.readyz.append((time.monotonic() - t0, status, json.loads(body)))
                if status == 200:
                    break
            except OSError:
                pass  # the web server is not listening yet
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz never 200: {o.readyz[-3:]}; {w.tail()}")
            time.sleep(0.05)
        w.wait_ready(30)
        yield o
    finally:
        w.stop()


def test_healthz_and_readyz_transition(ops: Ops):
    assert http(ops.url("/healthz")) == (200, b'{"status":"ok"}')
    statuses = [s for _, s, _ in ops.readyz]
    assert statuses[-1] == 200 and set(statuses[:-1]) <= {503}, statuses
    assert statuses.count(503) >= 1, "a 503 before assignment should be observed (the web server starts first)"
    for _, _, body in ops.readyz[:-1]:
        assert body["status"] == "not ready" and body["reason"]
    first = ops.readyz[0][2]["reason"]
    assert first.startswith("waiting for partition assignment") or first == "rebalancing", first
    ready = ops.readyz[-1][2]
    # one worker owns every partition of the topics it reads (master, supply, accepted, inbox, requests, scans)
    assert ready["status"] == "ready" and ready["partitions"] >= 6 * 5, ready
    status, body = http(ops.url("/readyz"))
    assert status == 200 and json.loads(body)["status"] == "ready"
    assert sample(ops.metrics(), "ocop_worker_ready") == 1.0


def test_worker_metrics_count_events_dlq_and_lag(ops: Ops):
    good = dict(SAMPLE_EVENTS["subject"], event_id=str(uuid.uuid4()))
    with EventProducer(ops.s) as p:
        p.send(good)
    supply = topics.SUPPLY.full(ops.s.topic_prefix)
    wrong_key = dict(SAMPLE_EVENTS["harvest"], event_id=str(uuid.uuid4()))
    kp = KafkaProducer(bootstrap_servers=ops.s.bootstrap_servers, acks="all")
    try:
        kp.send(supply, key=b"TC-001", value=b"this is not an event").get(30)
        kp.send(supply, key=b"NOT-THE-LOT", value=encode_event(wrong_key)).get(30)
    finally:
        kp.close()

    def counted():
        text = ops.metrics()
        ok = (sample(text, "ocop_events_processed_total", event_type="subject") == 1.0
              and sample(text, "ocop_dlq_entries_total", error="undecodable", reason_class="header") == 1.0
              and sample(text, "ocop_dlq_entries_total", error="invalid", reason_class="key_mismatch") == 1.0)
        return text if ok else None

    text = wait_for(counted, 30, "events processed and DLQ entries counted on /metrics")
    assert "# TYPE ocop_consumer_lag gauge" in text
    # lag per partition of every source topic this worker reads, and caught up once the commit interval passed
    def lags():
        s = samples(ops.metrics())
        out = {(dict(lb)["topic"], int(dict(lb)["partition"])): v for (n, lb), v in s.items()
               if n == "ocop_consumer_lag"}
        return out if {p for t, p in out if t == supply} == set(range(ops.s.partitions)) \
            and not any(out.values()) else None

    got = wait_for(lags, 20, "ocop_consumer_lag present for every supply partition, all caught up")
    assert {t for t, _ in got} >= {topics.MASTER.full(ops.s.topic_prefix), supply}


def test_dead_letter_log_lines_are_json_with_event_id(ops: Ops):
    def dead_lines():
        out = []
        for line in ops.worker.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{") and '"dead-lettered' in line:
                out.append(json.loads(line))
        return out if len(out) >= 2 else None

    lines = wait_for(dead_lines, 20, "two dead-letter log lines in the worker log")
    supply = topics.SUPPLY.full(ops.s.topic_prefix)
    for ln in lines:
        assert set(ln) >= {"ts", "level", "logger", "message", "topic", "partition", "offset", "error", "reason"}
        assert ln["logger"] == "ocop.validate" and ln["level"] == "WARNING" and ln["topic"] == supply
        assert isinstance(ln["offset"], int) and isinstance(ln["partition"], int)
    by_error = {ln["error"]: ln for ln in lines}
    assert "event_id" not in by_error["undecodable"]  # nothing to read it from: the position identifies it
    keyed = by_error["invalid"]
    assert uuid.UUID(keyed["event_id"]) and keyed["lot"] == SAMPLE_EVENTS["harvest"]["payload"]["lot"]
    assert keyed["key"] == "NOT-THE-LOT"
    # faust's own lines are JSON too (the Ready line the test helper waits for included)
    ready = [ln for ln in ops.worker.log.read_text(encoding="utf-8").splitlines() if "Worker]: Ready" in ln]
    assert ready and json.loads(ready[0])["message"].endswith("Ready")


class NullProducer:
    """Scan events go nowhere (the web test needs no Kafka)."""

    def send_value(self, *a, **kw):
        return None

    def flush(self, *a, **kw):
        return None

    def send(self, *a, **kw):
        raise RuntimeError("no intake in this test")

    def close(self):
        return None


def test_web_metrics_after_a_scan(tmp_path: Path):
    s = Settings(_env_file=None, data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'ocop.sqlite3'}",
                 bootstrap="127.0.0.1:9")
    store = Store(s.sqlalchemy_url)
    store.migrate()
    store.close()
    route = "/01/{rest:path}"
    with TestClient(create_app(s, producer=NullProducer())) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["databases"] == {"read_side": "ok", "intake": "ok"}
        before = c.get("/metrics").text
        r = c.get(f"/01/{GTIN}/10/TC-001/21/12345KABCDEFGH", headers={"Accept": "application/json"})
        assert r.status_code == 200
        verdict = r.json()["verdict"]["code"]
        assert verdict in ("forged", "unknown")
        assert c.post("/api/v1/events/harvest", json={}).status_code == 401  # no token: a rejected intake
        m = c.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    after = m.text

    def delta(name, **labels):
        return (sample(after, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    assert delta("ocop_scan_verdicts_total", verdict=verdict) == 1
    assert delta("ocop_http_request_duration_seconds_count", method="GET", route=route, status="200") == 1
    assert sample(after, "ocop_http_request_duration_seconds_bucket", method="GET", route=route, status="200",
                  le="+Inf") >= 1
    assert delta("ocop_http_intake_total", outcome="rejected") == 1
    assert "12345KABCDEFGH" not in after  # the raw path never becomes a label
