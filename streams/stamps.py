"""Stamp issuing in the lots agent: a package event or an extra stamp request -> stamp ranges on ``ocop.stamps``.

The lots agent calls these for its own partition (the stamp state is keyed by lot, co-partitioned with the lot's
state); the pure rules are :mod:`streams.stamping`. A range is returned so that the agent adds it to the lot's facts
at once (the record lists it; the rules check stamps against units packaged).
"""

from __future__ import annotations

from ocop_trace import observability as obs
from schemas import codec, topics
from schemas.codec import CodecError
from schemas.validation import Invalid, validate
from streams import stamping
from streams.accept import dlq_entry
from streams.app import lookup
from streams.validate import source_of

_range_codec, _request_codec = codec.codec(codec.STAMP_RANGE), codec.codec(codec.STAMP_REQUEST)


def decode_request(event) -> tuple[dict | None, dict | None]:
    """``(request, None)`` for a valid stamp request message, else ``(None, dlq entry)``."""
    try:
        req = _request_codec.decode(event.value)
        validate(codec.STAMP_REQUEST, req)
    except CodecError as e:
        return None, dlq_entry(source_of(event), e.kind, e.reason)
    except Invalid as e:
        return None, dlq_entry(source_of(event), "invalid", e.reason, e.field)
    return {"request_id": req["request_id"], "lot": req["lot"], "count": req["count"], "at": req["requested_at"]}, None


async def issue(t, table, lot: str, key_id: str, *, package: dict | None = None, request: dict | None = None) -> list[dict]:
    """Issue what a package event (``package``) or a request (``request``) asks for; publish the ranges."""
    st = lookup(table, lot) or stamping.new_state()
    ranges = stamping.on_package(st, package, key_id) if package is not None else stamping.issue(st, request, key_id)
    for rng in ranges:
        await t.send(topics.STAMPS, lot.encode(), _range_codec.encode(rng))
        obs.stamp_range_issued(rng)
    table[lot] = st
    return ranges
