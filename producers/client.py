"""The validated producer: every event is checked against its schema before it is sent, and sent durably.

kafka-python with ``acks=all`` and idempotence, so a retry after a timeout never writes a second copy.
An invalid event raises :class:`schemas.validation.Invalid` (field + reason) and nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaProducer

from ocop_trace.config import Settings
from schemas import codec, topics
from schemas.events import MASTER_TYPES, decode_event, encode_event, event_key, validate_event
from schemas.validation import validate

SOURCE_HEADER = "ocop-source"


@dataclass(frozen=True)
class Sent:
    event_id: str
    topic: str
    key: str
    partition: int
    offset: int


def topic_for(ev: dict) -> topics.TopicSpec:
    return topics.MASTER if ev["event_type"] in MASTER_TYPES else topics.SUPPLY


def canonical(ev: dict) -> dict:
    """Validate an event and return its canonical form (what Avro gives back: defaults filled in)."""
    validate_event(ev)
    return decode_event(encode_event(ev))


class EventProducer:
    """One producer per process; thread-safe (kafka-python's producer is)."""

    def __init__(self, settings: Settings, *, client_id: str = "ocop-trace-producer", linger_ms: int = 5):
        self.settings = settings
        self.prefix = settings.topic_prefix
        self._producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            retries=2**31 - 1,
            max_in_flight_requests_per_connection=5,
            key_serializer=lambda k: k.encode("utf-8") if isinstance(k, str) else k,
        )

    def send(self, ev: dict, *, wait: bool = True, timeout: float = 30.0) -> Sent | None:
        """Validate and send one event to its topic (master or supply), keyed by :func:`event_key`."""
        validate_event(ev)
        spec = topic_for(ev)
        key = event_key(ev)
        fut = self._producer.send(spec.full(self.prefix), key=key, value=encode_event(ev),
                                  headers=[(SOURCE_HEADER, ev["source"].encode())])
        if not wait:
            return None
        md = fut.get(timeout=timeout)
        return Sent(ev["event_id"], md.topic, key, md.partition, md.offset)

    def send_many(self, events, *, progress=None) -> int:
        """Validate all first (nothing is sent if one is invalid), then send and flush."""
        events = list(events)
        for ev in events:
            validate_event(ev)
        for i, ev in enumerate(events):
            self._producer.send(topic_for(ev).full(self.prefix), key=event_key(ev), value=encode_event(ev),
                                headers=[(SOURCE_HEADER, ev["source"].encode())])
            if progress and i % 200 == 0:
                progress(i)
        self._producer.flush()
        if progress:
            progress(len(events))
        return len(events)

    def send_value(self, spec: topics.TopicSpec, key: str, value: dict, *, wait: bool = True,
                   timeout: float = 30.0):
        """Validate and send a non-event value (a stamp request, a scan) to a catalog topic."""
        validate(spec.value, value)
        fut = self._producer.send(spec.full(self.prefix), key=key, value=codec.codec(spec.value).encode(value))
        return fut.get(timeout=timeout) if wait else fut

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None, headers=None):
        """Send bytes as they are (tests and the fault suite use it to inject malformed messages)."""
        return self._producer.send(topic, key=key, value=value, headers=headers or [])

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout)

    def close(self) -> None:
        self._producer.close()

    def __enter__(self) -> "EventProducer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
