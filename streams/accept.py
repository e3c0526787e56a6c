"""Acceptance of a raw input message: decode + validate, or a dead-letter entry saying why. Pure; shared with the auditor."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

from schemas import topics
from schemas.codec import CodecError
from schemas.events import MASTER_TYPES, SUPPLY_TYPES, decode_event, event_key, validate_event
from schemas.validation import Invalid


class Source(NamedTuple):
    """One raw input message (immutable; a named tuple: a third of the cost of a frozen dataclass per message)."""

    topic: str  # full topic name
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def dlq_entry(src: Source, error: str, reason: str, field: str | None = None, failed_at: str | None = None) -> dict:
    return {
        "original_key": src.key,
        "original_value": src.value,
        "headers": [{"key": k, "value": v} for k, v in src.headers],
        "source_topic": src.topic,
        "source_partition": src.partition,
        "source_offset": src.offset,
        "error": error,
        "field": field,
        "reason": reason,
        "failed_at": failed_at or _now(),
    }


def accept(src: Source, spec: topics.TopicSpec) -> tuple[dict | None, dict | None]:
    """``(event, None)`` for a valid event on its right topic, else ``(None, dlq entry)``."""
    try:
        ev = decode_event(src.value)
    except CodecError as e:
        return None, dlq_entry(src, e.kind, e.reason)
    try:
        validate_event(ev)
    except Invalid as e:
        return None, dlq_entry(src, "invalid", e.reason, e.field)
    allowed = MASTER_TYPES if spec is topics.MASTER else SUPPLY_TYPES
    if ev["event_type"] not in allowed:
        return None, dlq_entry(src, "wrong_topic", f"a {ev['event_type']} event does not belong on {spec.name}",
                               "event_type")
    key = src.key.decode("utf-8", "replace") if src.key is not None else None
    if key != event_key(ev):
        return None, dlq_entry(src, "invalid", f"message key {key!r} is not the event's key {event_key(ev)!r}", "key")
    return ev, None
