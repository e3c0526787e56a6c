"""The lots agent: input events -> accepted events, per-lot records, lineage, rules, recalls and stamps.

One agent reads the input topics (``ocop.events.supply``, ``ocop.events.master``), the stamp requests and the
internal lot inbox. The worker's topics are co-partitioned (faust assigns partition *p* of every topic to one worker),
so the state of a lot lives with partition ``partition_of(lot)`` of every topic. It takes its messages in batches
(what arrived within ``worker_batch_ms``, at most ``worker_batch_max``); for each message it

* admits an input message (:mod:`streams.validate`: ``ocop.events.accepted`` or ``ocop.dlq`` with the reason);
* folds an event into every lot it touches that lives on this partition; the others (the other lots of a transform,
  or every lot when a producer partitioned by another hash) get it through their inbox partition: the FK-join
  repartitioning. Master data and area recalls are broadcast to every inbox partition, where each keeps its own
  replica (keys prefixed by partition); a lot re-derives when master data it depends on arrives (late master data);
* issues the stamp ranges a package event or a stamp request asks for (:mod:`streams.stamps`);
* then, once per batch, for each lot the batch changed, derives the record (:mod:`streams.fold`), publishes it on ``ocop.records`` if it
  changed with new/resolved alerts on ``ocop.alerts``, tells the lot's children its origins and recall when they
  changed, and writes the lot's state (and each master-index entry that gained lots) once.

Effects are idempotent (records are compacted by lot, alerts have deterministic ids, facts are sets), so the
at-least-once redelivery after a crash changes nothing: a redelivered fact re-publishes the same record and re-indexes
the lot. A batch is acked only once its sends and table writes are in the producer
(:meth:`streams.app.Topics.batches`), and faust flushes the producer before it commits offsets, so a committed message never loses an effect.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import faust
import orjson

from ocop_trace import observability as obs
from ocop_trace.config import Settings
from schemas import codec, topics
from schemas.events import lots_touched
from streams import fold, rules, stamps
from streams.app import json_table, lookup, make_current, partition_of
from streams.master import entries_of, merge
from streams.validate import admit, dead_letter, source_of

log = logging.getLogger("ocop.lots")

#: what the lots agent consumes (one consumer group with the scans agent; co-partitioned)
SOURCES: tuple[topics.TopicSpec, ...] = (*topics.INPUTS, topics.STAMP_REQUESTS, topics.LOT_INBOX)

_dumps = orjson.dumps


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class MasterReplica:
    """The worker's master-data replicas over the faust table (keys ``"<partition>|<kind>|<id>"``), with the entries
    read so far kept in memory: master data changes rarely and every derive reads it. This worker is the only writer
    of its partitions' entries (:meth:`put`); the memory is dropped at every rebalance, when a partition may come
    back after another worker changed it."""

    def __init__(self, table):
        self.table = table
        self.known: dict[str, dict | None] = {}

    def get(self, mkey: str):
        try:
            return self.known[mkey]
        except KeyError:
            value = self.known[mkey] = lookup(self.table, mkey)
            return value

    def put(self, mkey: str, value: dict) -> None:
        self.table[mkey] = value
        self.known[mkey] = value

    def forget(self) -> None:
        self.known.clear()

    def view(self, partition: int) -> "PartitionMaster":
        return PartitionMaster(self, partition)


class PartitionMaster:
    """The master view of one partition (what :func:`streams.fold.derive` reads)."""

    def __init__(self, replica: MasterReplica, partition: int):
        self.replica, self.p = replica, partition

    def get(self, kind: str, ident: str):
        return self.replica.get(f"{self.p}|{kind}|{ident}")


class Changed:
    """The lots a batch changed on one partition (a master change may touch many): their states (read once from the
    table, then changed in memory by every message of the batch), which of them must re-publish even if their record
    did not change (a redelivered fact: its first delivery may not have), and the lots to add to master-index
    entries (each entry written once per batch)."""

    def __init__(self, table, partition: int):
        self.table, self.p = table, partition
        self.states: dict[str, dict] = {}
        self.force: set[str] = set()
        self.index_add: dict[str, list[str]] = {}
        self.event = None  # the batch's last message of this partition (the current event for the lots' writes)

    def state(self, lot: str) -> dict:
        st = self.states.get(lot)
        if st is None:
            st = self.states[lot] = lookup(self.table, lot) or fold.new_state(lot)
        return st

    def mark(self, lot: str, fresh: bool) -> None:
        if not fresh:
            self.force.add(lot)


def register(app: faust.App, settings: Settings, t) -> None:
    n = settings.partitions
    prefix = settings.topic_prefix
    inputs = {spec.full(prefix): spec for spec in topics.INPUTS}
    sources = [spec.full(prefix) for spec in SOURCES]
    inbox_name, requests_name = topics.LOT_INBOX.full(prefix), topics.STAMP_REQUESTS.full(prefix)
    send = t.send
    record_codec, alert_codec = codec.codec(codec.LOT_RECORD), codec.codec(codec.ALERT)
    key_id = settings.stamp_active_key

    lots = json_table(t, "lots")
    master = MasterReplica(json_table(t, "master"))

    async def forget_master(*_args, **_kwargs) -> None:
        master.forget()

    app.on_partitions_revoked.connect(forget_master)
    app.on_partitions_assigned.connect(forget_master)
    app._ocop_forget_master = forget_master  # type: ignore[attr-defined]  # a strong reference for the signals
    index = json_table(t, "master-index")
    stamp_state = json_table(t, "stamp-state")

    async def lot_event(ch: Changed, lot: str, ev: dict) -> None:
        """Fold an accepted event into a lot of this partition (and issue the stamps a package asks for)."""
        st = ch.state(lot)
        ch.mark(lot, fold.apply_event(st, ev))
        if ev["event_type"] == "package" and ev["payload"]["lot"] == lot:
            for rng in await stamps.issue(t, stamp_state, lot, key_id, package=ev):
                ch.mark(lot, fold.apply_stamp_range(st, rng))

    async def stamp_request(ch: Changed, req: dict) -> None:
        lot = req["lot"]
        for rng in await stamps.issue(t, stamp_state, lot, key_id, request=req):
            ch.mark(lot, fold.apply_stamp_range(ch.state(lot), rng))

    async def master_event(ch: Changed, ev: dict) -> None:
        p = ch.p
        for mkind, ident in entries_of(ev):
            mkey = f"{p}|{mkind}|{ident}"
            new = merge(mkind, master.get(mkey), ev)
            if new is not None:
                master.put(mkey, new)
            for lot in lookup(index, mkey) or []:
                ch.state(lot)
                ch.mark(lot, new is not None)  # a redelivered message re-publishes what its first may not have

    async def input_event(ch: Changed, ev: dict) -> None:
        """Route an accepted event: fold it into the lots of this partition, send it to the others' inboxes."""
        for lot in lots_touched(ev):
            if partition_of(lot, n) == ch.p:
                await lot_event(ch, lot, ev)
            else:
                await send(topics.LOT_INBOX, lot.encode(), _dumps({"kind": "event", "event": ev}))
        if entries_of(ev):
            body = _dumps({"kind": "master", "event": ev})
            for q in range(n):
                await send(topics.LOT_INBOX, b"~master", body, q)

    async def inbox_message(ch: Changed, event) -> None:
        msg = orjson.loads(event.value)
        kind = msg["kind"]
        if kind == "event":
            await lot_event(ch, event.key.decode(), msg["event"])
        elif kind == "upstream":
            lot = msg["lot"]
            ch.mark(lot, fold.apply_upstream(ch.state(lot), msg["parent"], msg["info"]))
        elif kind == "master":
            await master_event(ch, msg["event"])
        elif kind == "request":
            await stamp_request(ch, msg["request"])
        else:
            log.error("lot inbox: unknown message kind %r at %d@%d", kind, event.message.partition,
                      event.message.offset)

    async def publish(ch: Changed, lot: str, st: dict) -> None:
        """Derive the record; publish it (and alert changes) if it changed; tell the children if they must know."""
        force = lot in ch.force
        rec = fold.derive(st, master.view(ch.p))
        last = st.get("_out") or {}
        body = record_codec.encode(rec)
        digest = fold.record_digest(body)
        resolved = last.get("resolved", [])  # flags raised once and resolved since
        if digest != last.get("digest") or force:
            await send(topics.RECORDS, lot.encode(), body)
            obs.record_published()
            alerts_out, resolved = rules.alerts_for_publish(lot, last, rec, _now(), force)
            for alert in alerts_out:
                await send(topics.ALERTS, lot.encode(), alert_codec.encode(obs.alert_published(alert)))
        info = fold.upstream_info(rec)
        tell = rec["children"] if (force or info != last.get("info")) else \
            [c for c in rec["children"] if c not in last.get("children", [])]
        for child in tell:
            await send(topics.LOT_INBOX, child.encode(),
                       _dumps({"kind": "upstream", "lot": child, "parent": lot, "info": info}))
        # index the master entries this lot depends on, so that late master data re-derives it (all of them again
        # when forced: after a crash, a table's recovery may have rolled an index entry back past this lot)
        mkeys = fold.master_keys(st)
        for kind, ident in sorted(mkeys if force else mkeys - set(map(tuple, last.get("mkeys", [])))):
            ch.index_add.setdefault(f"{ch.p}|{kind}|{ident}", []).append(lot)
        st["_out"] = {"digest": digest, "flags": rec["flags"], "resolved": resolved, "info": info,
                      "children": rec["children"], "recall": rec["recall"], "mkeys": sorted(mkeys)}
        lots[lot] = st

    def write_index(ch: Changed) -> None:
        for ikey, new in ch.index_add.items():
            members = lookup(index, ikey) or []
            known = set(members)
            added = [lot for lot in new if lot not in known]
            if added:
                index[ikey] = members + added

    async def process(event, changed: dict[int, Changed]) -> None:
        """Fold one message into the batch's changes (``changed``: per partition)."""
        p = event.message.partition
        ch = changed.get(p)
        if ch is None:
            ch = changed[p] = Changed(lots, p)
        ch.event = event
        make_current(event)
        topic = event.message.topic
        if topic == inbox_name:
            await inbox_message(ch, event)
        elif topic == requests_name:
            req, bad = stamps.decode_request(event)
            if req is None:
                await dead_letter(t, source_of(event), bad)
            elif partition_of(req["lot"], n) == p:
                await stamp_request(ch, req)
            else:
                await send(topics.LOT_INBOX, req["lot"].encode(), _dumps({"kind": "request", "request": req}))
        else:
            ev = await admit(t, event, inputs[topic])
            if ev is not None:
                await input_event(ch, ev)

    async def process_batch(events) -> None:
        """Fold a batch of messages, then publish and write each lot they changed once."""
        changed: dict[int, Changed] = {}
        for event in events:
            await process(event, changed)
        for ch in changed.values():
            make_current(ch.event)
            for lot, st in ch.states.items():
                await publish(ch, lot, st)
            write_index(ch)

    batch_max, batch_within = settings.worker_batch_max, settings.worker_batch_ms / 1000

    @app.agent(t.raw(*sources), name="lots")
    async def lots_agent(stream):
        async for events in t.batches(stream, batch_max, batch_within):
            await process_batch(events)
