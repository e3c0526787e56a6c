"""The scan service's read cache (consumers.web.cache.ReadCache): what a change of the sink's positions forgets,
the age limit, the LRU bound and the load/invalidation race — on a fake store and a hand-moved clock."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from consumers import store as store_mod
from consumers.web.cache import MISS, ReadCache

P = "t."  # topic prefix
RECORDS, ALERTS, STAMPS, SCANS, MASTER = (P + t for t in ("ocop.records", "ocop.alerts", "ocop.stamps",
                                                           "ocop.events.scans", "ocop.events.master"))


class FakeStore:
    """``sink_offsets`` as the test sets them; ``changed`` answers ``changed_since`` per table."""

    def __init__(self) -> None:
        self.positions: dict = {}
        self.changed: dict[str, list[dict] | None] = {"lots": [], "alerts": []}
        self.asked: list[tuple[str, dict]] = []

    @contextmanager
    def read(self):
        yield self

    def sink_offsets(self, conn=None) -> dict:
        return dict(self.positions)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def env(monkeypatch):
    st, clock = FakeStore(), Clock()

    def changed_since(c, table, since, columns, *, limit=10_000):
        st.asked.append((table.name, dict(since)))
        return st.changed[table.name]

    monkeypatch.setattr(store_mod, "changed_since", changed_since)
    cache = ReadCache(st, topic_prefix=P, fresh_seconds=0.2, max_age=30, size=3, lot_size=3, clock=clock)
    cache.refresh()
    return st, clock, cache


def fill(cache: ReadCache) -> None:
    cache.put("lot", "P1", "view P1", cache.epoch("lot"), deps=("P1", "H1"))
    cache.put("lot", "P2", "view P2", cache.epoch("lot"), deps=("P2",))
    cache.put("product", "g", "product", cache.epoch("product"))
    cache.put("serial", "S1", (False, {}), cache.epoch("serial"))
    cache.put("serial", "S2", (False, {}), cache.epoch("serial"))
    cache.put("range", ("g", "P1", 1), {"range_id": "r"}, cache.epoch("range"))
    cache.put("norange", ("g", "P1", 999), True, cache.epoch("norange"))
    cache.put("index", ("g", 999), [], cache.epoch("index"))


def kept(cache: ReadCache) -> set:
    keys = [("lot", "P1"), ("lot", "P2"), ("product", "g"), ("serial", "S1"), ("serial", "S2"),
            ("range", ("g", "P1", 1)), ("norange", ("g", "P1", 999)), ("index", ("g", 999))]
    return {k for k in keys if cache.get(*k) is not MISS}


def move(st: FakeStore, clock: Clock, cache: ReadCache, **positions: int) -> None:
    names = {"records": RECORDS, "alerts": ALERTS, "stamps": STAMPS, "scans": SCANS, "master": MASTER}
    for k, v in positions.items():
        topic, _, part = k.partition("_")
        st.positions[(names[topic], int(part or 0))] = v
    clock.t += 0.2
    cache.refresh()


def test_memory_is_fresh_for_fresh_seconds_then_checked_again(env):
    st, clock, cache = env
    assert cache.is_fresh()
    clock.t += 0.19
    assert cache.is_fresh()
    clock.t += 0.01
    assert not cache.is_fresh()
    cache.refresh()
    assert cache.is_fresh() and cache.stats["checks"] == 2


def test_a_record_change_forgets_the_lots_that_read_it(env):
    st, clock, cache = env
    st.positions = {(RECORDS, 0): 10, (RECORDS, 1): 5}
    clock.t += 0.2
    cache.refresh()
    fill(cache)
    st.asked.clear()
    st.changed["lots"] = [{"lot": "H1"}]  # an ancestor of P1
    move(st, clock, cache, records_0=12)
    assert st.asked == [("lots", {0: 10})]  # only the partition that moved, from its old position
    assert kept(cache) == {("lot", "P2"), ("product", "g"), ("serial", "S1"), ("serial", "S2"),
                           ("range", ("g", "P1", 1)), ("norange", ("g", "P1", 999)), ("index", ("g", 999))}


def test_too_many_changed_lots_forgets_every_lot(env):
    st, clock, cache = env
    fill(cache)
    st.changed["lots"] = None
    move(st, clock, cache, records_0=100_000)
    assert ("lot", "P1") not in kept(cache) and ("lot", "P2") not in kept(cache)
    assert ("product", "g") in kept(cache)


def test_alerts_forget_their_serials_scans_forget_all_serials(env):
    st, clock, cache = env
    fill(cache)
    st.changed["alerts"] = [{"serial": "S1"}]
    move(st, clock, cache, alerts_2=3)
    assert ("serial", "S1") not in kept(cache) and ("serial", "S2") in kept(cache)
    move(st, clock, cache, scans_1=4)
    assert not {k for k in kept(cache) if k[0] == "serial"}
    assert ("lot", "P1") in kept(cache)


def test_new_stamps_forget_only_the_negative_answers(env):
    st, clock, cache = env
    fill(cache)
    move(st, clock, cache, stamps_0=1)
    assert ("norange", ("g", "P1", 999)) not in kept(cache) and ("index", ("g", 999)) not in kept(cache)
    assert ("range", ("g", "P1", 1)) in kept(cache) and ("lot", "P1") in kept(cache)


def test_master_data_forgets_lots_and_products(env):
    st, clock, cache = env
    fill(cache)
    move(st, clock, cache, master_0=7)
    assert kept(cache) == {("serial", "S1"), ("serial", "S2"), ("range", ("g", "P1", 1)),
                           ("norange", ("g", "P1", 999)), ("index", ("g", 999))}


@pytest.mark.parametrize("change", ["back", "unknown topic", "gone"])
def test_a_rebuilt_database_or_an_unknown_topic_forgets_everything(env, change):
    st, clock, cache = env
    st.positions = {(RECORDS, 0): 10}
    clock.t += 0.2
    cache.refresh()
    fill(cache)
    st.asked.clear()
    if change == "back":  # DELETE FROM sink_offsets and a replay
        st.positions = {(RECORDS, 0): 3}
    elif change == "unknown topic":
        st.positions[("other.topic", 0)] = 1
    else:
        st.positions = {}
    clock.t += 0.2
    cache.refresh()
    assert kept(cache) == set() and st.asked == []


def test_entries_expire_within_max_age_except_issued_ranges(env):
    st, clock, cache = env  # max_age 30: each entry lives a random 24-30 s
    fill(cache)
    clock.t += 23.9
    assert ("lot", "P1") in kept(cache) and ("serial", "S1") in kept(cache)
    clock.t += 6.1
    assert kept(cache) == {("range", ("g", "P1", 1))}


def test_a_load_that_overlaps_an_invalidation_is_not_kept(env):
    st, clock, cache = env

    def slow_load():
        # the sink commits while this load reads: the check in between forgets lots
        st.changed["lots"] = [{"lot": "P9"}]
        move(st, clock, cache, records_0=1)
        return "view read before the change"

    assert cache.load("lot", "P1", slow_load, lambda v: ("P1",)) == "view read before the change"
    assert cache.get("lot", "P1") is MISS
    assert cache.load("lot", "P1", lambda: "fresh view", lambda v: ("P1",)) == "fresh view"
    assert cache.get("lot", "P1") == "fresh view"


def test_size_bound_and_disabled_cache(env):
    st, clock, cache = env
    for i in range(5):
        cache.put("serial", f"S{i}", i, cache.epoch("serial"))
    assert [cache.get("serial", f"S{i}") for i in range(5)] == [MISS, MISS, 2, 3, 4]
    off = ReadCache(st, max_age=0)
    off.put("lot", "P1", "x", off.epoch("lot"))
    assert off.get("lot", "P1") is MISS and not off.is_fresh()


def test_concurrent_misses_of_one_key_load_once(env):
    import threading

    st, clock, cache = env
    started, release, calls, got = threading.Event(), threading.Event(), [], []

    def loader():
        calls.append(1)
        started.set()
        assert release.wait(10)
        return "view"

    first = threading.Thread(target=lambda: got.append(cache.load("lot", "P1", loader)))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=lambda: got.append(cache.load("lot", "P1", loader))) for _ in range(3)]
    for t in others:
        t.start()
    release.set()
    for t in (first, *others):
        t.join(10)
    assert got == ["view"] * 4 and len(calls) == 1


def test_a_waiter_does_not_take_a_load_that_an_invalidation_overtook(env):
    import threading

    st, clock, cache = env
    started, release, got = threading.Event(), threading.Event(), []

    def slow():
        started.set()
        assert release.wait(10)
        return "read before the change"

    first = threading.Thread(target=lambda: cache.load("lot", "P1", slow))
    first.start()
    assert started.wait(10)
    st.changed["lots"] = [{"lot": "P1"}]
    move(st, clock, cache, records_0=5)  # the sink moved while the first load was reading
    waiter = threading.Thread(target=lambda: got.append(cache.load("lot", "P1", lambda: "read after the change")))
    waiter.start()
    release.set()
    first.join(10)
    waiter.join(10)
    assert got == ["read after the change"] and cache.get("lot", "P1") is MISS
