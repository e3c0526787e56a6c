"""The fold's fast paths agree with its plain definition: the order of a lot's events from a projection's instants
(derive), the "sell before package" check by position (rules.evaluate), and the canonical hashes the auditor's
readers hand to the fold (apply_event, Projection.add, Folder.add)."""

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.audit import replay as R
from schemas.events import canonical_hash, chain, event_key
from streams import fold, rules
from streams.fold import Projection, apply_event, derive, new_state, project
from streams.master import instant, order_key, recall_order
from streams.rules import _day, flag, transform_mass_balance, valid_rating
from tests.samples import SAMPLE_EVENTS

LOTS = ["A", "B", "C"]
AREA = SAMPLE_EVENTS["area"]["payload"]["area_code"]
# Instants written in several ways: equal instants in other offsets (ties broken by event id), and distinct ones.
TIMES = ["2026-10-01T07:00:00+07:00", "2026-10-01T00:00:00+00:00", "2026-10-01T00:00:00Z",
         "2026-10-01T06:59:59.999+07:00", "2026-10-01T08:00:00+08:00", "2026-10-02T12:00:00+07:00",
         "2026-10-02T05:00:00Z", "2026-10-03T00:30:00-05:00", "2027-12-01T09:00:00+07:00"]


@st.composite
def logs(draw):
    """A log of a few lots' events at random (often equal) instants and in random order: sells before or without a
    package, ships after a recall, voids of known and unknown events, repeated events, master data or not."""
    events = []
    ids = iter(range(1, 10_000))

    def add(kind: str, payload_changes: dict, **fields) -> dict:
        ev = copy.deepcopy(SAMPLE_EVENTS[kind])
        ev["event_id"] = f"00000000-0000-4000-8000-{next(ids):012d}"
        ev["occurred_at"] = draw(st.sampled_from(TIMES))
        ev["payload"].update(payload_changes)
        ev.update(fields)
        events.append(ev)
        return ev

    for kind in ("area", "product", "rating"):
        if draw(st.booleans()):
            add(kind, {})
    lot = st.sampled_from(LOTS)
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["harvest", "receive", "transform", "inspect", "package", "ship", "sell", "sell",
                                     "recall", "void"]))
        if kind == "transform":
            a, b = draw(st.lists(lot, min_size=2, max_size=2, unique=True))
            q = {"value": float(draw(st.integers(1, 200))), "unit": "kg"}
            add(kind, {"inputs": [{"lot": a, "quantity": {"value": 100.0, "unit": "kg"}}],
                       "outputs": [{"lot": b, "quantity": q}]})
        elif kind == "recall":
            if draw(st.booleans()):
                add(kind, {"scope": "lot", "target": draw(lot)})
            else:
                add(kind, {"scope": "area", "target": AREA})
        elif kind == "void":
            known = [e["event_id"] for e in events if e["event_type"] != "void"]
            target = draw(st.sampled_from(known)) if known and draw(st.booleans()) else "00000000-0000-4000-8000-0"
            add(kind, {"lot": draw(lot), "voided_event_id": target})
        elif kind == "inspect":
            add(kind, {"lot": draw(lot), "result": draw(st.sampled_from(["pass", "fail"]))})
        elif kind in ("package", "ship", "sell"):
            add(kind, {"lot": draw(lot), "units": draw(st.integers(1, 200))})
        else:
            add(kind, {"lot": draw(lot)})
    order = draw(st.permutations(events))
    return list(order) + draw(st.lists(st.sampled_from(events), max_size=2))


def evaluate_plain(lot, ordered, active, facts, master):
    """rules.evaluate as first written: "sell before package" and "after recall" by comparing order keys."""
    flags = []
    packages = [e for e in active if e["event_type"] == "package"]
    first_package = packages[0] if packages else None
    recall = facts["recall"]
    expiry = facts["expiry_date"]
    for ev in active:
        t, p = ev["event_type"], ev["payload"]
        if t == "harvest":
            area = master.get("area", p["area_code"])
            day = _day(ev["occurred_at"])
            if area is None:
                flags.append(flag("area_unregistered", ev["event_id"], f"growing area {p['area_code']} is not registered"))
            elif area.get("revoked") or not (area["valid_from"] <= day <= (area.get("valid_to") or "9999-12-31")):
                flags.append(flag("area_invalid", ev["event_id"],
                                  f"growing area {p['area_code']} not valid on {day} "
                                  f"({area['valid_from']}..{area.get('valid_to') or ''}{', revoked' if area.get('revoked') else ''})"))
        elif t == "transform" and lot in {x["lot"] for x in p["outputs"]}:
            f = transform_mass_balance(ev)
            if f:
                flags.append(f)
        elif t == "package":
            product = master.get("product", p["gtin"])
            if product is None:
                flags.append(flag("product_unregistered", ev["event_id"], f"product {p['gtin']} is not registered"))
            elif valid_rating(master.get("ratings", p["gtin"]), p["production_date"]) is None:
                flags.append(flag("rating_invalid", ev["event_id"],
                                  f"no OCOP rating of {p['gtin']} valid on {p['production_date']}: stamps show no stars"))
        elif t == "inspect" and p["result"] == "fail":
            flags.append(flag("inspection_failed", ev["event_id"], f"failed at {p['lab']}"))
        elif t in ("ship", "sell"):
            if recall and order_key(ev) > recall_order(recall):
                flags.append(flag("impossible_sequence", ev["event_id"], f"{t} after recall {recall['event_id']}"))
            if t == "sell" and (first_package is None or order_key(ev) < order_key(first_package)):
                flags.append(flag("impossible_sequence", ev["event_id"], "sell before package"))
            if expiry and _day(ev["occurred_at"]) > expiry:
                flags.append(flag("expired", ev["event_id"], f"{t} on {_day(ev['occurred_at'])} after expiry {expiry}"))
        elif t == "void" and p["voided_event_id"] not in {e["event_id"] for e in ordered}:
            flags.append(flag("impossible_sequence", ev["event_id"], f"voids unknown event {p['voided_event_id']}"))
    qin, qout = facts["in_totals"], facts["out_totals"]
    for unit, used in qout.items():
        have = qin.get(unit)
        if have is not None and used > have * rules.TOLERANCE + 1e-9:
            flags.append(flag("mass_balance", None, f"{used:g} {unit} used by transformations, only {have:g} {unit} in the lot"))
    if facts["units_sold"] > facts["units_packaged"] and packages:
        flags.append(flag("oversold", None, f"{facts['units_sold']} units sold, {facts['units_packaged']} packaged"))
    if facts["units_shipped"] > facts["units_packaged"] and packages:
        flags.append(flag("impossible_sequence", None,
                          f"{facts['units_shipped']} units shipped, {facts['units_packaged']} packaged"))
    issued = sum(r["count"] for r in facts["stamp_ranges"])
    if issued > facts["units_packaged"] and any(e["event_type"] == "package" for e in ordered):
        flags.append(flag("stamps_exceed_units", None, f"{issued} stamps issued for {facts['units_packaged']} units packaged"))
    return sorted(flags, key=lambda f: (f["rule"], f["event_id"] or "", f["detail"]))


def folded(events) -> Projection:
    proj = Projection()
    for ev in events:
        proj.add(ev)
    return proj


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(logs())
def test_derive_with_the_projections_instants_is_derive(events):
    proj = folded(events)
    assert proj.instants == {ev["occurred_at"]: instant(ev["occurred_at"]) for ev in events}
    for st_ in proj.states.values():
        assert derive(st_, proj.master, proj.instants) == derive(st_, proj.master)


@FAST
@given(logs())
def test_evaluate_is_its_plain_definition(events):
    fast = project(events)
    real = rules.evaluate
    rules.evaluate = evaluate_plain
    try:
        plain = project(events)
    finally:
        rules.evaluate = real
    assert fast == plain


def test_the_logs_reach_the_rules_they_are_for():
    """The strategy above does make the cases the fast paths decide (a sanity check of the test itself)."""
    seen = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(logs())
    def collect(events):
        for rec in project(events).values():
            seen.update(f["detail"].split(" ")[0] + ("-recall" if "after recall" in f["detail"] else "")
                        for f in rec["flags"] if f["rule"] == "impossible_sequence")

    collect()
    assert {"sell", "ship-recall", "sell-recall", "voids"} <= seen


@FAST
@given(logs())
def test_hashes_given_by_the_reader_change_nothing(events):
    plain = folded(events)
    fast = Projection()
    for ev in events:
        fast.add(ev, canonical_hash(ev))
    assert fast.states == plain.states and fast.master.entries == plain.master.entries
    assert fast.instants == plain.instants
    assert fast.run() == plain.run()


@FAST
@given(logs())
def test_apply_event_with_the_hash_is_apply_event(events):
    for lot in LOTS:
        a, b = new_state(lot), new_state(lot)
        touching = [ev for ev in events if lot in fold.lots_touched(ev)]
        for ev in touching:
            assert apply_event(a, ev) == apply_event(b, ev, canonical_hash(ev))
        assert a == b
        first, seen = [], set()  # the first copy of each event id, in log order
        for ev in touching:
            if ev["event_id"] not in seen:
                seen.add(ev["event_id"])
                first.append(ev)
        assert b["chain_head"] == chain(ev for ev in first if event_key(ev) == lot)


@FAST
@given(logs(), st.booleans())
def test_the_auditors_folder_is_the_projection(events, hashes):
    """Folder.add hands the fold the readers' hashes when they computed them (replay with hashes=True)."""
    msgs = [R.Msg("ocop.events.supply", 0, i, 0, event_key(ev), ev, None, canonical_hash(ev) if hashes else None)
            for i, ev in enumerate(events)]
    folder = R.Folder()
    folder.add(msgs)
    proj, records = folder.finish()
    plain = folded(events)
    assert records == plain.run() and proj.states == plain.states
    assert folder.stats.accepted == len(events)
    assert folder.stats.duplicates == len(events) - len({ev["event_id"] for ev in events})


def test_a_projections_instants_parse_what_they_have_not_seen():
    """A state filled by another way than Projection.add still derives (its instants are parsed when looked up)."""
    proj = Projection()
    ev = copy.deepcopy(SAMPLE_EVENTS["harvest"])
    apply_event(proj.state(ev["payload"]["lot"]), ev)
    assert not proj.instants
    assert proj.run() == project([ev])
    assert proj.instants == {ev["occurred_at"]: instant(ev["occurred_at"])}
