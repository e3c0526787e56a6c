"""Stamp issuing, pure: a lot's stamp state + a request -> a stamp range (or nothing).

State per lot: ``{"next": first free index, "gtin": last packaged GTIN, "done": {request_id: range},
"pending": [requests waiting for a package]}``. A request already done gives back the same range (so a redelivered
request re-sends an identical range, never a second one); ranges of a lot never overlap.
"""

from __future__ import annotations

import hashlib


def new_state() -> dict:
    return {"next": 0, "gtin": None, "done": {}, "pending": []}


def range_id(lot: str, request_id: str) -> str:
    return hashlib.sha256(f"{lot}|{request_id}".encode()).hexdigest()[:24]


def request_from_package(ev: dict) -> dict | None:
    p = ev["payload"]
    if p["stamps_requested"] <= 0:
        return None
    return {"request_id": ev["event_id"], "lot": p["lot"], "count": p["stamps_requested"], "at": ev["occurred_at"]}


def issue(state: dict, request: dict, key_id: str) -> list[dict]:
    """Ranges to publish for ``request`` (a previous one re-sent if it was done already)."""
    rid = request["request_id"]
    if rid in state["done"]:
        return [state["done"][rid]]
    if state["gtin"] is None:
        if all(r["request_id"] != rid for r in state["pending"]):
            state["pending"].append(request)
        return []
    rng = {"range_id": range_id(request["lot"], rid), "lot": request["lot"], "gtin": state["gtin"],
           "key_id": key_id, "first_index": state["next"], "count": request["count"], "issued_at": request["at"],
           "request_id": rid}
    state["next"] += request["count"]
    state["done"][rid] = rng
    return [rng]


def on_package(state: dict, ev: dict, key_id: str) -> list[dict]:
    """A package event fixes the lot's GTIN, issues its own stamps and any request that was waiting for it."""
    state["gtin"] = ev["payload"]["gtin"]
    out = []
    req = request_from_package(ev)
    if req:
        out += issue(state, req, key_id)
    pending, state["pending"] = state["pending"], []
    for r in pending:
        out += issue(state, r, key_id)
    return out
