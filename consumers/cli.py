"""Read-side commands: ``ocop-trace db upgrade``, ``ocop-trace sink``, ``ocop-trace lot show <lot>``.

Registered on the main app by :func:`register` (``ocop_trace/cli.py``). Vietnamese labels by default
(``--lang en`` or ``OCOP_LANG=en`` for English).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import typer

db_app = typer.Typer(no_args_is_help=True, help="The SQL read side's schema / Lược đồ cơ sở dữ liệu.")
lot_app = typer.Typer(no_args_is_help=True, help="Lots on the read side / Tra cứu lô hàng.")

DB_URL = typer.Option(None, "--database-url", help="SQLAlchemy URL (default: OCOP_DATABASE_URL or SQLite in data_dir).")


def register(app: typer.Typer) -> None:
    """Add the read side's commands to the main ``ocop-trace`` app."""
    app.add_typer(db_app, name="db")
    app.add_typer(lot_app, name="lot")
    app.command("sink")(sink_command)


def _settings(database_url: str | None = None):
    from ocop_trace.config import get_settings

    s = get_settings()
    if database_url:
        s = s.model_copy(update={"database_url": database_url})
    return s


def _store(database_url: str | None = None):
    from consumers.store import Store

    return Store(_settings(database_url).sqlalchemy_url)


# ---------------------------------------------------------------------------------------------------------------
# db
# ---------------------------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head"), database_url: str = DB_URL) -> None:
    """Run the Alembic migrations (idempotent) / Cập nhật lược đồ CSDL."""
    store = _store(database_url)
    try:
        store.migrate(revision)
        typer.echo(f"✔ {store.engine.url.render_as_string(hide_password=True)} @ {store.current_revision()}")
    finally:
        store.close()


@db_app.command("current")
def db_current(database_url: str = DB_URL) -> None:
    """Show the schema revision / Phiên bản lược đồ hiện tại."""
    store = _store(database_url)
    try:
        typer.echo(store.current_revision() or "(empty)")
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------------------------
# sink
# ---------------------------------------------------------------------------------------------------------------


def sink_command(
    batch_size: int = typer.Option(500, min=1, help="Messages per database transaction."),
    until_idle: bool = typer.Option(False, "--until-idle", help="Apply what is there, then exit."),
    timeout: float = typer.Option(300.0, help="With --until-idle: give up after this many seconds."),
    migrate: bool = typer.Option(True, "--migrate/--no-migrate", help="Run the migrations first."),
    database_url: str = DB_URL,
) -> None:
    """Keep the SQL read side up to date from Kafka (exactly once) / Đồng bộ Kafka → CSDL."""
    from consumers.sink import Sink
    from ocop_trace.observability import serve_metrics, setup_logging

    settings = _settings(database_url)
    setup_logging(settings, "INFO")  # JSON lines with OCOP_LOG_JSON=1; kafka-python's INFO logs quieted
    if settings.sink_metrics_port and not until_idle:  # /metrics, /healthz (ocop_sink_*)
        serve_metrics(settings.web_host, settings.sink_metrics_port)
    sink = Sink.from_settings(settings, batch_size=batch_size)
    try:
        if migrate:
            sink.store.migrate()
        if until_idle:
            stats = sink.run_until_idle(timeout)
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            stats = sink.run(stop)
        typer.echo(json.dumps(stats.as_dict(), ensure_ascii=False))
    finally:
        sink.close()
        sink.store.close()


# ---------------------------------------------------------------------------------------------------------------
# lot show
# ---------------------------------------------------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "lot": {"vi": "Lô", "en": "Lot"},
    "product": {"vi": "Sản phẩm", "en": "Product"},
    "subject": {"vi": "Chủ thể", "en": "Producer"},
    "status": {"vi": "Trạng thái", "en": "Status"},
    "rating": {"vi": "Hạng OCOP", "en": "OCOP rating"},
    "no_rating": {"vi": "không có hạng còn hiệu lực khi đóng gói", "en": "no rating valid at packaging"},
    "stars": {"vi": "sao", "en": "stars"},
    "points": {"vi": "điểm", "en": "points"},
    "decision": {"vi": "QĐ", "en": "decision"},
    "valid": {"vi": "hiệu lực", "en": "valid"},
    "areas": {"vi": "Vùng trồng", "en": "Growing areas"},
    "production_date": {"vi": "Ngày sản xuất", "en": "Production date"},
    "expiry_date": {"vi": "Hạn sử dụng", "en": "Expiry date"},
    "units": {"vi": "Đóng gói / đã giao / đã bán", "en": "Packaged / shipped / sold"},
    "recall": {"vi": "Thu hồi", "en": "Recall"},
    "chain": {"vi": "Chuỗi băm", "en": "Hash chain"},
    "events": {"vi": "sự kiện", "en": "events"},
    "stamps": {"vi": "Tem", "en": "Stamps"},
    "lineage": {"vi": "Phả hệ lô", "en": "Lineage"},
    "ancestors": {"vi": "Nguồn gốc (lô đầu vào)", "en": "Ancestors (input lots)"},
    "descendants": {"vi": "Lô được tạo ra từ lô này", "en": "Descendants (output lots)"},
    "none": {"vi": "không có", "en": "none"},
    "seen": {"vi": "đã nêu ở trên", "en": "shown above"},
    "unknown_lot": {"vi": "chưa có bản ghi", "en": "no record yet"},
    "alerts": {"vi": "Cảnh báo", "en": "Alerts"},
    "no_alerts": {"vi": "Không có cảnh báo", "en": "No alerts"},
    "steps": {"vi": "Các bước", "en": "Steps"},
    "time": {"vi": "Thời gian", "en": "Time"},
    "step": {"vi": "Bước", "en": "Step"},
    "place": {"vi": "Địa điểm", "en": "Place"},
    "actor": {"vi": "Người thực hiện", "en": "Actor"},
    "quantity": {"vi": "Số lượng", "en": "Quantity"},
    "detail": {"vi": "Chi tiết", "en": "Detail"},
    "severity": {"vi": "Mức độ", "en": "Severity"},
    "rule": {"vi": "Quy tắc", "en": "Rule"},
    "state": {"vi": "Tình trạng", "en": "State"},
    "voided": {"vi": "đã hủy", "en": "voided"},
    "not_found": {"vi": "Không tìm thấy lô {lot}", "en": "Lot {lot} not found"},
}

VALUES: dict[str, dict[str, str]] = {
    # status
    "active": {"vi": "đang lưu hành", "en": "active"},
    "recalled": {"vi": "đã thu hồi", "en": "recalled"},
    "sold_out": {"vi": "đã bán hết", "en": "sold out"},
    "expired": {"vi": "hết hạn", "en": "expired"},
    # steps
    "harvest": {"vi": "thu hoạch", "en": "harvest"},
    "receive": {"vi": "nhận hàng", "en": "receive"},
    "transform": {"vi": "chế biến", "en": "transform"},
    "inspect": {"vi": "kiểm nghiệm", "en": "inspect"},
    "package": {"vi": "đóng gói", "en": "package"},
    "ship": {"vi": "vận chuyển", "en": "ship"},
    "sell": {"vi": "bán", "en": "sell"},
    "recall": {"vi": "thu hồi", "en": "recall"},
    "void": {"vi": "hủy sự kiện", "en": "void"},
    # alerts
    "info": {"vi": "thông tin", "en": "info"},
    "warning": {"vi": "cảnh báo", "en": "warning"},
    "critical": {"vi": "nghiêm trọng", "en": "critical"},
    "open": {"vi": "đang mở", "en": "open"},
    "resolved": {"vi": "đã xử lý", "en": "resolved"},
    "mass_balance": {"vi": "cân bằng khối lượng", "en": "mass balance"},
    "oversold": {"vi": "bán vượt số đóng gói", "en": "oversold"},
    "area_unregistered": {"vi": "vùng trồng chưa đăng ký", "en": "area unregistered"},
    "area_invalid": {"vi": "vùng trồng không hợp lệ", "en": "area invalid"},
    "product_unregistered": {"vi": "sản phẩm chưa đăng ký", "en": "product unregistered"},
    "rating_invalid": {"vi": "hạng OCOP không hiệu lực", "en": "rating invalid"},
    "impossible_sequence": {"vi": "trình tự bất thường", "en": "impossible sequence"},
    "stamps_exceed_units": {"vi": "số tem vượt số đơn vị", "en": "stamps exceed units"},
    "suspicious_copy": {"vi": "nghi tem sao chép", "en": "suspicious copy"},
    "inspection_failed": {"vi": "kiểm nghiệm không đạt", "en": "inspection failed"},
    # recognising levels (free text in the data: translated when known)
    "central": {"vi": "cấp trung ương", "en": "central"},
    "province": {"vi": "cấp tỉnh", "en": "province"},
    "district": {"vi": "cấp huyện", "en": "district"},
    "commune": {"vi": "cấp xã", "en": "commune"},
    # units
    "kg": {"vi": "kg", "en": "kg"},
    "t": {"vi": "tấn", "en": "t"},
    "l": {"vi": "lít", "en": "l"},
    "unit": {"vi": "đơn vị", "en": "units"},
}

STATUS_STYLE = {"active": "green", "recalled": "bold red", "sold_out": "cyan", "expired": "yellow"}
SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def label(key: str, lang: str, **kw: Any) -> str:
    entry = LABELS.get(key, {})
    return (entry.get(lang) or entry.get("vi") or key).format(**kw)


def value(v: str | None, lang: str) -> str:
    if v is None:
        return "—"
    entry = VALUES.get(v)
    return (entry.get(lang) or entry["vi"]) if entry else v


def _fmt_qty(q: float | None, unit: str | None, lang: str) -> str:
    if q is None:
        return ""
    return f"{q:g} {value(unit, lang)}" if unit else f"{q:g}"


def _product_name(row: dict | None, lang: str) -> str | None:
    if not row:
        return None
    vi, en = row.get("product_name_vi") or row.get("name_vi"), row.get("product_name_en") or row.get("name_en")
    return (en or vi) if lang == "en" else (vi or en)


def lineage_tree(lineage: dict, lang: str = "vi"):
    """A rich Tree of a lot's lineage: its ancestors (upwards) and descendants (downwards). A lot reached by
    several paths (a diamond) is expanded once and marked as shown the other times."""
    from rich.tree import Tree

    lot = lineage["lot"]
    info = {x["lot"]: x for x in [*lineage["ancestors"], *lineage["descendants"]]}
    parents: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for e in lineage["edges"]:
        parents.setdefault(e["child"], []).append(e["parent"])
        children.setdefault(e["parent"], []).append(e["child"])

    def text(x: str) -> str:
        i = info.get(x, {})
        name = _product_name(i, lang)
        status = i.get("status")
        out = f"[bold]{x}[/]"
        if name:
            out += f" — {name}"
        if status:
            out += f" [{STATUS_STYLE.get(status, 'white')}]({value(status, lang)})[/]"
        elif x != lot and not i.get("known", True):
            out += f" [dim]({label('unknown_lot', lang)})[/]"
        return out

    root = Tree(f"🌳 {label('lineage', lang)}: [bold]{lot}[/]")

    def grow(node, x: str, links: dict[str, list[str]], seen: set[str], path: set[str]) -> None:
        for y in sorted(links.get(x, [])):
            if y in path:  # a cycle (invalid data): stop
                continue
            if y in seen:
                node.add(f"{text(y)} [dim]↺ {label('seen', lang)}[/]")
                continue
            seen.add(y)
            grow(node.add(text(y)), y, links, seen, path | {y})

    up = root.add(f"▲ {label('ancestors', lang)}")
    if parents.get(lot):
        grow(up, lot, parents, set(), {lot})
    else:
        up.add(f"[dim]{label('none', lang)}[/]")
    down = root.add(f"▼ {label('descendants', lang)}")
    if children.get(lot):
        grow(down, lot, children, set(), {lot})
    else:
        down.add(f"[dim]{label('none', lang)}[/]")
    return root


def render_lot(console, data: dict, lineage: dict, lang: str = "vi") -> None:
    """Print a lot: its facts, lineage tree, alerts and steps."""
    from rich.panel import Panel
    from rich.table import Table

    L = lambda k, **kw: label(k, lang, **kw)  # noqa: E731
    rec = data["record"]
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    name = _product_name(data.get("product"), lang) or _product_name(data, lang)
    if data.get("gtin") or name:
        facts.add_row(L("product"), f"{name or '—'} ({data.get('gtin') or '—'})")
    subj = data.get("subject")
    if subj or data.get("subject_id"):
        facts.add_row(L("subject"), f"{subj['name']} ({subj['subject_id']})" if subj else data["subject_id"])
    st = data["status"]
    facts.add_row(L("status"), f"[{STATUS_STYLE.get(st, 'white')}]{value(st, lang)}[/]")
    if data.get("gtin"):
        if data.get("rating_stars"):
            facts.add_row(L("rating"), (
                f"[yellow]{'★' * data['rating_stars']}[/] {data['rating_stars']} {L('stars')} "
                f"({data['rating_score']} {L('points')}), {value(data['rating_level'], lang)}; {L('decision')} "
                f"{data['rating_decision_no']} ({data['rating_decision_date']}), {L('valid')} "
                f"{data['rating_valid_from']} → {data['rating_valid_to']}"))
        else:
            facts.add_row(L("rating"), f"[dim]{L('no_rating')}[/]")
    areas = {a["area_code"]: a for a in data.get("areas", [])}
    codes = sorted({o["area_code"] for o in data.get("origins", [])})
    if codes:
        parts = []
        for code in codes:
            a = areas.get(code)
            if a:
                pts = a.get("location") or []
                where = f" ({pts[0]['lat']:.4f}, {pts[0]['lon']:.4f})" if pts else ""
                parts.append(f"{code} {a.get('name') or ''}{where}".strip())
            else:
                parts.append(code)
        facts.add_row(L("areas"), "\n".join(parts))
    if data.get("production_date"):
        facts.add_row(L("production_date"), data["production_date"])
    if data.get("expiry_date"):
        facts.add_row(L("expiry_date"), data["expiry_date"])
    if data.get("units_packaged"):
        facts.add_row(L("units"), f"{data['units_packaged']} / {data['units_shipped']} / {data['units_sold']}")
    if rec.get("recall"):
        r = rec["recall"]
        facts.add_row(L("recall"), f"[bold red]{r['reason']}[/] ({r['scope']} {r['target']}, {r['authority']}, "
                                   f"{r['occurred_at']})")
    stamps = data.get("stamps") or []
    if stamps:
        facts.add_row(L("stamps"), "\n".join(f"{s['key_id']}: {s['first_index']} … "
                                             f"{s['first_index'] + s['count'] - 1} ({s['count']})" for s in stamps))
    facts.add_row(L("chain"), f"{data['chain_head'][:16]}… ({data['event_count']} {L('events')})"
                  if data.get("chain_head") else f"— ({data['event_count']} {L('events')})")
    console.print(Panel(facts, title=f"{L('lot')} [bold]{data['lot']}[/]", expand=False))

    console.print(lineage_tree(lineage, lang))

    alerts = list(data.get("alerts") or [])
    known = {(a["rule"], a.get("event_id")) for a in alerts}
    for f in rec.get("flags") or []:  # the record's open flags whose alert has not reached the read side yet
        if (f["rule"], f.get("event_id")) not in known:
            alerts.append({"severity": "warning", "rule": f["rule"], "detail": f["detail"], "raised_at": "",
                           "state": "open"})
    if alerts:
        t = Table(title=L("alerts"), title_justify="left")
        for col in ("severity", "rule", "detail", "time", "state"):
            t.add_column(L(col))
        for a in alerts:
            t.add_row(f"[{SEVERITY_STYLE.get(a['severity'], 'white')}]{value(a['severity'], lang)}[/]",
                      value(a["rule"], lang), a["detail"], a["raised_at"], value(a["state"], lang))
        console.print(t)
    else:
        console.print(f"[green]✔ {L('no_alerts')}[/]")

    steps = rec.get("steps") or []
    t = Table(title=L("steps"), title_justify="left")
    t.add_column(L("time"), no_wrap=True)
    for col in ("step", "place", "actor", "quantity", "detail"):
        t.add_column(L(col))
    for s in steps:
        q = s.get("quantity") or {}
        qty = _fmt_qty(q.get("value"), q.get("unit"), lang) if q else (
            f"{s['units']} {value('unit', lang)}" if s.get("units") is not None else "")
        kind = value(s["event_type"], lang)
        if s.get("voided"):
            kind = f"[strike]{kind}[/] ({L('voided')})"
        actor = s.get("subject_id") or ""
        if s.get("user"):
            actor += f" / {s['user']}"
        t.add_row(s["occurred_at"], kind, s.get("facility") or "", actor, qty, s.get("detail") or "")
    console.print(t)


@lot_app.command("show")
def lot_show(
    lot: str = typer.Argument(..., help="The lot id / Mã lô."),
    lang: str = typer.Option(None, "--lang", help="vi | en (default: OCOP_LANG, vi)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (record, master data, lineage, alerts)."),
    max_depth: int = typer.Option(64, help="How far to follow the lineage."),
    database_url: str = DB_URL,
) -> None:
    """Show a lot: record, lineage tree, alerts, steps / Xem lô hàng: bản ghi, phả hệ, cảnh báo, các bước."""
    from rich.console import Console

    settings = _settings(database_url)
    lang = lang or settings.lang
    if lang not in ("vi", "en"):
        raise typer.BadParameter("vi | en", param_hint="--lang")
    from consumers.store import Store

    store = Store(settings.sqlalchemy_url)
    try:
        data = store.lot(lot)
        if data is None:
            typer.echo(label("not_found", lang, lot=lot), err=True)
            raise typer.Exit(1)
        lineage = store.lineage(lot, max_depth=max_depth)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps({**data, "lineage": lineage}, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    render_lot(Console(), data, lineage, lang)
