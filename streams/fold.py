"""The fold: a lot's facts -> its traceability record. Pure functions shared by the workers and the auditor.

A lot's *state* is the set of facts known about it (JSON-able, kept in a faust table by the workers):

* ``events``: its accepted events by event id (every event whose :func:`schemas.events.lots_touched` names it)
* ``chain_head`` / ``chain_length``: the hash chain over the events *keyed* by this lot, in log order
* ``parents``: what each parent lot last said about itself (origins, recall) — the FK-join of lineage
* ``stamp_ranges``: issued stamp ranges

The *record* (``ocop.record.LotRecord``) is :func:`derive` of the state and the master data. It does not depend on
the order in which facts arrived (events are ordered by time then id; sets are sorted), so any arrival order, with
duplicates, gives the same record; only the chain depends on the log order, which Kafka fixes per key.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

from schemas.events import chain_link, chain_next, event_key, lots_touched
from streams import rules, stamping
from streams.master import MasterState, MasterView, instant_of, order_key, recall_order, recall_ref

STEP_DETAIL = {
    "harvest": lambda p: f"{p['crop']} @ {p['area_code']}",
    "receive": lambda p: p.get("document_ref") or (p.get("from_facility") or ""),
    "transform": lambda p: f"{p['process']}: {', '.join(x['lot'] for x in p['inputs'])} → "
                           f"{', '.join(x['lot'] for x in p['outputs'])}",
    "inspect": lambda p: f"{p['lab']}: {p['result']}",
    "package": lambda p: f"{p['gtin']} × {p['units']}",
    "ship": lambda p: f"→ {p['to_facility']}",
    "sell": lambda p: f"@ {p['point_of_sale']}",
    "recall": lambda p: p["reason"],
    "void": lambda p: f"voids {p['voided_event_id']}: {p['reason']}",
}


def new_state(lot: str) -> dict:
    return {"lot": lot, "events": {}, "chain_head": "", "chain_length": 0, "parents": {}, "stamp_ranges": []}


def apply_event(state: dict, ev: dict, ehash: str | None = None) -> bool:
    """Add an accepted event to the lot's facts. Returns False for a duplicate (nothing changes). ``ehash``: the
    event's :func:`schemas.events.canonical_hash` if the caller has it already (the auditor's readers compute it)."""
    events = state["events"]
    eid = ev["event_id"]
    if eid in events:
        return False
    events[eid] = ev
    if event_key(ev) == state["lot"]:
        state["chain_head"] = (chain_next(state["chain_head"], ev) if ehash is None
                               else chain_link(state["chain_head"], ehash))
        state["chain_length"] += 1
    return True


def apply_upstream(state: dict, parent: str, info: dict) -> bool:
    """Record what a parent lot says about itself (its origins and recall). False if nothing new."""
    if state["parents"].get(parent) == info:
        return False
    state["parents"][parent] = info
    return True


def apply_stamp_range(state: dict, rng: dict) -> bool:
    ref = {"key_id": rng["key_id"], "first_index": rng["first_index"], "count": rng["count"]}
    if ref in state["stamp_ranges"]:
        return False
    state["stamp_ranges"] = sorted([*state["stamp_ranges"], ref], key=lambda r: (r["first_index"], r["key_id"]))
    return True


def record_digest(encoded: bytes) -> str:
    """A short digest of a record's Avro message (the encoding of a record is unique: its lists are in a fixed
    order), to publish only what changed."""
    return hashlib.sha256(encoded).hexdigest()[:32]


def upstream_info(record: dict) -> dict:
    """What a lot tells its children: its origins and its recall (they inherit both)."""
    return {"origins": record["origins"], "recall": record["recall"]}


def master_keys(state: dict) -> set[tuple[str, str]]:
    """The master entries the lot's record depends on (re-derive the lot when one changes)."""
    keys: set[tuple[str, str]] = set()
    for ev in state["events"].values():
        p = ev["payload"]
        if ev["event_type"] == "harvest":
            keys |= {("area", p["area_code"]), ("area_recall", p["area_code"])}
        elif ev["event_type"] == "package":
            keys |= {("product", p["gtin"]), ("ratings", p["gtin"])}
    return keys


def _sum(quantities: list[dict], totals: dict[str, float] | None = None) -> dict | None:
    """The total of the quantities in the base unit of the first (``totals``: their :func:`rules.total`, if known)."""
    if not quantities:
        return None
    if totals is None:
        totals = rules.total(quantities)
    unit = rules.to_base(quantities[0])[0]
    return {"value": round(totals[unit], 6), "unit": unit}


def derive(state: dict, master: MasterView, instants: Mapping[str, float] | None = None) -> dict:
    """The lot's record from its facts and the master data. ``instants``: :func:`streams.master.instant` of every
    event's ``occurred_at`` if the caller has them (a :class:`Projection` keeps them), else they are parsed here."""
    lot = state["lot"]
    events = state["events"]
    if instants is None:
        ordered = sorted(events.values(), key=order_key)
    else:  # the same order (order_key: instant, then event id; ids are unique in a lot), no parsing
        ordered = [events[i] for _, _, i in sorted([(instants[e["occurred_at"]], e["event_id"], i)
                                                    for i, e in events.items()])]
    voided = {e["payload"]["voided_event_id"] for e in ordered
              if e["event_type"] == "void" and e["payload"]["lot"] == lot}
    active = [e for e in ordered if e["event_id"] not in voided] if voided else ordered

    parents: set[str] = set()
    children: set[str] = set()
    origins: set[tuple[str, str]] = set()
    q_in: list[dict] = []
    q_out: list[dict] = []
    units = {"package": 0, "ship": 0, "sell": 0}
    packaging = None
    inspections = []
    recalls = []
    made_here = None  # a harvest or transformation made the lot (known at the first receipt)
    for ev in active:
        t, p = ev["event_type"], ev["payload"]
        if t == "harvest":
            origins.add((p["area_code"], lot))
            q_in.append(p["quantity"])
            area_recall = master.get("area_recall", p["area_code"])
            if area_recall:
                recalls.append(area_recall)
        elif t == "receive":
            if made_here is None:
                made_here = any(e["event_type"] in ("harvest", "transform") for e in active)
            if not made_here:
                q_in.append(p["quantity"])  # a receipt of a lot made elsewhere brings its quantity in
        elif t == "transform":
            for x in p["outputs"]:
                if x["lot"] == lot:
                    parents.update(i["lot"] for i in p["inputs"])
                    q_in.append(x["quantity"])
            for x in p["inputs"]:
                if x["lot"] == lot:
                    children.update(o["lot"] for o in p["outputs"])
                    q_out.append(x["quantity"])
        elif t == "package":
            units["package"] += p["units"]
            if packaging is None:
                packaging = {"event_id": ev["event_id"], "gtin": p["gtin"], "units": p["units"],
                             "production_date": p["production_date"], "expiry_date": p["expiry_date"]}
        elif t in ("ship", "sell"):
            units[t] += p["units"]
        elif t == "inspect":
            inspections.append({"event_id": ev["event_id"], "occurred_at": ev["occurred_at"], "lab": p["lab"],
                                 "result": p["result"], "certificate_no": p["certificate_no"]})
        elif t == "recall":
            recalls.append(recall_ref(ev))
    for parent in sorted(parents):
        info = state["parents"].get(parent)
        if info:
            origins.update((o["area_code"], o["harvest_lot"]) for o in info["origins"])
            if info["recall"]:
                recalls.append(info["recall"])
    recall = min(recalls, key=recall_order) if recalls else None

    product = rating = None
    if packaging:
        pm = master.get("product", packaging["gtin"])
        if pm:
            product = {"gtin": pm["gtin"], "name_vi": pm["name_vi"], "name_en": pm["name_en"],
                       "ocop_group": pm["ocop_group"], "owner_subject_id": pm["owner_subject_id"]}
        r = rules.valid_rating(master.get("ratings", packaging["gtin"]), packaging["production_date"])
        if r:
            rating = {k: r[k] for k in ("stars", "score", "level", "decision_no", "decision_date", "valid_from", "valid_to")}

    in_totals, out_totals = rules.total(q_in), rules.total(q_out)
    facts = {"recall": recall, "expiry_date": packaging["expiry_date"] if packaging else None,
             "in_totals": in_totals, "out_totals": out_totals,
             "units_packaged": units["package"], "units_shipped": units["ship"], "units_sold": units["sell"],
             "stamp_ranges": state["stamp_ranges"]}
    flags = rules.evaluate(lot, ordered, active, facts, master)

    if recall:
        status = "recalled"
    elif units["package"] and units["sell"] >= units["package"]:
        status = "sold_out"
    else:
        status = "active"
    first = ordered[0] if ordered else None
    return {
        "lot": lot,
        "subject_id": product["owner_subject_id"] if product else (first["actor"]["subject_id"] if first else None),
        "product": product,
        "rating": rating,
        "packaging": packaging,
        "origins": [{"area_code": a, "harvest_lot": h} for a, h in sorted(origins)],
        "parents": sorted(parents),
        "children": sorted(children),
        "steps": [_step(e, e["event_id"] in voided) for e in ordered],
        "quantity_in": _sum(q_in, in_totals),
        "quantity_out": _sum(q_out, out_totals),
        "units_packaged": units["package"],
        "units_shipped": units["ship"],
        "units_sold": units["sell"],
        "inspections": inspections,
        "status": status,
        "recall": recall,
        "flags": flags,
        "stamp_ranges": list(state["stamp_ranges"]),
        "event_count": len(ordered),
        "chain_head": state["chain_head"],
        "chain_length": state["chain_length"],
    }


def _step(ev: dict, voided: bool) -> dict:
    p, t, actor = ev["payload"], ev["event_type"], ev["actor"]
    return {"event_id": ev["event_id"], "event_type": t, "occurred_at": ev["occurred_at"],
            "facility": ev["facility"], "subject_id": actor["subject_id"], "user": actor["user"],
            "quantity": p.get("quantity") if t == "harvest" or t == "receive" else None, "units": p.get("units"),
            "detail": STEP_DETAIL[t](p), "voided": voided}


class Instants(dict):
    """occurred_at -> :func:`streams.master.instant_of` it, parsed at the first look-up of a text not seen before."""

    def __missing__(self, iso: str) -> float:
        value = self[iso] = instant_of(iso)
        return value


# --------------------------------------------------------------------------------------------------------------
# The batch projection: the same functions, run to a fixpoint over a whole log (auditor, tests, reference runs).
# --------------------------------------------------------------------------------------------------------------

class Projection:
    """Fold a log of accepted events (in log order) into records, exactly as the workers do, in memory."""

    def __init__(self, stamp_key_id: str | None = None) -> None:
        """``stamp_key_id``: also issue the stamp ranges that package events ask for, as the stamps agent does."""
        self.master = MasterState()
        self.states: dict[str, dict] = {}
        self.records: dict[str, dict] = {}
        self.stamp_key_id = stamp_key_id
        self.stamp_states: dict[str, dict] = {}
        self.stamp_ranges: list[dict] = []
        self._inputs_of: dict[str, set[str]] = {}  # lot -> the input lots of transformations that output it
        self.instants: dict[str, float] = Instants()  # occurred_at -> its instant (derive orders by them)

    def state(self, lot: str) -> dict:
        st = self.states.get(lot)
        if st is None:
            st = self.states[lot] = new_state(lot)
        return st

    def add(self, ev: dict, ehash: str | None = None) -> None:
        """Fold an accepted event; ``ehash``: its canonical hash if the caller has it (see :func:`apply_event`)."""
        self.master.apply(ev)
        at = ev["occurred_at"]
        if at not in self.instants:
            self.instants[at] = instant_of(at)
        for lot in lots_touched(ev):
            apply_event(self.state(lot), ev, ehash)
        if ev["event_type"] == "transform":  # lineage edges, only to derive parents before their children
            p = ev["payload"]
            ins = [x["lot"] for x in p["inputs"]]
            for x in p["outputs"]:
                self._inputs_of.setdefault(x["lot"], set()).update(ins)
        if self.stamp_key_id and ev["event_type"] == "package":
            lot = ev["payload"]["lot"]
            sst = self.stamp_states.setdefault(lot, stamping.new_state())
            for rng in stamping.on_package(sst, ev, self.stamp_key_id):
                self.stamp_ranges.append(rng)
                self.add_stamp_range(rng)

    def add_stamp_range(self, rng: dict) -> None:
        apply_stamp_range(self.state(rng["lot"]), rng)

    def lineage_order(self) -> list[str]:
        """Every lot, parents before their children (by the transformations seen; a cycle, which valid data does not
        make, is cut where it closes), otherwise by name."""
        inputs_of, states = self._inputs_of, self.states
        roots = sorted(states)
        if not inputs_of:
            return roots
        order: list[str] = []
        seen: set[str] = set()
        for root in roots:
            if root in seen:
                continue
            seen.add(root)
            stack = [(root, iter(sorted(inputs_of.get(root, ()))))]
            while stack:
                lot, parents = stack[-1]
                for parent in parents:
                    if parent not in seen and parent in states:
                        seen.add(parent)
                        stack.append((parent, iter(sorted(inputs_of.get(parent, ())))))
                        break
                else:
                    stack.pop()
                    order.append(lot)
        return order

    def run(self) -> dict[str, dict]:
        """Derive every record, propagating origins and recalls from parents to children until nothing changes.

        Lots are derived parents first (:meth:`lineage_order`), and a child whose parent's news arrives before the
        child's own turn in the round is derived once, with it: on a lineage without cycles one round reaches the
        fixpoint (the plain way, every lot by name again and again, derived each lot 1.6 times on generated chains).
        The records are the same in any order: the fixpoint does not depend on it."""
        order = self.lineage_order()
        records = self.records
        for lot in sorted(self.states):  # records keep the order of names, whatever the order of deriving
            records.setdefault(lot, None)
        pending = order
        while pending:
            later = set(pending)  # not yet derived in this round
            nxt: set[str] = set()
            for lot in pending:
                later.discard(lot)
                rec = derive(self.states[lot], self.master, self.instants)
                old = records.get(lot)
                records[lot] = rec
                if old is None or upstream_info(old) != upstream_info(rec) or old["children"] != rec["children"]:
                    info = upstream_info(rec)
                    for child in rec["children"]:
                        if apply_upstream(self.state(child), lot, info) and child not in later:
                            nxt.add(child)
            pending = [lot for lot in order if lot in nxt] if nxt else []
            if len(pending) < len(nxt):  # a child no state had (cannot happen: its transformation touched it)
                pending += sorted(nxt.difference(pending))
        return records


def project(events: Iterable[dict], stamp_ranges: Iterable[dict] = (), stamp_key_id: str | None = None) -> dict[str, dict]:
    proj = Projection(stamp_key_id)
    for ev in events:
        proj.add(ev)
    for rng in stamp_ranges:
        proj.add_stamp_range(rng)
    return proj.run()
