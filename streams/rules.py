"""The rules: pure functions from a lot's facts (and master data) to flags. Never drops, only flags.

Each flag is ``{"rule", "event_id", "detail"}``; the workers raise each new flag once as an alert on ``ocop.alerts``
(:func:`alert_id` makes that id deterministic) and resolve it when it disappears (e.g. master data arrived late).
"""

from __future__ import annotations

import hashlib

from streams.master import MasterView, order_key, recall_order

# The most output mass a process may give per unit of input mass (outputs <= inputs x bound x tolerance).
# Processing only loses mass (moisture, husks, trimming) unless water or other ingredients are added.
PROCESS_YIELD_BOUND = {
    "drying": 1.0,
    "withering": 1.0,
    "roasting": 1.0,
    "fermentation": 1.0,
    "blending": 1.0,
    "splitting": 1.0,
    "grading": 1.0,
    "cooking": 3.0,
    "brewing": 6.0,
    "weaving": 1.0,
}
DEFAULT_YIELD_BOUND = 1.0
TOLERANCE = 1.02  # scales and moisture: 2 %

SEVERITY = {
    "mass_balance": "critical",
    "oversold": "critical",
    "area_unregistered": "warning",
    "area_invalid": "critical",
    "product_unregistered": "warning",
    "rating_invalid": "warning",
    "impossible_sequence": "critical",
    "expired": "warning",
    "stamps_exceed_units": "critical",
    "suspicious_copy": "critical",
    "recalled": "critical",
    "inspection_failed": "warning",
}

# Units of one dimension convert to its base unit.
_BASE = {"kg": ("kg", 1.0), "t": ("kg", 1000.0), "l": ("l", 1.0), "unit": ("unit", 1.0)}


def to_base(q: dict) -> tuple[str, float]:
    unit, factor = _BASE[q["unit"]]
    return unit, q["value"] * factor


def total(quantities) -> dict[str, float]:
    out: dict[str, float] = {}
    for q in quantities:
        unit, v = to_base(q)
        out[unit] = out.get(unit, 0.0) + v
    return out


def flag(rule: str, event_id: str | None, detail: str) -> dict:
    return {"rule": rule, "event_id": event_id, "detail": detail}


def transform_mass_balance(ev: dict) -> dict | None:
    """Outputs of a transformation may not exceed its inputs times the process's yield bound."""
    p = ev["payload"]
    ins, outs = total(x["quantity"] for x in p["inputs"]), total(x["quantity"] for x in p["outputs"])
    bound = PROCESS_YIELD_BOUND.get(p["process"].lower(), DEFAULT_YIELD_BOUND)
    for unit, out_v in outs.items():
        in_v = ins.get(unit)
        if in_v is not None and out_v > in_v * bound * TOLERANCE + 1e-9:
            return flag("mass_balance", ev["event_id"],
                        f"{p['process']}: {out_v:g} {unit} out of {in_v:g} {unit} in (yield bound {bound:g})")
    return None


def _day(iso: str) -> str:
    return iso[:10]


def valid_rating(ratings: dict | None, on: str) -> dict | None:
    """The rating valid on day ``on`` (YYYY-MM-DD): the latest decision covering it, unless withdrawn by then."""
    if not ratings:
        return None
    best = None
    for r in sorted(ratings.values(), key=lambda r: (r["decision_date"], r["event_id"])):
        if r["action"] == "withdrawn":
            if r["valid_from"] <= on and best is not None:
                best = None
            continue
        if r["valid_from"] <= on <= r["valid_to"]:
            best = r
    return best


def evaluate(lot: str, ordered: list[dict], active: list[dict], facts: dict, master: MasterView) -> list[dict]:
    """All flags of a lot. ``ordered``: the lot's events by time (:func:`streams.master.order_key`); ``active``: those
    not voided, in the same order; ``facts``: what the fold derived (quantities, packaging, recall, stamp ranges)."""
    flags: list[dict] = []
    packages = [e for e in active if e["event_type"] == "package"]
    packaged = False  # a package event came before, i.e. order_key(ev) > order_key(packages[0]) ("active" is ordered)
    recall = facts["recall"]
    after_recall = recall_order(recall) if recall else None
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
            packaged = True
            product = master.get("product", p["gtin"])
            if product is None:
                flags.append(flag("product_unregistered", ev["event_id"], f"product {p['gtin']} is not registered"))
            elif valid_rating(master.get("ratings", p["gtin"]), p["production_date"]) is None:
                flags.append(flag("rating_invalid", ev["event_id"],
                                  f"no OCOP rating of {p['gtin']} valid on {p['production_date']}: stamps show no stars"))
        elif t == "inspect" and p["result"] == "fail":
            flags.append(flag("inspection_failed", ev["event_id"], f"failed at {p['lab']}"))
        elif t in ("ship", "sell"):
            if recall and order_key(ev) > after_recall:
                flags.append(flag("impossible_sequence", ev["event_id"], f"{t} after recall {recall['event_id']}"))
            if t == "sell" and not packaged:
                flags.append(flag("impossible_sequence", ev["event_id"], "sell before package"))
            if expiry and _day(ev["occurred_at"]) > expiry:
                flags.append(flag("expired", ev["event_id"], f"{t} on {_day(ev['occurred_at'])} after expiry {expiry}"))
        elif t == "void" and p["voided_event_id"] not in {e["event_id"] for e in ordered}:
            flags.append(flag("impossible_sequence", ev["event_id"], f"voids unknown event {p['voided_event_id']}"))
    # lot-level balances
    qin, qout = facts["in_totals"], facts["out_totals"]
    for unit, used in qout.items():
        have = qin.get(unit)
        if have is not None and used > have * TOLERANCE + 1e-9:
            flags.append(flag("mass_balance", None, f"{used:g} {unit} used by transformations, only {have:g} {unit} in the lot"))
    if facts["units_sold"] > facts["units_packaged"] and packages:
        flags.append(flag("oversold", None, f"{facts['units_sold']} units sold, {facts['units_packaged']} packaged"))
    if facts["units_shipped"] > facts["units_packaged"] and packages:
        flags.append(flag("impossible_sequence", None,
                          f"{facts['units_shipped']} units shipped, {facts['units_packaged']} packaged"))
    issued = sum(r["count"] for r in facts["stamp_ranges"])
    # Ranges reach a lot through the stamps agent, which may overtake the lot's own package event (stamps are only
    # issued for a packaged lot): until that event is here there is nothing to compare with (a voided package counts).
    if issued > facts["units_packaged"] and any(e["event_type"] == "package" for e in ordered):
        flags.append(flag("stamps_exceed_units", None, f"{issued} stamps issued for {facts['units_packaged']} units packaged"))
    return sorted(flags, key=lambda f: (f["rule"], f["event_id"] or "", f["detail"]))


def alert_id(lot: str, f: dict) -> str:
    return hashlib.sha256(f"{lot}|{f['rule']}|{f['event_id'] or ''}|{f['detail']}".encode()).hexdigest()[:32]


def alert_changes(lot: str, old_flags: list[dict], new_flags: list[dict], now: str) -> list[dict]:
    """Alerts to raise (new flags, state open) and to resolve (flags gone), as ocop.alert.Alert values."""
    old = {alert_id(lot, f): f for f in old_flags}
    new = {alert_id(lot, f): f for f in new_flags}
    out = []
    for aid, f in new.items():
        if aid not in old:
            out.append(_alert(aid, lot, f, now, "open"))
    for aid, f in old.items():
        if aid not in new:
            out.append(_alert(aid, lot, f, now, "resolved"))
    return out


def alerts_for_publish(lot: str, last: dict, rec: dict, now: str, force: bool) -> tuple[list[dict], list[dict]]:
    """The alerts to send when a lot's record is published, and the flags resolved so far (kept with the lot).

    ``last``: what the lot last published (``flags``, ``resolved``, ``recall``). Normally only the changes are sent
    (new flags open, vanished flags resolve, a new recall). ``force`` is a redelivery: after a crash the lot's state
    may already hold this message's effect while the alerts it sent were lost, so the state of every alert the lot
    ever had is sent again (alert ids dedupe downstream).
    """
    old_flags = last.get("flags", [])
    current = {alert_id(lot, f) for f in rec["flags"]}
    resolved = list({alert_id(lot, f): f for f in [*last.get("resolved", []), *old_flags]
                     if alert_id(lot, f) not in current}.values())
    if force:
        out = alert_changes(lot, resolved, [], now) + alert_changes(lot, [], rec["flags"], now)
    else:
        out = alert_changes(lot, old_flags, rec["flags"], now)
    if rec["recall"] and (force or (last.get("recall") or {}).get("event_id") != rec["recall"]["event_id"]):
        out.append(recall_alert(lot, rec["recall"], now))
    return out, resolved


def recall_alert(lot: str, recall: dict, now: str) -> dict:
    f = flag("recalled", recall["event_id"], f"recalled ({recall['scope']} {recall['target']}): {recall['reason']}")
    return _alert(alert_id(lot, f), lot, f, now, "open")


def _alert(aid: str, lot: str, f: dict, now: str, state: str) -> dict:
    return {"alert_id": aid, "rule": f["rule"], "severity": SEVERITY[f["rule"]], "lot": lot, "serial": None,
            "event_id": f["event_id"], "detail": f["detail"], "raised_at": now, "state": state}

