"""`ocop-trace stamps issue|sheet|verify`: extra stamp runs, print-ready PDF sheets, checking a serial by hand.

Ranges are facts on ``ocop.stamps`` (issued by the stamps agent); the sheet reads them from the SQL read side and
recomputes each serial with the stamp key: there is no database row per stamp.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ocop_trace.config import Settings, get_settings

stamps_app = typer.Typer(no_args_is_help=True, help="Traceability stamps / Tem truy xuất: issue, sheet, verify.")
console = Console()


def _labels(settings: Settings, store, lot: str, *, first: int = 0, limit: int | None = None):
    """(Label iterator, count, product name) for the issued stamps of ``lot`` — lazily, in range order."""
    from qr.digital_link import DigitalLink
    from qr.label import Label
    from qr.serials import StampSigner

    view = store.lot(lot)
    if view is None:
        raise LookupError(f"lô {lot} chưa có trên hệ thống / lot {lot} is unknown")
    rec = view["record"]
    ranges = view["stamps"]
    if not ranges:
        raise LookupError(f"lô {lot} chưa được cấp tem / no stamps issued for lot {lot}")
    packaging = rec.get("packaging") or {}
    expiry = date.fromisoformat(packaging["expiry_date"]) if packaging.get("expiry_date") else None
    name = (rec.get("product") or {}).get("name_vi") or lot
    stars = (rec.get("rating") or {}).get("stars")  # the fold sets a rating only if valid on the packaging date
    signer = StampSigner.from_settings(settings)
    total = sum(r["count"] for r in ranges)
    n = total - first if limit is None else min(limit, total - first)

    def gen():
        skip, left = first, n
        for r in ranges:
            if left <= 0:
                break
            if skip >= r["count"]:
                skip -= r["count"]
                continue
            count = min(r["count"] - skip, left)
            for serial in signer.serials(r["gtin"], lot, r["first_index"] + skip, count, key_id=r["key_id"]):
                uri = DigitalLink(r["gtin"], lot, serial, expiry).build(settings.resolver_base)
                yield Label(name=name, lot=lot, expiry=expiry, stars=stars, uri=uri, code=serial)
            left -= count
            skip = 0

    return gen(), max(n, 0), name


def stamp_urls(settings: Settings, store, lot: str, *, first: int = 0, count: int = 1) -> list[str]:
    labels, _, _ = _labels(settings, store, lot, first=first, limit=count)
    return [label.uri for label in labels]


def write_lot_sheet(settings: Settings, store, lot: str, out: Path, *, limit: int | None,
                    console: Console = console, first: int = 0) -> int:
    from qr.sheet import write_sheet

    labels, n, name = _labels(settings, store, lot, first=first, limit=limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as progress:
        task = progress.add_task(f"tem / stamps {lot}", total=n)
        written = write_sheet(out, labels, lot=lot, title=name, progress=lambda k: progress.update(task, completed=k))
    return written


def _store(settings: Settings):
    from consumers.store import Store

    return Store(settings.sqlalchemy_url)


@stamps_app.command("sheet")
def sheet(
    lot: str = typer.Option(..., "--lot", help="Lot code / mã lô"),
    out: Path = typer.Option(Path("stamps.pdf"), "--out", help="PDF file to write."),
    first: int = typer.Option(0, "--from", min=0, help="First stamp (0-based, across the lot's ranges)."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many stamps."),
) -> None:
    """Write a print-ready A4 PDF of a lot's stamps / In tờ tem PDF cho một lô."""
    settings = get_settings()
    store = _store(settings)
    try:
        n = write_lot_sheet(settings, store, lot, out, limit=limit, first=first)
    except LookupError as e:
        console.print(f"[red]✖ {e}[/]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    console.print(f"[green]✔ Đã ghi {n} tem vào {out} / wrote {n} stamps to {out}[/]")


@stamps_app.command("issue")
def issue(
    lot: str = typer.Option(..., "--lot", help="Lot code / mã lô"),
    count: int = typer.Option(..., "--count", min=1, max=1_000_000, help="Number of extra stamps."),
    subject: str = typer.Option(..., "--subject", help="Your OCOP subject id / mã chủ thể"),
    user: str = typer.Option("", "--user"),
) -> None:
    """Ask for an extra run of stamps for a packaged lot / Yêu cầu cấp thêm tem cho lô đã đóng gói."""
    from producers.client import EventProducer
    from schemas import topics
    from schemas.events import now_local
    from schemas.validation import Invalid

    settings = get_settings()
    req = {"request_id": str(uuid.uuid4()), "lot": lot, "count": count, "requested_at": now_local(settings.timezone),
           "actor": {"subject_id": subject, "user": user}}
    try:
        with EventProducer(settings) as p:
            p.send_value(topics.STAMP_REQUESTS, lot, req)
    except Invalid as e:
        console.print(f"[red]✖ {e.field}: {e.reason}[/]")
        raise typer.Exit(2) from None
    console.print(f"[green]✔ Đã gửi yêu cầu cấp {count} tem cho lô {lot} (mã {req['request_id']}) / "
                  f"requested {count} stamps for lot {lot}[/]")


@stamps_app.command("verify")
def verify(uri: str = typer.Argument(..., help="A stamp's GS1 Digital Link (the QR content).")) -> None:
    """Check a stamp's serial against the keys (no database) / Kiểm tra mã tem."""
    from qr.digital_link import DigitalLinkError, parse_scan
    from qr.serials import StampSigner

    settings = get_settings()
    try:
        link = parse_scan(uri)
    except DigitalLinkError as e:
        console.print(f"[red]✖ {e}[/]")
        raise typer.Exit(2) from None
    if not link.serial or not link.lot:
        console.print("[red]✖ thiếu lô (10) hoặc số sê-ri (21) / needs a lot (10) and a serial (21)[/]")
        raise typer.Exit(2)
    v = StampSigner.from_settings(settings).verify(link.gtin14, link.lot, link.serial)
    if v.ok:
        console.print(f"[green]✔ Tem hợp lệ / valid tag: index {v.index}, key {v.key_id}[/]")
    else:
        console.print(f"[red]✖ Tem không hợp lệ / invalid: {v.reason}[/]")
        raise typer.Exit(1)
