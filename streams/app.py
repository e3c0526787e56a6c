"""The faust App and its settings. Agents live in their own modules and register on the app here.

Every topic name comes from the catalog (with the settings' prefix); all topics carry raw bytes (Avro through
``schemas.codec`` on the catalog topics, JSON on the internal lot inbox) so the wire format is ours, not faust's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import faust
from aiokafka.partitioner import DefaultPartitioner

from ocop_trace.config import Settings
from schemas import topics


@dataclass
class Topics:
    """The faust topic objects of the catalog, for one settings' prefix."""

    app: faust.App
    settings: Settings

    def __getitem__(self, spec: topics.TopicSpec) -> faust.TopicT:
        return self.raw(spec.full(self.settings.topic_prefix), partitions=spec.partitions or self.settings.partitions)

    def raw(self, *names: str, partitions: int | None = None) -> faust.TopicT:
        return self.app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw",
                              value_serializer="raw", partitions=partitions or self.settings.partitions)

    async def send(self, spec: topics.TopicSpec, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Hand a message to the worker's producer, past faust's Topic/Channel layers (they cost more CPU per
        message than the rest of the work). It is faust's own aiokafka producer, so the producer flush faust does
        before every offset commit covers these messages too."""
        await self.app.producer.send(spec.full(self.settings.topic_prefix), key, value, partition, None, None)


_partitioner = DefaultPartitioner()


@lru_cache(maxsize=1 << 16)
def partition_of(key: str, partitions: int) -> int:
    """The partition the workers' producer (aiokafka's default partitioner, murmur2 like Kafka's Java client and
    kafka-python) sends ``key`` to."""
    every = list(range(partitions))
    return _partitioner(key.encode(), every, every)


def lookup(table: faust.Table, key: str):
    """``table.get(key)`` with one store read (faust's ``Table.get`` reads twice: ``key in store``, then the value)."""
    try:
        return table.data[key]
    except KeyError:
        return None


# RocksDB per table partition: small write buffers and cache (faust's defaults, 3 x 64 MiB buffers and a 2 GiB
# cache per partition, would let six partitions of one table hold > 1 GiB; measured in bench/README.md).
ROCKSDB_OPTIONS = {"write_buffer_size": 8 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20}


def json_table(app: faust.App, name: str, partitions: int) -> faust.Table:
    """A table of str keys and JSON values, partitioned like the stream that writes it."""
    rocks = str(app.conf.store).startswith("rocksdb")
    return app.Table(name, default=None, partitions=partitions, options=dict(ROCKSDB_OPTIONS) if rocks else None,
                     schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"))


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
        broker_commit_every=1000,
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
