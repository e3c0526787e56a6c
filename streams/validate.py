"""Admission of input messages: every one is accepted onto ``ocop.events.accepted`` or dead-lettered with a reason.

No agent of its own: the lots agent (:mod:`streams.lots`) admits the input topics' messages in its batches, so an
event is validated, published as accepted and folded into its lot in one pass (one consume instead of three).
"""

from __future__ import annotations

import logging

from ocop_trace import observability as obs
from schemas import codec, topics
from schemas.events import reencoded
from streams.accept import Source, accept

log = logging.getLogger("ocop.validate")


def source_of(event) -> Source:
    msg = event.message
    return Source(msg.topic, msg.partition, msg.offset, msg.key, msg.value, tuple((k, v) for k, v in (msg.headers or [])))


async def dead_letter(t, src: Source, bad: dict) -> None:
    log.warning("dead-lettered %s/%d@%d: %s (%s)", src.topic, src.partition, src.offset, bad["reason"], bad["field"],
                extra=obs.dead_lettered(bad))
    await t.send(topics.DLQ, src.key, codec.codec(codec.DLQ_ENTRY).encode(bad))


async def admit(t, event, spec: topics.TopicSpec) -> dict | None:
    """Accept an input message (publish it on ``ocop.events.accepted``, return the event) or dead-letter it."""
    src = source_of(event)
    ev, bad = accept(src, spec)
    if ev is None:
        await dead_letter(t, src, bad)
        return None
    await t.send(topics.ACCEPTED, src.key, reencoded(src.value, ev))
    obs.event_processed(ev)
    return ev
