"""The sink's set-based batches (``consumers.sink.Applier`` → ``apply_records``, ``apply_alerts``, ...) against
SQLite and PostgreSQL (``store`` is parametrized over both): a batch gives exactly the rows that applying its
messages one by one gives, and keeps every rule of the module docstring. No Kafka: messages are built by hand.
"""

from __future__ import annotations

import zlib

from sqlalchemy import delete, select

from consumers.sink import Applier, Message
from consumers.store import EDGES, LOTS, ORIGINS, SINK_OFFSETS, Base, Store, dumps
from schemas import codec, topics
from tests.integration import readside_samples as S
from tests.integration.test_store import snapshot

REC = codec.codec(codec.LOT_RECORD)
ALERT = codec.codec(codec.ALERT)
STAMP = codec.codec(codec.STAMP_RANGE)
SCAN = codec.codec(codec.SCAN)


def rec_msg(offset: int, rec: dict, partition: int = 0) -> Message:
    return Message(topics.RECORDS.full(""), partition, offset, rec["lot"].encode(), REC.encode(rec))


def tombstone(offset: int, lot: str, partition: int = 0) -> Message:
    return Message(topics.RECORDS.full(""), partition, offset, lot.encode(), None)


def msg(spec: topics.TopicSpec, codec_: codec.Codec, offset: int, key: str, value: dict, partition: int = 0):
    return Message(spec.full(""), partition, offset, key.encode(), codec_.encode(value))


def apply(store: Store, batch: list[Message]):
    return Applier(store).apply_batch(batch)


def counts(stats) -> tuple[int, int, int, int]:
    return stats.applied, stats.unchanged, stats.invalid, stats.rejected


def rows_of(store: Store) -> dict[str, list[dict]]:
    """Every row but the sink's own positions."""
    snap = snapshot(store)
    snap.pop(SINK_OFFSETS.name)
    return snap


def edges(store: Store) -> set[tuple[str, str]]:
    with store.read() as c:
        return {(p, ch) for p, ch in c.execute(select(EDGES.c.parent_lot, EDGES.c.child_lot))}


def origins(store: Store, lot: str) -> list[tuple[str, str]]:
    with store.read() as c:
        return sorted((a, h) for a, h in c.execute(
            select(ORIGINS.c.area_code, ORIGINS.c.harvest_lot).where(ORIGINS.c.lot == lot)))


def step_ids(store: Store, lot: str) -> list[str]:
    return [s["event_id"] for s in store.steps(lot)]


def wipe(store: Store) -> None:
    with store.write() as c:
        for t in reversed(Base.metadata.sorted_tables):
            c.execute(delete(t))


def same_as_one_by_one(store: Store, messages: list[Message], batch_size: int) -> dict:
    """Apply ``messages`` one per batch, then (from empty) in batches of ``batch_size``: the rows must be equal."""
    for m in messages:
        apply(store, [m])
    one_by_one = rows_of(store)
    wipe(store)
    for i in range(0, len(messages), batch_size):
        apply(store, messages[i:i + batch_size])
    batched = rows_of(store)
    assert batched == one_by_one
    return batched


def test_older_and_newer_versions_of_a_stored_lot_in_one_batch(store):
    v1 = S.record("L1", version=1, units_sold=1)
    apply(store, [rec_msg(10, v1)])
    newer = S.record("L1", version=3, units_sold=3, steps=[S.step("L1", 7, "harvest", S.at(2))])
    older = S.record("L1", version=0, units_sold=0, status="recalled")
    stats = apply(store, [rec_msg(7, older), rec_msg(11, newer)])  # a redelivered old one and a new one
    assert counts(stats) == (1, 1, 0, 0)
    lot = store.lot("L1")
    assert lot["units_sold"] == 3 and lot["source_offset"] == 11 and lot["record"] == newer
    assert step_ids(store, "L1") == [S.uid("L1", 7, "harvest")]
    with store.read() as c:  # the stored text is the canonical JSON of the record
        assert c.execute(select(LOTS.c.record).where(LOTS.c.lot == "L1")).scalar() == dumps(newer)

    before = rows_of(store)
    stats = apply(store, [rec_msg(8, older), rec_msg(9, S.record("L1", version=2, units_sold=2))])
    assert counts(stats) == (0, 2, 0, 0)  # both older than the stored offset 11: nothing changes
    assert rows_of(store) == before
    stats = apply(store, [rec_msg(11, newer)])  # the stored version itself, again
    assert counts(stats) == (0, 1, 0, 0) and rows_of(store) == before


def test_only_the_lots_whose_record_is_newer_apply(store):
    apply(store, [rec_msg(10, S.record("A", units_sold=1)), rec_msg(11, S.record("B", units_sold=1)),
                  rec_msg(12, S.record("C", units_sold=1, origins=[("AREA-C", "C")]))])
    stale_a = S.record("A", units_sold=9, steps=[S.step("A", 5, "harvest", S.at(3))], origins=[("AREA-X", "A")])
    stats = apply(store, [
        rec_msg(5, stale_a),  # older than the stored one: ignored, its rows stay
        rec_msg(13, S.record("B", units_sold=2, version=1)),
        rec_msg(0, S.record("C", units_sold=2, version=1, origins=[("AREA-C2", "C")]), partition=1),  # moved
        rec_msg(14, S.record("D", units_sold=2)),  # a new lot
    ])
    assert counts(stats) == (3, 1, 0, 0)
    assert {x: store.lot(x)["units_sold"] for x in "ABCD"} == {"A": 1, "B": 2, "C": 2, "D": 2}
    assert step_ids(store, "A") == [S.uid("A", 0, "harvest")] and origins(store, "A") == [(S.AREA, "A")]
    assert origins(store, "C") == [("AREA-C2", "C")]
    assert (store.lot("C")["source_partition"], store.lot("C")["source_offset"]) == (1, 0)


def test_child_rows_are_replaced_and_edges_follow_both_ends(store):
    apply(store, [
        rec_msg(0, S.record("P", children=["K1", "K2"], packaged=True, origins=[("AREA-P", "P")])),
        rec_msg(1, S.record("K1", parents=["P"], origins=[("AREA-P", "P")])),
        rec_msg(2, S.record("K2", parents=["P"], origins=[("AREA-P", "P")])),
    ])
    assert edges(store) == {("P", "K1"), ("P", "K2")}
    assert step_ids(store, "P") == [S.uid("P", 0, "harvest"), S.uid("P", 1, "package")]
    k1_steps = step_ids(store, "K1")

    # P drops K2 and gets other steps and origins; K2 no longer names P; K1 is not in the batch
    apply(store, [
        rec_msg(3, S.record("P", children=["K1"], version=1, steps=[S.step("P", 9, "harvest", S.at(4))],
                            origins=[("AREA-X", "P"), ("AREA-Y", "P2")])),
        rec_msg(4, S.record("K2", parents=[], version=1, origins=[("AREA-K2", "K2")])),
    ])
    assert edges(store) == {("P", "K1")}
    assert step_ids(store, "P") == [S.uid("P", 9, "harvest")]
    assert origins(store, "P") == [("AREA-X", "P"), ("AREA-Y", "P2")]
    assert origins(store, "K2") == [("AREA-K2", "K2")]
    assert step_ids(store, "K1") == k1_steps

    # an edge known from one end only (Q has no record), and replaced from the child's side
    apply(store, [rec_msg(5, S.record("K1", parents=["P", "Q"], version=1))])
    assert edges(store) == {("P", "K1"), ("Q", "K1")}
    apply(store, [rec_msg(6, S.record("K1", parents=["Q"], version=2)), rec_msg(7, S.record("Z"))])
    assert edges(store) == {("Q", "K1")}  # the child's record alone removes the edge

    # both ends in one batch: the later one decides (as one by one)
    apply(store, [rec_msg(8, S.record("X", children=["Y"])), rec_msg(9, S.record("Y", parents=[]))])
    assert ("X", "Y") not in edges(store)
    apply(store, [rec_msg(10, S.record("Y", parents=["X"], version=1)), rec_msg(11, S.record("X", version=1))])
    assert ("X", "Y") not in edges(store)
    apply(store, [rec_msg(12, S.record("X", children=["Y"], version=2)),
                  rec_msg(13, S.record("Y", parents=["X"], version=2))])
    assert ("X", "Y") in edges(store)


def test_a_tombstone_and_records_of_other_lots_in_one_batch(store):
    apply(store, [rec_msg(0, S.record("L1", children=["L2"], origins=[("AREA-1", "L1")])),
                  rec_msg(1, S.record("L2", parents=["L1"])), rec_msg(2, S.record("L3"))])
    stats = apply(store, [
        rec_msg(10, S.record("L2", parents=["L1"], units_sold=5, version=1)),
        tombstone(11, "L1"),  # after L2's record: the edge goes with L1
        rec_msg(12, S.record("L3", units_sold=7, version=1)),
        rec_msg(13, S.record("L4")),
        tombstone(14, "NEVER"),  # a lot the read side never had
    ])
    assert counts(stats) == (4, 1, 0, 0)
    assert store.lot("L1") is None and step_ids(store, "L1") == [] and origins(store, "L1") == []
    assert edges(store) == set()
    assert store.lot("L2")["units_sold"] == 5 and store.lot("L3")["units_sold"] == 7 and store.lot("L4")
    assert store.lot("NEVER") is None

    # a record after the tombstone in the same batch names its (gone) parent again: the edge shows
    stats = apply(store, [tombstone(20, "L3"), rec_msg(21, S.record("L2", parents=["L1"], version=2))])
    assert counts(stats) == (2, 0, 0, 0)
    assert store.lot("L3") is None and edges(store) == {("L1", "L2")}
    assert counts(apply(store, [tombstone(15, "L2")])) == (0, 1, 0, 0)  # older than L2's record: ignored
    assert store.lot("L2") is not None


def test_alerts_stamps_and_scans_in_one_batch(store):
    apply(store, [msg(topics.ALERTS, ALERT, 10, "L3", S.alert("a3", lot="L3", state="resolved"))])
    stats = apply(store, [
        msg(topics.ALERTS, ALERT, 5, "L1", S.alert("a1")),
        msg(topics.ALERTS, ALERT, 6, "L1", S.alert("a1", state="resolved")),
        msg(topics.ALERTS, ALERT, 7, "L2", S.alert("a2", lot="L2")),
        msg(topics.ALERTS, ALERT, 9, "L3", S.alert("a3", lot="L3")),  # older than the stored one
        msg(topics.STAMPS, STAMP, 0, "L1", S.stamp_range("L1", 1, 10, n=0)),
        msg(topics.STAMPS, STAMP, 1, "L1", S.stamp_range("L1", 1, 10, n=0)),  # the same range again
        msg(topics.STAMPS, STAMP, 2, "L1", S.stamp_range("L1", 11, 10, n=1)),
        msg(topics.SCANS, SCAN, 0, "S1", S.scan("S1", 1)),
        msg(topics.SCANS, SCAN, 1, "S1", S.scan("S1", 1)),  # the same scan again
        msg(topics.SCANS, SCAN, 2, "S1", S.scan("S1", 2)),
    ])
    assert counts(stats) == (7, 3, 0, 0)
    assert [a["state"] for a in store.alerts_for(lot="L1")] == ["resolved"]
    assert [a["state"] for a in store.alerts_for(lot="L2")] == ["open"]
    assert [a["state"] for a in store.alerts_for(lot="L3")] == ["resolved"]
    assert [r["first_index"] for r in store.stamp_ranges("L1")] == [1, 11]
    assert store.scan_stats("S1")["count"] == 2

    again = apply(store, [msg(topics.ALERTS, ALERT, 6, "L1", S.alert("a1", state="resolved"))])
    assert counts(again) == (0, 1, 0, 0)


def generated_messages() -> list[Message]:
    """Records of generated chains as the workers publish them over time (a new version whenever a lot's record
    changes), then tombstones, redelivered old versions, alerts, stamp ranges and scans."""
    from producers.generator import generate
    from streams.fold import project

    events = generate(subjects=3, lots=8, seed=5)
    nxt = [0, 0, 0]
    out: list[Message] = []
    published: dict[str, dict] = {}
    for k in (len(events) // 4, len(events) // 2, 3 * len(events) // 4, len(events)):
        for lot, rec in sorted(project(events[:k]).items()):
            if published.get(lot) != rec:
                p = zlib.crc32(lot.encode()) % 3
                out.append(rec_msg(nxt[p], rec, partition=p))
                nxt[p] += 1
                published[lot] = rec
    lots = sorted(published)
    for lot in lots[:2]:
        p = zlib.crc32(lot.encode()) % 3
        out.append(tombstone(nxt[p], lot, partition=p))
        nxt[p] += 1
    out += out[3:9]  # redelivered
    for i, lot in enumerate(lots[:6]):
        out.append(msg(topics.ALERTS, ALERT, 2 * i, lot, S.alert(f"g{i % 3}", lot=lot)))
        out.append(msg(topics.ALERTS, ALERT, 2 * i + 1, lot, S.alert(f"g{i % 3}", lot=lot, state="resolved")))
        out.append(msg(topics.STAMPS, STAMP, i, lot, S.stamp_range(lot, 1, 10, n=i % 2)))
        out.append(msg(topics.SCANS, SCAN, i, lot, S.scan(f"SER{i % 4}", i % 5, lot=lot)))
    return out


def test_batches_equal_one_by_one_on_generated_chains(store):
    messages = generated_messages()
    assert sum(m.topic == topics.RECORDS.full("") for m in messages) > 30
    rows = same_as_one_by_one(store, messages, batch_size=13)
    assert rows["lots"] and rows["steps"] and rows["lineage_edges"] and rows["lot_origins"]
    wipe(store)
    same_as_one_by_one(store, messages, batch_size=500)
