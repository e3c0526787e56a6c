"""The web process: ``create_app(settings)`` composes the HTTP intake API (and the scan web when present) into one
FastAPI app; ``ocop-trace serve`` runs it with uvicorn.

* ``/api/v1/...``, ``/epcis/...`` — the intake API (:mod:`producers.api`), behind per-subject tokens;
* ``/healthz`` — liveness (the scan web's, with its database check, when present; neither needs Kafka: the
  producer is created on the first event);
* ``/readyz`` — readiness: 200 once the read side answers with its schema migrated and the intake database
  answers, else 503 with the reason;
  ``/metrics`` — Prometheus (request latency by route template, scan verdicts, intake outcomes);
* ``/docs``, ``/openapi.json`` — the OpenAPI docs, request bodies generated from the Avro schemas;
* the scan web (``consumers.web.app.scan_router(settings)``), included when that module exists.

Every request body is limited to ``settings.max_body_bytes`` (413) by :class:`producers.api.BodyLimitMiddleware`.
"""

from __future__ import annotations

import gc
import importlib
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator

import typer

from ocop_trace import observability
from ocop_trace.config import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("ocop.server")


def _scan_router(settings: Settings, producer: Any = None) -> Any | None:
    """``consumers.web.app.scan_router(settings, producer=producer)`` if the scan web is installed, else None
    (the scan web opens its own read-side store on ``settings.sqlalchemy_url`` and sends scans with ``producer``)."""
    try:
        module = importlib.import_module("consumers.web.app")
    except ModuleNotFoundError as e:
        if e.name not in ("consumers.web.app", "consumers.web", "consumers"):
            raise  # the scan web exists but one of its own imports is missing: say so
        return None
    factory = getattr(module, "scan_router", None)
    return factory(settings, producer=producer) if factory else None


def create_app(settings: Settings | None = None, *, producer: Any = None, freeze_gc: bool = False) -> FastAPI:
    """The whole web app. ``producer``: an EventProducer-like object; default one created lazily from settings.

    ``freeze_gc`` (what ``ocop-trace serve`` uses): at start-up, after a full collection, move every object alive
    (modules, classes, the app: ~120,000 objects) out of the garbage collector's reach (``gc.freeze``), so that its
    occasional full collections, which stop every request of the process, walk only what was created since."""
    from fastapi import FastAPI

    from producers.api import BodyLimitMiddleware, LazyProducer, install_error_handlers, intake_router

    settings = settings or get_settings()
    owned = producer is None
    if owned:
        def factory() -> Any:
            from producers.client import EventProducer

            return EventProducer(settings, client_id="ocop-trace-http", linger_ms=0)

        producer = LazyProducer(factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if freeze_gc:
            gc.collect()
            gc.freeze()
        yield
        if owned:
            producer.close()
        intake.store.close()

    app = FastAPI(
        title="OCOP trace — intake API",
        version="1.0",
        description="Truy xuất nguồn gốc sản phẩm OCOP. Master data, supply-chain events and EPCIS 2.0 capture "
                    "onto Kafka. Authenticate with `Authorization: Bearer <token>` (`ocop-trace token create`).",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    # ---- scan web (consumers/web, written separately): included here when it exists -------------------------
    # first: routes are matched in order and the resolver takes most of the traffic (no path overlaps the API's)
    scan = _scan_router(settings, producer)
    if scan is not None:
        app.include_router(scan)
    # ------------------------------------------------------------------------------------------------------------

    router = intake_router(settings, producer)
    intake = router.intake  # type: ignore[attr-defined]
    app.include_router(router)
    app.state.intake = intake
    app.state.settings = settings

    if not any(getattr(r, "path", None) == "/healthz" for r in app.routes):  # the scan web has a fuller one
        @app.get("/healthz", tags=["ops"], summary="Liveness")
        def healthz() -> dict:
            return {"status": "ok"}

    # the resolver's routes take no body (GET/HEAD): they skip the body buffering
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       exempt_prefixes=("/01", "/gtin", "/ping") if scan is not None else ())
    # /metrics, /readyz (the databases answer) and the latency middleware, outermost (ocop_trace/observability.py)
    observability.install_web(app, {"read_side": getattr(scan, "store", None), "intake": intake.store.engine})
    return app


def served_app() -> FastAPI:
    """The app as ``ocop-trace serve`` runs it (uvicorn's factory in each worker process)."""
    return create_app(freeze_gc=True)


def serve_command(
    host: str = typer.Option(None, "--host", help="Interface to listen on (default: settings.web_host)."),
    port: int = typer.Option(None, "--port", help="Port (default: settings.web_port)."),
    workers: int = typer.Option(1, "--workers", help="uvicorn worker processes (one per core: 2 on a 2-core box)."),
    log_level: str = typer.Option("info", "--log-level"),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log",
                                    help="One log line per request (/metrics has the latency by route anyway)."),
) -> None:
    """Run the web app: HTTP intake API, EPCIS capture, scan pages / Chạy máy chủ web.

    uvicorn picks uvloop and httptools (dependencies) over asyncio + h11 when they are installed.
    Each worker process keeps its own scan cache and its own Prometheus counters."""
    import uvicorn

    s = get_settings()
    host = host or s.web_host
    port = port or s.web_port
    log_config = observability.logging_config(s.log_json, log_level)  # JSON lines with OCOP_LOG_JSON=1
    typer.echo(f"ocop-trace web on http://{host}:{port} (docs: /docs), {workers} worker(s)", err=True)
    if workers > 1:
        uvicorn.run("ocop_trace.server:served_app", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, log_config=log_config, access_log=access_log)
    else:
        uvicorn.run(create_app(s, freeze_gc=True), host=host, port=port, log_level=log_level, log_config=log_config,
                    access_log=access_log)
