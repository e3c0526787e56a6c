"""Diff: the replayed projection against the live one — the compacted ``ocop.records`` (latest record per lot) and the
SQL read side (``consumers.store``, each lot row keeps its record as JSON). Every lot that differs is reported,
field by field; a clean system reports none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from ocop_trace.config import Settings

MISSING = "<missing>"


@dataclass(frozen=True)
class FieldDiff:
    field: str  # dotted path, list items as [i]
    live: Any
    replay: Any


@dataclass
class LotDiff:
    lot: str
    source: str  # "records" (ocop.records) | "sql" (read side)
    kind: str  # missing_in_live | missing_in_replay | differs
    fields: list[FieldDiff] = field(default_factory=list)

    def describe(self) -> str:
        if self.kind == "missing_in_live":
            return f"{self.lot}: missing in {self.source} (the replay has it)"
        if self.kind == "missing_in_replay":
            return f"{self.lot}: in {self.source} but not in the replay"
        parts = [f"{d.field}: live {_short(d.live)} vs replay {_short(d.replay)}" for d in self.fields[:6]]
        more = f" (+{len(self.fields) - 6} more)" if len(self.fields) > 6 else ""
        return f"{self.lot} [{self.source}]: " + "; ".join(parts) + more


@dataclass
class DiffReport:
    compared: dict[str, int] = field(default_factory=dict)  # source -> lots compared
    lots: list[LotDiff] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # source -> why it was not compared

    @property
    def clean(self) -> bool:
        return not self.lots

    def as_dict(self) -> dict:
        return {"clean": self.clean, "compared": self.compared, "skipped": self.skipped,
                "lots": [{"lot": d.lot, "source": d.source, "kind": d.kind,
                          "fields": [{"field": f.field, "live": f.live, "replay": f.replay} for f in d.fields]}
                         for d in self.lots]}


def _short(v: Any, n: int = 60) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str) if v is not MISSING else MISSING
    return text if len(text) <= n else text[: n - 1] + "…"


def field_diffs(live: Any, replay: Any, path: str = "") -> list[FieldDiff]:
    """Differences between two JSON-like values, as dotted paths (dict keys, list indexes)."""
    if isinstance(live, dict) and isinstance(replay, dict):
        out = []
        for k in sorted(set(live) | set(replay), key=str):
            p = f"{path}.{k}" if path else str(k)
            out += field_diffs(live.get(k, MISSING), replay.get(k, MISSING), p)
        return out
    if isinstance(live, list) and isinstance(replay, list):
        if len(live) != len(replay):
            return [FieldDiff(path, live, replay)]
        out = []
        for i, (a, b) in enumerate(zip(live, replay)):
            out += field_diffs(a, b, f"{path}[{i}]")
        return out
    if live != replay or type(live) is not type(replay) and not _same_number(live, replay):
        return [FieldDiff(path, live, replay)]
    return []


def _same_number(a: Any, b: Any) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
        and not isinstance(b, bool) and a == b


def compare(replayed: dict[str, dict], live: dict[str, dict], source: str,
            lots: Iterable[str] | None = None) -> list[LotDiff]:
    """Lot-by-lot comparison (restricted to ``lots`` if given)."""
    keys = set(replayed) | set(live) if lots is None else set(lots)
    out = []
    for lot in sorted(keys):
        r, lv = replayed.get(lot), live.get(lot)
        if r is None and lv is None:
            continue
        if lv is None:
            out.append(LotDiff(lot, source, "missing_in_live"))
        elif r is None:
            out.append(LotDiff(lot, source, "missing_in_replay"))
        else:
            d = field_diffs(lv, r)
            if d:
                out.append(LotDiff(lot, source, "differs", d))
    return out


def sql_records(settings: Settings) -> dict[str, dict]:
    """lot → record JSON of the SQL read side (``lots.record``)."""
    from sqlalchemy import select

    from consumers.store import LOTS, Store

    store = Store(settings.sqlalchemy_url)
    try:
        with store.read() as c:
            return {lot: json.loads(rec) for lot, rec in c.execute(select(LOTS.c.lot, LOTS.c.record))}
    finally:
        store.close()


def diff(replayed: dict[str, dict], *, records: dict[str, dict] | None, sql: dict[str, dict] | None,
         lots: Iterable[str] | None = None, skipped: dict[str, str] | None = None) -> DiffReport:
    rep = DiffReport(skipped=dict(skipped or {}))
    lots = list(lots) if lots is not None else None
    for source, live in (("records", records), ("sql", sql)):
        if live is None:
            continue
        scope = lots if lots is not None else set(replayed) | set(live)
        rep.compared[source] = len(list(scope))
        rep.lots += compare(replayed, live, source, scope)
    return rep


def live_sources(settings: Settings, *, use_records: bool = True, use_sql: bool = True):
    """Read the live projections; a read side that cannot be reached is reported as skipped (not an error)."""
    from consumers.audit.verify import read_live_records

    skipped: dict[str, str] = {}
    records = read_live_records(settings) if use_records else None
    sql = None
    if use_sql:
        try:
            sql = sql_records(settings)
        except Exception as e:  # noqa: BLE001 - no database yet, not migrated, unreachable: say so and go on
            skipped["sql"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return records, sql, skipped


def replay_equals_live(settings: Settings, *, use_sql: bool = True, workers: int = 1) -> DiffReport:
    """Replay the whole log and diff it with ``ocop.records`` and the SQL read side (the lead's end-to-end check).

    The live side is read first, then the log up to its end at that moment, so live records can only lag behind
    the replay, never be ahead of it."""
    from consumers.audit.replay import replay

    records, sql, skipped = live_sources(settings, use_sql=use_sql)
    rep = replay(settings, workers=workers, hashes=False)
    return diff(rep.records, records=records, sql=sql, skipped=skipped)
