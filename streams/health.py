"""The worker's operations endpoints on faust's own web server (``settings.worker_web_port``):

* ``GET /healthz`` — 200 while the process runs (liveness);
* ``GET /readyz`` — 200 once this worker has had its partitions assigned, the rebalance is over and its tables are
  recovered (faust: the ``on_partitions_assigned`` signal has fired, ``app.rebalancing`` is False and
  ``app.tables.actives_ready`` is True — the same moment faust logs "Worker ready"); otherwise 503 with a JSON
  ``reason``. A worker that got no partitions (more workers than partitions) is ready and idle: ``partitions: 0``;
* ``GET /metrics`` — the Prometheus exposition (:mod:`ocop_trace.observability`), consumer lag computed at scrape
  time from the consumer's highwater and committed offsets of each assigned source partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from ocop_trace import observability as obs
from ocop_trace.config import Settings


@dataclass
class WorkerState:
    """What the worker's signals told us (faust keeps the first assignment in a private attribute only)."""

    assignments: int = 0  # on_partitions_assigned signals received
    last_assigned: set = field(default_factory=set)


def source_partitions(app: Any) -> set:
    """The assigned partitions this worker consumes (changelog partitions, used for recovery, left out)."""
    try:
        assigned = set(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - consumer not started yet
        return set()
    try:
        changelogs = set(app.tables.changelog_topics)
    except Exception:  # noqa: BLE001
        changelogs = set()
    return {tp for tp in assigned if tp.topic not in changelogs}


def readiness(app: Any, state: WorkerState) -> tuple[bool, dict]:
    """(ready, JSON body) from the app's rebalance and recovery state."""
    body: dict[str, Any] = {"rebalances": int(getattr(app, "rebalancing_count", 0) or 0)}
    if getattr(app, "should_stop", False) or getattr(app, "crashed", False):
        return False, {**body, "status": "not ready", "reason": "the worker is stopping"}
    if state.assignments == 0:
        return False, {**body, "status": "not ready", "reason": "waiting for partition assignment (joining group)"}
    if getattr(app, "rebalancing", False):
        return False, {**body, "status": "not ready", "reason": "rebalancing"}
    tables = app.tables
    if not getattr(tables, "actives_ready", False):
        remaining = None
        try:
            remaining = int(tables.recovery.active_remaining_total())
        except Exception:  # noqa: BLE001
            pass
        return False, {**body, "status": "not ready", "reason": "recovering tables from their changelogs",
                       "changelog_messages_remaining": remaining}
    return True, {**body, "status": "ready", "partitions": len(source_partitions(app))}


def consumer_lags(app: Any) -> dict[tuple[str, int], int | None]:
    """``{(topic, partition): lag}`` for the source partitions assigned to this worker."""
    consumer = app.consumer
    committed = getattr(consumer, "_committed_offset", {})  # faust keeps no public accessor for these
    read = getattr(consumer, "_read_offset", {})
    out: dict[tuple[str, int], int | None] = {}
    for tp in source_partitions(app):
        try:
            hw = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - partition just revoked / not fetched yet
            hw = None
        out[(tp.topic, tp.partition)] = obs.partition_lag(hw, committed.get(tp), read.get(tp))
    return out


def refresh_gauges(app: Any, state: WorkerState) -> None:
    ready, _ = readiness(app, state)
    obs.WORKER_READY.set(1 if ready else 0)
    obs.WORKER_PARTITIONS.set(len(source_partitions(app)))
    try:
        obs.set_lag(obs.CONSUMER_LAG, consumer_lags(app))
    except Exception:  # noqa: BLE001 - the consumer is not started yet
        obs.CONSUMER_LAG.clear()


def register(app: faust.App, settings: Settings) -> WorkerState:
    """Add /healthz, /readyz and /metrics to the worker's web server (called by :func:`streams.app.create_app`)."""
    state = WorkerState()

    async def on_assigned(sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        state.assignments += 1
        state.last_assigned = set(assigned or ())

    app.on_partitions_assigned.connect(on_assigned)
    app._ocop_health = (state, on_assigned)  # type: ignore[attr-defined]  # strong refs, and reachable for tests

    @app.page("/healthz", name="ocop-healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz", name="ocop-readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready, body = readiness(app, state)
        return web.json(body, status=200 if ready else 503)

    @app.page("/metrics", name="ocop-metrics")
    async def metrics(web: Any, request: Any) -> Any:
        refresh_gauges(app, state)
        body, ctype = obs.exposition()
        return web.bytes(body, headers={"Content-Type": ctype, "Cache-Control": "no-store"})

    return state
