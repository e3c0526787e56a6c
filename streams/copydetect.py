"""Copied-stamp detection, pure: a serial's scan history -> a suspicion (or none).

One genuine package is in one place at a time and in few hands. A serial is suspicious when, within
``window_s`` seconds, it is scanned from more than ``max_regions`` coarse regions (provinces), or when more than
``max_devices`` distinct clients have scanned it at all. Rationale and tuning: docs/SCANS.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.validation import parse_datetime

MAX_DEVICES_KEPT = 256


@dataclass(frozen=True)
class Thresholds:
    window_s: int = 3600
    max_regions: int = 1
    max_devices: int = 8


def new_state() -> dict:
    return {"recent": [], "devices": [], "flagged": None}


def observe(state: dict, scan: dict, th: Thresholds) -> str | None:
    """Add a scan to the serial's state; return the reason if this scan makes the serial suspicious (once)."""
    t = parse_datetime(scan["scanned_at"]).timestamp()
    if scan["client_hash"] not in state["devices"] and len(state["devices"]) < MAX_DEVICES_KEPT:
        state["devices"].append(scan["client_hash"])
    state["recent"] = [r for r in state["recent"] if t - r[0] <= th.window_s] + [[t, scan["region"]]]
    if state["flagged"]:
        return None
    regions = sorted({r for _, r in state["recent"] if r})
    reason = None
    if len(regions) > th.max_regions:
        reason = f"scanned in {len(regions)} regions ({', '.join(regions)}) within {th.window_s // 60} min"
    elif len(state["devices"]) > th.max_devices:
        reason = f"scanned by {len(state['devices'])} distinct devices"
    if reason:
        state["flagged"] = reason
    return reason


def suspicion_alert(scan: dict, reason: str) -> dict:
    aid = hashlib.sha256(f"{scan['serial']}|{scan['gtin']}|{scan['lot']}|suspicious_copy".encode()).hexdigest()[:32]
    return {"alert_id": aid, "rule": "suspicious_copy", "severity": "critical", "lot": scan["lot"],
            "serial": scan["serial"], "event_id": None, "detail": reason, "raised_at": scan["scanned_at"],
            "state": "open"}
