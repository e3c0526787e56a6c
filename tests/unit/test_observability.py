"""ocop_trace.observability and streams.health without infrastructure: log formats, metric definitions, DLQ reason
classes, lag arithmetic, the latency middleware's route templates, /readyz, the worker's readiness rules."""

from __future__ import annotations

import json
import logging
import logging.config
import re
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from ocop_trace import observability as obs
from schemas import topics
from schemas.events import encode_event
from streams import health
from streams.accept import Source, accept
from tests.helpers import free_port
from tests.samples import SAMPLE_EVENTS

ROOT = Path(__file__).resolve().parents[2]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def record(msg: str = "hello %s", args: tuple = ("Tân Cương",), level: int = logging.WARNING, exc_info=None,
           **extra) -> logging.LogRecord:
    rec = logging.LogRecord("ocop.validate", level, __file__, 1, msg, args, exc_info)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


# ---------------------------------------------------------------------------------------------------- logging
def test_json_formatter_fields_and_extras():
    line = obs.JsonFormatter().format(record(event_id="e-1", lot="TC-001", topic="ocop.events.supply",
                                             partition=2, offset=41, unrelated="not in the line"))
    out = json.loads(line)
    assert out.pop("ts").endswith("+00:00")
    assert out == {"level": "WARNING", "logger": "ocop.validate", "message": "hello Tân Cương", "event_id": "e-1",
                   "lot": "TC-001", "topic": "ocop.events.supply", "partition": 2, "offset": 41}
    assert "\n" not in line and "Tân Cương" in line  # one line, UTF-8 kept readable


def test_json_formatter_exception_and_odd_values():
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record(exc_info=sys.exc_info(), key=b"\xff", reason=None)
    out = json.loads(obs.JsonFormatter().format(rec))
    assert "ValueError: boom" in out["exc"] and "Traceback" in out["exc"]
    assert out["key"] == str(b"\xff") and "reason" not in out  # None extras are left out, bytes stringified


def test_text_formatter_appends_event_context():
    plain = obs.TextFormatter().format(record())
    assert plain.endswith("WARNING ocop.validate: hello Tân Cương")
    with_ctx = obs.TextFormatter().format(record(event_id="e-1", topic="t", partition=0, offset=7))
    assert with_ctx.endswith("hello Tân Cương [event_id=e-1 topic=t partition=0 offset=7]")


@pytest.mark.parametrize("json_lines", [True, False])
def test_logging_config_goes_to_stderr(json_lines, capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(obs.logging_config(json_lines, "info"))
        logging.getLogger("ocop.sink").error("rejected %s", "x", extra={"topic": "r", "partition": 1, "offset": 2})
        logging.getLogger("kafka.conn").info("chatty")  # quieted
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    if json_lines:
        assert json.loads(err[0])["offset"] == 2
    else:
        assert err[0].endswith("ocop.sink: rejected x [topic=r partition=1 offset=2]")


def test_setup_logging_reads_settings_log_json():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        obs.setup_logging(SimpleNamespace(log_json=True))
        assert isinstance(root.handlers[0].formatter, obs.JsonFormatter)
        obs.setup_logging(SimpleNamespace(log_json=False))
        assert isinstance(root.handlers[0].formatter, obs.TextFormatter)
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


# ---------------------------------------------------------------------------------------------------- metrics
def _families() -> dict:
    body, ctype = obs.exposition()
    assert ctype.startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def test_every_metric_is_exposed_with_its_type():
    fams = _families()
    types = {"ocop_consumer_lag": "gauge", "ocop_worker_ready": "gauge", "ocop_worker_assigned_partitions": "gauge",
             "ocop_sink_lag": "gauge", "ocop_http_request_duration_seconds": "histogram"}
    for name in obs.METRIC_NAMES:
        family = name.removesuffix("_total")
        assert family in fams, name
        assert fams[family].type == types.get(name, "counter"), name
    assert not any(n.endswith("_created") for n in fams)  # created series are off


def test_metric_names_are_defined_once_in_the_code():
    """Only ocop_trace/observability.py spells an ``ocop_`` metric name in a prometheus constructor."""
    rx = re.compile(r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*[\"']ocop_")
    offenders = [str(p.relative_to(ROOT)) for folder in ("ocop_trace", "streams", "consumers", "producers", "qr",
                                                          "schemas", "bench")
                 for p in (ROOT / folder).rglob("*.py") if rx.search(p.read_text(encoding="utf-8"))]
    assert offenders == ["ocop_trace/observability.py"]
    names = re.findall(r"\b(?:Counter|Gauge|Histogram)\(\s*\"(ocop_\w+)\"",
                       (ROOT / "ocop_trace/observability.py").read_text(encoding="utf-8"))
    assert len(names) == len(set(names)) == len(obs.METRIC_NAMES)


def test_worker_hooks_count():
    before = (value("ocop_events_processed_total", event_type="harvest"),
              value("ocop_alerts_raised_total", rule="recalled", state="open"), value("ocop_stamps_issued_total"),
              value("ocop_stamp_ranges_issued_total"), value("ocop_records_published_total"))
    obs.event_processed({"event_type": "harvest"})
    alert = {"rule": "recalled", "state": "open"}
    assert obs.alert_published(alert) is alert
    obs.stamp_range_issued({"count": 150})
    obs.record_published()
    after = (value("ocop_events_processed_total", event_type="harvest"),
             value("ocop_alerts_raised_total", rule="recalled", state="open"), value("ocop_stamps_issued_total"),
             value("ocop_stamp_ranges_issued_total"), value("ocop_records_published_total"))
    assert [a - b for a, b in zip(after, before)] == [1, 1, 150, 1, 1]


def test_sink_batch_counts_outcomes():
    before = [value("ocop_sink_messages_total", outcome=o) for o in ("applied", "rejected")]
    b0 = value("ocop_sink_batches_total")
    obs.sink_batch(SimpleNamespace(batches=1, applied=7, unchanged=0, invalid=0, rejected=2))
    assert value("ocop_sink_batches_total") - b0 == 1
    assert [value("ocop_sink_messages_total", outcome=o) - b for o, b in zip(("applied", "rejected"), before)] == [7, 2]


def _src(value_: bytes | None, key: bytes | None = b"TC-001") -> Source:
    return Source("ocop.events.supply", 3, 17, key, value_)


def _dead(src: Source, spec=topics.SUPPLY) -> dict:
    ev, bad = accept(src, spec)
    assert ev is None
    return bad


def _raw(ev: dict) -> bytes:
    return encode_event(ev)


@pytest.mark.parametrize("make, expected", [
    (lambda: _src(b"garbage"), ("undecodable", "header")),
    (lambda: _src(b"O\x01" + b"\x00" * 8 + b"\xff\xff"), ("unknown_schema", "unknown_schema")),
    (lambda: _src(_raw(SAMPLE_EVENTS["harvest"]), key=b"OTHER-LOT"), ("invalid", "key_mismatch")),
    (lambda: _src(_raw(SAMPLE_EVENTS["subject"]), key=b"HTX-HAODAT"), ("wrong_topic", "wrong_topic")),
    (lambda: _src(_raw({**SAMPLE_EVENTS["harvest"], "event_id": "not-a-uuid"})), ("invalid", "format")),
    (lambda: _src(_raw({**SAMPLE_EVENTS["harvest"], "occurred_at": "2099-01-01T00:00:00+07:00"})),
     ("invalid", "future")),
])
def test_reason_classes_of_real_dead_letters(make, expected):
    bad = _dead(make())
    assert (bad["error"], obs.reason_class(bad["error"], bad["reason"])) == expected


@pytest.mark.parametrize("reason, cls", [
    ("bad check digit 3, expected 4", "gtin"), ("must be ≥ 0, got -1", "range"), ("is required", "required"),
    ("unknown field (expected one of a, b)", "unknown_field"), ("'x' is not one of kg, t", "enum"),
    ("must be int, got str", "type"), ("needs at least 1 item(s)", "too_few"),
    ("must not be before valid_from (2026-01-01)", "order"), ("something new", "other"),
])
def test_reason_class_vocabulary(reason, cls):
    assert obs.reason_class("invalid", reason) == cls


def test_dead_lettered_counts_and_gives_log_context():
    src = _src(_raw(SAMPLE_EVENTS["harvest"]), key=b"OTHER-LOT")
    bad = _dead(src)
    before = value("ocop_dlq_entries_total", error="invalid", reason_class="key_mismatch")
    extra = obs.dead_lettered(bad)
    assert value("ocop_dlq_entries_total", error="invalid", reason_class="key_mismatch") - before == 1
    assert extra["event_id"] == SAMPLE_EVENTS["harvest"]["event_id"]
    assert extra["lot"] == SAMPLE_EVENTS["harvest"]["payload"]["lot"] and extra["key"] == "OTHER-LOT"
    assert (extra["topic"], extra["partition"], extra["offset"], extra["error"]) == ("ocop.events.supply", 3, 17,
                                                                                     "invalid")
    garbage = obs.dead_lettered(_dead(_src(b"garbage", key=None)))
    assert "event_id" not in garbage and garbage["offset"] == 17


@pytest.mark.parametrize("hw, committed, read, lag", [
    (None, 5, 4, None), (10, 10, 9, 0), (10, 4, 9, 6), (10, None, 6, 3), (10, None, None, 10), (3, 5, None, 0)])
def test_partition_lag(hw, committed, read, lag):
    assert obs.partition_lag(hw, committed, read) == lag


def test_set_lag_replaces_series():
    obs.set_lag(obs.SINK_LAG, {("a", 0): 3, ("a", 1): None})
    assert value("ocop_sink_lag", topic="a", partition="0") == 3
    obs.set_lag(obs.SINK_LAG, {("b", 2): 0})
    assert REGISTRY.get_sample_value("ocop_sink_lag", {"topic": "a", "partition": "0"}) is None
    assert REGISTRY.get_sample_value("ocop_sink_lag", {"topic": "b", "partition": "2"}) == 0
    obs.SINK_LAG.clear()


def test_verdict_seen():
    before = value("ocop_scan_verdicts_total", verdict="forged")
    obs.verdict_seen(SimpleNamespace(code="forged"))
    obs.verdict_seen(None)
    assert value("ocop_scan_verdicts_total", verdict="forged") - before == 1


# ---------------------------------------------------------------------------------------------------- web
def _tiny_app(engines=None) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: str) -> dict:
        return {"id": item_id}

    @app.post("/api/v1/events/harvest")
    def harvest(ok: bool = True):
        from fastapi.responses import JSONResponse

        return JSONResponse({}, status_code=200 if ok else 422)

    obs.install_web(app, engines)
    return app


def test_middleware_labels_route_templates_not_paths():
    c = TestClient(_tiny_app())
    count = lambda route, status: value("ocop_http_request_duration_seconds_count",  # noqa: E731
                                        method="GET", route=route, status=status)
    b_item, b_none = count("/items/{item_id}", "200"), count("<unmatched>", "404")
    for i in range(3):
        assert c.get(f"/items/serial-{i}").status_code == 200
    assert c.get("/no/such/path").status_code == 404
    assert count("/items/{item_id}", "200") - b_item == 3
    assert count("<unmatched>", "404") - b_none == 1
    text = c.get("/metrics").text
    assert "serial-1" not in text and "/no/such/path" not in text


def test_middleware_counts_intake_outcomes():
    c = TestClient(_tiny_app())
    before = {o: value("ocop_http_intake_total", outcome=o) for o in ("accepted", "rejected")}
    assert c.post("/api/v1/events/harvest?ok=true").status_code == 200
    assert c.post("/api/v1/events/harvest?ok=false").status_code == 422
    assert c.post("/api/v1/events/harvest?ok=false").status_code == 422
    assert {o: value("ocop_http_intake_total", outcome=o) - before[o] for o in before} == {"accepted": 1,
                                                                                           "rejected": 2}


def test_readyz_reports_the_database(tmp_path):
    good = create_engine(f"sqlite:///{tmp_path / 'ok.sqlite3'}")
    bad = create_engine("sqlite:////nonexistent-dir/ocop/x.sqlite3")
    assert "/readyz" in TestClient(_tiny_app()).get("/openapi.json").json()["paths"]
    r = TestClient(_tiny_app({"read_side": good, "intake": None})).get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready", "databases": {"read_side": "ok"}}
    r = TestClient(_tiny_app({"read_side": bad, "intake": good})).get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["databases"] == {"read_side": "error: OperationalError", "intake": "ok"}
    assert "read_side" in body["reason"]


def test_readyz_wants_the_read_side_schema(tmp_path):
    from consumers.store import Store

    store = Store(f"sqlite:///{tmp_path / 'ocop.sqlite3'}")
    try:
        c = TestClient(_tiny_app({"read_side": store, "custom": lambda: "ok"}))
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["databases"]["read_side"].startswith("error: no schema")
        store.migrate()
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["databases"] == {"read_side": "ok", "custom": "ok"}
    finally:
        store.close()


def test_serve_metrics_for_the_sink():
    port = free_port()
    server = obs.serve_metrics("127.0.0.1", port)
    try:
        assert server is not None
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "ocop_sink_batches_total" in body
        assert json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()) == \
            {"status": "ok"}
        assert obs.serve_metrics("127.0.0.1", port) is None  # port taken: a warning, never a crash
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------------- worker
class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self, assigned, hw, committed=None, read=None):
        self._assigned, self._hw = assigned, hw
        self._committed_offset, self._read_offset = committed or {}, read or {}

    def assignment(self):
        return set(self._assigned)

    def highwater(self, tp):
        return self._hw[tp]


def fake_app(**kw):
    src, chg = (TP(topic="p.ocop.events.supply", partition=0)), (TP(topic="p-lots-changelog", partition=0))
    consumer = kw.pop("consumer", FakeConsumer([src, chg], {src: 10, chg: 99}, committed={src: 7}))
    tables = SimpleNamespace(changelog_topics={"p-lots-changelog"}, actives_ready=kw.pop("actives_ready", True),
                             recovery=SimpleNamespace(active_remaining_total=lambda: 42))
    return SimpleNamespace(consumer=consumer, tables=tables, rebalancing=kw.pop("rebalancing", False),
                           rebalancing_count=1, should_stop=False, crashed=False, **kw), src


def test_readiness_rules():
    app, _ = fake_app()
    assert health.readiness(app, health.WorkerState()) == (False, {
        "rebalances": 1, "status": "not ready", "reason": "waiting for partition assignment (joining group)"})
    assigned = health.WorkerState(assignments=1)
    ok, body = health.readiness(fake_app(rebalancing=True)[0], assigned)
    assert not ok and body["reason"] == "rebalancing"
    ok, body = health.readiness(fake_app(actives_ready=False)[0], assigned)
    assert not ok and body["changelog_messages_remaining"] == 42 and "recovering" in body["reason"]
    ok, body = health.readiness(app, assigned)
    assert ok and body == {"rebalances": 1, "status": "ready", "partitions": 1}  # the changelog is not counted


def test_consumer_lags_skip_changelogs():
    app, src = fake_app()
    assert health.consumer_lags(app) == {("p.ocop.events.supply", 0): 3}
    health.refresh_gauges(app, health.WorkerState(assignments=1))
    assert value("ocop_consumer_lag", topic="p.ocop.events.supply", partition="0") == 3
    assert value("ocop_worker_ready") == 1 and value("ocop_worker_assigned_partitions") == 1
    obs.CONSUMER_LAG.clear()
