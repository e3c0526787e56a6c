"""Exports of a replayed selection: EPCIS 2.0 JSON-LD, an FSMA-204-style KDE spreadsheet (CSV), a bilingual HTML report.

All three take the replay (records, per-lot facts, master data) and the selected lots; events are the accepted events
touching those lots, ordered by time then id (:func:`consumers.audit.replay.events_of`).
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from schemas.epcis import (EXPORT_CONTEXT, FSMA_CTE, UOM_OF_UNIT, to_epcis)
from schemas.events import lots_touched

from consumers.audit.replay import Filters, Replay, events_of


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Lookups:
    """What the exports need to know about lots beyond one event: GTIN, quantity, master data, all events by id."""

    rep: Replay

    def gtin(self, lot: str) -> str | None:
        rec = self.rep.records.get(lot) or {}
        return (rec.get("packaging") or {}).get("gtin")

    def quantity(self, lot: str) -> dict | None:
        return (self.rep.records.get(lot) or {}).get("quantity_in")

    def event(self, lot: str, event_id: str) -> dict | None:
        st = self.rep.projection.states.get(lot)
        if st and event_id in st["events"]:
            return st["events"][event_id]
        for st in self.rep.projection.states.values():
            if event_id in st["events"]:
                return st["events"][event_id]
        return None

    def master(self, kind: str, ident: str | None) -> dict | None:
        return self.rep.projection.master.get(kind, ident) if ident else None

    def place_name(self, ident: str | None) -> str:
        m = self.master("facility", ident) or self.master("area", ident) or {}
        return m.get("name", "") or ""

    def product_name(self, gtin: str | None) -> str:
        p = self.master("product", gtin)
        if not p:
            return ""
        return p["name_vi"] + (f" / {p['name_en']}" if p.get("name_en") else "")


# ---------------------------------------------------------------------------------------------------------------
# EPCIS 2.0
# ---------------------------------------------------------------------------------------------------------------

def epcis_document(rep: Replay, lots: Iterable[str], f: Filters | None = None, *, created: str | None = None) -> dict:
    """An EPCISDocument (JSON-LD) with one event per accepted event of the lots (master data events have no EPCIS
    event; a void re-states the event it voids with an errorDeclaration)."""
    look = Lookups(rep)
    out = []
    for ev in events_of(rep, lots, f):
        corrects = None
        if ev["event_type"] == "void":
            corrects = look.event(ev["payload"]["lot"], ev["payload"]["voided_event_id"])
        out.append(to_epcis(ev, gtin_of=look.gtin, quantity_of=look.quantity, corrects=corrects,
                            context=EXPORT_CONTEXT))
    return {"@context": EXPORT_CONTEXT, "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": created or _now(), "epcisBody": {"eventList": out}}


# ---------------------------------------------------------------------------------------------------------------
# FSMA 204 style Key Data Elements per Critical Tracking Event
# ---------------------------------------------------------------------------------------------------------------

KDE_COLUMNS = (
    "traceability_lot_code", "cte_type", "product_description", "gtin", "quantity", "unit_of_measure",
    "location_id", "location_description", "event_date", "event_time", "time_zone_offset",
    "reference_document_type", "reference_document_number", "traceability_lot_code_source", "event_id",
)


def _lot_quantity(ev: dict, lot: str) -> tuple[float | int | None, str]:
    t, p = ev["event_type"], ev["payload"]
    if t in ("harvest", "receive"):
        return p["quantity"]["value"], UOM_OF_UNIT[p["quantity"]["unit"]]
    if t == "transform":
        for x in p["outputs"] + p["inputs"]:
            if x["lot"] == lot:
                return x["quantity"]["value"], UOM_OF_UNIT[x["quantity"]["unit"]]
    if t in ("package", "ship", "sell"):
        return p["units"], UOM_OF_UNIT["unit"]
    return None, ""


def _reference(ev: dict) -> tuple[str, str]:
    t, p = ev["event_type"], ev["payload"]
    if t == "receive" and p.get("document_ref"):
        return "delivery note / phiếu nhập", p["document_ref"]
    if t == "ship" and p.get("document_ref"):
        return "bill of lading / vận đơn", p["document_ref"]
    if t == "inspect" and p.get("certificate_no"):
        return "certificate of analysis / phiếu kết quả kiểm nghiệm", p["certificate_no"]
    if t == "recall":
        return "recall decision / quyết định thu hồi", p.get("authority") or ""
    if t == "void":
        return "corrected event / sự kiện bị hủy", p["voided_event_id"]
    if t == "package":
        return "production record / hồ sơ đóng gói", ev["event_id"]
    return "", ""


def _location(ev: dict) -> str:
    t, p = ev["event_type"], ev["payload"]
    if t == "sell":
        return p["point_of_sale"]
    if t == "harvest" and not ev.get("facility"):
        return p["area_code"]
    return ev.get("facility") or ""


def _tlc_source(rep: Replay, lot: str) -> str:
    """Where the lot code was assigned: the place of the event that created the lot (harvest, or the transform
    that output it), else of its first event."""
    st = rep.projection.states.get(lot)
    if not st:
        return ""
    from streams.master import order_key

    evs = sorted(st["events"].values(), key=order_key)
    for ev in evs:
        if (ev["event_type"] == "harvest" and ev["payload"]["lot"] == lot) or (
                ev["event_type"] == "transform" and any(o["lot"] == lot for o in ev["payload"]["outputs"])):
            return ev.get("facility") or ev["payload"].get("area_code", "")
    return evs[0].get("facility") or "" if evs else ""


def kde_rows(rep: Replay, lots: Iterable[str], f: Filters | None = None) -> list[dict]:
    """One row per Critical Tracking Event per lot, sorted by lot, date, time, event id."""
    look = Lookups(rep)
    lots = list(lots)
    selected = set(lots)
    tlc_src = {lot: _tlc_source(rep, lot) for lot in lots}
    rows = []
    for ev in events_of(rep, lots, f):
        touched = lots_touched(ev)
        if ev["event_type"] == "recall" and ev["payload"]["scope"] == "area":
            area = ev["payload"]["target"]
            touched = [lot for lot in lots if any(o["area_code"] == area for o in rep.records[lot]["origins"])]
        at = datetime.fromisoformat(ev["occurred_at"])
        for lot in touched:
            if lot not in selected:
                continue
            gtin = look.gtin(lot)
            desc = look.product_name(gtin)
            if not desc:
                harvest = next((e for e in rep.projection.states[lot]["events"].values()
                                if e["event_type"] == "harvest"), None)
                desc = harvest["payload"]["crop"] if harvest else ""
            qty, uom = _lot_quantity(ev, lot)
            loc = _location(ev)
            doc_type, doc_no = _reference(ev)
            rows.append({
                "traceability_lot_code": lot, "cte_type": FSMA_CTE[ev["event_type"]], "product_description": desc,
                "gtin": gtin or "", "quantity": "" if qty is None else qty, "unit_of_measure": uom,
                "location_id": loc, "location_description": look.place_name(loc),
                "event_date": at.date().isoformat(), "event_time": at.strftime("%H:%M:%S"),
                "time_zone_offset": at.strftime("%z")[:3] + ":" + at.strftime("%z")[3:] if at.utcoffset() is not None
                else "", "reference_document_type": doc_type, "reference_document_number": doc_no,
                "traceability_lot_code_source": tlc_src.get(lot, ""), "event_id": ev["event_id"],
            })
    rows.sort(key=lambda r: (r["traceability_lot_code"], r["event_date"], r["event_time"], r["event_id"]))
    return rows


def kde_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=KDE_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# HTML report with the lineage graph (inline SVG, own layered layout)
# ---------------------------------------------------------------------------------------------------------------

STEP_NAMES = {
    "harvest": ("Thu hoạch", "Harvest"), "receive": ("Nhận hàng", "Receiving"), "transform": ("Chế biến", "Processing"),
    "inspect": ("Kiểm nghiệm", "Quality testing"), "package": ("Đóng gói", "Packaging"),
    "ship": ("Vận chuyển", "Shipping"), "sell": ("Bán hàng", "Sale"), "recall": ("Thu hồi", "Recall"),
    "void": ("Đính chính (hủy sự kiện)", "Correction (void)"),
}
STATUS_NAMES = {"active": ("Đang lưu hành", "Active"), "recalled": ("Đã thu hồi", "Recalled"),
                "sold_out": ("Đã bán hết", "Sold out"), "expired": ("Hết hạn", "Expired")}


def layout(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Layered layout: column = longest path from a root, row = order in the column (parents' mean row first)."""
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a in parents and b in parents:
            parents[b].append(a)
    depth: dict[str, int] = {}

    def d(n: str, stack: frozenset = frozenset()) -> int:
        if n in depth:
            return depth[n]
        if n in stack:  # a cycle (should not happen): cut it
            return 0
        depth[n] = v = 1 + max((d(p, stack | {n}) for p in parents[n]), default=-1)
        return v

    for n in nodes:
        d(n)
    pos: dict[str, tuple[int, int]] = {}
    for col in range(max(depth.values(), default=-1) + 1):
        members = [n for n in nodes if depth[n] == col]

        def bary(n: str) -> tuple:
            ps = [pos[p][1] for p in parents[n] if p in pos]
            return (sum(ps) / len(ps) if ps else float("inf"), n)

        for row, n in enumerate(sorted(members, key=bary)):
            pos[n] = (col, row)
    return pos


def lineage_svg(rep: Replay, lots: list[str], focus: str | None = None) -> str:
    nodes = sorted(lots)
    edges = sorted({(p, lot) for lot in nodes for p in rep.records[lot]["parents"] if p in rep.records and p in lots})
    pos = layout(nodes, edges)
    w, h, gx, gy, pad = 190, 46, 80, 22, 16
    cols = max((c for c, _ in pos.values()), default=0) + 1
    rows = max((r for _, r in pos.values()), default=0) + 1
    width, height = pad * 2 + cols * w + (cols - 1) * gx, pad * 2 + rows * h + (rows - 1) * gy
    look = Lookups(rep)

    def xy(n: str) -> tuple[int, int]:
        c, r = pos[n]
        return pad + c * (w + gx), pad + r * (h + gy)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage / phả hệ lô hàng" '
             'font-family="DejaVu Sans, Noto Sans, Arial, sans-serif" font-size="12">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for a, b in edges:
        (x1, y1), (x2, y2) = xy(a), xy(b)
        parts.append(f'<path d="M{x1 + w},{y1 + h // 2} C{x1 + w + gx // 2},{y1 + h // 2} {x2 - gx // 2},'
                     f'{y2 + h // 2} {x2},{y2 + h // 2}" fill="none" stroke="#555" marker-end="url(#arrow)"/>')
    for n in nodes:
        x, y = xy(n)
        rec = rep.records[n]
        fill = "#fde2e1" if rec["status"] == "recalled" else ("#e3f1e5" if n != focus else "#cfe8ff")
        stroke = "#c62828" if rec["status"] == "recalled" else "#2e7d32"
        label = look.product_name(look.gtin(n)).split(" / ")[0] or ", ".join(o["area_code"] for o in rec["origins"][:2])
        parts.append(f'<g><title>{html.escape(n)}</title><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" '
                     f'fill="{fill}" stroke="{stroke}" stroke-width="{2 if n == focus else 1}"/>'
                     f'<text x="{x + 8}" y="{y + 18}" font-weight="bold">{html.escape(n[:26])}</text>'
                     f'<text x="{x + 8}" y="{y + 35}" fill="#444">{html.escape(label[:28])}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def html_report(rep: Replay, lots: list[str], f: Filters | None = None, *, verification: dict | None = None,
                created: str | None = None) -> str:
    look = Lookups(rep)
    esc = html.escape
    created = created or _now()
    events = events_of(rep, lots, f)
    filt = ", ".join(f"{k}={v}" for k, v in (f.__dict__.items() if f else []) if v is not None) or "—"
    out = ["<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\">",
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
           "<title>Báo cáo truy xuất nguồn gốc / Traceability audit report</title><style>",
           "body{font-family:'DejaVu Sans','Noto Sans',Arial,sans-serif;margin:24px;color:#222;max-width:1200px}",
           "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}h3{font-size:15px}",
           "table{border-collapse:collapse;width:100%;font-size:13px}td,th{border:1px solid #ddd;padding:4px 6px;"
           "text-align:left;vertical-align:top}th{background:#f3f3f3}.en{color:#666;font-style:italic}"
           ".bad{color:#c62828;font-weight:bold}.ok{color:#2e7d32;font-weight:bold}.svg{overflow-x:auto}",
           "</style></head><body>",
           "<h1>Báo cáo truy xuất nguồn gốc <span class=\"en\">/ Traceability audit report</span></h1>",
           "<table><tr><th>Thời điểm lập <span class=\"en\">/ Created</span></th>"
           f"<td>{esc(created)}</td></tr><tr><th>Bộ lọc <span class=\"en\">/ Filters</span></th><td>{esc(filt)}</td>"
           f"</tr><tr><th>Số lô <span class=\"en\">/ Lots</span></th><td>{len(lots)}</td></tr>"
           f"<tr><th>Số sự kiện <span class=\"en\">/ Events</span></th><td>{len(events)}</td></tr>"
           f"<tr><th>Nhật ký đã đọc <span class=\"en\">/ Log read</span></th><td>{rep.stats.messages} "
           f"messages, {rep.stats.accepted} accepted, {sum(rep.stats.rejected.values())} rejected "
           f"(DLQ)</td></tr>"]
    if verification is not None:
        ok = verification.get("clean")
        out.append(f"<tr><th>Kiểm tra toàn vẹn <span class=\"en\">/ Integrity</span></th><td class=\""
                   f"{'ok' if ok else 'bad'}\">{'Nguyên vẹn / intact' if ok else 'PHÁT HIỆN SAI LỆCH / TAMPERING'}"
                   f"</td></tr>")
    out.append("</table>")
    if verification is not None and not verification.get("clean"):
        out.append("<ul>")
        for b in verification.get("breaks", []):
            out.append(f"<li class=\"bad\">{esc(b['key'])}: {esc(b['kind'])} {esc(str(b['event_id']))} "
                       f"{esc(str(b['ref'] or ''))} — {esc(b['detail'])}</li>")
        for c in verification.get("conflicts", []):
            out.append(f"<li class=\"bad\">{esc(c['detail'])}</li>")
        for c in verification.get("checkpoints", []):
            for p in c["problems"]:
                out.append(f"<li class=\"bad\">checkpoint {esc(c['checkpoint_id'])}: {esc(p)}</li>")
        out.append("</ul>")
    out.append("<h2>Phả hệ lô hàng <span class=\"en\">/ Lineage</span></h2>")
    if len(lots) <= 400:
        out.append(f"<div class=\"svg\">{lineage_svg(rep, lots, f.lot if f else None)}</div>")
    else:
        out.append(f"<p>{len(lots)} lô — quá nhiều để vẽ / too many lots to draw.</p>")
    for lot in lots:
        rec = rep.records[lot]
        vi, en = STATUS_NAMES.get(rec["status"], (rec["status"], rec["status"]))
        gtin = look.gtin(lot)
        rating = rec.get("rating")
        out.append(f"<h2 id=\"lot-{esc(lot)}\">Lô <span class=\"en\">/ Lot</span> {esc(lot)}</h2><table>")
        rows = [("Sản phẩm", "Product", f"{look.product_name(gtin)} {('(GTIN ' + gtin + ')') if gtin else ''}"),
                ("Chủ thể", "Subject", (look.master("subject", rec["subject_id"]) or {}).get("name", "")
                 + f" ({rec['subject_id'] or '—'})"),
                ("Trạng thái", "Status", f"{vi} / {en}"),
                ("Hạng OCOP", "OCOP rating", f"{rating['stars']} sao / stars, {rating['score']} điểm / points "
                                             f"({rating['decision_no']})" if rating else "—"),
                ("Vùng trồng", "Growing areas", ", ".join(sorted({o["area_code"] for o in rec["origins"]})) or "—"),
                ("Lô cha", "Parent lots", ", ".join(rec["parents"]) or "—"),
                ("Lô con", "Child lots", ", ".join(rec["children"]) or "—"),
                ("Chuỗi băm", "Hash chain", f"{rec['chain_length']} · {rec['chain_head'][:16]}…")]
        if rec.get("recall"):
            r = rec["recall"]
            rows.append(("Thu hồi", "Recall", f"{r['reason']} — {r['authority']} ({r['occurred_at']})"))
        for a, b, c in rows:
            out.append(f"<tr><th>{esc(a)} <span class=\"en\">/ {esc(b)}</span></th><td>{esc(c)}</td></tr>")
        out.append("</table><h3>Hành trình <span class=\"en\">/ Journey</span></h3><table><tr><th>Thời gian / Time"
                   "</th><th>Bước / Step</th><th>Địa điểm / Place</th><th>Số lượng / Quantity</th>"
                   "<th>Chi tiết / Detail</th><th>Mã sự kiện / Event id</th></tr>")
        for s in rec["steps"]:
            vi_s, en_s = STEP_NAMES.get(s["event_type"], (s["event_type"], s["event_type"]))
            q = s["quantity"]
            qty = f"{q['value']:g} {q['unit']}" if q else (f"{s['units']} units" if s.get("units") else "")
            struck = " style=\"text-decoration:line-through\"" if s["voided"] else ""
            place = s["facility"] or ""
            out.append(f"<tr{struck}><td>{esc(s['occurred_at'])}</td><td>{esc(vi_s)} <span class=\"en\">/ "
                       f"{esc(en_s)}</span></td><td>{esc(place)} {esc(look.place_name(place))}</td><td>{esc(qty)}"
                       f"</td><td>{esc(s['detail'])}</td><td><code>{esc(s['event_id'])}</code></td></tr>")
        out.append("</table>")
        if rec["flags"]:
            out.append("<h3>Cảnh báo <span class=\"en\">/ Alerts</span></h3><ul>")
            for fl in rec["flags"]:
                out.append(f"<li class=\"bad\">{esc(fl['rule'])}: {esc(fl['detail'])}</li>")
            out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def write(path, text: str) -> None:
    from pathlib import Path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def dumps(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
