"""The validate agent: every input message is accepted onto ``ocop.events.accepted`` or dead-lettered with a reason."""

from __future__ import annotations

import logging

import faust

from ocop_trace import observability as obs
from ocop_trace.config import Settings
from schemas import codec, topics
from schemas.events import encode_event
from streams.accept import Source, accept

log = logging.getLogger("ocop.validate")


def source_of(event) -> Source:
    msg = event.message
    return Source(msg.topic, msg.partition, msg.offset, msg.key, msg.value, tuple((k, v) for k, v in (msg.headers or [])))


async def dead_letter(t, src: Source, bad: dict) -> None:
    log.warning("dead-lettered %s/%d@%d: %s (%s)", src.topic, src.partition, src.offset, bad["reason"], bad["field"],
                extra=obs.dead_lettered(bad))
    await t[topics.DLQ].send(key=src.key, value=codec.codec(codec.DLQ_ENTRY).encode(bad))


def register(app: faust.App, settings: Settings, t) -> None:
    prefix = settings.topic_prefix
    spec_of = {spec.full(prefix): spec for spec in topics.INPUTS}
    accepted = t[topics.ACCEPTED]

    @app.agent(t.raw(*spec_of), name="validate")
    async def validate_agent(stream):
        async for event in stream.events():
            src = source_of(event)
            ev, bad = accept(src, spec_of[src.topic])
            if ev is not None:
                await accepted.send(key=src.key, value=encode_event(ev))
                obs.event_processed(ev)
            else:
                await dead_letter(t, src, bad)
