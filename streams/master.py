"""Master data as seen by the fold: pure merge functions over (kind, id) entries.

The workers keep these entries in a faust table (one replica per lot partition), the auditor in a dict; both use
:func:`entries_of` and :func:`merge`, so the same master events give the same view whatever their order.
Kinds: ``subject``, ``area``, ``product``, ``facility`` (latest change wins, ordered by occurred_at then event id),
``ratings`` (the whole history, by event id) and ``area_recall`` (the earliest recall of a growing area).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Protocol

from schemas.events import MASTER_ID_FIELD
from schemas.validation import parse_datetime, parse_datetime_uncached

Key = tuple[str, str]


@lru_cache(maxsize=65536)
def instant(iso: str) -> float:
    """POSIX seconds of an ISO 8601 date-time with offset (cached: the same strings come back often)."""
    return parse_datetime(iso).timestamp()


def instant_of(iso: str) -> float:
    """:func:`instant`, for a caller that keeps its own (a Projection keeps every one of its events): no cache."""
    return parse_datetime_uncached(iso).timestamp()


def order_key(ev: dict) -> tuple:
    """Total order of events by when they happened (UTC), ties broken by event id."""
    return (instant(ev["occurred_at"]), ev["event_id"])


def recall_ref(ev: dict) -> dict:
    p = ev["payload"]
    return {"event_id": ev["event_id"], "scope": p["scope"], "target": p["target"], "reason": p["reason"],
            "authority": p["authority"], "occurred_at": ev["occurred_at"]}


def recall_order(ref: dict) -> tuple:
    return (instant(ref["occurred_at"]), ref["event_id"])


def entries_of(ev: dict) -> list[Key]:
    """The master entries an accepted event changes (none for a supply event, but for an area recall)."""
    t = ev["event_type"]
    if t == "rating":
        return [("ratings", ev["payload"]["gtin"])]
    if t in MASTER_ID_FIELD:
        return [(t, ev["payload"][MASTER_ID_FIELD[t]])]
    if t == "recall" and ev["payload"]["scope"] == "area":
        return [("area_recall", ev["payload"]["target"])]
    return []


def merge(kind: str, current: dict | None, ev: dict) -> dict | None:
    """The entry after ``ev``; returns None when nothing changes (a duplicate or an older version)."""
    if kind == "ratings":
        history = dict(current or {})
        if ev["event_id"] in history:
            return None
        history[ev["event_id"]] = dict(ev["payload"], event_id=ev["event_id"])
        return history
    if kind == "area_recall":
        ref = recall_ref(ev)
        if current is not None and recall_order(current) <= recall_order(ref):
            return None
        return ref
    new = dict(ev["payload"], _order=list(order_key(ev)), _event_id=ev["event_id"])
    if current is not None and tuple(current["_order"]) >= tuple(new["_order"]):
        return None
    return new


class MasterView(Protocol):
    def get(self, kind: str, ident: str) -> dict | None: ...


class MasterState:
    """In-memory master view (the auditor's projection, tests)."""

    def __init__(self) -> None:
        self.entries: dict[Key, dict] = {}

    def get(self, kind: str, ident: str) -> dict | None:
        return self.entries.get((kind, ident))

    def apply(self, ev: dict) -> list[Key]:
        """Apply one accepted event; return the keys whose entries changed."""
        changed = []
        for key in entries_of(ev):
            new = merge(key[0], self.entries.get(key), ev)
            if new is not None:
                self.entries[key] = new
                changed.append(key)
        return changed

    def apply_all(self, events: Iterable[dict]) -> None:
        for ev in events:
            self.apply(ev)
