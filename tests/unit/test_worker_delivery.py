"""What keeps a worker from losing messages around faust's commits and rebalances (streams/app.py).

* A message's table writes reach the producer before the message is acked (``Topics.each``, ``Topics.batches``,
  ``OutboxTable``): faust acks an event (a batch) when the agent asks for the next one and commits acked offsets after flushing its producer, but its
  own changelog buffer is drained by a background task whose flush gives up after 0.1 s.
* Flow control is suspended when a rebalance completes (``hold_streams``), so that records fetched while faust seeks
  the streams to their committed offsets are not queued and then emptied out by faust's resume.

The SIGKILL tests (tests/integration/test_pipeline.py, test_faults.py) check the outcome on the real broker.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import faust

from ocop_trace.config import Settings
from streams.app import OutboxTable, Topics, create_app, json_table, make_current


class _Channel:
    def __init__(self, log: list):
        self.log = log

    async def publish_message(self, fut, wait: bool = False):
        self.log.append(("sent", fut.n))


class _Stream:
    def __init__(self, log: list, n: int):
        self.log, self.n = log, n

    async def events(self):
        for i in range(self.n):
            self.log.append(("next", i))  # faust acks event i-1 here
            yield i

    async def take_events(self, max_: int, within: float):
        for i in range(self.n):
            self.log.append(("next", i))  # faust acks batch i-1 here
            yield [(i, k) for k in range(max_)]


def test_each_sends_the_table_writes_of_an_event_before_asking_for_the_next():
    log: list = []
    t = Topics(app=None, settings=None)  # type: ignore[arg-type]
    channel = _Channel(log)

    async def agent():
        async for i in t.each(_Stream(log, 3)):
            for k in range(2 if i != 1 else 0):  # event 1 writes nothing
                t.outbox.append(SimpleNamespace(n=(i, k), message=SimpleNamespace(channel=channel)))

    asyncio.run(agent())
    assert log == [("next", 0), ("sent", (0, 0)), ("sent", (0, 1)), ("next", 1), ("next", 2),
                   ("sent", (2, 0)), ("sent", (2, 1))]
    assert t.outbox == []


def test_batches_send_the_table_writes_of_a_batch_before_asking_for_the_next():
    log: list = []
    t = Topics(app=None, settings=None)  # type: ignore[arg-type]
    channel = _Channel(log)

    async def agent():
        async for batch in t.batches(_Stream(log, 2), 3, 0.05):
            assert len(batch) == 3
            for i, k in batch:
                t.outbox.append(SimpleNamespace(n=(i, k), message=SimpleNamespace(channel=channel)))

    asyncio.run(agent())
    assert log == [("next", 0), *[("sent", (0, k)) for k in range(3)], ("next", 1), *[("sent", (1, k)) for k in range(3)]]
    assert t.outbox == []


class _Event:  # faust keeps a weak reference to the current event
    def __init__(self, message):
        self.message = message


def test_a_batch_writes_each_table_key_to_the_partition_of_its_message(tmp_path):
    """Outside faust's one-event iteration, ``make_current`` says which partition a table write belongs to."""
    settings = Settings(_env_file=None, topic_prefix="tunit.", data_dir=tmp_path, table_store="memory://")

    async def check():
        app = create_app(settings, agents=())
        t = Topics(app, settings)
        table = json_table(t, "lots")
        events = [_Event(SimpleNamespace(topic="tunit.ocop.events.supply", partition=p)) for p in (4, 1)]
        for event, lot in zip(events, ("CHE-L-4", "CHE-L-1")):
            make_current(event)
            table[lot] = {"lot": lot}
        assert [(f.message.partition, json.loads(f.message.key)) for f in t.outbox] == [(4, "CHE-L-4"), (1, "CHE-L-1")]

    asyncio.run(check())


def test_table_writes_wait_in_the_outbox_not_in_fausts_buffer(tmp_path):
    settings = Settings(_env_file=None, topic_prefix="tunit.", data_dir=tmp_path, table_store="memory://")

    async def check():  # faust objects want a running loop
        app = create_app(settings, agents=())
        t = Topics(app, settings)
        table = json_table(t, "lots")
        assert isinstance(table, OutboxTable) and app.tables["lots"] is table
        fut = table.send_changelog(3, "CHE-L-1", {"lot": "CHE-L-1"})
        assert t.outbox == [fut] and app.producer.buffer.size == 0
        assert fut.message.partition == 3 and json.loads(fut.message.key) == "CHE-L-1"
        assert json.loads(fut.message.value) == {"lot": "CHE-L-1"}
        # the same message faust's own changelog write makes (so existing changelogs recover the same)
        theirs = faust.Table.send_changelog(table, 3, "CHE-L-1", {"lot": "CHE-L-1"}).message
        assert (theirs.key, theirs.value, theirs.partition, theirs.channel) == \
            (fut.message.key, fut.message.value, 3, fut.message.channel)
        assert fut.message.channel is table.changelog_topic

    asyncio.run(check())


def test_flow_control_is_held_from_the_end_of_a_rebalance_until_faust_resumes_it(tmp_path):
    settings = Settings(_env_file=None, topic_prefix="tunit.", data_dir=tmp_path, table_store="memory://")

    async def check():
        app = create_app(settings, agents=())
        app.flow_control.resume()
        assert app.flow_control.is_active()
        await app.on_rebalance_complete.send()  # what faust's recovery sends before it resumes and seeks the streams
        assert not app.flow_control.is_active()
        app.flow_control.resume()  # faust, once the seek is done
        assert app.flow_control.is_active()

    asyncio.run(check())


def test_the_workers_partition_of_a_key_is_the_producers():
    """``Topics.send`` names the partition itself (``partition_of``, cached): the one Kafka's default partitioner
    (murmur2: the Java client, kafka-python, aiokafka) picks for the key, as str or bytes."""
    from kafka.partitioner.default import murmur2

    from streams.app import partition_of

    for i in range(500):
        key = f"CHE-2026-L{i:04d}"
        for n in (1, 6, 12):
            assert partition_of(key, n) == partition_of(key.encode(), n) == (murmur2(key.encode()) & 0x7FFFFFFF) % n
