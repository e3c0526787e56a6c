"""Reading catalog topics in tests: decoded values, latest per key, waiting on conditions with a deadline."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from schemas import codec
from tests.helpers import wait_until


def read_all(bootstrap: str, topic: str, schema: str | None = None, timeout_ms: int = 1500) -> list[tuple]:
    """Every message of a topic as (key, value) — value decoded with ``schema`` if given, else raw bytes."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=timeout_ms)
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out = []
        while any(c.position(tp) < end[tp] for tp in tps):
            for tp, msgs in c.poll(timeout_ms=timeout_ms, max_records=5000).items():
                for m in msgs:
                    out.append((m.key, codec.codec(schema).decode(m.value) if schema else m, ))
        return out
    finally:
        c.close()


def latest(bootstrap: str, topic: str, schema: str) -> dict[str, dict]:
    """The latest value per key (a compacted topic as a table)."""
    return {k.decode(): v for k, v in read_all(bootstrap, topic, schema)}


def wait_for(fn, timeout: float, message: str, interval: float = 0.3):
    """Call ``fn`` until it returns a truthy value; fail with ``message`` (and the last value) at the deadline."""
    return wait_until(fn, timeout, interval=interval, message=message)
