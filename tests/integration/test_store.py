"""Contract tests of the SQL read side: the same suite on SQLite and on PostgreSQL (``db_url`` is parametrized
over both by tests/conftest.py; a PostgreSQL server is started by the test session).

No Kafka here: values are applied with the sink's pure ``apply_*`` functions and its ``Applier`` (batches of
messages with offsets), exactly as the sink does after polling.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from consumers import sink
from consumers.sink import Applier, Message
from consumers.store import ALERTS, EDGES, LOTS, ORIGINS, SINK_OFFSETS, SINK_REJECTS, STEPS, Base, Store, T
from schemas import codec, topics
from schemas.events import encode_event
from tests.integration import readside_samples as S


def apply(st: Store, fn, *args) -> bool:
    with st.write() as c:
        return fn(c, *args)


def rows(st: Store, table, *order) -> list[dict]:
    with st.read() as c:
        return [dict(r._mapping) for r in c.execute(select(table).order_by(*order))]


def snapshot(st: Store) -> dict[str, list[dict]]:
    """Every row of every table, sorted: two equal snapshots mean the same read side."""
    out = {}
    with st.read() as c:
        for name, t in sorted(T.items()):
            out[name] = sorted((dict(r._mapping) for r in c.execute(select(t))), key=lambda r: json.dumps(r, default=str,
                                                                                                       sort_keys=True))
    return out


# ---------------------------------------------------------------------------------------------------------------
# migrations
# ---------------------------------------------------------------------------------------------------------------


def test_migrations_run_and_match_the_models(store):
    assert store.current_revision() == "0002"
    store.migrate()  # idempotent
    with store.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_downgrade_and_upgrade_again(db_url):
    st = Store(db_url)
    try:
        st.migrate()
        cfg = st.alembic_config()
        with st.engine.connect() as conn:
            cfg.attributes["connection"] = conn.execution_options(ocop_write=True)
            command.downgrade(cfg, "base")
            conn.commit()
        assert st.current_revision() is None
        st.migrate()
        assert st.current_revision() == "0002"
        assert set(st.counts()) == set(T)
    finally:
        st.close()


# ---------------------------------------------------------------------------------------------------------------
# upserts by key and version
# ---------------------------------------------------------------------------------------------------------------


def test_record_upsert_is_idempotent_and_versioned(store):
    v1 = S.record("L1", packaged=True, version=1)
    assert apply(store, sink.apply_record, v1, 2, 10) is True
    before = snapshot(store)
    assert apply(store, sink.apply_record, v1, 2, 10) is False  # the same message again
    assert snapshot(store) == before

    older = S.record("L1", status="recalled", version=0, steps=[S.step("L1", 9, "harvest", S.at(1))])
    assert apply(store, sink.apply_record, older, 2, 7) is False  # an older offset: ignored
    assert snapshot(store) == before

    newer = S.record("L1", packaged=True, version=2, units_sold=200, status="sold_out",
                     steps=[S.step("L1", 0, "harvest", S.at(1), quantity=100.0),
                            S.step("L1", 1, "package", S.at(1, 14), units=200),
                            S.step("L1", 2, "sell", S.at(3), units=200)])
    assert apply(store, sink.apply_record, newer, 2, 11) is True
    lot = store.lot("L1")
    assert lot["status"] == "sold_out" and lot["units_sold"] == 200 and lot["source_offset"] == 11
    assert lot["record"] == newer
    assert [s["event_type"] for s in store.steps("L1")] == ["harvest", "package", "sell"]
    assert lot["first_event_at"] == "2026-03-01T01:00:00+00:00"
    assert lot["last_event_at"] == "2026-03-03T01:00:00+00:00"

    # the child rows are replaced, not accumulated
    fewer = S.record("L1", version=3, steps=[S.step("L1", 5, "harvest", S.at(2))], origins=[("VT-X", "L1")])
    assert apply(store, sink.apply_record, fewer, 2, 12) is True
    assert [s["event_id"] for s in store.steps("L1")] == [S.uid("L1", 5, "harvest")]
    assert rows(store, ORIGINS, ORIGINS.c.area_code) == [{"lot": "L1", "area_code": "VT-X", "harvest_lot": "L1"}]


def test_record_tombstone(store):
    apply(store, sink.apply_record, S.record("L1", children=["L2"]), 0, 3)
    apply(store, sink.apply_record, S.record("L2", parents=["L1"]), 0, 4)
    assert apply(store, sink.delete_record, "L1", 0, 2) is False  # older than the record: ignored
    assert apply(store, sink.delete_record, "L1", 0, 9) is True
    assert store.lot("L1") is None
    assert rows(store, EDGES) == []
    assert store.lot("L2") is not None


def test_alert_upsert_newest_offset_wins(store):
    assert apply(store, sink.apply_alert, S.alert("a1"), 1, 5)
    assert apply(store, sink.apply_alert, S.alert("a1", state="resolved"), 1, 6)
    assert not apply(store, sink.apply_alert, S.alert("a1"), 1, 5)  # redelivered older state
    assert [a["state"] for a in store.alerts_for(lot="L1")] == ["resolved"]


def test_master_latest_change_wins_in_any_order(store):
    old = S.subject_event("HTX Chè cũ", n=1, occurred_at=S.at(1))
    new = S.subject_event("HTX Chè Hảo Đạt", n=2, occurred_at=S.at(2))
    assert apply(store, sink.apply_master, new, 0, 1)
    assert not apply(store, sink.apply_master, old, 0, 2)  # consumed later, happened earlier
    assert not apply(store, sink.apply_master, new, 0, 3)  # a duplicate
    assert store.subject(S.SUBJECT)["name"] == "HTX Chè Hảo Đạt"

    # ratings: the whole history, once per event
    r1 = S.rating_event("granted", 3, n=1, occurred_at=S.at(1))
    r2 = S.rating_event("renewed", 4, n=2, occurred_at=S.at(2))
    for i, ev in enumerate([r2, r1, r2]):
        apply(store, sink.apply_master, ev, 0, 10 + i)
    assert [(r["action"], r["stars"]) for r in store.ratings(S.GTIN14)] == [("granted", 3), ("renewed", 4)]


# ---------------------------------------------------------------------------------------------------------------
# lineage
# ---------------------------------------------------------------------------------------------------------------


def load_graph(st: Store, edges: list[tuple[str, str]], *, only_children_side: set[str] = frozenset()) -> None:
    """Apply a record per lot of a lineage graph (parents and children as the fold gives them)."""
    lots = sorted({x for e in edges for x in e})
    parents = {x: sorted(p for p, c in edges if c == x) for x in lots}
    children = {x: sorted(c for p, c in edges if p == x) for x in lots}
    for i, lot in enumerate(lots):
        if lot in only_children_side:
            continue
        apply(st, sink.apply_record, S.record(lot, parents=parents[lot], children=children[lot],
                                              origins=[] if parents[lot] else [(f"AREA-{lot}", lot)]), 0, i)


def test_lineage_diamond_has_no_duplicates(store):
    #      A
    #    /   \
    #   B     C
    #    \   /
    #      D --- E
    edges = [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("D", "E")]
    load_graph(store, edges)
    d = store.lineage("D")
    assert [(x["lot"], x["depth"]) for x in d["ancestors"]] == [("B", 1), ("C", 1), ("A", 2)]
    assert [(x["lot"], x["depth"]) for x in d["descendants"]] == [("E", 1)]
    assert d["edges"] == [{"parent": p, "child": c} for p, c in sorted(edges)]

    a = store.lineage("A")
    assert a["ancestors"] == []
    assert [(x["lot"], x["depth"]) for x in a["descendants"]] == [("B", 1), ("C", 1), ("D", 2), ("E", 3)]
    assert len(a["edges"]) == 5

    b = store.lineage("B")  # C is neither an ancestor nor a descendant of B: its edges are not B's lineage
    assert [x["lot"] for x in b["ancestors"]] == ["A"]
    assert [x["lot"] for x in b["descendants"]] == ["D", "E"]
    assert b["edges"] == [{"parent": "A", "child": "B"}, {"parent": "B", "child": "D"},
                          {"parent": "D", "child": "E"}]


def test_lineage_twelve_deep_chain(store):
    chain = [f"C{i:02d}" for i in range(13)]  # 12 transformations
    load_graph(store, list(zip(chain, chain[1:])))
    last = store.lineage(chain[-1])
    assert [(x["lot"], x["depth"]) for x in last["ancestors"]] == [(chain[-1 - d], d) for d in range(1, 13)]
    assert last["descendants"] == []
    assert len(last["edges"]) == 12
    first = store.lineage(chain[0])
    assert [x["lot"] for x in first["descendants"]] == chain[1:]
    assert [x["lot"] for x in store.lineage(chain[0], max_depth=5)["descendants"]] == chain[1:6]
    middle = store.lineage(chain[6])
    assert len(middle["ancestors"]) == 6 and len(middle["descendants"]) == 6


def test_lineage_wide_diamond_lattice_stays_small(store):
    """Ten layers of three lots, each lot feeding all three of the next: 3^10 paths, 30 lots."""
    layers = [[f"W{i}{k}" for k in "abc"] for i in range(10)]
    edges = [(p, c) for up, down in zip(layers, layers[1:]) for p in up for c in down]
    load_graph(store, edges)
    lin = store.lineage("W9a")
    assert len(lin["ancestors"]) == 27 and len({x["lot"] for x in lin["ancestors"]}) == 27
    assert {x["depth"] for x in lin["ancestors"] if x["lot"].startswith("W0")} == {9}


def test_lineage_edge_known_from_one_end_only(store):
    """The parent's record names the child before the child's record reaches the read side."""
    load_graph(store, [("P", "K")], only_children_side={"K"})
    assert [x["lot"] for x in store.lineage("P")["descendants"]] == ["K"]
    assert store.lineage("P")["descendants"][0]["known"] is False
    assert [x["lot"] for x in store.lineage("K")["ancestors"]] == ["P"]


# ---------------------------------------------------------------------------------------------------------------
# queries for the web and reports
# ---------------------------------------------------------------------------------------------------------------


def load_demo(st: Store) -> None:
    for i, ev in enumerate([S.subject_event(), S.area_event(), S.area_event("VT-TN-002", n=1), S.product_event(),
                            S.rating_event(), S.facility_event()]):
        apply(st, sink.apply_master, ev, 0, i)
    apply(st, sink.apply_record, S.record("H1", children=["T1"], day=1, origins=[(S.AREA, "H1")]), 0, 1)
    apply(st, sink.apply_record, S.record("H2", children=["T1"], day=2, origins=[("VT-TN-002", "H2")]), 1, 1)
    apply(st, sink.apply_record, S.record("T1", parents=["H1", "H2"], day=5, packaged=True,
                                          origins=[(S.AREA, "H1"), ("VT-TN-002", "H2")]), 2, 1)
    apply(st, sink.apply_record, S.record("OTHER", day=20, packaged=True, gtin="8930000000026",
                                          origins=[("VT-ZZ", "OTHER")]), 3, 1)


def test_lot_with_master_data(store):
    load_demo(store)
    lot = store.lot("T1")
    assert lot["product"]["name_vi"] == "Chè Tân Cương"
    assert lot["subject"]["name"] == "HTX Chè Hảo Đạt"
    assert [a["area_code"] for a in lot["areas"]] == [S.AREA, "VT-TN-002"]
    assert lot["areas"][0]["location"] == [{"lat": 21.5906, "lon": 105.7623}]
    assert lot["areas"][0]["crops"] == ["tea"]
    assert [r["stars"] for r in lot["ratings"]] == [4]
    assert [f["facility_id"] for f in lot["facilities"]] == ["FAC-1"]
    assert lot["origins"] == [{"area_code": S.AREA, "harvest_lot": "H1"},
                              {"area_code": "VT-TN-002", "harvest_lot": "H2"}]
    json.dumps(lot)  # JSON-able for the web and the API
    assert store.lot("NOPE") is None


def test_lots_by_subject_area_product_period(store):
    load_demo(store)

    def lots(xs):
        return [x["lot"] for x in xs]

    assert lots(store.lots_by_subject(S.SUBJECT)) == ["H1", "H2", "T1", "OTHER"]
    assert lots(store.lots_by_subject("NOBODY")) == []
    assert lots(store.lots_by_area(S.AREA)) == ["H1", "T1"]
    assert lots(store.lots_by_area("VT-TN-002")) == ["H2", "T1"]
    assert lots(store.lots_by_product(S.GTIN)) == ["T1"]
    assert lots(store.lots_by_product(S.GTIN14)) == ["T1"]  # the Digital Link's GTIN-14
    assert lots(store.lots_by_period(date(2026, 3, 2), date(2026, 3, 6))) == ["H2", "T1"]
    # 2026-03-01 08:00+07:00 is 01:00 UTC: the boundary is an instant, not a local date
    assert lots(store.lots_by_period(datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc),
                                     datetime(2026, 3, 1, 1, 1, tzinfo=timezone.utc))) == ["H1"]
    assert lots(store.lots_by_period("2026-03-01T00:00:00+07:00", "2026-03-01T08:00:00+07:00")) == []
    assert lots(store.lots_by_period(date(2026, 3, 1), date(2026, 4, 1), by="production")) == ["T1", "OTHER"]
    assert lots(store.lots_by_period(date(2026, 3, 10), date(2026, 4, 1), by="first_event")) == ["OTHER"]
    assert lots(store.lots_by_subject(S.SUBJECT, limit=2, offset=1)) == ["H2", "T1"]
    with pytest.raises(ValueError):
        store.lots_by_period(date(2026, 3, 1), date(2026, 4, 1), by="nonsense")


def test_stamp_range_lookup(store):
    apply(store, sink.apply_stamp_range, S.stamp_range("T1", 1, 100, n=0))
    apply(store, sink.apply_stamp_range, S.stamp_range("T1", 101, 50, n=1))
    assert not apply(store, sink.apply_stamp_range, S.stamp_range("T1", 101, 50, n=1))  # a fact, once
    for index, first in [(1, 1), (100, 1), (101, 101), (150, 101)]:
        r = store.stamp_range_for(S.GTIN, "T1", index)
        assert r is not None and r["first_index"] == first, index
    for index in (0, 151, 10**12):
        assert store.stamp_range_for(S.GTIN, "T1", index) is None
    assert store.stamp_range_for(S.GTIN14, "T1", 42)["range_id"] == S.uid("T1", "range", 0)
    assert store.stamp_range_for(S.GTIN, "OTHER", 42) is None
    assert store.stamp_range_for("8930000000026", "T1", 42) is None
    assert [r["count"] for r in store.stamp_ranges("T1")] == [100, 50]


def test_scan_stats(store):
    assert store.scan_stats("S1") == {"count": 0, "first_scan_at": None, "last_scan_at": None, "regions": 0}
    apply(store, sink.apply_scan, S.scan("S1", 1, day=10, hour=9))  # 02:00 UTC
    early = dict(S.scan("S1", 2), scanned_at="2026-03-10T01:30:00+00:00")  # earlier instant, "later" text
    apply(store, sink.apply_scan, early)
    apply(store, sink.apply_scan, S.scan("S1", 3, day=11, region="VN-HN"))
    assert not apply(store, sink.apply_scan, S.scan("S1", 3, day=11, region="VN-HN"))  # same scan_id
    apply(store, sink.apply_scan, S.scan("S2", 1))
    st = store.scan_stats("S1")
    assert st == {"count": 3, "first_scan_at": "2026-03-10T01:30:00+00:00",
                  "last_scan_at": S.at(11, 9), "regions": 2}


def test_alerts_and_flagged_serials(store):
    apply(store, sink.apply_alert, S.alert("a1", lot="T1", raised_at=S.at(6)), 0, 1)
    apply(store, sink.apply_alert, S.alert("a2", rule="suspicious_copy", lot=None, serial="SER1",
                                           raised_at=S.at(7)), 0, 2)
    apply(store, sink.apply_alert, S.alert("a3", rule="suspicious_copy", lot=None, serial="SER2",
                                           state="resolved"), 0, 3)
    assert [a["alert_id"] for a in store.alerts_for(lot="T1")] == ["a1"]
    assert [a["alert_id"] for a in store.alerts_for(serial="SER1")] == ["a2"]
    assert [a["alert_id"] for a in store.alerts_for(lot="T1", serial="SER1")] == ["a1", "a2"]
    assert store.alerts_for(lot="T1", state="resolved") == []
    assert store.serial_flagged("SER1") is True
    assert store.serial_flagged("SER2") is False  # resolved
    assert store.serial_flagged("SER3") is False
    with pytest.raises(ValueError):
        store.alerts_for()


# ---------------------------------------------------------------------------------------------------------------
# batches: rows and offsets in one transaction
# ---------------------------------------------------------------------------------------------------------------

P = ""  # topic prefix of the Applier tests


def msg(spec: topics.TopicSpec, partition: int, offset: int, key: str | None, value: bytes | None) -> Message:
    return Message(spec.full(P), partition, offset, key.encode() if key is not None else None, value)


def rec_msg(partition: int, offset: int, rec: dict) -> Message:
    return msg(topics.RECORDS, partition, offset, rec["lot"], codec.codec(codec.LOT_RECORD).encode(rec))


def test_batch_writes_rows_and_offsets_together(store):
    bad_product = S.product_event(n=9)
    bad_product["payload"]["gtin"] = "8930000000018"  # wrong check digit: invalid, skipped
    batch = [
        rec_msg(0, 0, S.record("L1", version=1)),
        rec_msg(0, 1, S.record("L1", version=2, units_sold=3)),  # supersedes offset 0 within the batch
        msg(topics.ALERTS, 1, 0, "L1", codec.codec(codec.ALERT).encode(S.alert("a1"))),
        msg(topics.STAMPS, 0, 5, "L1", codec.codec(codec.STAMP_RANGE).encode(S.stamp_range("L1", 1, 10))),
        msg(topics.SCANS, 2, 0, "S1", codec.codec(codec.SCAN).encode(S.scan("S1", 1))),
        Message(topics.RECORDS.full(P), 1, 0, b"L9", b"not avro"),
        msg(topics.MASTER, 0, 0, S.SUBJECT, encode_event(S.subject_event())),
        # not accepted by the validate agent (dead-lettered there), so skipped here:
        msg(topics.MASTER, 0, 1, "8930000000018", encode_event(bad_product)),  # invalid
        msg(topics.MASTER, 0, 2, "x", b"garbage"),  # undecodable
        msg(topics.MASTER, 0, 3, "WRONG-KEY", encode_event(S.facility_event())),  # not keyed by its entity
        msg(topics.MASTER, 0, 4, "L1", encode_event(dict(S.facility_event(), event_type="harvest",
                                                         payload={"lot": "L1", "area_code": S.AREA, "crop": "tea",
                                                                  "quantity": {"value": 1.0, "unit": "kg"},
                                                                  "crate_tags": []}))),  # a supply event
    ]
    stats = Applier(store, P).apply_batch(batch)
    assert (stats.applied, stats.unchanged, stats.invalid, stats.rejected) == (5, 1, 4, 1)
    assert store.lot("L1")["units_sold"] == 3 and store.lot("L1")["source_offset"] == 1
    assert store.sink_offsets() == {("ocop.records", 0): 2, ("ocop.records", 1): 1, ("ocop.alerts", 1): 1,
                                    ("ocop.stamps", 0): 6, ("ocop.events.scans", 2): 1, ("ocop.events.master", 0): 5}
    assert [(r["offset"], r["key"], r["reason"].split(":")[0]) for r in rows(store, SINK_REJECTS)] == [
        (0, "L9", "undecodable")]
    assert store.product("8930000000018") is None and store.facility("FAC-1") is None

    again = Applier(store, P).apply_batch(batch)  # redelivered: nothing changes
    assert again.applied == 0
    assert store.lot("L1")["units_sold"] == 3


def test_failed_batch_leaves_nothing_behind(store):
    """A database failure in the middle of a batch rolls back its rows AND its offsets."""
    Applier(store, P).apply_batch([rec_msg(0, 0, S.record("L0"))])
    before = snapshot(store)
    calls = {"n": 0}

    def fail_on_fifth(conn, cursor, statement, parameters, context, executemany):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OperationalError(statement, parameters, Exception("connection lost (injected)"))

    event.listen(store.engine, "before_cursor_execute", fail_on_fifth)
    try:
        with pytest.raises(OperationalError):
            Applier(store, P).apply_batch([rec_msg(0, 1, S.record("L1")), rec_msg(0, 2, S.record("L2"))])
    finally:
        event.remove(store.engine, "before_cursor_execute", fail_on_fifth)
    assert calls["n"] >= 5
    assert snapshot(store) == before
    assert store.sink_offsets() == {("ocop.records", 0): 1}


def test_a_message_the_database_refuses_is_rejected_not_blocking(store):
    """A non-transient database error: the batch is retried message by message and the culprit is rejected."""
    boom = {"armed": True}

    def refuse_l2(conn, cursor, statement, parameters, context, executemany):
        if boom["armed"] and "INSERT INTO lots" in statement and "L2" in json.dumps(parameters, default=str):
            from sqlalchemy.exc import IntegrityError

            raise IntegrityError(statement, parameters, Exception("refused (injected)"))

    event.listen(store.engine, "before_cursor_execute", refuse_l2)
    try:
        stats = Applier(store, P).apply_batch([rec_msg(0, 0, S.record("L1")), rec_msg(0, 1, S.record("L2")),
                                               rec_msg(0, 2, S.record("L3"))])
    finally:
        event.remove(store.engine, "before_cursor_execute", refuse_l2)
    assert (stats.applied, stats.rejected) == (2, 1)
    assert store.lot("L1") and store.lot("L3") and store.lot("L2") is None
    assert [r["offset"] for r in rows(store, SINK_REJECTS)] == [1]
    assert store.sink_offsets() == {("ocop.records", 0): 3}


# ---------------------------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------------------------


def test_lot_show_cli(store, db_url):
    from ocop_trace.cli import app

    load_demo(store)
    apply(store, sink.apply_alert, S.alert("a1", lot="T1", rule="oversold"), 0, 9)
    runner = CliRunner()
    vi = runner.invoke(app, ["lot", "show", "T1", "--database-url", db_url], env={"COLUMNS": "160"})
    assert vi.exit_code == 0, vi.output
    for text in ("Lô", "Phả hệ lô", "Nguồn gốc", "H1", "H2", "Chè Tân Cương", "HTX Chè Hảo Đạt", "4 sao",
                 "bán vượt số đóng gói", "Các bước", "đóng gói"):
        assert text in vi.output, text
    en = runner.invoke(app, ["lot", "show", "H1", "--lang", "en", "--database-url", db_url], env={"COLUMNS": "160"})
    assert en.exit_code == 0, en.output
    for text in ("Lineage", "Descendants", "T1", "Tan Cuong tea", "Steps", "harvest"):
        assert text in en.output, text
    js = runner.invoke(app, ["lot", "show", "T1", "--json", "--database-url", db_url])
    data = json.loads(js.output)
    assert data["lot"] == "T1" and [x["lot"] for x in data["lineage"]["ancestors"]] == ["H1", "H2"]
    missing = runner.invoke(app, ["lot", "show", "NOPE", "--database-url", db_url])
    assert missing.exit_code == 1


def test_db_upgrade_cli(db_url):
    from ocop_trace.cli import app

    res = CliRunner().invoke(app, ["db", "upgrade", "--database-url", db_url])
    assert res.exit_code == 0, res.output
    assert "0002" in res.output


def test_step_times_are_utc_ordered(store):
    apply(store, sink.apply_record, S.record("L1", steps=[
        S.step("L1", 0, "harvest", "2026-03-01T23:30:00+07:00"),  # 16:30 UTC
        S.step("L1", 1, "receive", "2026-03-01T17:00:00+00:00"),
    ]), 0, 0)
    with store.read() as c:
        got = c.execute(select(STEPS.c.seq, STEPS.c.occurred_utc).order_by(STEPS.c.occurred_utc)).all()
        assert [s for s, _ in got] == [0, 1]
        assert got[0][1] == datetime(2026, 3, 1, 16, 30, tzinfo=timezone.utc)
        assert c.execute(select(func.count()).select_from(LOTS)).scalar() == 1
    assert store.lot("L1")["first_event_at"] == "2026-03-01T16:30:00+00:00"


def test_unused_tables_are_empty_after_reset(store):
    """Sanity of the fixture: every test starts from an empty read side."""
    assert all(n == 0 for n in store.counts().values())
    assert rows(store, SINK_OFFSETS) == [] and rows(store, ALERTS) == []
