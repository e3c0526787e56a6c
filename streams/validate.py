"""The validate agent: every input message is accepted onto ``ocop.events.accepted`` or dead-lettered with a reason."""

from __future__ import annotations

import logging

import faust

from ocop_trace.config import Settings
from schemas import codec, topics
from schemas.events import encode_event
from streams.accept import Source, accept

log = logging.getLogger("ocop.validate")


def register(app: faust.App, settings: Settings, t) -> None:
    prefix = settings.topic_prefix
    spec_of = {spec.full(prefix): spec for spec in topics.INPUTS}
    accepted, dlq = t[topics.ACCEPTED], t[topics.DLQ]
    dlq_codec = codec.codec(codec.DLQ_ENTRY)

    @app.agent(t.raw(*spec_of), name="validate")
    async def validate_agent(stream):
        async for event in stream.events():
            msg = event.message
            src = Source(msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                         tuple((k, v) for k, v in (msg.headers or [])))
            ev, bad = accept(src, spec_of[msg.topic])
            if ev is not None:
                await accepted.send(key=msg.key, value=encode_event(ev))
            else:
                log.warning("dead-lettered %s/%d@%d: %s (%s)", msg.topic, msg.partition, msg.offset,
                            bad["reason"], bad["field"])
                await dlq.send(key=msg.key, value=dlq_codec.encode(bad))
