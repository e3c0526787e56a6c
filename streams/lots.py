"""The lots agents: accepted events -> per-lot records, lineage propagation, rules, recalls.

* ``route`` reads ``ocop.events.accepted`` and writes the internal lot inbox (keyed by lot): a supply event goes to
  every lot it touches (a transform to each input and output: the FK-join repartitioning); master data and area
  recalls are broadcast to every inbox partition, where each keeps its own replica (keys prefixed by partition).
* ``lots`` reads the inbox, folds facts into the lot's state (:mod:`streams.fold`), derives the record, publishes it
  on ``ocop.records`` with new/resolved alerts on ``ocop.alerts``, and tells the lot's children its origins and
  recall whenever they change. A lot re-derives when master data it depends on arrives (late master data).

Effects are idempotent (records are compacted by lot, alerts have deterministic ids, facts are sets), so the
at-least-once redelivery after a crash changes nothing: a redelivered fact re-publishes the same record.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import faust
import orjson

from ocop_trace import observability as obs
from ocop_trace.config import Settings
from schemas import codec, topics
from schemas.events import decode_event, lots_touched
from streams.app import json_table
from streams import fold, rules
from streams.master import entries_of, merge

log = logging.getLogger("ocop.lots")


_dumps = orjson.dumps


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class PartitionMaster:
    """The master view of one inbox partition, over the faust table (keys ``"<partition>|<kind>|<id>"``)."""

    def __init__(self, table, partition: int):
        self.table, self.p = table, partition

    def get(self, kind: str, ident: str):
        return self.table.get(f"{self.p}|{kind}|{ident}")


def register(app: faust.App, settings: Settings, t) -> None:
    n = settings.partitions
    inbox, records, alerts = t.inbox, t[topics.RECORDS], t[topics.ALERTS]
    record_codec, alert_codec = codec.codec(codec.LOT_RECORD), codec.codec(codec.ALERT)

    lots = json_table(app, "lots", n)
    master = json_table(app, "master", n)
    index = json_table(app, "master-index", n)

    @app.agent(t[topics.ACCEPTED], name="route")
    async def route(stream):
        async for value in stream:
            ev = decode_event(value)
            for lot in lots_touched(ev):
                await inbox.send(key=lot.encode(), value=_dumps({"kind": "event", "event": ev}))
            if entries_of(ev):
                body = _dumps({"kind": "master", "event": ev})
                for p in range(n):
                    await inbox.send(key=b"~master", value=body, partition=p)

    async def publish(lot: str, st: dict, mview: PartitionMaster, p: int, force: bool = False) -> None:
        """Derive the record; publish it (and alert changes) if it changed; tell the children if they must know."""
        rec = fold.derive(st, mview)
        last = st.get("_out") or {}
        digest = fold.canonical_digest(rec)
        resolved = last.get("resolved", [])  # flags raised once and resolved since
        if digest != last.get("digest") or force:
            await records.send(key=lot.encode(), value=record_codec.encode(rec))
            obs.record_published()
            alerts_out, resolved = rules.alerts_for_publish(lot, last, rec, _now(), force)
            for alert in alerts_out:
                await alerts.send(key=lot.encode(), value=alert_codec.encode(obs.alert_published(alert)))
        info = fold.upstream_info(rec)
        tell = rec["children"] if (force or info != last.get("info")) else \
            [c for c in rec["children"] if c not in last.get("children", [])]
        for child in tell:
            await inbox.send(key=child.encode(),
                             value=_dumps({"kind": "upstream", "lot": child, "parent": lot, "info": info}))
        # index the master entries this lot depends on, so that late master data re-derives it
        known = set(map(tuple, last.get("mkeys", [])))
        mkeys = fold.master_keys(st)
        for kind, ident in sorted(mkeys - known):
            ikey = f"{p}|{kind}|{ident}"
            members = index.get(ikey) or []
            if lot not in members:
                index[ikey] = [*members, lot]
        st["_out"] = {"digest": digest, "flags": rec["flags"], "resolved": resolved, "info": info,
                      "children": rec["children"], "recall": rec["recall"], "mkeys": sorted(mkeys)}
        lots[lot] = st

    @app.agent(inbox, name="lots")
    async def lots_agent(stream):
        async for event in stream.events():
            p = event.message.partition
            msg = orjson.loads(event.value)
            kind = msg["kind"]
            mview = PartitionMaster(master, p)
            if kind == "master":
                ev = msg["event"]
                for mkind, ident in entries_of(ev):
                    mkey = f"{p}|{mkind}|{ident}"
                    new = merge(mkind, master.get(mkey), ev)
                    if new is not None:
                        master[mkey] = new
                    # a redelivered message (after a crash) re-publishes what its first delivery may not have
                    for lot in index.get(mkey) or []:
                        await publish(lot, lots.get(lot) or fold.new_state(lot), mview, p, force=new is None)
                continue
            if kind == "event":
                lot = event.key.decode()
                st = lots.get(lot) or fold.new_state(lot)
                fresh = fold.apply_event(st, msg["event"])
                await publish(lot, st, mview, p, force=not fresh)
            elif kind == "upstream":
                lot = msg["lot"]
                st = lots.get(lot) or fold.new_state(lot)
                fresh = fold.apply_upstream(st, msg["parent"], msg["info"])
                await publish(lot, st, mview, p, force=not fresh)
            elif kind == "stamps":
                rng = msg["range"]
                st = lots.get(rng["lot"]) or fold.new_state(rng["lot"])
                fresh = fold.apply_stamp_range(st, rng)
                await publish(rng["lot"], st, mview, p, force=not fresh)
