"""The HTTP intake's own log: idempotency by event id, EPCIS event hashes seen, and who owns which lot or entity.

A small SQLite file (``<data_dir>/intake.sqlite3``) through SQLAlchemy Core. It is *not* the read side (that is a
projection of Kafka, ``consumers/store.py``); it remembers what this intake answered, so that:

* a retried POST with the same ``event_id`` gets the same answer and produces no second event, while the same
  ``event_id`` with a different body is a conflict (:meth:`IntakeStore.reserve`, table ``intake_requests``);
* an EPCIS event captured twice (same canonical event hash) is reported as a duplicate (table ``epcis_events``);
* a subject cannot append events to a lot, or re-register a growing area / product / facility, that another subject
  created through this API (:meth:`IntakeStore.claim`, table ``owners``).

A request first *reserves* its key (an INSERT on the primary key, so two concurrent retries cannot both pass), then
either *completes* it with the response or *releases* it when nothing was produced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import Column, MetaData, String, Table, Text, create_engine, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError

metadata = MetaData()

intake_requests = Table(
    "intake_requests", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("body_hash", String(64), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | done
    Column("response", Text),  # the JSON answered (status done)
    Column("created_at", String(40), nullable=False),
)

epcis_events = Table(
    "epcis_events", metadata,
    Column("event_hash", String(200), primary_key=True),  # ni:///sha-256;...?ver=CBV2.0 (+ #errorDeclaration)
    Column("event_id", String(64)),
    Column("status", String(16), nullable=False),
    Column("created_at", String(40), nullable=False),
)

owners = Table(
    "owners", metadata,
    Column("kind", String(16), primary_key=True),  # lot | area | product | facility
    Column("key", String(128), primary_key=True),
    Column("subject_id", String(64), nullable=False),
    Column("event_id", String(64)),
    Column("created_at", String(40), nullable=False),
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Reservation:
    """The outcome of reserving a key: ``new`` (go ahead), ``replay`` (answer ``response`` again), ``conflict``
    (same key, different body) or ``pending`` (the same request is being handled right now)."""

    state: str
    response: dict | None = None
    event_id: str | None = None


class IntakeStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{self.path}", connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        metadata.create_all(self.engine)

    @classmethod
    def from_settings(cls, settings: Any) -> "IntakeStore":
        return cls(Path(settings.data_dir) / "intake.sqlite3")

    def close(self) -> None:
        self.engine.dispose()

    # --- idempotency by event id ------------------------------------------------------------------------------
    def reserve(self, event_id: str, body_hash: str, subject_id: str) -> Reservation:
        try:
            with self.engine.begin() as c:
                c.execute(insert(intake_requests).values(event_id=event_id, body_hash=body_hash, subject_id=subject_id,
                                                         status="pending", response=None, created_at=_now()))
            return Reservation("new")
        except IntegrityError:
            pass
        with self.engine.connect() as c:
            row = c.execute(select(intake_requests).where(intake_requests.c.event_id == event_id)).mappings().first()
        if row is None:  # released in between: try once more
            return self.reserve(event_id, body_hash, subject_id)
        if row["body_hash"] != body_hash:
            return Reservation("conflict", event_id=event_id)
        if row["status"] != "done":
            return Reservation("pending", event_id=event_id)
        return Reservation("replay", json.loads(row["response"]), event_id)

    def complete(self, event_id: str, response: dict) -> None:
        with self.engine.begin() as c:
            c.execute(update(intake_requests).where(intake_requests.c.event_id == event_id)
                      .values(status="done", response=json.dumps(response, ensure_ascii=False, sort_keys=True)))

    def release(self, event_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(delete(intake_requests).where(intake_requests.c.event_id == event_id,
                                                    intake_requests.c.status == "pending"))

    # --- EPCIS event hashes -----------------------------------------------------------------------------------
    def reserve_hash(self, event_hash: str) -> Reservation:
        try:
            with self.engine.begin() as c:
                c.execute(insert(epcis_events).values(event_hash=event_hash, event_id=None, status="pending",
                                                      created_at=_now()))
            return Reservation("new")
        except IntegrityError:
            with self.engine.connect() as c:
                row = c.execute(select(epcis_events).where(epcis_events.c.event_hash == event_hash)).mappings().first()
            if row is None:
                return self.reserve_hash(event_hash)
            return Reservation("replay" if row["status"] == "done" else "pending", event_id=row["event_id"])

    def complete_hash(self, event_hash: str, event_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(epcis_events).where(epcis_events.c.event_hash == event_hash)
                      .values(status="done", event_id=event_id))

    def release_hash(self, event_hash: str) -> None:
        with self.engine.begin() as c:
            c.execute(delete(epcis_events).where(epcis_events.c.event_hash == event_hash,
                                                 epcis_events.c.status == "pending"))

    def seen_hash(self, event_hash: str) -> str | None:
        with self.engine.connect() as c:
            row = c.execute(select(epcis_events.c.event_id).where(epcis_events.c.event_hash == event_hash,
                                                                 epcis_events.c.status == "done")).first()
        return row[0] if row else None

    # --- ownership ------------------------------------------------------------------------------------------
    def owner(self, kind: str, key: str) -> str | None:
        with self.engine.connect() as c:
            row = c.execute(select(owners.c.subject_id).where(owners.c.kind == kind, owners.c.key == key)).first()
        return row[0] if row else None

    def claim(self, claims: Iterable[tuple[str, str]], subject_id: str, event_id: str,
              *, override: bool = False) -> tuple[str, str] | None:
        """Record ``subject_id`` as the owner of each (kind, key) not owned yet, atomically. Returns the first
        (kind, key) that another subject owns — and then records nothing — or None. ``override`` (the provincial
        office) reassigns instead."""
        claims = list(dict.fromkeys(claims))
        if not claims:
            return None
        for _attempt in range(5):
            try:
                with self.engine.begin() as c:
                    for kind, key in claims:
                        current = c.execute(select(owners.c.subject_id)
                                            .where(owners.c.kind == kind, owners.c.key == key)).first()
                        if current is None:
                            c.execute(insert(owners).values(kind=kind, key=key, subject_id=subject_id,
                                                            event_id=event_id, created_at=_now()))
                        elif current[0] != subject_id:
                            if not override:
                                raise _Taken(kind, key)
                            c.execute(update(owners).where(owners.c.kind == kind, owners.c.key == key)
                                      .values(subject_id=subject_id, event_id=event_id))
                return None
            except _Taken as taken:  # the transaction rolled back: nothing was recorded
                return taken.kind, taken.key
            except IntegrityError:  # a concurrent claim inserted the same key first: look again
                continue
        raise RuntimeError("could not record lot ownership (too much contention)")


class _Taken(Exception):
    def __init__(self, kind: str, key: str):
        super().__init__(f"{kind} {key}")
        self.kind = kind
        self.key = key
