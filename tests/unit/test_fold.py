"""The fold: order independence, idempotence, lineage through transformations, and agreement with a reference."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import event_key, new_event, validate_event
from streams import fold
from streams.fold import Projection, apply_upstream, derive, project, upstream_info
from streams.master import order_key
from tests.samples import GTIN, SUBJECT

BASE_DAY = 1


def at(minute: int) -> str:
    d, m = divmod(minute, 24 * 60)
    return f"2026-10-{BASE_DAY + d:02d}T{m // 60:02d}:{m % 60:02d}:00+07:00"


def ev(i: int, event_type: str, payload: dict, minute: int) -> dict:
    e = new_event(event_type, payload, subject_id=SUBJECT, occurred_at=at(minute), recorded_at=at(minute + 1),
                  event_id=f"00000000-0000-4000-8000-{i:012d}")
    e["facility"] = None
    validate_event(e)
    return e


def kg(v: float) -> dict:
    return {"value": float(v), "unit": "kg"}


@st.composite
def chains(draw):
    """A random valid supply chain: harvests, a DAG of transformations (splits, blends, diamonds), packaging, sales,
    master data that may come after the events, and sometimes a recall of a lot or a growing area."""
    n_areas = draw(st.integers(1, 3))
    areas = [f"VN-A-{i}" for i in range(n_areas)]
    events, i, minute = [], 0, 0

    def add(t, p):
        nonlocal i, minute
        i += 1
        minute += draw(st.integers(1, 30))
        events.append(ev(i, t, p, minute))

    for a in areas:
        if draw(st.booleans()):
            add("area", {"area_code": a, "owner_subject_id": SUBJECT, "name": "", "crops": ["chè"], "area_ha": 1.0,
                         "location": [{"lat": 21.0, "lon": 105.0}], "certifications": [],
                         "valid_from": "2020-01-01", "valid_to": None, "revoked": False})
    lots = {}
    for h in range(draw(st.integers(1, 4))):
        lot = f"H{h}"
        lots[lot] = 100.0
        add("harvest", {"lot": lot, "area_code": draw(st.sampled_from(areas)), "crop": "chè", "quantity": kg(100),
                        "crate_tags": []})
    for tr in range(draw(st.integers(0, 6))):
        avail = sorted(l for l, q in lots.items() if q > 1)
        if not avail:
            break
        ins = draw(st.lists(st.sampled_from(avail), min_size=1, max_size=min(3, len(avail)), unique=True))
        n_out = draw(st.integers(1, 3))
        used = {l: lots[l] / 2 for l in ins}
        for l in ins:
            lots[l] -= used[l]
        share = sum(used.values()) / n_out / 2
        outs = [f"T{tr}-{k}" for k in range(n_out)]
        for o in outs:
            lots[o] = share
        add("transform", {"process": draw(st.sampled_from(["drying", "blending", "splitting"])),
                          "inputs": [{"lot": l, "quantity": kg(used[l])} for l in ins],
                          "outputs": [{"lot": o, "quantity": kg(share)} for o in outs], "duration_hours": None})
    leaf = sorted(lots)[-1]
    if draw(st.booleans()):
        add("product", {"gtin": GTIN, "owner_subject_id": SUBJECT, "name_vi": "Chè", "name_en": "Tea",
                        "ocop_group": "beverage", "net_content": None, "shelf_life_days": None})
    add("package", {"lot": leaf, "gtin": GTIN, "units": 10, "quantity": None, "production_date": "2026-10-05",
                    "expiry_date": "2027-10-05", "stamps_requested": 10})
    add("sell", {"lot": leaf, "units": draw(st.integers(1, 12)), "point_of_sale": "POS-1"})
    recall = draw(st.sampled_from([None, "lot", "area"]))
    if recall == "lot":
        add("recall", {"scope": "lot", "target": draw(st.sampled_from(sorted(lots))), "reason": "test",
                       "authority": ""})
    elif recall == "area":
        add("recall", {"scope": "area", "target": draw(st.sampled_from(areas)), "reason": "test", "authority": ""})
    return events


def without_chain(records):
    return {k: {f: v for f, v in r.items() if f not in ("chain_head",)} for k, r in records.items()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.randoms(use_true_random=False))
def test_any_permutation_with_duplicates_gives_the_same_records(events, rnd):
    expected = project(events)
    shuffled = events[:]
    rnd.shuffle(shuffled)
    shuffled += [rnd.choice(events) for _ in range(3)]
    rnd.shuffle(shuffled)
    got = project(shuffled)
    # the content never depends on arrival order ...
    assert without_chain(got) == without_chain(expected)
    # ... and the chain covers exactly the lot's own events, whatever the order
    for lot, rec in got.items():
        assert rec["chain_length"] == expected[lot]["chain_length"]


@settings(max_examples=100, deadline=None)
@given(chains(), st.randoms(use_true_random=False))
def test_interleavings_that_keep_per_key_order_are_byte_identical(events, rnd):
    """Kafka keeps order per key, not across keys: any such interleaving gives identical records, chains included."""
    by_key = {}
    for e in events:
        by_key.setdefault(event_key(e), []).append(e)
    queues = [list(q) for q in by_key.values()]
    merged = []
    while queues:
        q = rnd.choice(queues)
        merged.append(q.pop(0))
        if not q:
            queues.remove(q)
    assert project(merged) == project(events)


def reference(events):
    """A straightforward evaluation of origins and recalls straight from the definitions (no propagation)."""
    parents, own, lot_recall, area_recall = {}, {}, {}, {}
    for e in events:
        p = e["payload"]
        if e["event_type"] == "harvest":
            own.setdefault(p["lot"], set()).add((p["area_code"], p["lot"]))
        elif e["event_type"] == "transform":
            for o in p["outputs"]:
                parents.setdefault(o["lot"], set()).update(i["lot"] for i in p["inputs"])
        elif e["event_type"] == "recall":
            (lot_recall if p["scope"] == "lot" else area_recall)[p["target"]] = e

    def origins(lot, seen=()):
        out = set(own.get(lot, ()))
        for par in parents.get(lot, ()):
            if par not in seen:
                out |= origins(par, (*seen, lot))
        return out

    def recalls(lot):
        found = [lot_recall[lot]] if lot in lot_recall else []
        found += [area_recall[a] for a, h in own.get(lot, ()) if a in area_recall]
        for par in parents.get(lot, ()):
            found += recalls(par)
        return found

    lots = set(own) | set(parents) | {i for ps in parents.values() for i in ps}
    result = {}
    for lot in lots:
        rs = recalls(lot)
        result[lot] = (sorted(origins(lot)), min(rs, key=order_key)["event_id"] if rs else None)
    return result


@settings(max_examples=150, deadline=None)
@given(chains())
def test_fold_equals_reference_evaluation(events):
    records = project(events)
    for lot, (origins, recall_id) in reference(events).items():
        rec = records[lot]
        assert [(o["area_code"], o["harvest_lot"]) for o in rec["origins"]] == origins
        assert (rec["recall"] or {}).get("event_id") == recall_id
        assert (rec["status"] == "recalled") == (recall_id is not None)


def linear_chain(depth: int):
    evs = [ev(1, "harvest", {"lot": "L0", "area_code": "VN-DEEP", "crop": "tỏi", "quantity": kg(1000),
                             "crate_tags": []}, 0)]
    for d in range(depth):
        evs.append(ev(2 + d, "transform", {"process": "splitting", "inputs": [{"lot": f"L{d}", "quantity": kg(10)}],
                                           "outputs": [{"lot": f"L{d + 1}", "quantity": kg(10)}],
                                           "duration_hours": None}, 10 + d))
    return evs


def test_deep_chain_of_twelve_transformations_in_reverse_order():
    evs = linear_chain(12)
    recall = ev(99, "recall", {"scope": "lot", "target": "L0", "reason": "nấm mốc", "authority": "Chi cục QLCL"}, 500)
    records = project(list(reversed(evs)) + [recall])
    leaf = records["L12"]
    assert leaf["origins"] == [{"area_code": "VN-DEEP", "harvest_lot": "L0"}]
    assert leaf["status"] == "recalled" and leaf["recall"]["event_id"] == recall["event_id"]
    assert leaf["parents"] == ["L11"]


def test_diamond_blend_and_split():
    """H1, H2 -> blend B -> split S1, S2 -> re-blend D: D comes from both gardens exactly once each."""
    e = [
        ev(1, "harvest", {"lot": "H1", "area_code": "VN-A", "crop": "chè", "quantity": kg(100), "crate_tags": []}, 0),
        ev(2, "harvest", {"lot": "H2", "area_code": "VN-B", "crop": "chè", "quantity": kg(100), "crate_tags": []}, 1),
        ev(3, "transform", {"process": "blending", "inputs": [{"lot": "H1", "quantity": kg(100)},
                                                               {"lot": "H2", "quantity": kg(100)}],
                            "outputs": [{"lot": "B", "quantity": kg(200)}], "duration_hours": None}, 2),
        ev(4, "transform", {"process": "splitting", "inputs": [{"lot": "B", "quantity": kg(200)}],
                            "outputs": [{"lot": "S1", "quantity": kg(100)}, {"lot": "S2", "quantity": kg(100)}],
                            "duration_hours": None}, 3),
        ev(5, "transform", {"process": "blending", "inputs": [{"lot": "S1", "quantity": kg(100)},
                                                               {"lot": "S2", "quantity": kg(100)}],
                            "outputs": [{"lot": "D", "quantity": kg(200)}], "duration_hours": None}, 4),
    ]
    for perm in (e, e[::-1], [e[2], e[4], e[0], e[3], e[1]]):
        d = project(perm)["D"]
        assert d["origins"] == [{"area_code": "VN-A", "harvest_lot": "H1"}, {"area_code": "VN-B", "harvest_lot": "H2"}]
        assert d["parents"] == ["S1", "S2"]
        assert d["flags"] == []
        assert project(perm)["B"]["children"] == ["S1", "S2"]


def test_rules_flag_never_drop():
    e = [
        ev(1, "harvest", {"lot": "H", "area_code": "VN-NOPE", "crop": "tỏi", "quantity": kg(100), "crate_tags": []}, 0),
        ev(2, "transform", {"process": "fermentation", "inputs": [{"lot": "H", "quantity": kg(100)}],
                            "outputs": [{"lot": "G", "quantity": kg(150)}], "duration_hours": 960.0}, 10),
        ev(3, "package", {"lot": "G", "gtin": GTIN, "units": 10, "quantity": None, "production_date": "2026-10-02",
                          "expiry_date": "2026-10-03", "stamps_requested": 10}, 20),
        ev(4, "sell", {"lot": "G", "units": 12, "point_of_sale": "POS"}, 6000),
    ]
    recs = project(e)
    rules_g = {f["rule"] for f in recs["G"]["flags"]}
    assert {"mass_balance", "product_unregistered", "oversold", "expired"} <= rules_g
    assert {f["rule"] for f in recs["H"]["flags"]} == {"area_unregistered"}
    # everything is still in the record
    assert recs["G"]["units_sold"] == 12 and len(recs["G"]["steps"]) == 3


def test_late_master_data_reevaluates_and_rating_only_if_valid_on_packaging():
    from tests.samples import SAMPLE_EVENTS

    pkg = ev(1, "package", {"lot": "P", "gtin": GTIN, "units": 5, "quantity": None, "production_date": "2026-10-02",
                            "expiry_date": None, "stamps_requested": 0}, 0)
    before = project([pkg])["P"]
    assert before["product"] is None and {"product_unregistered"} <= {f["rule"] for f in before["flags"]}
    after = project([pkg, SAMPLE_EVENTS["product"], SAMPLE_EVENTS["rating"]])["P"]
    assert after["product"]["name_vi"] == "Chè Tân Cương Hảo Đạt"
    assert after["rating"]["stars"] == 4 and after["flags"] == []
    expired_rating = dict(SAMPLE_EVENTS["rating"], payload=dict(SAMPLE_EVENTS["rating"]["payload"],
                                                                valid_to="2026-01-01"))
    late = project([pkg, SAMPLE_EVENTS["product"], expired_rating])["P"]
    assert late["rating"] is None and [f["rule"] for f in late["flags"]] == ["rating_invalid"]


def test_void_removes_an_event_from_the_balances_but_keeps_it_visible():
    e = [
        ev(1, "harvest", {"lot": "H", "area_code": "VN-A", "crop": "chè", "quantity": kg(100), "crate_tags": []}, 0),
        ev(2, "package", {"lot": "H", "gtin": GTIN, "units": 5, "quantity": None, "production_date": "2026-10-02",
                          "expiry_date": None, "stamps_requested": 0}, 1),
        ev(3, "sell", {"lot": "H", "units": 50, "point_of_sale": "POS"}, 2),
    ]
    assert "oversold" in {f["rule"] for f in project(e)["H"]["flags"]}
    void = ev(4, "void", {"lot": "H", "voided_event_id": e[2]["event_id"], "reason": "nhập nhầm"}, 3)
    rec = project(e + [void])["H"]
    assert "oversold" not in {f["rule"] for f in rec["flags"]}
    assert rec["units_sold"] == 0
    assert [s["voided"] for s in rec["steps"]] == [False, False, True, False]


def test_duplicates_change_nothing():
    evs = linear_chain(3)
    rnd = random.Random(7)
    assert project(evs + [rnd.choice(evs) for _ in range(10)]) == project(evs)


def plain_fixpoint(events):
    """The records the plain way: derive every lot in name order, again and again until no parent has news."""
    proj = Projection()
    for e in events:
        proj.add(e)
    records: dict = {}
    pending = sorted(proj.states)
    while pending:
        nxt = set()
        for lot in pending:
            rec = derive(proj.states[lot], proj.master)
            old, records[lot] = records.get(lot), rec
            if old is None or upstream_info(old) != upstream_info(rec) or old["children"] != rec["children"]:
                for child in rec["children"]:
                    if apply_upstream(proj.state(child), lot, upstream_info(rec)):
                        nxt.add(child)
        pending = sorted(nxt)
    return records, proj


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.randoms(use_true_random=False))
def test_run_derives_parents_first_once_each_and_equals_the_plain_fixpoint(events, rnd):
    events = events[:]
    rnd.shuffle(events)  # arrival order does not matter to the records (chains aside)
    expected, ref = plain_fixpoint(events)
    proj = Projection()
    for e in events:
        proj.add(e)
    calls = []
    real = fold.derive
    fold.derive = lambda st, m, *rest: calls.append(st["lot"]) or real(st, m, *rest)
    try:
        got = proj.run()
    finally:
        fold.derive = real
    assert got == expected and list(got) == list(expected) == sorted(expected)
    assert sorted(calls) == sorted(proj.states)  # a lineage without cycles: one derive per lot
    assert {lot: st["parents"] for lot, st in proj.states.items()} == {lot: st["parents"]
                                                                       for lot, st in ref.states.items()}
    order = proj.lineage_order()
    for lot, rec in got.items():
        assert all(order.index(p) < order.index(lot) for p in rec["parents"])


def test_a_cycle_of_transformations_reaches_the_same_fixpoint():
    e = [
        ev(1, "harvest", {"lot": "H1", "area_code": "VN-A", "crop": "chè", "quantity": kg(100), "crate_tags": []}, 0),
        ev(2, "transform", {"process": "drying", "inputs": [{"lot": "H1", "quantity": kg(50)}],
                            "outputs": [{"lot": "X", "quantity": kg(40)}], "duration_hours": None}, 1),
        ev(3, "transform", {"process": "blending", "inputs": [{"lot": "X", "quantity": kg(10)}],
                            "outputs": [{"lot": "H1", "quantity": kg(10)}], "duration_hours": None}, 2),
        ev(4, "recall", {"scope": "lot", "target": "X", "reason": "test", "authority": ""}, 3),
    ]
    expected, _ = plain_fixpoint(e)
    assert project(e) == expected
    assert expected["H1"]["status"] == expected["X"]["status"] == "recalled"
