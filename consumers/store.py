"""The SQL read side: SQLAlchemy 2.x models and the queries the web and reports need.

Every row here is a projection of a Kafka topic written by :mod:`consumers.sink`; nothing else writes to it.
Works on SQLite (the default, WAL mode) and on PostgreSQL (``postgresql+psycopg://``, psycopg 3).

Times: each event time is kept twice, as the producer's ISO 8601 text with its UTC offset (what the record says,
shown to people) and as a UTC timestamp (``*_utc`` columns, :class:`UtcDateTime`) for ordering and period queries.
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 0x0C0F_7AC3  # PostgreSQL advisory lock held while migrating
_MIGRATE_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------------------------
# types and helpers
# ---------------------------------------------------------------------------------------------------------------


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC instant. PostgreSQL: ``timestamptz``; SQLite: naive UTC text. Always returns aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_instant(value)
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a UTC offset")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def parse_instant(value: str | datetime | None) -> datetime | None:
    """ISO 8601 with an offset → aware UTC datetime (None if empty or unparseable). A bare date is midnight UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def gtin_variants(gtin: str) -> list[str]:
    """The same GTIN written as GTIN-8/12/13/14 (left zero padding): what to match a Digital Link GTIN-14 against."""
    g = (gtin or "").strip()
    if not g.isdigit():
        return [g]
    core = g.lstrip("0") or "0"
    out = {g}
    for n in (8, 12, 13, 14):
        if len(core) <= n:
            out.add(core.zfill(n))
    return sorted(out)


def normalize_url(url: str) -> str:
    """``postgres://`` / ``postgresql://`` → ``postgresql+psycopg://`` (psycopg 3 is the driver we ship)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def dumps(obj: Any) -> str:
    """Canonical JSON text (sorted keys, UTF-8 kept): how records are stored, so equal records are equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ---------------------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s", "pk": "pk_%(table_name)s"})


class Lot(Base):
    """One row per lot: the latest record from ``ocop.records`` (full JSON in ``record``) and its searchable facts."""

    __tablename__ = "lots"
    # what changed since a sink position (the scan service's cache invalidation: consumers.store.changed_since)
    __table_args__ = (Index("ix_lots_source", "source_partition", "source_offset"),)

    lot: Mapped[str] = mapped_column(String, primary_key=True)
    subject_id: Mapped[str | None] = mapped_column(String, index=True)
    gtin: Mapped[str | None] = mapped_column(String, index=True)
    product_name_vi: Mapped[str | None] = mapped_column(Text)
    product_name_en: Mapped[str | None] = mapped_column(Text)
    ocop_group: Mapped[str | None] = mapped_column(String)
    product_owner: Mapped[str | None] = mapped_column(String)
    rating_stars: Mapped[int | None] = mapped_column(Integer)
    rating_score: Mapped[int | None] = mapped_column(Integer)
    rating_level: Mapped[str | None] = mapped_column(String)
    rating_decision_no: Mapped[str | None] = mapped_column(Text)
    rating_decision_date: Mapped[str | None] = mapped_column(String)
    rating_valid_from: Mapped[str | None] = mapped_column(String)
    rating_valid_to: Mapped[str | None] = mapped_column(String)
    status: Mapped[str] = mapped_column(String, index=True)
    production_date: Mapped[str | None] = mapped_column(String, index=True)
    expiry_date: Mapped[str | None] = mapped_column(String)
    units_packaged: Mapped[int] = mapped_column(Integer, default=0)
    units_shipped: Mapped[int] = mapped_column(Integer, default=0)
    units_sold: Mapped[int] = mapped_column(Integer, default=0)
    recall_reason: Mapped[str | None] = mapped_column(Text)
    recall_event_id: Mapped[str | None] = mapped_column(String)
    recall_scope: Mapped[str | None] = mapped_column(String)
    recall_target: Mapped[str | None] = mapped_column(String)
    chain_head: Mapped[str] = mapped_column(String, default="")
    chain_length: Mapped[int] = mapped_column(Integer, default=0)
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    record: Mapped[str] = mapped_column(Text)
    first_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    last_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)


class Step(Base):
    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_lot_occurred", "lot", "occurred_utc"),)

    lot: Mapped[str] = mapped_column(String, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String, index=True)
    event_type: Mapped[str] = mapped_column(String)
    occurred_at: Mapped[str] = mapped_column(String)
    occurred_utc: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    facility: Mapped[str | None] = mapped_column(String)
    subject_id: Mapped[str | None] = mapped_column(String)
    actor_user: Mapped[str | None] = mapped_column(String)
    quantity: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String)
    units: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="")
    voided: Mapped[bool] = mapped_column(Boolean, default=False)


class LineageEdge(Base):
    """parent_lot → child_lot (a transformation's input → output). Written from both ends' records."""

    __tablename__ = "lineage_edges"

    parent_lot: Mapped[str] = mapped_column(String, primary_key=True)
    child_lot: Mapped[str] = mapped_column(String, primary_key=True, index=True)


class LotOrigin(Base):
    __tablename__ = "lot_origins"

    lot: Mapped[str] = mapped_column(String, primary_key=True)
    area_code: Mapped[str] = mapped_column(String, primary_key=True, index=True)
    harvest_lot: Mapped[str] = mapped_column(String, primary_key=True)


class StampRangeRow(Base):
    __tablename__ = "stamps"
    __table_args__ = (Index("ix_stamps_gtin_lot", "gtin", "lot"),)

    range_id: Mapped[str] = mapped_column(String, primary_key=True)
    lot: Mapped[str] = mapped_column(String, index=True)
    gtin: Mapped[str] = mapped_column(String)
    key_id: Mapped[str] = mapped_column(String)
    first_index: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[str] = mapped_column(String)
    issued_utc: Mapped[datetime | None] = mapped_column(UtcDateTime)
    request_id: Mapped[str | None] = mapped_column(String)


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_source", "source_partition", "source_offset"),)

    alert_id: Mapped[str] = mapped_column(String, primary_key=True)
    rule: Mapped[str] = mapped_column(String, index=True)
    severity: Mapped[str] = mapped_column(String)
    lot: Mapped[str | None] = mapped_column(String, index=True)
    serial: Mapped[str | None] = mapped_column(String, index=True)
    event_id: Mapped[str | None] = mapped_column(String)
    detail: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[str] = mapped_column(String)
    raised_utc: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    state: Mapped[str] = mapped_column(String)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)


class ScanRow(Base):
    __tablename__ = "scans"
    # a serial's count, first and last scan from the index alone (a copied stamp may have thousands of scans)
    __table_args__ = (Index("ix_scans_serial_scanned", "serial", "scanned_utc", "scan_id"),)

    scan_id: Mapped[str] = mapped_column(String, primary_key=True)
    serial: Mapped[str] = mapped_column(String, index=True)
    gtin: Mapped[str] = mapped_column(String)
    lot: Mapped[str] = mapped_column(String, index=True)
    scanned_at: Mapped[str] = mapped_column(String)
    scanned_utc: Mapped[datetime | None] = mapped_column(UtcDateTime)
    region: Mapped[str | None] = mapped_column(String)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    client_hash: Mapped[str] = mapped_column(String)
    verdict: Mapped[str] = mapped_column(String)


class _MasterMixin:
    """The event the row's current value came from. The latest change wins, ordered by ``(occurred_utc, event_id)``
    exactly as the workers' master view (``streams.master.merge``), whatever order the events are consumed in."""

    event_id: Mapped[str] = mapped_column(String)
    occurred_at: Mapped[str] = mapped_column(String)
    occurred_utc: Mapped[datetime] = mapped_column(UtcDateTime)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)


class SubjectRow(_MasterMixin, Base):
    __tablename__ = "subjects"

    subject_id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String)
    tax_id: Mapped[str | None] = mapped_column(String)
    province_code: Mapped[str] = mapped_column(String, index=True)
    commune_code: Mapped[str | None] = mapped_column(String)
    address: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str | None] = mapped_column(Text)


class AreaRow(_MasterMixin, Base):
    __tablename__ = "areas"

    area_code: Mapped[str] = mapped_column(String, primary_key=True)
    owner_subject_id: Mapped[str] = mapped_column(String, index=True)
    name: Mapped[str] = mapped_column(Text, default="")
    crops: Mapped[list] = mapped_column(JSON)
    area_ha: Mapped[float] = mapped_column(Float)
    location: Mapped[list] = mapped_column(JSON)
    certifications: Mapped[list] = mapped_column(JSON)
    valid_from: Mapped[str] = mapped_column(String)
    valid_to: Mapped[str | None] = mapped_column(String)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ProductRow(_MasterMixin, Base):
    __tablename__ = "products"

    gtin: Mapped[str] = mapped_column(String, primary_key=True)
    owner_subject_id: Mapped[str] = mapped_column(String, index=True)
    name_vi: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text, default="")
    ocop_group: Mapped[str] = mapped_column(String)
    net_content: Mapped[dict | None] = mapped_column(JSON)
    shelf_life_days: Mapped[int | None] = mapped_column(Integer)


class RatingRow(Base):
    """The whole rating history of a product: one row per rating event (granted, renewed, withdrawn)."""

    __tablename__ = "ratings"

    event_id: Mapped[str] = mapped_column(String, primary_key=True)
    gtin: Mapped[str] = mapped_column(String, index=True)
    action: Mapped[str] = mapped_column(String)
    stars: Mapped[int] = mapped_column(Integer)
    score: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String)
    decision_no: Mapped[str] = mapped_column(Text)
    decision_date: Mapped[str] = mapped_column(String)
    valid_from: Mapped[str] = mapped_column(String)
    valid_to: Mapped[str] = mapped_column(String)
    occurred_at: Mapped[str] = mapped_column(String)
    occurred_utc: Mapped[datetime] = mapped_column(UtcDateTime)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)


class FacilityRow(_MasterMixin, Base):
    __tablename__ = "facilities"

    facility_id: Mapped[str] = mapped_column(String, primary_key=True)
    owner_subject_id: Mapped[str] = mapped_column(String, index=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String)
    address: Mapped[str] = mapped_column(Text, default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)


class SinkOffset(Base):
    """The sink's progress, committed in the same transaction as the rows it wrote (exactly-once into SQL)."""

    __tablename__ = "sink_offsets"

    topic: Mapped[str] = mapped_column(String, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)


class SinkReject(Base):
    """A message the sink could not apply (undecodable, invalid, or refused by the database): never silently lost."""

    __tablename__ = "sink_rejects"

    topic: Mapped[str] = mapped_column(String, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


T = {t.name: t for t in Base.metadata.sorted_tables}
LOTS, STEPS, EDGES, ORIGINS = T["lots"], T["steps"], T["lineage_edges"], T["lot_origins"]
STAMPS, ALERTS, SCANS = T["stamps"], T["alerts"], T["scans"]
SUBJECTS, AREAS, PRODUCTS, RATINGS, FACILITIES = T["subjects"], T["areas"], T["products"], T["ratings"], T["facilities"]
SINK_OFFSETS, SINK_REJECTS = T["sink_offsets"], T["sink_rejects"]


# ---------------------------------------------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------------------------------------------


def _row_value(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def _row(r: Any) -> dict:
    """A result row as a JSON-able dict (instants as ISO 8601 UTC text)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r._mapping.items()}


def _as_instant(x: datetime | date | str) -> datetime:
    if isinstance(x, datetime):
        dt = x
    elif isinstance(x, date):
        dt = datetime(x.year, x.month, x.day)
    else:
        dt = datetime.fromisoformat(x)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _chunks(items: list, n: int = 500) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _ids(col: Any) -> Any:
    return col.in_(bindparam("ids", expanding=True))


# built once (statement construction costs more than running these on an indexed key); ``ids``: a list
_Q_LOTS = select(LOTS).where(_ids(LOTS.c.lot))
_Q_PRODUCTS = select(PRODUCTS).where(_ids(PRODUCTS.c.gtin)).order_by(PRODUCTS.c.gtin)
_Q_RATINGS = select(RATINGS).where(_ids(RATINGS.c.gtin)).order_by(RATINGS.c.occurred_utc, RATINGS.c.event_id)
_Q_SUBJECTS = select(SUBJECTS).where(_ids(SUBJECTS.c.subject_id))
_Q_ORIGINS = (select(ORIGINS.c.lot, ORIGINS.c.area_code, ORIGINS.c.harvest_lot).where(_ids(ORIGINS.c.lot))
              .order_by(ORIGINS.c.lot, ORIGINS.c.area_code, ORIGINS.c.harvest_lot))
_Q_AREAS = select(AREAS).where(_ids(AREAS.c.area_code)).order_by(AREAS.c.area_code)
_Q_FACILITIES = select(FACILITIES).where(_ids(FACILITIES.c.facility_id)).order_by(FACILITIES.c.facility_id)


def lot_views(c: Connection, lots: list[str]) -> dict[str, dict]:
    """``Store.lot()`` of each known lot among ``lots`` without its ``stamps`` and ``alerts``, in one statement per
    table (lots, products, ratings, subjects, origins, areas, facilities) whatever the number of lots."""
    rows: dict[str, dict] = {}
    for chunk in _chunks(sorted(set(lots))):
        for row in c.execute(_Q_LOTS, {"ids": chunk}):
            rows[row.lot] = _row(row)
    if not rows:
        return {}
    records = {lot: orjson.loads(r.pop("record")) for lot, r in rows.items()}
    variants = {lot: gtin_variants(r["gtin"]) for lot, r in rows.items() if r["gtin"]}
    all_variants = sorted({v for vs in variants.values() for v in vs})
    products: dict[str, dict] = {}
    ratings: list[dict] = []
    if all_variants:
        for x in c.execute(_Q_PRODUCTS, {"ids": all_variants}):
            products.setdefault(x.gtin, _row(x))
        ratings = [_row(x) for x in c.execute(_Q_RATINGS, {"ids": all_variants})]
    product_of = {lot: next((products[v] for v in vs if v in products), None) for lot, vs in variants.items()}
    subject_of = {lot: r["subject_id"] or (product_of.get(lot) or {}).get("owner_subject_id")
                  for lot, r in rows.items()}
    ids = sorted({x for x in subject_of.values() if x})
    subjects = {x.subject_id: _row(x) for x in c.execute(_Q_SUBJECTS, {"ids": ids})} if ids else {}
    origins: dict[str, list[dict]] = {lot: [] for lot in rows}
    for x in c.execute(_Q_ORIGINS, {"ids": sorted(rows)}):
        origins[x.lot].append({"area_code": x.area_code, "harvest_lot": x.harvest_lot})
    codes = sorted({o["area_code"] for os_ in origins.values() for o in os_})
    areas = {x.area_code: _row(x) for x in c.execute(_Q_AREAS, {"ids": codes})} if codes else {}
    facility_ids = {lot: sorted({s["facility"] for s in rec.get("steps", []) if s.get("facility")})
                    for lot, rec in records.items()}
    fids = sorted({f for fs in facility_ids.values() for f in fs})
    facilities = {x.facility_id: _row(x) for x in c.execute(_Q_FACILITIES, {"ids": fids})} if fids else {}
    out: dict[str, dict] = {}
    for lot, r in rows.items():
        vs = set(variants.get(lot, ()))
        sid = subject_of[lot]
        lot_codes = sorted({o["area_code"] for o in origins[lot]})
        out[lot] = {
            **r,
            "record": records[lot],
            "product": product_of.get(lot),
            "subject": subjects.get(sid) if sid else None,
            "origins": origins[lot],
            "areas": [areas[code] for code in lot_codes if code in areas],
            "ratings": [x for x in ratings if x["gtin"] in vs],
            "facilities": [facilities[f] for f in facility_ids[lot] if f in facilities],
        }
    return out


class Store:
    """The read side's database: engine, migrations, and queries. Thread-safe (one engine, pooled connections)."""

    def __init__(self, url: str, *, echo: bool = False, busy_timeout_ms: int = 30_000):
        self.url = normalize_url(url)
        u = make_url(self.url)
        self.dialect = u.get_backend_name()
        if self.dialect == "sqlite":
            db = u.database
            if db and db != ":memory:" and not db.startswith("file:"):
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(self.url, echo=echo, connect_args={"timeout": busy_timeout_ms / 1000})
            _sqlite_setup(self.engine, busy_timeout_ms)
        elif self.dialect == "postgresql":
            self.engine = create_engine(self.url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=10)
        else:
            raise ValueError(f"unsupported database {self.dialect!r} (use sqlite:/// or postgresql+psycopg://)")

    def __repr__(self) -> str:
        return f"Store({self.engine.url!r})"  # the URL's repr hides the password

    def close(self) -> None:
        self.engine.dispose()

    # --- transactions ------------------------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, so two writers queue instead of failing late)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(ocop_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    # --- migrations --------------------------------------------------------------------------------------------
    def alembic_config(self):
        return alembic_config(self.url)

    def migrate(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` (idempotent)."""
        from alembic import command

        cfg = self.alembic_config()
        with _MIGRATE_LOCK, self.engine.connect() as conn:  # alembic's context is process-global
            conn = conn.execution_options(ocop_write=True)
            pg = self.dialect == "postgresql"
            if pg:  # several processes may start at once (sink, web): one migrates, the others wait
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                if pg:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                    conn.commit()

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # --- sink progress -----------------------------------------------------------------------------------------
    def sink_offsets(self, conn: Connection | None = None) -> dict[tuple[str, int], int]:
        def q(c: Connection) -> dict[tuple[str, int], int]:
            rows = c.execute(select(SINK_OFFSETS.c.topic, SINK_OFFSETS.c.partition, SINK_OFFSETS.c.next_offset))
            return {(t, p): o for t, p, o in rows}

        if conn is not None:
            return q(conn)
        with self.read() as c:
            return q(c)

    # --- lots --------------------------------------------------------------------------------------------------
    def lot(self, lot: str) -> dict | None:
        """A lot's record with the master data the web page needs: product, subject, growing areas (coordinates),
        rating history, stamp ranges, alerts and the facilities its steps happened at. None if unknown."""
        with self.read() as c:
            view = lot_views(c, [lot]).get(lot)
            if view is None:
                return None
            view["stamps"] = [_row(x) for x in c.execute(select(STAMPS).where(STAMPS.c.lot == lot)
                                                         .order_by(STAMPS.c.first_index, STAMPS.c.range_id))]
            view["alerts"] = self._alerts(c, lot=lot)
        return view

    def lot_summaries(self, lots: list[str]) -> dict[str, dict]:
        """Short facts of several lots (for lineage trees and lists)."""
        if not lots:
            return {}
        cols = (LOTS.c.lot, LOTS.c.gtin, LOTS.c.product_name_vi, LOTS.c.product_name_en, LOTS.c.status,
                LOTS.c.subject_id, LOTS.c.recall_reason)
        out: dict[str, dict] = {}
        with self.read() as c:
            for i in range(0, len(lots), 500):
                for row in c.execute(select(*cols).where(LOTS.c.lot.in_(lots[i:i + 500]))):
                    out[row.lot] = _row(row)
        return out

    def _lot_list(self, where: Any, *, limit: int | None, offset: int = 0) -> list[dict]:
        cols = [c for c in LOTS.c if c.name != "record"]
        q = select(*cols).where(where).order_by(LOTS.c.first_event_at, LOTS.c.lot).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        with self.read() as c:
            return [_row(r) for r in c.execute(q)]

    def lots_by_subject(self, subject_id: str, *, limit: int | None = None, offset: int = 0) -> list[dict]:
        """Lots recorded for a subject (the record's subject, or the owner of its product)."""
        return self._lot_list(or_(LOTS.c.subject_id == subject_id, LOTS.c.product_owner == subject_id),
                              limit=limit, offset=offset)

    def lots_by_area(self, area_code: str, *, limit: int | None = None, offset: int = 0) -> list[dict]:
        """Lots whose origins (transitively through transformations) include the growing area."""
        sub = select(ORIGINS.c.lot).where(ORIGINS.c.area_code == area_code)
        return self._lot_list(LOTS.c.lot.in_(sub), limit=limit, offset=offset)

    def lots_by_product(self, gtin: str, *, limit: int | None = None, offset: int = 0) -> list[dict]:
        return self._lot_list(LOTS.c.gtin.in_(gtin_variants(gtin)), limit=limit, offset=offset)

    def lots_by_period(self, start: datetime | date | str, end: datetime | date | str, *, by: str = "event",
                       limit: int | None = None, offset: int = 0) -> list[dict]:
        """Lots in the half-open period ``[start, end)``. ``by``:

        * ``event`` (default): any of the lot's steps happened in the period;
        * ``first_event``: the lot's first step happened in it (lots started in the period);
        * ``production``: the packaging's production date falls in it.

        Naive datetimes and dates are taken as UTC.
        """
        s, e = _as_instant(start), _as_instant(end)
        if by == "event":
            sub = select(STEPS.c.lot).where(STEPS.c.occurred_utc >= s, STEPS.c.occurred_utc < e)
            where = LOTS.c.lot.in_(sub)
        elif by == "first_event":
            where = and_(LOTS.c.first_event_at >= s, LOTS.c.first_event_at < e)
        elif by == "production":
            where = and_(LOTS.c.production_date >= s.date().isoformat(), LOTS.c.production_date < e.date().isoformat())
        else:
            raise ValueError(f"by must be event, first_event or production, not {by!r}")
        return self._lot_list(where, limit=limit, offset=offset)

    def steps(self, lot: str) -> list[dict]:
        with self.read() as c:
            return [_row(r) for r in c.execute(select(STEPS).where(STEPS.c.lot == lot).order_by(STEPS.c.seq))]

    # --- lineage -----------------------------------------------------------------------------------------------
    def lineage(self, lot: str, max_depth: int = 64) -> dict:
        """Ancestors and descendants of a lot through transformations, by recursive CTEs (SQLite and PostgreSQL).

        Each related lot appears once, at its shortest distance (``depth``), however many paths lead to it
        (diamonds). ``edges`` are the parent → child links among the lot, its ancestors and its descendants.
        Cycles (which valid data never has) are cut by ``max_depth``.
        """
        with self.read() as c:
            anc = self._walk(c, lot, up=True, max_depth=max_depth)
            desc = self._walk(c, lot, up=False, max_depth=max_depth)
            up_set = set(anc) | {lot}
            down_set = set(desc) | {lot}
            nodes = sorted(up_set | down_set)
            edges: set[tuple[str, str]] = set()
            for i in range(0, len(nodes), 500):
                chunk = nodes[i:i + 500]
                for p, ch in c.execute(select(EDGES.c.parent_lot, EDGES.c.child_lot).where(
                        or_(EDGES.c.child_lot.in_(chunk), EDGES.c.parent_lot.in_(chunk)))):
                    if (p in up_set and ch in up_set) or (p in down_set and ch in down_set):
                        edges.add((p, ch))
        summaries = self.lot_summaries(nodes)

        def item(x: str, d: int) -> dict:
            s = summaries.get(x, {})
            return {"lot": x, "depth": d, "gtin": s.get("gtin"), "product_name_vi": s.get("product_name_vi"),
                    "product_name_en": s.get("product_name_en"), "status": s.get("status"), "known": x in summaries}

        return {
            "lot": lot,
            "ancestors": [item(x, d) for x, d in sorted(anc.items(), key=lambda kv: (kv[1], kv[0]))],
            "descendants": [item(x, d) for x, d in sorted(desc.items(), key=lambda kv: (kv[1], kv[0]))],
            "edges": [{"parent": p, "child": ch} for p, ch in sorted(edges)],
        }

    @staticmethod
    def _walk(c: Connection, lot: str, *, up: bool, max_depth: int) -> dict[str, int]:
        e = EDGES
        start_col, next_col = (e.c.child_lot, e.c.parent_lot) if up else (e.c.parent_lot, e.c.child_lot)
        one = literal_column("1", Integer)
        base = select(next_col.label("lot"), one.label("depth")).where(start_col == lot)
        walk = base.cte("walk", recursive=True)
        prev = walk.alias("prev")
        step = (select(next_col.label("lot"), (prev.c.depth + one).label("depth"))
                .select_from(e.join(prev, start_col == prev.c.lot))
                .where(prev.c.depth < max_depth))
        walk = walk.union(step)  # UNION, not UNION ALL: (lot, depth) pairs deduplicate diamonds
        q = select(walk.c.lot, func.min(walk.c.depth).label("depth")).group_by(walk.c.lot)
        return {x: int(d) for x, d in c.execute(q) if x != lot}

    # --- stamps and scans --------------------------------------------------------------------------------------
    def stamp_range_for(self, gtin: str, lot: str, index: int) -> dict | None:
        """The issued stamp range of ``(gtin, lot)`` that contains serial ``index``, or None."""
        q = (select(STAMPS).where(STAMPS.c.gtin.in_(gtin_variants(gtin)), STAMPS.c.lot == lot,
                                  STAMPS.c.first_index <= index, STAMPS.c.first_index + STAMPS.c.count > index)
             .order_by(STAMPS.c.first_index, STAMPS.c.range_id).limit(1))
        with self.read() as c:
            row = c.execute(q).first()
        return _row(row) if row is not None else None

    def stamp_ranges(self, lot: str) -> list[dict]:
        with self.read() as c:
            return [_row(r) for r in c.execute(select(STAMPS).where(STAMPS.c.lot == lot)
                                               .order_by(STAMPS.c.first_index, STAMPS.c.range_id))]

    def scan_stats(self, serial: str) -> dict:
        """How often a serial was scanned: ``{count, first_scan_at, last_scan_at, regions}`` (times as recorded)."""
        with self.read() as c:
            n, first_utc, last_utc, regions = c.execute(
                select(func.count(), func.min(SCANS.c.scanned_utc), func.max(SCANS.c.scanned_utc),
                       func.count(SCANS.c.region.distinct())).where(SCANS.c.serial == serial)).one()
            first = last = None
            if n:
                first = c.execute(select(SCANS.c.scanned_at).where(SCANS.c.serial == serial)
                                  .order_by(SCANS.c.scanned_utc, SCANS.c.scan_id).limit(1)).scalar()
                last = c.execute(select(SCANS.c.scanned_at).where(SCANS.c.serial == serial)
                                 .order_by(SCANS.c.scanned_utc.desc(), SCANS.c.scan_id.desc()).limit(1)).scalar()
        return {"count": int(n), "first_scan_at": first, "last_scan_at": last, "regions": int(regions or 0)}

    # --- alerts ------------------------------------------------------------------------------------------------
    def alerts_for(self, lot: str | None = None, serial: str | None = None, *, state: str | None = None) -> list[dict]:
        """Alerts of a lot and/or a serial (either matches), oldest first."""
        if lot is None and serial is None:
            raise ValueError("give a lot or a serial")
        with self.read() as c:
            return self._alerts(c, lot=lot, serial=serial, state=state)

    @staticmethod
    def _alerts(c: Connection, *, lot: str | None = None, serial: str | None = None,
                state: str | None = None) -> list[dict]:
        conds = []
        if lot is not None:
            conds.append(ALERTS.c.lot == lot)
        if serial is not None:
            conds.append(ALERTS.c.serial == serial)
        q = select(ALERTS).where(or_(*conds))
        if state is not None:
            q = q.where(ALERTS.c.state == state)
        return [_row(r) for r in c.execute(q.order_by(ALERTS.c.raised_utc, ALERTS.c.alert_id))]

    def serial_flagged(self, serial: str) -> bool:
        """True if the serial has an open ``suspicious_copy`` alert."""
        q = select(ALERTS.c.alert_id).where(ALERTS.c.serial == serial, ALERTS.c.rule == "suspicious_copy",
                                            ALERTS.c.state == "open").limit(1)
        with self.read() as c:
            return c.execute(q).first() is not None

    # --- master data -------------------------------------------------------------------------------------------
    def subject(self, subject_id: str) -> dict | None:
        return self._one(SUBJECTS, SUBJECTS.c.subject_id == subject_id)

    def area(self, area_code: str) -> dict | None:
        return self._one(AREAS, AREAS.c.area_code == area_code)

    def product(self, gtin: str) -> dict | None:
        return self._one(PRODUCTS, PRODUCTS.c.gtin.in_(gtin_variants(gtin)))

    def facility(self, facility_id: str) -> dict | None:
        return self._one(FACILITIES, FACILITIES.c.facility_id == facility_id)

    def ratings(self, gtin: str) -> list[dict]:
        with self.read() as c:
            return [_row(r) for r in c.execute(select(RATINGS).where(RATINGS.c.gtin.in_(gtin_variants(gtin)))
                                               .order_by(RATINGS.c.occurred_utc, RATINGS.c.event_id))]

    def _one(self, table: Any, where: Any) -> dict | None:
        with self.read() as c:
            row = c.execute(select(table).where(where).limit(1)).first()
        return _row(row) if row else None

    def counts(self) -> dict[str, int]:
        """Row count of every table (for the CLI and tests)."""
        with self.read() as c:
            return {name: int(c.execute(select(func.count()).select_from(t)).scalar())
                    for name, t in sorted(T.items())}


def _sqlite_setup(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, busy timeout, and SQLAlchemy (not the driver) in charge of BEGIN, so that savepoints work and
    write transactions take the lock up front (``BEGIN IMMEDIATE``)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("ocop_write") else "BEGIN")


def alembic_config(url: str):
    """An Alembic config built in code (no alembic.ini): works from an installed package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


__all__ = [
    "Base", "Store", "UtcDateTime", "alembic_config", "dumps", "gtin_variants", "normalize_url", "parse_instant",
    "LOTS", "STEPS", "EDGES", "ORIGINS", "STAMPS", "ALERTS", "SCANS", "SUBJECTS", "AREAS", "PRODUCTS", "RATINGS",
    "FACILITIES", "SINK_OFFSETS", "SINK_REJECTS", "lot_views", "scan_lot_views", "serial_facts", "changed_since",
]


# ---------------------------------------------------------------------------------------------------------------
# scan service (consumers/web) additions — added by the scan-service work (issue 7), kept apart from the Store class
# ---------------------------------------------------------------------------------------------------------------


def stamp_ranges_for_index(store: Store, gtin: str, index: int, *, limit: int = 16) -> list[dict]:
    """Issued stamp ranges of product ``gtin`` (any lot) that contain serial ``index``, oldest lot first.

    For the short Digital Link ``/01/{gtin}/21/{serial}``: the serial carries its index but not its lot, so the scan
    service tries the lots of these ranges one by one (the tag is keyed by GTIN and lot)."""
    q = (select(STAMPS).where(STAMPS.c.gtin.in_(gtin_variants(gtin)), STAMPS.c.first_index <= index,
                              STAMPS.c.first_index + STAMPS.c.count > index)
         .order_by(STAMPS.c.issued_utc, STAMPS.c.lot, STAMPS.c.range_id).limit(limit))
    with store.read() as c:
        return [_row(r) for r in c.execute(q)]


@lru_cache(maxsize=1)
def _walk_up() -> Any:
    """``Store._walk(up=True)`` as one statement built once (``lot``, ``max_depth`` bound at execution)."""
    e = EDGES
    one = literal_column("1", Integer)
    walk = select(e.c.parent_lot.label("lot"), one.label("depth")).where(e.c.child_lot == bindparam("lot")) \
        .cte("walk", recursive=True)
    prev = walk.alias("prev")
    step = (select(e.c.parent_lot.label("lot"), (prev.c.depth + one).label("depth"))
            .select_from(e.join(prev, e.c.child_lot == prev.c.lot))
            .where(prev.c.depth < bindparam("max_depth", type_=Integer)))
    walk = walk.union(step)
    return select(walk.c.lot, func.min(walk.c.depth).label("depth")).group_by(walk.c.lot)


def scan_lot_views(store: Store, lot: str, *, max_ancestors: int = 16,
                   facility_ids: Callable[[dict], Iterable[str]] | None = None,
                   ) -> tuple[dict | None, list[dict], dict[str, dict], list[str]]:
    """What the scan page needs of a lot, in ONE read transaction (a handful of statements, however many
    ancestors): (the lot's view as ``Store.lot()`` without stamps and alerts, or None; its known ancestors' views
    nearest first, at most ``max_ancestors``; facilities by id: every view's ``facilities`` plus those that
    ``facility_ids(view)`` names (ship destinations, points of sale); the lots the answer depends on: the lot and
    every ancestor looked for, known or not)."""
    with store.read() as c:
        anc = {x: int(d) for x, d in c.execute(_walk_up(), {"lot": lot, "max_depth": max_ancestors}) if x != lot}
        order = [x for x, _ in sorted(anc.items(), key=lambda kv: (kv[1], kv[0]))][:max_ancestors]
        views = lot_views(c, [lot, *order])
        view = views.get(lot)
        if view is None:
            return None, [], {}, [lot]
        ancestors = [views[x] for x in order if x in views]
        facilities = {f["facility_id"]: f for v in (view, *ancestors) for f in v["facilities"]}
        wanted = {f for v in (view, *ancestors) for f in (facility_ids(v) if facility_ids else ())
                  if f and f not in facilities}
        for chunk in _chunks(sorted(wanted)):
            for x in c.execute(_Q_FACILITIES, {"ids": chunk}):
                facilities[x.facility_id] = _row(x)
    return view, ancestors, facilities, [lot, *order]


def product_view(store: Store, gtin: str) -> tuple[dict | None, list[dict], dict | None]:
    """(product, its rating history oldest first, its owner) of a GTIN (any spelling), in one read transaction."""
    variants = gtin_variants(gtin)
    with store.read() as c:
        p = c.execute(select(PRODUCTS).where(PRODUCTS.c.gtin.in_(variants)).order_by(PRODUCTS.c.gtin).limit(1)).first()
        if p is None:
            return None, [], None
        product = _row(p)
        ratings = [_row(x) for x in c.execute(select(RATINGS).where(RATINGS.c.gtin.in_(variants))
                                              .order_by(RATINGS.c.occurred_utc, RATINGS.c.event_id))]
        owner = product.get("owner_subject_id")
        s = c.execute(select(SUBJECTS).where(SUBJECTS.c.subject_id == owner)).first() if owner else None
    return product, ratings, (_row(s) if s else None)


_SERIAL_FACTS = """
SELECT
  (SELECT count(*) FROM scans WHERE serial = :serial) AS scan_count,
  (SELECT scanned_at FROM scans WHERE serial = :serial ORDER BY scanned_utc, scan_id LIMIT 1) AS first_scan_at,
  (SELECT scanned_at FROM scans WHERE serial = :serial ORDER BY scanned_utc DESC, scan_id DESC LIMIT 1)
    AS last_scan_at,
  EXISTS (SELECT 1 FROM alerts WHERE serial = :serial AND rule = 'suspicious_copy' AND state = 'open') AS flagged"""
_RANGE_COLUMNS = ("range_id", "lot", "gtin", "key_id", "first_index", "count", "issued_at", "issued_utc", "request_id")
_GTIN_SLOTS = 5  # gtin_variants() gives at most 5 spellings: a fixed statement, compiled once
_SERIAL_FACTS_Q = text(_SERIAL_FACTS).columns(scan_count=Integer, first_scan_at=String, last_scan_at=String,
                                               flagged=Boolean)
_SERIAL_FACTS_RANGE_Q = text(
    _SERIAL_FACTS + ", " + ", ".join(f'r."{c}" AS "{c}"' for c in _RANGE_COLUMNS) + """
FROM (SELECT 1 AS one) AS one LEFT OUTER JOIN (
  SELECT * FROM stamps
  WHERE gtin IN (""" + ", ".join(f":g{i}" for i in range(_GTIN_SLOTS)) + """) AND lot = :lot
    AND first_index <= :idx AND first_index + "count" > :idx
  ORDER BY first_index, range_id LIMIT 1) AS r ON 1 = 1""").columns(
    scan_count=Integer, first_scan_at=String, last_scan_at=String, flagged=Boolean, range_id=String, lot=String,
    gtin=String, key_id=String, first_index=BigInteger, count=Integer, issued_at=String, issued_utc=UtcDateTime,
    request_id=String)


def serial_facts(store: Store, serial: str, gtin: str | None = None, lot: str | None = None,
                 index: int | None = None) -> dict:
    """A serial's own facts in ONE statement (a fixed text, compiled once): ``range`` (the issued range of
    ``(gtin, lot)`` that holds ``index`` as ``stamp_range_for`` gives it, or None; not looked up without all three),
    ``flagged`` (an open ``suspicious_copy`` alert: ``serial_flagged``), ``scans`` (``{count, first_scan_at,
    last_scan_at}`` as ``scan_stats`` gives them). Indexes: ``ix_stamps_gtin_lot``, ``ix_alerts_serial``,
    ``ix_scans_serial_scanned``."""
    with_range = gtin is not None and lot is not None and index is not None
    params: dict[str, Any] = {"serial": serial}
    if with_range:
        variants = gtin_variants(gtin)[:_GTIN_SLOTS]
        variants += [variants[0]] * (_GTIN_SLOTS - len(variants))
        params.update({f"g{i}": v for i, v in enumerate(variants)}, lot=lot, idx=int(index))
    with store.read() as c:
        m = c.execute(_SERIAL_FACTS_RANGE_Q if with_range else _SERIAL_FACTS_Q, params).one()._mapping
    found = None
    if with_range and m["range_id"] is not None:
        found = {k: _row_value(m[k]) for k in _RANGE_COLUMNS}
    n = int(m["scan_count"] or 0)
    return {"range": found, "flagged": bool(m["flagged"]),
            "scans": {"count": n, "first_scan_at": m["first_scan_at"] if n else None,
                      "last_scan_at": m["last_scan_at"] if n else None}}


def changed_since(c: Connection, table: Any, since: dict[int, int], columns: list[str], *,
                  limit: int = 10_000) -> list[dict] | None:
    """Rows of ``table`` (``lots`` or ``alerts``: they carry their source ``(partition, offset)``) written at or
    after the sink positions ``since`` (partition → next offset of the source topic before the change). None if more
    than ``limit`` (the caller then forgets everything). Index: ``ix_<table>_source``."""
    if not since:
        return []
    cond = or_(*[and_(table.c.source_partition == p, table.c.source_offset >= o) for p, o in sorted(since.items())])
    rows = c.execute(select(*[table.c[x] for x in columns]).where(cond).limit(limit + 1)).all()
    if len(rows) > limit:
        return None
    return [dict(r._mapping) for r in rows]
