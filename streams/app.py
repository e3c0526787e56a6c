"""The faust App and its settings. Agents live in their own modules and register on the app here.

Every topic name comes from the catalog (with the settings' prefix); all topics carry raw bytes (Avro through
``schemas.codec`` on the catalog topics, JSON on the internal lot inbox) so the wire format is ours, not faust's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
import weakref
from functools import lru_cache

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.streams import _current_event
from faust.types import FutureMessage

from ocop_trace.config import Settings
from schemas import topics


@dataclass
class Topics:
    """The faust topic objects of the catalog, for one settings' prefix."""

    app: faust.App
    settings: Settings
    #: the table changelog writes of the message being processed (see :class:`OutboxTable`)
    outbox: list[FutureMessage] = field(default_factory=list)

    def __getitem__(self, spec: topics.TopicSpec) -> faust.TopicT:
        return self.raw(spec.full(self.settings.topic_prefix), partitions=spec.partitions or self.settings.partitions)

    def raw(self, *names: str, partitions: int | None = None) -> faust.TopicT:
        return self.app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw",
                              value_serializer="raw", partitions=partitions or self.settings.partitions)

    async def send(self, spec: topics.TopicSpec, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Hand a message to the worker's producer, past faust's Topic/Channel layers (they cost more CPU per
        message than the rest of the work). It is faust's own aiokafka producer, so the producer flush faust does
        before every offset commit covers these messages too. A keyed message's partition is the one the producer
        would pick (:func:`partition_of`: cached, where the producer hashes every message again)."""
        if partition is None and key is not None:
            partition = partition_of(key, spec.partitions or self.settings.partitions)
        await self.app.producer.send(spec.full(self.settings.topic_prefix), key, value, partition, None, None)

    async def each(self, stream: faust.StreamT) -> AsyncIterator[faust.EventT]:
        """The events of an agent's stream, one at a time (faust acks one when the agent asks for the next)."""
        async for event in self._sent_before_ack(stream.events()):
            yield event

    async def batches(self, stream: faust.StreamT, max_: int, within: float) -> AsyncIterator[list[faust.EventT]]:
        """The events of an agent's stream in batches: what arrived within ``within`` seconds, at most ``max_``
        (faust's ``take_events``: it acks a batch's events when the agent asks for the next batch)."""
        async for events in self._sent_before_ack(stream.take_events(max_, within)):
            yield events

    async def _sent_before_ack(self, items: AsyncIterator) -> AsyncIterator:
        """Before asking for the next item (which acks this one), hand the table writes made for this one to the
        producer, so that the flush faust does before committing an offset covers them."""
        outbox = self.outbox
        async for item in items:
            yield item
            if outbox:
                pending, outbox[:] = outbox[:], []
                for fut in pending:
                    await fut.message.channel.publish_message(fut, wait=False)


class OutboxTable(faust.Table):
    """A faust table whose changelog writes wait in the worker's outbox (:meth:`Topics.each` sends them) instead of
    faust's producer buffer. faust's buffer is drained by a background task, and its flush before an offset commit
    gives up after 0.1 s without progress (a lot's state often waits for the previous batch of its partition): an
    offset could be committed while the table writes it covers were still in the buffer, and after a SIGKILL the
    state recovered from the changelog could be older than the committed input. Here a message is acked only once
    its writes are in the producer."""

    outbox: list[FutureMessage]

    def send_changelog(self, partition, key, value, key_serializer=None, value_serializer=None) -> FutureMessage:
        fut = self.changelog_topic.as_future_message(
            key=key, value=value, partition=partition,
            key_serializer=self.key_serializer if key_serializer is None else key_serializer,
            value_serializer=self.value_serializer if value_serializer is None else value_serializer,
            callback=self._on_changelog_sent, eager_partitioning=True)
        self.outbox.append(fut)
        return fut


_partitioner = DefaultPartitioner()


@lru_cache(maxsize=1 << 16)
def partition_of(key: str | bytes, partitions: int) -> int:
    """The partition the workers' producer (aiokafka's default partitioner, murmur2 like Kafka's Java client and
    kafka-python) sends ``key`` to."""
    every = list(range(partitions))
    return _partitioner(key if isinstance(key, bytes) else key.encode(), every, every)


def make_current(event: faust.EventT) -> None:
    """Make ``event`` faust's current event in this task, as faust does for an agent iterating one event at a time:
    a table write goes to the changelog partition and the RocksDB partition of the current event, and a batch's
    writes must go to the partition of the message that caused them."""
    _current_event.set(weakref.ref(event))


def lookup(table: faust.Table, key: str):
    """``table.get(key)`` with one store read (faust's ``Table.get`` reads twice: ``key in store``, then the value)."""
    try:
        return table.data[key]
    except KeyError:
        return None


# RocksDB per table partition: small write buffers and cache (faust's defaults, 3 x 64 MiB buffers and a 2 GiB
# cache per partition, would let six partitions of one table hold > 1 GiB; measured in bench/README.md).
ROCKSDB_OPTIONS = {"write_buffer_size": 8 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20}


#: the workers' producer batch size (below the broker's default 1 MiB message.max.bytes)
PRODUCER_BATCH_BYTES = 512 << 10
#: how long the broker waits for a silent worker before it gives the worker's partitions to the others
SESSION_TIMEOUT_S = 15.0
#: how long the workers' producer waits to fill a batch
PRODUCER_LINGER_S = 0.005


def json_table(t: Topics, name: str) -> OutboxTable:
    """A table of str keys and JSON values, partitioned like the stream that writes it (written only by agents that
    iterate with :meth:`Topics.each` or :meth:`Topics.batches`)."""
    app = t.app
    rocks = str(app.conf.store).startswith("rocksdb")
    table = OutboxTable(app, name=name, default=None, beacon=app.tables.beacon, partitions=t.settings.partitions,
                        options=dict(ROCKSDB_OPTIONS) if rocks else None,
                        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"))
    table.outbox = t.outbox
    return app.tables.add(table)


async def hold_streams(app: faust.App, **_kwargs) -> None:
    """``on_rebalance_complete``: suspend flow control until faust resumes it at the end of the rebalance.

    At the end of a rebalance faust resumes the streams' partitions, seeks them to the committed offsets (a round trip
    per partition), then resumes flow control, which empties the streams' queues. Flow control is active from the
    changelog recovery, so records fetched during the seek were queued, then dropped by that emptying; the fetcher had
    moved past them, and faust's gap accounting (meant for compacted topics) then committed past them too: a restarted
    worker lost a few messages. Suspended, the fetcher holds the next record until faust resumes the flow."""
    app.flow_control.suspend()


def create_app(settings: Settings, *, agents: tuple[str, ...] = ("lots", "scans")) -> faust.App:
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.topic_prefix}{settings.app_id}",
        broker=f"kafka://{settings.bootstrap_servers}",
        store=settings.table_store,
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # a lot's state is often larger than aiokafka's default 16 KiB batch: with room for several, a write does not
        # wait for the previous batch of its partition to be acknowledged
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # a batch's sends go out in a few produce requests rather than one per send (the sender otherwise sends
        # whatever is ready every time the loop turns: most of the worker's socket writes and request encoding)
        producer_linger=PRODUCER_LINGER_S,
        broker_commit_every=1000,
        # a worker that dies without leaving the group (SIGKILL, a lost machine) holds its partitions until the
        # broker drops it: 15 s rather than faust's 60 (heartbeats come from the consumer's own thread)
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        web_enabled=True,
        web_port=settings.worker_web_port,
        web_bind=settings.web_host,
        autodiscover=False,
        stream_wait_empty=True,
        logging_config=None,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.on_rebalance_complete.connect(hold_streams)
    t = Topics(app, settings)
    # imported here so that importing streams.app has no side effects beyond this function
    from streams import health, lots, scans

    registry = {"lots": lots.register, "scans": scans.register}
    for name in agents:
        registry[name](app, settings, t)
    health.register(app, settings)  # /healthz, /readyz, /metrics on the worker's web server
    return app


def ensure_changelogs(app: faust.App, settings: Settings) -> None:
    """Create the tables' compacted changelog topics before the worker starts, so that workers starting at the
    same time do not race to create them (faust would see a half-created topic and crash the agent)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="ocop-trace-worker-admin")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, settings.partitions, settings.replication_factor,
                        topic_configs={"cleanup.policy": "compact"})
               for name in (table.changelog_topic.get_topic_name() for table in app.tables.values())
               if name not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run a worker until SIGINT/SIGTERM (``ocop-trace worker``)."""
    app = create_app(settings)
    ensure_changelogs(app, settings)
    from ocop_trace.observability import logging_config

    worker = faust.Worker(app, loglevel=loglevel, logging_config=logging_config(settings.log_json, loglevel))
    worker.execute_from_commandline()
