"""Events: construction, validation, keys, canonical hashing. An event is a plain dict shaped by ``ocop.Event.avsc``."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import orjson

from schemas import codec
from schemas.validation import FUTURE_TOLERANCE, Invalid, parse_datetime, validate


@lru_cache(maxsize=1)
def payload_schemas() -> dict[str, str]:
    """event_type -> payload schema full name, read off ocop.Event.avsc (enum symbols and union branches align)."""
    raw = codec.raw_schema(codec.EVENT)
    fields = {f["name"]: f for f in raw["fields"]}
    return dict(zip(fields["event_type"]["type"]["symbols"], fields["payload"]["type"], strict=True))


def event_types() -> list[str]:
    return list(payload_schemas())


MASTER_TYPES = frozenset(t for t, s in payload_schemas().items() if s.startswith("ocop.master."))
SUPPLY_TYPES = frozenset(t for t, s in payload_schemas().items() if s.startswith("ocop.supply."))

# The field of a master payload that identifies the entity (the message key on ocop.events.master).
MASTER_ID_FIELD = {"subject": "subject_id", "area": "area_code", "product": "gtin", "rating": "gtin", "facility": "facility_id"}


def now_local(tz: str = "Asia/Ho_Chi_Minh") -> str:
    return datetime.now(ZoneInfo(tz)).isoformat(timespec="milliseconds")


def new_event(
    event_type: str,
    payload: dict,
    *,
    subject_id: str,
    user: str = "",
    facility: str | None = None,
    source: str = "cli",
    occurred_at: str | None = None,
    recorded_at: str | None = None,
    event_id: str | None = None,
    tz: str = "Asia/Ho_Chi_Minh",
) -> dict:
    recorded = recorded_at or now_local(tz)
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at": occurred_at or recorded,
        "recorded_at": recorded,
        "actor": {"subject_id": subject_id, "user": user},
        "facility": facility,
        "source": source,
        "schema_version": 2,
        "payload": payload,
    }


def validate_event(ev: Any) -> None:
    """Raise :class:`Invalid` (field, reason) unless ``ev`` is a well-formed event."""
    if isinstance(ev, dict) and ev.get("event_type") not in payload_schemas():
        raise Invalid("event_type", f"{ev.get('event_type')!r} is not one of {', '.join(payload_schemas())}")
    validate(codec.EVENT, ev)
    occurred, recorded = parse_datetime(ev["occurred_at"]), parse_datetime(ev["recorded_at"])
    if occurred > recorded + FUTURE_TOLERANCE:
        raise Invalid("occurred_at", f"is in the future ({ev['occurred_at']} is after recorded_at {ev['recorded_at']})")
    p = ev["payload"]
    if ev["event_type"] == "transform":
        ins = {x["lot"] for x in p["inputs"]}
        both = ins & {x["lot"] for x in p["outputs"]}
        if both:
            raise Invalid("payload.outputs", f"lot {sorted(both)[0]} is both an input and an output")


def encode_event(ev: dict) -> bytes:
    """Avro-encode an event (the payload branch is chosen by event_type, never guessed)."""
    tagged = dict(ev, payload=(payload_schemas()[ev["event_type"]], ev["payload"]))
    return codec.codec(codec.EVENT).encode(tagged)


def reencoded(value: bytes, ev: dict) -> bytes:
    """The event ``ev`` decoded from the message ``value``, Avro-encoded with the current schema: ``value`` itself
    when it was written with that schema (decoding checked it to the last byte), else :func:`encode_event`."""
    return value if codec.codec(codec.EVENT).is_current(value) else encode_event(ev)


def decode_event(data: bytes) -> dict:
    return codec.codec(codec.EVENT).decode(data)


def event_key(ev: dict) -> str:
    """The message key: the entity id for master data; the lot for supply events (a transform: its first output;
    a recall: its target lot or area)."""
    t, p = ev["event_type"], ev["payload"]
    if t in MASTER_ID_FIELD:
        return p[MASTER_ID_FIELD[t]]
    if t == "transform":
        return p["outputs"][0]["lot"]
    if t == "recall":
        return p["target"]
    return p["lot"]


def lots_touched(ev: dict) -> list[str]:
    """Every lot whose record an event changes (a transform touches all its inputs and outputs)."""
    t, p = ev["event_type"], ev["payload"]
    if t == "transform":
        return list(dict.fromkeys([x["lot"] for x in p["inputs"]] + [x["lot"] for x in p["outputs"]]))
    if t == "recall":
        return [p["target"]] if p["scope"] == "lot" else []
    if t in SUPPLY_TYPES:
        return [p["lot"]]
    return []


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 as is (orjson: the same bytes as json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False) for the values events hold)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def canonical_hash(ev: dict) -> str:
    """sha256 hex of the event's canonical JSON (sorted keys, no spaces, UTF-8): what the hash chains link."""
    return hashlib.sha256(canonical_json(ev)).hexdigest()


def chain_next(prev_head: str, ev: dict) -> str:
    """head = sha256(prev_head || canonical_hash(event)), both as hex text; the empty chain's head is ''."""
    return chain_link(prev_head, canonical_hash(ev))


def chain_link(prev_head: str, ehash: str) -> str:
    """:func:`chain_next` given the event's :func:`canonical_hash` (for a caller that has it already)."""
    return hashlib.sha256((prev_head + ehash).encode()).hexdigest()


def chain(events: Iterable[dict], head: str = "") -> str:
    for ev in events:
        head = chain_next(head, ev)
    return head
