"""`ocop-trace stamps issue|sheet|verify`: extra stamp runs, print-ready PDF sheets, checking serials (one stamp URL
by hand, or a file of serials of one lot in bulk, over the CPUs).

Ranges are facts on ``ocop.stamps`` (issued by the stamps agent); the sheet reads them from the SQL read side and
recomputes each serial with the stamp key: there is no database row per stamp.
"""

from __future__ import annotations

import os
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


# --- bulk verification --------------------------------------------------------------------------------------------
PARALLEL_MIN = 200_000  # below this one process is as fast: starting a worker and shipping the serials cost more
_worker_signer = None


def _worker_init(keys: dict[str, bytes], active: str, tag_len: int) -> None:
    global _worker_signer
    from qr.serials import StampSigner

    _worker_signer = StampSigner(keys, active, tag_len)


def _worker_verify(gtin14: str, lot: str, part):
    serials = part.split("\n") if isinstance(part, str) else part
    return _worker_signer.verify_many(gtin14, lot, serials)


def _pack(part: list[str]):
    """A part as one newline-joined string (one memcpy to pickle, one C split to unpack), or the list itself if a
    serial is not a string or holds a newline."""
    try:
        text = "\n".join(part)
    except TypeError:
        return part
    return text if text.count("\n") == len(part) - 1 else part


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def verify_bulk(settings: Settings, gtin14: str, lot: str, serials: list[str], *, jobs: int = 0):
    """``StampSigner.verify_many`` of a large list, split over ``jobs`` processes (0: one per CPU from
    ``PARALLEL_MIN`` serials on, else this process only).

    The list is cut into ``jobs`` consecutive parts: this process verifies the first while worker processes
    (a ``ProcessPoolExecutor``) verify the others, then the results are joined in order
    (``VerificationBatch.concat``). The results are the same as one ``verify_many``; only the time differs.
    The split costs ~0.1 s (starting a worker, shipping the serials and the results), so it pays from a few
    hundred thousand serials on.
    """
    from concurrent.futures import ProcessPoolExecutor

    from qr.serials import StampSigner, VerificationBatch

    keys, active, tag_len = settings.stamp_key_map(), settings.stamp_active_key, settings.stamp_tag_len
    signer = StampSigner(keys, active, tag_len)
    serials = serials if isinstance(serials, list) else list(serials)
    if not jobs:
        jobs = cpu_count() if len(serials) >= PARALLEL_MIN else 1
    jobs = min(jobs, len(serials))
    if jobs <= 1:
        return signer.verify_many(gtin14, lot, serials)
    step = -(-len(serials) // jobs)
    parts = [serials[i : i + step] for i in range(0, len(serials), step)]
    with ProcessPoolExecutor(len(parts) - 1, initializer=_worker_init, initargs=(keys, active, tag_len)) as pool:
        futures = [pool.submit(_worker_verify, gtin14, lot, _pack(p)) for p in parts[1:]]
        first = signer.verify_many(gtin14, lot, parts[0])
        return VerificationBatch.concat([first, *(f.result() for f in futures)])


def _read_serials(file: Path) -> tuple[list[str], list[int] | None]:
    """Serials from a file (``-``: standard input), one per line, blank lines skipped: (serials, their line
    numbers, or None when there was no blank line to skip)."""
    import sys

    text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    lines = list(map(str.strip, text.splitlines()))
    serials = list(filter(None, lines))
    if len(serials) == len(lines):
        return serials, None
    return serials, [n for n, line in enumerate(lines, 1) if line]


def _verify_file(file: Path, gtin: str, lot: str, jobs: int, show: int) -> None:
    import time

    from qr.gtin import to_gtin14

    settings = get_settings()
    try:
        gtin14 = to_gtin14(gtin)
        serials, line_no = _read_serials(file)
        t = time.perf_counter()
        batch = verify_bulk(settings, gtin14, lot, serials, jobs=jobs)
        took = time.perf_counter() - t
    except (OSError, UnicodeDecodeError, ValueError) as e:
        console.print(f"[red]✖ {e}[/]")
        raise typer.Exit(2) from None
    n, ok = len(batch), batch.count_ok()
    if ok == n:
        console.print(f"[green]✔ {n:,} tem hợp lệ / all {n:,} serials genuine for GTIN {gtin14}, lot {lot} "
                      f"({took:.2f} s)[/]")
        return
    counts = ", ".join(f"{r} {c:,}" for r, c in batch.counts().items() if c and r != "ok")
    console.print(f"[red]✖ {n - ok:,} / {n:,} tem không hợp lệ / not genuine for GTIN {gtin14}, lot {lot}: "
                  f"{counts} ({took:.2f} s)[/]")
    failures = batch.failures()
    for j, v in failures[:show]:
        console.print(f"  line {j + 1 if line_no is None else line_no[j]}: {serials[j]!r} {v.reason}",
                      markup=False, highlight=False)
    if len(failures) > show:
        console.print(f"  … {len(failures) - show:,} more")
    raise typer.Exit(1)


@stamps_app.command("verify")
def verify(
    uri: str = typer.Argument(None, help="A stamp's GS1 Digital Link (the QR content)."),
    file: Path = typer.Option(None, "--file", help="Check many serials of one lot instead: a text file, one serial "
                                                   "per line ('-': standard input). Needs --gtin and --lot."),
    gtin: str = typer.Option(None, "--gtin", help="With --file: the product's GTIN."),
    lot: str = typer.Option(None, "--lot", help="With --file: the lot code / mã lô."),
    jobs: int = typer.Option(0, "--jobs", min=0, help="With --file: processes (0: one per CPU for 200,000+ "
                                                      "serials, else 1)."),
    show: int = typer.Option(20, "--show", min=0, help="With --file: list at most this many failures."),
) -> None:
    """Check a stamp's serial, or a file of serials, against the keys (no database) / Kiểm tra mã tem."""
    from qr.digital_link import DigitalLinkError, parse_scan
    from qr.serials import StampSigner

    if file is not None:
        if uri is not None or not gtin or not lot:
            console.print("[red]✖ --file cần --gtin và --lot, không kèm URL / --file needs --gtin and --lot, "
                          "and no URL[/]")
            raise typer.Exit(2)
        _verify_file(file, gtin, lot, jobs, show)
        return
    if uri is None:
        console.print("[red]✖ cần một URL tem hoặc --file / give a stamp URL or --file[/]")
        raise typer.Exit(2)
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
