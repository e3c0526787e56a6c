"""Operations: the Prometheus metrics (every name defined here, once), structured logging, and the web app's
``/metrics`` + ``/readyz`` with a latency middleware. The worker's health views are in :mod:`streams.health`.

Metrics (``prometheus_client``'s default registry; each process exposes its own):

* worker — ``ocop_events_processed_total{event_type}`` (input events accepted by the validate agent),
  ``ocop_dlq_entries_total{error,reason_class}``, ``ocop_alerts_raised_total{rule,state}`` (alerts published:
  rule flags ``open``/``resolved``, recalls, suspicious copies), ``ocop_records_published_total``,
  ``ocop_stamps_issued_total`` / ``ocop_stamp_ranges_issued_total``, ``ocop_consumer_lag{topic,partition}``
  (set at scrape time), ``ocop_worker_ready``, ``ocop_worker_assigned_partitions``;
* web — ``ocop_http_request_duration_seconds{method,route,status}`` (route *template*, never the raw path),
  ``ocop_scan_verdicts_total{verdict}``, ``ocop_http_intake_total{outcome}``;
* sink — ``ocop_sink_messages_total{outcome}`` (``applied`` = rows changed), ``ocop_sink_batches_total``,
  ``ocop_sink_lag{topic,partition}``.

Counters on the worker count *effects sent*: processing is at-least-once, so after a crash a redelivered message is
counted again (the effect itself is idempotent). Labels are bounded: reasons are reduced to a small class
(:func:`reason_class`), routes to their template.

Logging (:func:`setup_logging`, :func:`logging_config`): plain text by default, JSON lines with ``OCOP_LOG_JSON=1``
(``settings.log_json``): ``ts``, ``level``, ``logger``, ``message`` and, when the call passes them in ``extra=``,
``event_id``, ``lot``, ``key``, ``topic``, ``partition``, ``offset``, ``error``, ``field``, ``reason``. The text format
appends the same fields as ``key=value``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # no ``*_created`` twin of every counter: half the scrape, nothing an alert needs

# ------------------------------------------------------------------------------------------------------------------
# metrics: the one place their names are spelled
# ------------------------------------------------------------------------------------------------------------------

# worker
EVENTS_PROCESSED = Counter("ocop_events_processed", "Input events accepted by the validate agent, by event type.",
                           ["event_type"])
DLQ_ENTRIES = Counter("ocop_dlq_entries", "Messages dead-lettered onto ocop.dlq, by error kind and reason class.",
                      ["error", "reason_class"])
ALERTS_RAISED = Counter("ocop_alerts_raised", "Alerts published on ocop.alerts, by rule and state "
                                              "(open, resolved).", ["rule", "state"])
RECORDS_PUBLISHED = Counter("ocop_records_published", "Lot records published on ocop.records (digest changed).")
STAMPS_ISSUED = Counter("ocop_stamps_issued", "Stamps (serials) in the stamp ranges published on ocop.stamps.")
STAMP_RANGES_ISSUED = Counter("ocop_stamp_ranges_issued", "Stamp ranges published on ocop.stamps.")
CONSUMER_LAG = Gauge("ocop_consumer_lag", "Messages behind the log end (highwater - committed offset) per source "
                                          "partition assigned to this worker; set at scrape time.",
                     ["topic", "partition"])
WORKER_READY = Gauge("ocop_worker_ready", "1 when partitions are assigned and tables recovered (see /readyz).")
WORKER_PARTITIONS = Gauge("ocop_worker_assigned_partitions", "Source partitions (not changelogs) assigned to this "
                                                            "worker.")

# web
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_LATENCY = Histogram("ocop_http_request_duration_seconds", "HTTP request latency by method, route template "
                                                                "and status.", ["method", "route", "status"],
                         buckets=LATENCY_BUCKETS)
SCAN_VERDICTS = Counter("ocop_scan_verdicts", "Verdicts the scan resolver computed, by verdict.", ["verdict"])
HTTP_INTAKE = Counter("ocop_http_intake", "HTTP intake requests (POST /api/..., /epcis/...): accepted (2xx), "
                                          "rejected (4xx), error (5xx).", ["outcome"])

# sink
SINK_MESSAGES = Counter("ocop_sink_messages", "Messages the sink handled, by outcome (applied = rows changed; "
                                              "unchanged, invalid, rejected).", ["outcome"])
SINK_BATCHES = Counter("ocop_sink_batches", "Batches the sink committed (rows and offsets in one transaction).")
SINK_LAG = Gauge("ocop_sink_lag", "Messages behind the log end per partition the sink reads.", ["topic", "partition"])

METRIC_NAMES = ("ocop_events_processed_total", "ocop_dlq_entries_total", "ocop_alerts_raised_total",
                "ocop_records_published_total", "ocop_stamps_issued_total", "ocop_stamp_ranges_issued_total",
                "ocop_consumer_lag", "ocop_worker_ready", "ocop_worker_assigned_partitions",
                "ocop_http_request_duration_seconds", "ocop_scan_verdicts_total", "ocop_http_intake_total",
                "ocop_sink_messages_total", "ocop_sink_batches_total", "ocop_sink_lag")


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4


# --- reason classes: bounded labels for DLQ reasons ------------------------------------------------------------
_REASONS: tuple[tuple[str, re.Pattern], ...] = tuple((name, re.compile(rx)) for name, rx in (
    ("header", r"missing or bad header"),
    ("schema_mismatch", r"^message is a .*, expected"),
    ("unknown_schema", r"unknown schema fingerprint"),
    ("corrupt", r"corrupt Avro body|trailing bytes"),
    ("key_mismatch", r"^message key .* is not the event's key"),
    ("wrong_topic", r"does not belong on"),
    ("required", r"is required"),
    ("unknown_field", r"^unknown field"),
    ("enum", r"is not one of"),
    ("type", r"^must be (a list|a mapping|an object|\w+, got)|^must be a finite number"),
    ("range", r"^must be [≥≤]|out of range"),
    ("too_few", r"^needs at least"),
    ("future", r"in the future"),
    ("order", r"must not be before|both an input and an output"),
    ("gtin", r"check digit|8, 12, 13 or 14 digits"),
    ("format", r"^must be a (UUID|date)|ISO 8601|GS1 set|printable characters|must not be empty|too long"),
))


def reason_class(error: str | None, reason: str | None) -> str:
    """A small, fixed vocabulary for a dead-letter reason (``other`` when nothing matches)."""
    text = reason or ""
    for name, rx in _REASONS:
        if rx.search(text):
            return name
    return "other" if error not in ("undecodable", "unknown_schema") else str(error)


# --- worker hooks (one call at each site in the agents) -----------------------------------------------------------
def event_processed(ev: Mapping[str, Any]) -> None:
    EVENTS_PROCESSED.labels(str(ev.get("event_type") or "unknown")).inc()


def dead_lettered(entry: Mapping[str, Any]) -> dict:
    """Count a DLQ entry; returns the ``extra=`` for its log line (source position and, when the bytes decode to an
    event, its ``event_id`` and ``lot``)."""
    error = str(entry.get("error") or "unknown")
    DLQ_ENTRIES.labels(error, reason_class(error, entry.get("reason"))).inc()
    extra = {"topic": entry.get("source_topic"), "partition": entry.get("source_partition"),
             "offset": entry.get("source_offset"), "error": entry.get("error"), "field": entry.get("field"),
             "reason": entry.get("reason")}
    extra.update(event_context(entry.get("original_value"), entry.get("original_key")))
    return extra


def event_context(value: bytes | None, key: bytes | None = None) -> dict:
    """``{"event_id", "lot"/"key"}`` of a raw message as far as it decodes (for log lines about a bad message)."""
    out: dict[str, Any] = {}
    if key is not None:
        out["key"] = key.decode("utf-8", "replace")
    if not value:
        return out
    try:
        from schemas.events import decode_event

        ev = decode_event(value)
    except Exception:  # noqa: BLE001 - undecodable: the position is all there is
        return out
    if isinstance(ev, dict):
        if ev.get("event_id"):
            out["event_id"] = ev["event_id"]
        lot = (ev.get("payload") or {}).get("lot") if isinstance(ev.get("payload"), dict) else None
        if lot:
            out["lot"] = lot
    return out


def alert_published(alert: Mapping[str, Any]) -> Mapping[str, Any]:
    """Count an alert about to be published; returns it (so it can wrap the value being encoded)."""
    ALERTS_RAISED.labels(str(alert.get("rule") or "unknown"), str(alert.get("state") or "open")).inc()
    return alert


def record_published() -> None:
    RECORDS_PUBLISHED.inc()


def stamp_range_issued(rng: Mapping[str, Any]) -> None:
    STAMP_RANGES_ISSUED.inc()
    STAMPS_ISSUED.inc(int(rng.get("count") or 0))


def partition_lag(highwater: int | None, committed: int | None, read: int | None = None) -> int | None:
    """Messages behind the log end: ``highwater`` (next offset to be written) minus the committed position (next
    offset to read); without a commit, the last read offset + 1; with neither, the whole partition. None if the
    highwater is not known yet."""
    if highwater is None:
        return None
    pos = committed if committed is not None else (read + 1 if read is not None else 0)
    return max(0, highwater - pos)


def set_lag(gauge: Gauge, lags: Mapping[tuple[str, int], int | None]) -> None:
    """Replace the gauge's series with ``lags`` (partitions no longer assigned disappear)."""
    gauge.clear()
    for (topic, partition), lag in sorted(lags.items()):
        if lag is not None:
            gauge.labels(topic, str(partition)).set(lag)


# --- web hooks -------------------------------------------------------------------------------------------------
def verdict_seen(verdict: Any) -> None:
    """Count a verdict computed by the scan resolver (``verdict.code``; None: nothing)."""
    code = getattr(verdict, "code", None)
    if code:
        SCAN_VERDICTS.labels(code).inc()


# --- sink hooks ------------------------------------------------------------------------------------------------
SINK_LAG_EVERY = 5.0  # seconds between end-offset requests
_sink_lag_at: dict[int, float] = {}


def sink_batch(stats: Any) -> None:
    """Count one applied batch (a :class:`consumers.sink.Stats`)."""
    SINK_BATCHES.inc(getattr(stats, "batches", 1) or 1)
    for outcome in ("applied", "unchanged", "invalid", "rejected"):
        n = getattr(stats, outcome, 0)
        if n:
            SINK_MESSAGES.labels(outcome).inc(n)


def sink_lag(sink: Any, *, every: float = SINK_LAG_EVERY) -> None:
    """Refresh ``ocop_sink_lag`` from a :class:`consumers.sink.Sink`'s consumer (at most every ``every`` s; called
    from the sink's own thread, as its consumer is not thread-safe). Never raises."""
    now = time.monotonic()
    if now - _sink_lag_at.get(id(sink), -1e9) < every:
        return
    _sink_lag_at[id(sink)] = now
    try:
        assigned = list(getattr(sink, "_assigned", []) or [])
        if not assigned or getattr(sink, "_resync", False):
            return
        consumer = sink.consumer
        ends = consumer.end_offsets(assigned)
        set_lag(SINK_LAG, {(tp.topic, tp.partition): partition_lag(ends.get(tp), consumer.position(tp))
                           for tp in assigned})
    except Exception as e:  # noqa: BLE001 - a metric must never break the sink
        logging.getLogger("ocop.sink").debug("sink lag not measured: %s", e)


# ------------------------------------------------------------------------------------------------------------------
# logging
# ------------------------------------------------------------------------------------------------------------------
EXTRA_FIELDS = ("event_id", "lot", "key", "topic", "partition", "offset", "error", "field", "reason")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _extras(record: logging.LogRecord) -> dict:
    return {k: getattr(record, k) for k in EXTRA_FIELDS if getattr(record, k, None) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ms), level, logger, message, the event fields given in ``extra=``, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` followed by `` [event_id=… topic=… …]`` when the call passed event fields."""

    def __init__(self, fmt: str | None = TEXT_FORMAT, datefmt: str | None = None, style: str = "%") -> None:
        super().__init__(fmt, datefmt, style)  # type: ignore[arg-type]

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ex = _extras(record)
        if not ex:
            return line
        ctx = " [" + " ".join(f"{k}={v}" for k, v in ex.items()) + "]"
        head, sep, rest = line.partition("\n")  # keep a traceback below the context
        return head + ctx + sep + rest


def logging_config(json_lines: bool, level: str | int = "INFO") -> dict:
    """A ``logging.config.dictConfig`` for the root logger on stderr (faust's Worker and uvicorn take it as is)."""
    lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    cls = JsonFormatter if json_lines else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"ocop": {"()": f"{cls.__module__}.{cls.__qualname__}"}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "ocop", "level": lvl,
                                 "stream": "ext://sys.stderr"}},
        "root": {"level": lvl, "handlers": ["default"]},
        "loggers": {"kafka": {"level": "WARNING"}, "aiokafka": {"level": "WARNING"}},
    }


def setup_logging(settings: Any, level: str | int = "INFO") -> None:
    """Configure the process's logging from ``settings.log_json`` (the sink, the CLI helpers)."""
    import logging.config

    logging.config.dictConfig(logging_config(bool(getattr(settings, "log_json", False)), level))


# ------------------------------------------------------------------------------------------------------------------
# the web app: /metrics, /readyz and the latency middleware
# ------------------------------------------------------------------------------------------------------------------
UNMATCHED = "<unmatched>"
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
INTAKE_PREFIXES = ("/api/", "/epcis/")


def route_template(scope: Mapping[str, Any]) -> str:
    """The matched route's template (``/01/{rest:path}``), never the raw path; ``<unmatched>`` when no route."""
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path) if path else UNMATCHED


class MetricsMiddleware:
    """Pure ASGI: observes every HTTP request's latency by method, route template and status, and counts intake
    outcomes. Add it last (outermost) so it sees the other middlewares' answers too."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 500))
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope.get("method", "GET")
            method = method if method in _METHODS else "OTHER"
            HTTP_LATENCY.labels(method, route_template(scope), str(status)).observe(time.perf_counter() - start)
            if method == "POST" and str(scope.get("path", "")).startswith(INTAKE_PREFIXES):
                HTTP_INTAKE.labels("accepted" if status < 400 else "rejected" if status < 500 else "error").inc()


def engine_check(engine: Any) -> str:
    """``ok`` if the database answers ``SELECT 1``, else the error's class name."""
    from sqlalchemy import text

    try:
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        return "ok"
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return f"error: {type(e).__name__}"


def store_check(store: Any) -> str:
    """``ok`` if a :class:`consumers.store.Store` answers and its schema is migrated (``ocop-trace db upgrade``)."""
    try:
        return "ok" if store.current_revision() else "error: no schema (run ocop-trace db upgrade)"
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return f"error: {type(e).__name__}"


def check(target: Any) -> str:
    """A readiness check of a Store (schema at some revision), an Engine (``SELECT 1``) or a callable -> str."""
    if hasattr(target, "current_revision"):
        return store_check(target)
    if hasattr(target, "connect"):
        return engine_check(target)
    return str(target())


def install_web(app: Any, databases: Mapping[str, Any] | None = None) -> None:
    """Add ``GET /metrics``, ``GET /readyz`` (200 once every database answers, see :func:`check`; else 503 naming
    the failing ones) and :class:`MetricsMiddleware` to a FastAPI app. Call after the other middlewares."""
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    checks = {name: target for name, target in (databases or {}).items() if target is not None}

    def _ready() -> dict:
        return {name: check(target) for name, target in checks.items()}

    # no return annotations: FastAPI would resolve them (strings here) into response models
    @app.get("/metrics", include_in_schema=False)
    def metrics():  # noqa: ANN202
        body, ctype = exposition()
        return Response(body, media_type=None, headers={"Content-Type": ctype, "Cache-Control": "no-store"})

    @app.get("/readyz", tags=["ops"], summary="Readiness: the databases answer")
    async def readyz():  # noqa: ANN202
        dbs = await run_in_threadpool(_ready)
        ok = all(v == "ok" for v in dbs.values())
        body = {"status": "ready" if ok else "not ready", "databases": dbs}
        if not ok:
            body["reason"] = "database not answering: " + ", ".join(k for k, v in dbs.items() if v != "ok")
        return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})

    app.add_middleware(MetricsMiddleware)


# ------------------------------------------------------------------------------------------------------------------
# a tiny HTTP server for processes without a web app (the sink): /metrics, /healthz
# ------------------------------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, ctype = exposition()
            self._send(200, body, ctype)
        elif path == "/healthz":
            self._send(200, b'{"status":"ok"}', "application/json")
        else:
            self._send(404, b'{"error":"not found"}', "application/json")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - scrapes are not worth a log line
        pass


def serve_metrics(host: str, port: int) -> ThreadingHTTPServer | None:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` from a daemon thread; returns the server, or None (with a
    warning) when the port is taken: metrics never stop the process they observe."""
    try:
        server = ThreadingHTTPServer((host, port), _Handler)
    except OSError as e:
        logging.getLogger("ocop.metrics").warning("metrics not served on %s:%d: %s", host, port, e)
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="ocop-metrics", daemon=True).start()
    return server


__all__ = [
    "ALERTS_RAISED", "CONSUMER_LAG", "DLQ_ENTRIES", "EVENTS_PROCESSED", "EXTRA_FIELDS", "HTTP_INTAKE", "HTTP_LATENCY",
    "JsonFormatter", "METRIC_NAMES", "MetricsMiddleware", "RECORDS_PUBLISHED", "SCAN_VERDICTS", "SINK_BATCHES",
    "SINK_LAG", "SINK_MESSAGES", "STAMPS_ISSUED", "STAMP_RANGES_ISSUED", "TextFormatter", "WORKER_PARTITIONS",
    "WORKER_READY", "alert_published", "check", "dead_lettered", "engine_check", "event_context", "event_processed",
    "exposition", "install_web", "logging_config", "partition_lag", "reason_class", "record_published",
    "route_template", "serve_metrics", "set_lag", "setup_logging", "sink_batch", "sink_lag",
    "stamp_range_issued", "store_check", "verdict_seen",
]
