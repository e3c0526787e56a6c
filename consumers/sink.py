"""The sink: ``ocop.records``, ``ocop.alerts``, ``ocop.stamps``, ``ocop.events.scans`` and ``ocop.events.master``
→ the SQL read side (:mod:`consumers.store`), exactly once.

Exactly once into SQL: the sink keeps its Kafka positions in the database (``sink_offsets``) and writes them in the
same transaction as the rows a batch produced. No consumer group, no Kafka commits: every partition of the five
topics is assigned manually and positioned from ``sink_offsets`` (the beginning when there is no row yet). If
anything fails (the database goes away, a commit is lost), the transaction rolls back and the sink re-positions
from the database, so the batch is polled again: never lost, never applied twice.

On top of that every upsert is idempotent by key and version, so a replay (offsets reset) converges to the same
rows:

* a lot record applies only if its ``(partition, offset)`` is newer than the stored one; it replaces the lot's
  steps, lineage edges (both ends: its parents and its children) and origins;
* an alert is upserted by ``alert_id``, newer offset wins (``open`` → ``resolved``);
* stamp ranges (facts) and scans are inserted once by id;
* master data (subject, area, product, facility) keeps the latest change by ``(occurred_at UTC, event_id)``, the
  same order the workers' master view uses; ratings append to the product's history by ``event_id``.
  Master events come from the raw ``ocop.events.master`` topic and are accepted here with the workers' own admission
  pure function (``streams.accept.accept``: decodable, valid, a master type, keyed by its entity): the others are
  skipped (the agent routes them to ``ocop.dlq``).

Messages the sink cannot apply (undecodable, or refused by the database) go to ``sink_rejects`` with the reason:
the batch still commits, nothing is silently dropped.

A batch is applied set-based (:meth:`Applier.apply_batch`): everything is decoded first, then one SELECT reads the
stored versions of the batch's lots, Python decides what applies, and each table gets one DELETE and one bulk INSERT
or upsert (:func:`apply_records`, :func:`apply_alerts`, ...), with statements built once per dialect (:class:`_Sql`).
The rows equal those of applying the messages one by one. If the database refuses the batch (not a transient
failure), it is retried message by message in savepoints and the culprit rejected.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

import orjson
from sqlalchemy import ARRAY, Float, and_, any_, bindparam, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from consumers.store import (
    ALERTS,
    AREAS,
    EDGES,
    FACILITIES,
    LOTS,
    ORIGINS,
    PRODUCTS,
    RATINGS,
    SCANS,
    SINK_OFFSETS,
    SINK_REJECTS,
    STAMPS,
    STEPS,
    SUBJECTS,
    Store,
    UtcDateTime,
    parse_instant,
)
from ocop_trace import observability
from schemas import codec, topics
from schemas.codec import CodecError
from streams.accept import Source, accept

log = logging.getLogger("ocop.sink")

SOURCES: tuple[topics.TopicSpec, ...] = (topics.RECORDS, topics.ALERTS, topics.STAMPS, topics.SCANS, topics.MASTER)


# ---------------------------------------------------------------------------------------------------------------
# pure row builders: decoded value -> rows
# ---------------------------------------------------------------------------------------------------------------


def record_text(rec: dict) -> str:
    """The record as stored in ``lots.record``: canonical JSON text (sorted keys, compact, UTF-8 as is), the same
    text as ``consumers.store.dumps`` gives, serialised once with orjson."""
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()


def record_rows(rec: dict) -> dict[str, Any]:
    """A ``LotRecord`` → ``{"lot": row, "steps": [...], "edges": [(parent, child)], "origins": [...]}``."""
    lot = rec["lot"]
    product = rec.get("product") or {}
    rating = rec.get("rating") or {}
    packaging = rec.get("packaging") or {}
    recall = rec.get("recall") or {}
    steps = []
    for seq, s in enumerate(rec.get("steps") or []):
        q = s.get("quantity") or {}
        steps.append({
            "lot": lot, "seq": seq, "event_id": s["event_id"], "event_type": s["event_type"],
            "occurred_at": s["occurred_at"], "occurred_utc": parse_instant(s["occurred_at"]),
            "facility": s.get("facility"), "subject_id": s.get("subject_id"), "actor_user": s.get("user"),
            "quantity": q.get("value"), "unit": q.get("unit"), "units": s.get("units"),
            "detail": s.get("detail") or "", "voided": bool(s.get("voided")),
        })
    times = [s["occurred_utc"] for s in steps if s["occurred_utc"] is not None]
    row = {
        "lot": lot,
        "subject_id": rec.get("subject_id"),
        "gtin": product.get("gtin") or packaging.get("gtin"),
        "product_name_vi": product.get("name_vi"),
        "product_name_en": product.get("name_en"),
        "ocop_group": product.get("ocop_group"),
        "product_owner": product.get("owner_subject_id"),
        "rating_stars": rating.get("stars"),
        "rating_score": rating.get("score"),
        "rating_level": rating.get("level"),
        "rating_decision_no": rating.get("decision_no"),
        "rating_decision_date": rating.get("decision_date"),
        "rating_valid_from": rating.get("valid_from"),
        "rating_valid_to": rating.get("valid_to"),
        "status": rec["status"],
        "production_date": packaging.get("production_date"),
        "expiry_date": packaging.get("expiry_date"),
        "units_packaged": rec.get("units_packaged") or 0,
        "units_shipped": rec.get("units_shipped") or 0,
        "units_sold": rec.get("units_sold") or 0,
        "recall_reason": recall.get("reason"),
        "recall_event_id": recall.get("event_id"),
        "recall_scope": recall.get("scope"),
        "recall_target": recall.get("target"),
        "chain_head": rec.get("chain_head") or "",
        "chain_length": rec.get("chain_length") or 0,
        "event_count": rec.get("event_count") or 0,
        "record": record_text(rec),
        "first_event_at": min(times) if times else None,
        "last_event_at": max(times) if times else None,
    }
    edges = sorted({(p, lot) for p in rec.get("parents") or [] if p != lot}
                   | {(lot, c) for c in rec.get("children") or [] if c != lot})
    origins = sorted({(o["area_code"], o["harvest_lot"]) for o in rec.get("origins") or []})
    return {
        "lot": row,
        "steps": steps,
        "edges": [{"parent_lot": p, "child_lot": c} for p, c in edges],
        "origins": [{"lot": lot, "area_code": a, "harvest_lot": h} for a, h in origins],
    }


def alert_row(a: dict) -> dict:
    return {"alert_id": a["alert_id"], "rule": a["rule"], "severity": a["severity"], "lot": a.get("lot"),
            "serial": a.get("serial"), "event_id": a.get("event_id"), "detail": a["detail"],
            "raised_at": a["raised_at"], "raised_utc": parse_instant(a["raised_at"]), "state": a.get("state") or "open"}


def stamp_row(r: dict) -> dict:
    return {"range_id": r["range_id"], "lot": r["lot"], "gtin": r["gtin"], "key_id": r["key_id"],
            "first_index": r["first_index"], "count": r["count"], "issued_at": r["issued_at"],
            "issued_utc": parse_instant(r["issued_at"]), "request_id": r.get("request_id")}


def scan_row(s: dict) -> dict:
    loc = s.get("location") or {}
    return {"scan_id": s["scan_id"], "serial": s["serial"], "gtin": s["gtin"], "lot": s["lot"],
            "scanned_at": s["scanned_at"], "scanned_utc": parse_instant(s["scanned_at"]), "region": s.get("region"),
            "lat": loc.get("lat"), "lon": loc.get("lon"), "client_hash": s["client_hash"], "verdict": s["verdict"]}


def master_row(ev: dict) -> tuple[str, dict]:
    """A master-data event → ``(table name, row)``. The row carries the event's id and time (its version)."""
    t, p = ev["event_type"], ev["payload"]
    meta = {"event_id": ev["event_id"], "occurred_at": ev["occurred_at"],
            "occurred_utc": parse_instant(ev["occurred_at"])}
    if t == "subject":
        return "subjects", {"subject_id": p["subject_id"], "name": p["name"], "kind": p["kind"],
                            "tax_id": p.get("tax_id"), "province_code": p["province_code"],
                            "commune_code": p.get("commune_code"), "address": p.get("address") or "",
                            "contact": p.get("contact"), **meta}
    if t == "area":
        return "areas", {"area_code": p["area_code"], "owner_subject_id": p["owner_subject_id"],
                         "name": p.get("name") or "", "crops": list(p["crops"]), "area_ha": p["area_ha"],
                         "location": [{"lat": g["lat"], "lon": g["lon"]} for g in p["location"]],
                         "certifications": [dict(c) for c in p.get("certifications") or []],
                         "valid_from": p["valid_from"], "valid_to": p.get("valid_to"),
                         "revoked": bool(p.get("revoked")), **meta}
    if t == "product":
        return "products", {"gtin": p["gtin"], "owner_subject_id": p["owner_subject_id"], "name_vi": p["name_vi"],
                            "name_en": p.get("name_en") or "", "ocop_group": p["ocop_group"],
                            "net_content": p.get("net_content"), "shelf_life_days": p.get("shelf_life_days"), **meta}
    if t == "rating":
        return "ratings", {"gtin": p["gtin"], "action": p["action"], "stars": p["stars"], "score": p["score"],
                           "level": p["level"], "decision_no": p["decision_no"], "decision_date": p["decision_date"],
                           "valid_from": p["valid_from"], "valid_to": p["valid_to"], **meta}
    if t == "facility":
        loc = p.get("location") or {}
        return "facilities", {"facility_id": p["facility_id"], "owner_subject_id": p["owner_subject_id"],
                              "name": p["name"], "kind": p.get("kind") or "other", "address": p.get("address") or "",
                              "lat": loc.get("lat"), "lon": loc.get("lon"), **meta}
    raise ValueError(f"{t!r} is not a master-data event")


# ---------------------------------------------------------------------------------------------------------------
# statements: built once per database dialect, run with many rows at a time
# ---------------------------------------------------------------------------------------------------------------

# keys per IN list (SQLite: the edges' DELETE has two, under old SQLite's 999 variables) or ANY array (PostgreSQL)
CHUNK = 450


def _chunks(keys: list, n: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(keys), n):
        yield keys[i:i + n]


class _Bulk:
    """One INSERT of many rows into one table (plain, ``ON CONFLICT DO NOTHING`` or an upsert), compiled once for a
    dialect. SQLAlchemy's per-row parameter handling and psycopg's per-row pipeline cost 10-25 µs a row, and a lot
    record is ~10 rows, so the rows go to the driver in one call, still through ``Connection.exec_driver_sql`` (the
    same transaction, events and error wrapping):

    * SQLite: the statement's SQL with named parameters, the driver's ``executemany`` of the row dicts;
    * PostgreSQL (psycopg): ONE ``INSERT .. SELECT * FROM unnest(%b::type[], ...)``, a binary array per column (an
      upsert's rows must then have distinct keys: one command may not update a row twice);
    * another driver: SQLAlchemy's executemany.

    A row is a dict with every column of the table; the values of columns with a bind processor (``UtcDateTime``,
    ...) are converted in place. :meth:`run` returns the number of rows inserted or updated."""

    def __init__(self, stmt: Any, table: Any, dialect: Any):
        self.stmt = stmt
        self.cols = [c.key for c in table.columns]
        if dialect.name == "sqlite":
            self.mode = "rows"
        elif dialect.name == "postgresql" and dialect.driver == "psycopg":
            self.mode = "arrays"
        else:
            self.mode = "sqlalchemy"
        self.procs: list[tuple[int, str, Callable[[Any], Any]]] = []
        for i, c in enumerate(table.columns):
            proc = c.type.dialect_impl(dialect).bind_processor(dialect)
            if self.mode == "rows" and isinstance(c.type, UtcDateTime):
                proc = _fast_sqlite_instant(proc)
            elif proc is None and self.mode == "arrays" and isinstance(c.type, Float):
                proc = _float  # psycopg refuses a list that mixes int and float
            if proc is not None:
                self.procs.append((i, c.key, proc))
        if self.mode == "rows":
            compiled = stmt.compile(dialect=sqlite.dialect(paramstyle="named"), column_keys=self.cols)
            if set(compiled.binds) != set(self.cols):  # (not expected: the statement binds something else)
                self.mode = "sqlalchemy"
            self.sql = compiled.string
        elif self.mode == "arrays":
            full = stmt.compile(dialect=dialect, column_keys=self.cols).string
            plain = postgresql.insert(table).compile(dialect=dialect, column_keys=self.cols).string
            if not full.startswith(plain):
                raise AssertionError(f"unexpected SQL for {table.name}: {full}")
            arrays = ", ".join(f"%b::{c.type.compile(dialect=dialect)}[]" for c in table.columns)
            self.sql = f"{plain[:plain.index(' VALUES (')]} SELECT * FROM unnest({arrays}){full[len(plain):]}"

    def run(self, conn: Connection, rows: list[dict]) -> int:
        if not rows:
            return 0
        opts = {"preserve_rowcount": True}
        if self.mode == "sqlalchemy":
            return conn.execute(self.stmt, rows, execution_options=opts).rowcount
        if self.mode == "arrays":
            columns = [[r[k] for r in rows] for k in self.cols]
            for i, _k, proc in self.procs:
                columns[i] = [proc(v) for v in columns[i]]
            return conn.exec_driver_sql(self.sql, tuple(columns), execution_options=opts).rowcount
        for _i, k, proc in self.procs:
            for r in rows:
                r[k] = proc(r[k])
        return conn.exec_driver_sql(self.sql, rows, execution_options=opts).rowcount


def _float(v: Any) -> Any:
    return None if v is None else float(v)


def _fast_sqlite_instant(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``UtcDateTime``'s SQLite bind processor (``process_bind_param`` then SQLite's DATETIME text) for the aware
    datetimes the row builders give, in one call; anything else goes through ``proc`` itself. Used only if it gives
    the very text ``proc`` gives."""
    utc = timezone.utc

    def fast(v: Any) -> Any:
        if v.__class__ is datetime and v.tzinfo is not None:
            return v.astimezone(utc).isoformat(" ", "microseconds")[:26]
        return None if v is None else proc(v)

    probes = [datetime(2026, 3, 1, 23, 30, 5, 120, tzinfo=timezone(timedelta(hours=7))),
              datetime(999, 12, 31, 23, 59, 59, tzinfo=utc), datetime(2026, 1, 1, tzinfo=utc)]
    return fast if all(fast(p) == proc(p) for p in probes) else proc


def _newer_offset(table: Any, excluded: Any) -> Any:
    return or_(table.c.source_partition != excluded.source_partition,
               table.c.source_offset < excluded.source_offset)


def _later_change(table: Any, excluded: Any) -> Any:
    """Master data: the latest change by ``(occurred_at UTC, event_id)`` wins (``streams.master.merge``'s order)."""
    return or_(table.c.occurred_utc < excluded.occurred_utc,
               and_(table.c.occurred_utc == excluded.occurred_utc, table.c.event_id < excluded.event_id))


_MASTER_TABLES = {"subjects": (SUBJECTS, "subject_id"), "areas": (AREAS, "area_code"),
                  "products": (PRODUCTS, "gtin"), "facilities": (FACILITIES, "facility_id")}


class _Sql:
    """Every statement the sink runs, for one dialect. Built once, so SQLAlchemy compiles each of them once."""

    def __init__(self, dialect: Any):
        pg = dialect.name == "postgresql"
        ins = postgresql.insert if pg else sqlite.insert

        def member(col: Any) -> Any:  # col IN (:keys ...), a list bound per execution
            if pg:
                return col == any_(bindparam("keys", type_=ARRAY(col.type)))
            return col.in_(bindparam("keys", expanding=True))

        def upsert(table: Any, keys: list[str], where: Callable[[Any, Any], Any] | None = None) -> Any:
            stmt = ins(table)
            return stmt.on_conflict_do_update(
                index_elements=keys, set_={c.key: stmt.excluded[c.key] for c in table.columns if c.key not in keys},
                where=where(table, stmt.excluded) if where is not None else None)

        self.lot_versions = select(LOTS.c.lot, LOTS.c.source_partition, LOTS.c.source_offset).where(member(LOTS.c.lot))
        self.delete_lots = delete(LOTS).where(member(LOTS.c.lot))
        self.delete_steps = delete(STEPS).where(member(STEPS.c.lot))
        self.delete_origins = delete(ORIGINS).where(member(ORIGINS.c.lot))
        self.delete_edges = delete(EDGES).where(or_(member(EDGES.c.parent_lot), member(EDGES.c.child_lot)))
        self.lots = _Bulk(upsert(LOTS, ["lot"], _newer_offset), LOTS, dialect)
        self.steps = _Bulk(ins(STEPS), STEPS, dialect)
        self.origins = _Bulk(ins(ORIGINS).on_conflict_do_nothing(), ORIGINS, dialect)
        self.edges = _Bulk(ins(EDGES).on_conflict_do_nothing(), EDGES, dialect)
        self.alerts = _Bulk(upsert(ALERTS, ["alert_id"], _newer_offset), ALERTS, dialect)
        self.stamps = _Bulk(ins(STAMPS).on_conflict_do_nothing(), STAMPS, dialect)
        self.scans = _Bulk(ins(SCANS).on_conflict_do_nothing(), SCANS, dialect)
        self.ratings = ins(RATINGS).on_conflict_do_nothing()
        self.master = {name: upsert(table, [key], _later_change) for name, (table, key) in _MASTER_TABLES.items()}
        self.offsets = upsert(SINK_OFFSETS, ["topic", "partition"])
        self.rejects = upsert(SINK_REJECTS, ["topic", "partition", "offset"])


_SQL: dict[tuple[str, str], _Sql] = {}
_SQL_LOCK = threading.Lock()


def _sql(conn: Connection) -> _Sql:
    d = conn.dialect
    key = (d.name, d.driver)
    found = _SQL.get(key)
    if found is None:
        with _SQL_LOCK:
            found = _SQL.get(key) or _SQL.setdefault(key, _Sql(d))
    return found


def _rowcount(conn: Connection, stmt: Any, params: Any) -> int:
    """Rows an INSERT .. ON CONFLICT changed (SQLAlchemy reports an INSERT's rowcount only when asked to)."""
    return conn.execute(stmt, params, execution_options={"preserve_rowcount": True}).rowcount


# ---------------------------------------------------------------------------------------------------------------
# apply: rows -> idempotent, set-based upserts in the caller's transaction
# ---------------------------------------------------------------------------------------------------------------

LotItem = tuple[str, "dict | None", int, int]  # (lot, record or None for a tombstone, partition, offset)


def apply_records(conn: Connection, items: list[LotItem]) -> list[bool]:
    """Apply lot records and tombstones (record None), in order; returns which applied. Each applies only if its
    ``(partition, offset)`` is newer than the stored version (a tombstone: and the lot is stored). An applied record
    replaces the lot's steps, origins and every edge that touches it; a tombstone deletes the lot and them.

    Set-based: one SELECT of the stored versions, one DELETE per child table, one INSERT per table (per
    :data:`CHUNK` lots). The result equals applying the items one by one: a lot that repeats starts a new round,
    and an edge between two lots of a round comes from the later of its two ends (as if applied in order)."""
    done: list[bool] = []
    start, seen = 0, set()
    for i, item in enumerate(items):
        if item[0] in seen:
            done += _apply_lot_round(conn, items[start:i])
            start, seen = i, set()
        seen.add(item[0])
    return done + _apply_lot_round(conn, items[start:])


def _apply_lot_round(conn: Connection, items: list[LotItem]) -> list[bool]:
    """:func:`apply_records` for items of distinct lots."""
    if not items:
        return []
    sql = _sql(conn)
    stored: dict[str, tuple[int, int]] = {}
    for chunk in _chunks([it[0] for it in items]):
        stored.update((lot, (p, o)) for lot, p, o in conn.execute(sql.lot_versions, {"keys": chunk}))
    done = []
    for lot, rec, p, o in items:
        s = stored.get(lot)
        done.append(rec is not None if s is None else (s[0] != p or s[1] < o))
    applied = [it for it, ok in zip(items, done) if ok]
    if not applied:
        return done
    for chunk in _chunks([it[0] for it in applied]):
        conn.execute(sql.delete_steps, {"keys": chunk})
        conn.execute(sql.delete_origins, {"keys": chunk})
        conn.execute(sql.delete_edges, {"keys": chunk})
    for chunk in _chunks([lot for lot, rec, _, _ in applied if rec is None]):
        conn.execute(sql.delete_lots, {"keys": chunk})
    position = {it[0]: i for i, it in enumerate(applied)}
    lots: list[dict] = []
    steps: list[dict] = []
    origins: list[dict] = []
    edges: dict[tuple[str, str], dict] = {}
    for i, (lot, rec, p, o) in enumerate(applied):
        if rec is None:
            continue
        rows = record_rows(rec)
        row = rows["lot"]
        row["source_partition"], row["source_offset"] = p, o
        lots.append(row)
        steps += rows["steps"]
        origins += rows["origins"]
        for e in rows["edges"]:
            other = e["child_lot"] if e["parent_lot"] == lot else e["parent_lot"]
            if position.get(other, -1) <= i:  # else the other end's later record (or tombstone) decides this edge
                edges[(e["parent_lot"], e["child_lot"])] = e
    sql.lots.run(conn, lots)
    sql.steps.run(conn, steps)
    sql.origins.run(conn, origins)
    sql.edges.run(conn, list(edges.values()))
    return done


def apply_record(conn: Connection, rec: dict, partition: int, offset: int) -> bool:
    """Upsert a lot record if ``(partition, offset)`` is newer than the stored version; replace its child rows.
    Returns False for an older or repeated version (nothing changes)."""
    return apply_records(conn, [(rec["lot"], rec, partition, offset)])[0]


def delete_record(conn: Connection, lot: str, partition: int, offset: int) -> bool:
    """A tombstone on the compacted topic: forget the lot (if the tombstone is newer than the stored record)."""
    return apply_records(conn, [(lot, None, partition, offset)])[0]


def apply_alerts(conn: Connection, items: list[tuple[dict, int, int]]) -> int:
    """Upsert ``(alert, partition, offset)`` items in order by ``alert_id``, newer offset wins; returns how many
    changed a row (an alert that repeats goes in a later round, as if applied one by one)."""
    rounds: list[list[dict]] = []
    seen: dict[str, int] = {}
    for alert, partition, offset in items:
        row = alert_row(alert)
        row["source_partition"], row["source_offset"] = partition, offset
        n = seen[row["alert_id"]] = seen.get(row["alert_id"], -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(row)
    bulk = _sql(conn).alerts
    return sum(bulk.run(conn, rows) for rows in rounds)


def apply_alert(conn: Connection, alert: dict, partition: int, offset: int) -> bool:
    return apply_alerts(conn, [(alert, partition, offset)]) > 0


def apply_stamp_ranges(conn: Connection, ranges: list[dict]) -> int:
    """Insert stamp ranges once by ``range_id``; returns how many were new."""
    return _sql(conn).stamps.run(conn, [stamp_row(r) for r in ranges])


def apply_stamp_range(conn: Connection, rng: dict) -> bool:
    return apply_stamp_ranges(conn, [rng]) > 0


def apply_scans(conn: Connection, scans: list[dict]) -> int:
    """Insert scans once by ``scan_id``; returns how many were new."""
    return _sql(conn).scans.run(conn, [scan_row(s) for s in scans])


def apply_scan(conn: Connection, scan: dict) -> bool:
    return apply_scans(conn, [scan]) > 0


def apply_master(conn: Connection, ev: dict, partition: int, offset: int) -> bool:
    """Apply a (valid) master-data event. Entities: the latest by (occurred_at, event_id) wins, so any consumption
    order gives the same row; ratings: appended to the history once per event id."""
    name, row = master_row(ev)
    row = dict(row, source_partition=partition, source_offset=offset)
    sql = _sql(conn)
    return _rowcount(conn, sql.ratings if name == "ratings" else sql.master[name], row) > 0


def set_offsets(conn: Connection, offsets: dict[tuple[str, int], int]) -> None:
    """Record the sink's next positions (in the caller's transaction, with the rows)."""
    if offsets:
        conn.execute(_sql(conn).offsets, [{"topic": topic, "partition": partition, "next_offset": nxt}
                                          for (topic, partition), nxt in sorted(offsets.items())])


def reject(conn: Connection, topic: str, partition: int, offset: int, key: bytes | None, reason: str) -> None:
    log.error("sink: rejected %s[%d]@%d: %s", topic, partition, offset, reason,
              extra={"topic": topic, "partition": partition, "offset": offset, "key": _key_text(key), "reason": reason})
    conn.execute(_sql(conn).rejects, {"topic": topic, "partition": partition, "offset": offset,
                                      "key": _key_text(key), "reason": reason[:2000]})


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    return key.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------------------------
# messages and batches
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One consumed message (independent of the Kafka client)."""

    topic: str  # the full topic name (with prefix)
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Stats:
    applied: int = 0  # changed rows
    unchanged: int = 0  # older version, duplicate, superseded in the batch
    invalid: int = 0  # invalid master events (the workers send them to the DLQ)
    rejected: int = 0  # undecodable or refused by the database: in sink_rejects
    batches: int = 0
    messages: int = 0
    retries: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)

    def add(self, other: "Stats") -> None:
        for k in ("applied", "unchanged", "invalid", "rejected", "batches", "messages", "retries"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        for k, v in other.by_topic.items():
            self.by_topic[k] = self.by_topic.get(k, 0) + v

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("applied", "unchanged", "invalid", "rejected", "batches",
                                              "messages", "retries")} | {"by_topic": dict(self.by_topic)}


def _transient(e: BaseException) -> bool:
    """A database failure worth retrying the whole batch for (connection lost, locked, serialization...)."""
    return isinstance(e, (OperationalError, InterfaceError)) or bool(getattr(e, "connection_invalidated", False))


class Applier:
    """Applies batches of :class:`Message` to a :class:`Store` in one transaction each, with the offsets."""

    def __init__(self, store: Store, prefix: str = ""):
        self.store = store
        self.kinds = {spec.full(prefix): spec.name for spec in SOURCES}
        self._record = codec.codec(codec.LOT_RECORD)
        self._alert = codec.codec(codec.ALERT)
        self._stamp = codec.codec(codec.STAMP_RANGE)
        self._scan = codec.codec(codec.SCAN)
        self._decode = {topics.RECORDS.name: self._record.decode, topics.ALERTS.name: self._alert.decode,
                        topics.STAMPS.name: self._stamp.decode, topics.SCANS.name: self._scan.decode}

    def apply_batch(self, messages: list[Message]) -> Stats:
        """Apply a batch and its offsets atomically. A transient database error propagates (nothing written);
        any other failure retries the batch message by message (savepoints) and rejects the culprit."""
        try:
            return self._apply_set(messages)
        except Exception as e:  # noqa: BLE001 - classified below
            if _transient(e):
                raise
            log.warning("sink: batch failed (%s: %s); retrying message by message", type(e).__name__, e)
            return self._apply_careful(messages)

    def _apply_set(self, messages: list[Message]) -> Stats:
        """The batch with set-based statements: everything is decoded first, then each table is written at once
        (:func:`apply_records`, :func:`apply_alerts`, ...; master data, rare, one by one)."""
        stats = Stats(batches=1, messages=len(messages))
        latest = self._latest_records(messages)
        offsets: dict[tuple[str, int], int] = {}
        records: list[LotItem] = []
        alerts: list[tuple[dict, int, int]] = []
        stamps: list[dict] = []
        scans: list[dict] = []
        master: list[tuple[dict, int, int]] = []
        rejects: list[tuple[Message, str]] = []
        for m in messages:
            kind = self._note(stats, offsets, m)
            if kind is None:
                rejects.append((m, "not a topic the sink reads"))
            elif kind == topics.RECORDS.name and m.key is not None and latest[(m.topic, m.key)] != m.offset:
                stats.unchanged += 1  # a later version of the same lot is in this batch
            elif kind == topics.MASTER.name:
                ev = self._accept_master(m)
                if ev is None:
                    stats.invalid += 1
                else:
                    master.append((ev, m.partition, m.offset))
            elif kind == topics.RECORDS.name and m.value is None:
                if m.key is None:
                    stats.unchanged += 1
                else:
                    records.append((m.key.decode("utf-8"), None, m.partition, m.offset))
            else:
                try:
                    value = self._decode[kind](m.value)
                except CodecError as e:
                    rejects.append((m, f"{e.kind}: {e.reason}"))
                    continue
                if kind == topics.RECORDS.name:
                    records.append((value["lot"], value, m.partition, m.offset))
                elif kind == topics.ALERTS.name:
                    alerts.append((value, m.partition, m.offset))
                elif kind == topics.STAMPS.name:
                    stamps.append(value)
                else:
                    scans.append(value)
        with self.store.write() as conn:
            for m, reason in rejects:
                reject(conn, m.topic, m.partition, m.offset, m.key, reason)
            stats.rejected += len(rejects)
            done = apply_records(conn, records)
            changed = [(sum(done), len(done)), (apply_alerts(conn, alerts), len(alerts)),
                       (apply_stamp_ranges(conn, stamps), len(stamps)), (apply_scans(conn, scans), len(scans))]
            changed += [(int(apply_master(conn, ev, p, o)), 1) for ev, p, o in master]
            for n, total in changed:
                stats.applied += n
                stats.unchanged += total - n
            set_offsets(conn, offsets)
        return stats

    def _apply_careful(self, messages: list[Message]) -> Stats:
        """The batch message by message, each in a savepoint: a message the database refuses is rejected."""
        stats = Stats(batches=1, messages=len(messages))
        latest = self._latest_records(messages)
        offsets: dict[tuple[str, int], int] = {}
        with self.store.write() as conn:
            for m in messages:
                kind = self._note(stats, offsets, m)
                if kind == topics.RECORDS.name and m.key is not None and latest[(m.topic, m.key)] != m.offset:
                    stats.unchanged += 1  # a later version of the same lot is in this batch
                    continue
                sp = conn.begin_nested()
                try:
                    outcome = self._one(conn, kind, m)
                    sp.commit()
                except Exception as e:  # noqa: BLE001
                    if _transient(e):
                        raise
                    sp.rollback()
                    reject(conn, m.topic, m.partition, m.offset, m.key, f"database: {type(e).__name__}: {e}")
                    outcome = "rejected"
                setattr(stats, outcome, getattr(stats, outcome) + 1)
            set_offsets(conn, offsets)
        return stats

    def _note(self, stats: Stats, offsets: dict[tuple[str, int], int], m: Message) -> str | None:
        """Count the message and advance its partition's next offset; returns its kind (None: not ours)."""
        offsets[(m.topic, m.partition)] = max(offsets.get((m.topic, m.partition), 0), m.offset + 1)
        kind = self.kinds.get(m.topic)
        stats.by_topic[kind or m.topic] = stats.by_topic.get(kind or m.topic, 0) + 1
        return kind

    @staticmethod
    def _latest_records(messages: Iterable[Message]) -> dict[tuple[str, bytes | None], int]:
        latest: dict[tuple[str, bytes | None], int] = {}
        for m in messages:
            if m.key is not None:
                k = (m.topic, m.key)
                latest[k] = max(latest.get(k, -1), m.offset)
        return latest

    @staticmethod
    def _accept_master(m: Message) -> dict | None:
        """Exactly the workers' admission: the event, or None (logged; the worker dead-letters it)."""
        ev, dead = accept(Source(m.topic, m.partition, m.offset, m.key, m.value), topics.MASTER)
        if dead is not None:
            log.info("sink: skipping master event %s[%d]@%d (%s: %s)", m.topic, m.partition, m.offset,
                     dead["error"], dead["reason"], extra={**observability.event_context(m.value, m.key),
                                                          "topic": m.topic, "partition": m.partition,
                                                          "offset": m.offset, "error": dead["error"]})
            return None
        return ev

    def _one(self, conn: Connection, kind: str | None, m: Message) -> str:
        """Apply one message; returns ``applied``, ``unchanged``, ``invalid`` or ``rejected``."""
        if kind is None:
            reject(conn, m.topic, m.partition, m.offset, m.key, "not a topic the sink reads")
            return "rejected"
        if kind == topics.MASTER.name:
            ev = self._accept_master(m)
            if ev is None:
                return "invalid"
            return "applied" if apply_master(conn, ev, m.partition, m.offset) else "unchanged"
        if kind == topics.RECORDS.name and m.value is None:
            if m.key is None:
                return "unchanged"
            return "applied" if delete_record(conn, m.key.decode("utf-8"), m.partition, m.offset) else "unchanged"
        try:
            value = self._decode[kind](m.value)
        except CodecError as e:
            reject(conn, m.topic, m.partition, m.offset, m.key, f"{e.kind}: {e.reason}")
            return "rejected"
        if kind == topics.RECORDS.name:
            changed = apply_record(conn, value, m.partition, m.offset)
        elif kind == topics.ALERTS.name:
            changed = apply_alert(conn, value, m.partition, m.offset)
        elif kind == topics.STAMPS.name:
            changed = apply_stamp_range(conn, value)
        else:
            changed = apply_scan(conn, value)
        return "applied" if changed else "unchanged"


# ---------------------------------------------------------------------------------------------------------------
# the Kafka side
# ---------------------------------------------------------------------------------------------------------------


class Backoff:
    def __init__(self, first: float = 0.2, cap: float = 30.0):
        self.first, self.cap, self.n = first, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.first * (2 ** self.n))
        self.n += 1
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self.n = 0


class Sink:
    """Consume the read side's topics into the database. One sink per database (it owns ``sink_offsets``)."""

    def __init__(self, store: Store, *, bootstrap: str, prefix: str = "", batch_size: int = 500,
                 poll_timeout_ms: int = 500, refresh_s: float = 30.0, client_id: str = "ocop-trace-sink",
                 consumer_config: dict | None = None):
        self.store = store
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        self.refresh_s = refresh_s
        self.applier = Applier(store, prefix)
        self.topics = [spec.full(prefix) for spec in SOURCES]
        self.stats = Stats()
        self._client_id = client_id
        self._consumer_config = consumer_config or {}
        self._consumer = None
        self._assigned: list = []
        self._resync = True
        self._last_refresh = 0.0

    @classmethod
    def from_settings(cls, settings: Any, store: Store | None = None, **kw: Any) -> "Sink":
        return cls(store or Store(settings.sqlalchemy_url), bootstrap=settings.bootstrap_servers,
                   prefix=settings.topic_prefix, **kw)

    # --- consumer ----------------------------------------------------------------------------------------------
    @property
    def consumer(self):
        if self._consumer is None:
            from kafka import KafkaConsumer

            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                client_id=self._client_id,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                allow_auto_create_topics=False,  # topics come from the catalog (ocop-trace topics create)
                max_poll_records=self.batch_size,
                **self._consumer_config,
            )
        return self._consumer

    def _refresh_assignment(self) -> None:
        """Assign every partition of the five topics (picks up partitions added later)."""
        from kafka import TopicPartition

        tps = []
        for name in self.topics:
            parts = self.consumer.partitions_for_topic(name)
            if not parts:
                log.warning("sink: topic %s has no partitions (not created yet?)", name)
            tps.extend(TopicPartition(name, p) for p in sorted(parts))
        if set(tps) != set(self._assigned):
            new = set(tps) - set(self._assigned)
            self.consumer.assign(tps)
            self._assigned = tps
            self._resync = True
            if new:
                log.info("sink: assigned %d partitions (%d new)", len(tps), len(new))
        self._last_refresh = time.monotonic()

    def _seek_from_db(self) -> None:
        stored = self.store.sink_offsets()
        for tp in self._assigned:
            nxt = stored.get((tp.topic, tp.partition))
            if nxt is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, nxt)
        self._resync = False

    # --- loop --------------------------------------------------------------------------------------------------
    def step(self) -> int:
        """Poll one batch and apply it. Returns the number of messages. Raises on a database or Kafka failure
        (after which the next step re-positions from the database)."""
        if not self._assigned or time.monotonic() - self._last_refresh > self.refresh_s:
            self._refresh_assignment()
        if self._resync:
            self._seek_from_db()
        polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.batch_size)
        observability.sink_lag(self)  # ocop_sink_lag, at most every few seconds
        messages = [Message(r.topic, r.partition, r.offset, r.key, r.value)
                    for tp in sorted(polled, key=lambda tp: (tp.topic, tp.partition)) for r in polled[tp]]
        if not messages:
            return 0
        try:
            st = self.applier.apply_batch(messages)
        except BaseException:
            self._resync = True  # the transaction rolled back: poll the batch again from the DB's offsets
            raise
        self.stats.add(st)
        observability.sink_batch(st)  # ocop_sink_messages_total, ocop_sink_batches_total
        return len(messages)

    def _caught_up(self) -> bool:
        if not self._assigned or self._resync:
            return False
        ends = self.consumer.end_offsets(self._assigned)
        return all(self.consumer.position(tp) >= ends[tp] for tp in self._assigned)

    def run(self, stop_event: threading.Event | None = None) -> Stats:
        """Run until ``stop_event`` is set. Failures are retried with backoff; nothing is lost or doubled."""
        stop = stop_event or threading.Event()
        backoff = Backoff()
        while not stop.is_set():
            try:
                self.step()
                backoff.reset()
            except Exception as e:  # noqa: BLE001 - a broken database or broker: wait and retry
                self._resync = True
                self.stats.retries += 1
                delay = backoff.next()
                log.warning("sink: %s: %s; retrying in %.1fs", type(e).__name__, e, delay)
                stop.wait(delay)
        return self.stats

    def run_until_idle(self, timeout: float = 60.0) -> Stats:
        """Apply everything there is, then return (tests, one-shot catch-up). Raises ``TimeoutError`` if the
        topics are not drained within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        backoff = Backoff(cap=2.0)
        while True:
            try:
                n = self.step()
                backoff.reset()
                if n == 0 and self._caught_up():
                    return self.stats
            except Exception as e:  # noqa: BLE001
                self._resync = True
                self.stats.retries += 1
                delay = backoff.next()
                log.warning("sink: %s: %s; retrying in %.1fs", type(e).__name__, e, delay)
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink not idle after {timeout}s ({self.stats.as_dict()})")

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
            self._assigned = []


__all__ = [
    "Applier", "Message", "Sink", "Stats", "SOURCES", "alert_row", "apply_alert", "apply_alerts", "apply_master",
    "apply_record", "apply_records", "apply_scan", "apply_scans", "apply_stamp_range", "apply_stamp_ranges",
    "delete_record", "master_row", "record_rows", "record_text", "scan_row", "set_offsets", "stamp_row",
]
