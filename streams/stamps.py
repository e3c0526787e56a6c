"""The stamps agent: package events and extra stamp requests -> one stamp-range event each on ``ocop.stamps``.

The range also goes to the lot's inbox so the record lists it (and the rules check stamps against units packaged).
"""

from __future__ import annotations

import faust
import orjson

from ocop_trace import observability as obs
from ocop_trace.config import Settings
from schemas import codec, topics
from schemas.events import decode_event
from schemas.codec import CodecError
from schemas.validation import Invalid, validate
from streams.app import json_table
from streams import stamping
from streams.accept import dlq_entry
from streams.validate import dead_letter, source_of


def register(app: faust.App, settings: Settings, t) -> None:
    prefix = settings.topic_prefix
    accepted_name, requests_name = topics.ACCEPTED.full(prefix), topics.STAMP_REQUESTS.full(prefix)
    out, inbox = t[topics.STAMPS], t.inbox
    range_codec, request_codec = codec.codec(codec.STAMP_RANGE), codec.codec(codec.STAMP_REQUEST)
    key_id = settings.stamp_active_key
    state = json_table(app, "stamp-state", settings.partitions)

    @app.agent(t.raw(accepted_name, requests_name), name="stamps")
    async def stamps_agent(stream):
        async for event in stream.events():
            if event.message.topic == accepted_name:
                ev = decode_event(event.value)
                if ev["event_type"] != "package":
                    continue
                lot = ev["payload"]["lot"]
                st = state.get(lot) or stamping.new_state()
                ranges = stamping.on_package(st, ev, key_id)
            else:
                try:
                    req = request_codec.decode(event.value)
                    validate(codec.STAMP_REQUEST, req)
                except CodecError as e:
                    src = source_of(event)
                    await dead_letter(t, src, dlq_entry(src, e.kind, e.reason))
                    continue
                except Invalid as e:
                    src = source_of(event)
                    await dead_letter(t, src, dlq_entry(src, "invalid", e.reason, e.field))
                    continue
                lot = req["lot"]
                st = state.get(lot) or stamping.new_state()
                ranges = stamping.issue(st, {"request_id": req["request_id"], "lot": lot, "count": req["count"],
                                             "at": req["requested_at"]}, key_id)
            for rng in ranges:
                await out.send(key=lot.encode(), value=range_codec.encode(rng))
                obs.stamp_range_issued(rng)
                await inbox.send(key=lot.encode(), value=orjson.dumps({"kind": "stamps", "range": rng}))
            state[lot] = st
