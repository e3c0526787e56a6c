"""`ocop-trace audit …`: replay, diff, verify, checkpoint, keygen, export (see docs/AUDIT.md).

Exit codes: 0 fine · 1 differences or tampering found · 2 a bad filter (unknown lot, not a GTIN, bad date) ·
3 the broker cannot be reached (or the catalog topics are missing).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

audit_app = typer.Typer(no_args_is_help=True,
                        help="Audit: replay the event log, diff, verify hash chains, sign checkpoints, export "
                             "EPCIS / CSV / HTML (read-only) / Kiểm toán: phát lại, đối chiếu, xác minh, xuất.")

LotOpt = typer.Option(None, "--lot", help="A lot, with its ancestors and descendants / Lô hàng (kèm lô cha, lô con).")
SubjectOpt = typer.Option(None, "--subject", help="An OCOP subject id / Chủ thể OCOP.")
AreaOpt = typer.Option(None, "--area", help="A growing-area code / Mã số vùng trồng.")
ProductOpt = typer.Option(None, "--product", help="A product GTIN / Mã GTIN sản phẩm.")
SinceOpt = typer.Option(None, "--since", help="Period start: YYYY-MM-DD or ISO date-time (UTC if no offset).")
UntilOpt = typer.Option(None, "--until", help="Period end (exclusive).")
WorkersOpt = typer.Option(0, "--workers", help="Processes decoding the log (0: one per CPU).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output on stdout.")


@audit_app.callback()
def _options(ctx: typer.Context,
             bootstrap: Optional[str] = typer.Option(None, "--bootstrap", help="Kafka bootstrap servers (default: "
                                                                               "settings / OCOP_BOOTSTRAP)."),
             topic_prefix: Optional[str] = typer.Option(None, "--topic-prefix", help="Topic name prefix.")) -> None:
    from ocop_trace.config import get_settings

    s = get_settings()
    update = {k: v for k, v in (("bootstrap", bootstrap), ("topic_prefix", topic_prefix)) if v is not None}
    ctx.obj = s.model_copy(update=update) if update else s


def _err():
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def _errors():
    from consumers.audit.replay import AuditError

    try:
        yield
    except AuditError as e:
        _err().print(f"[bold red]✘[/] {e}")
        raise typer.Exit(e.exit_code) from None


def _filters(lot, subject, area, product, since, until):
    from consumers.audit.replay import Filters, parse_when

    f = Filters(lot, subject, area, product, parse_when(since, "--since"), parse_when(until, "--until"))
    f.check()
    return f


def _workers(n: int) -> int:
    return n if n > 0 else max(os.cpu_count() or 1, 1)


def _replay(settings, f=None, workers: int = 0, quiet: bool = False, stamps: bool = True, hashes: bool = False):
    """The replay with a progress bar on stderr. A period filter also cuts the read supply log by time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from consumers.audit.replay import replay

    cols = (TextColumn("[bold]phát lại / replay"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>9} ev/s"), TimeRemainingColumn())
    with Progress(*cols, console=_err(), transient=True, disable=quiet) as prog:
        task = prog.add_task("replay", total=None, rate="")
        import time

        t0 = time.perf_counter()

        def tick(done: int, total: int) -> None:
            dt = time.perf_counter() - t0
            prog.update(task, completed=done, total=total, rate=f"{done / dt:,.0f}" if dt > 0 else "")

        since = until = None
        if f is not None and (f.since or f.until):
            since, until = f.since, f.until
        return replay(settings, since=since, until=until, workers=_workers(workers), progress=tick, stamps=stamps,
                      hashes=hashes)


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


@audit_app.command("replay")
def replay_cmd(ctx: typer.Context, lot: Optional[str] = LotOpt, subject: Optional[str] = SubjectOpt,
               area: Optional[str] = AreaOpt, product: Optional[str] = ProductOpt, since: Optional[str] = SinceOpt,
               until: Optional[str] = UntilOpt, workers: int = WorkersOpt, as_json: bool = JsonOpt,
               limit: int = typer.Option(50, help="Lots to list (0: all).")) -> None:
    """Replay the raw log into an isolated projection and list the selected lots / Phát lại nhật ký sự kiện."""
    from rich.console import Console
    from rich.table import Table

    from consumers.audit.replay import select

    with _errors():
        f = _filters(lot, subject, area, product, since, until)
        rep = _replay(ctx.obj, f, workers, quiet=as_json)
        lots = select(rep, f)
    recs = [rep.records[x] for x in lots]
    if as_json:
        _print_json({"stats": rep.stats.as_dict(), "offsets": rep.offsets, "lots": lots,
                     "records": recs if limit == 0 else recs[:limit]})
        return
    con = Console()
    st = rep.stats
    con.print(f"[bold]{st.messages:,}[/] messages · {st.accepted:,} accepted · "
              f"{sum(st.rejected.values()):,} rejected (DLQ) {dict(st.rejected) or ''} · {st.duplicates:,} duplicates · "
              f"{st.lots:,} lots · {st.seconds:.1f}s · [bold]{st.rate:,.0f} events/s[/]")
    if rep.partial:
        con.print("[yellow]period replay: supply events recorded more than two days before --since were not read[/]")
    table = Table("lot / lô", "subject / chủ thể", "product / sản phẩm", "status / trạng thái", "events", "chain")
    for rec in recs if limit == 0 else recs[:limit]:
        table.add_row(rec["lot"], rec["subject_id"] or "", (rec["product"] or {}).get("name_vi", ""), rec["status"],
                      str(rec["event_count"]), f"{rec['chain_length']}·{rec['chain_head'][:10]}")
    con.print(table)
    if limit and len(recs) > limit:
        con.print(f"… {len(recs) - limit} more (--limit 0 for all)")
    con.print(f"{len(lots)} lots selected / lô được chọn")


@audit_app.command("diff")
def diff_cmd(ctx: typer.Context, lot: Optional[str] = LotOpt, subject: Optional[str] = SubjectOpt,
             area: Optional[str] = AreaOpt, product: Optional[str] = ProductOpt, workers: int = WorkersOpt,
             sql: bool = typer.Option(True, "--sql/--no-sql", help="Compare with the SQL read side too."),
             as_json: bool = JsonOpt) -> None:
    """Compare the replay with ocop.records and the SQL read side, field by field / Đối chiếu với dữ liệu đang chạy."""
    from rich.console import Console

    from consumers.audit.diff import diff, live_sources
    from consumers.audit.replay import select

    with _errors():
        f = _filters(lot, subject, area, product, None, None)
        records, sqlrecs, skipped = live_sources(ctx.obj, use_sql=sql)  # live first: it may only lag the replay
        rep = _replay(ctx.obj, f, workers, quiet=as_json)
        scope = None if f.empty else select(rep, f)
        report = diff(rep.records, records=records, sql=sqlrecs, lots=scope, skipped=skipped)
    if as_json:
        _print_json(report.as_dict())
    else:
        con = Console()
        for src, n in report.compared.items():
            con.print(f"compared {n:,} lots with {src}")
        for src, why in report.skipped.items():
            con.print(f"[yellow]skipped {src}: {why}[/]")
        for d in report.lots:
            con.print(f"[red]≠[/] {d.describe()}")
        con.print("[green]✔ no differences / không có sai khác[/]" if report.clean
                  else f"[red]✘ {len(report.lots)} lots differ / lô sai khác[/]")
    raise typer.Exit(0 if report.clean else 1)


def _public_key(settings, path: Optional[Path]):
    from consumers.audit.verify import key_paths, load_public_key

    p = path or key_paths(settings)[1]
    return load_public_key(p) if (path or p.exists()) else None


@audit_app.command("verify")
def verify_cmd(ctx: typer.Context, lot: Optional[str] = LotOpt, subject: Optional[str] = SubjectOpt,
               area: Optional[str] = AreaOpt, product: Optional[str] = ProductOpt, workers: int = WorkersOpt,
               public_key: Optional[Path] = typer.Option(None, "--public-key", help="Checkpoint public key (PEM); "
                                                         "default: beside the configured signing key."),
               as_json: bool = JsonOpt) -> None:
    """Recompute every hash chain, check checkpoints, name the first event where a chain breaks / Xác minh."""
    with _errors():
        report, _rep = run_verify(ctx.obj, _filters(lot, subject, area, product, None, None), workers, public_key,
                                  quiet=as_json)
    if as_json:
        _print_json(report.as_dict())
    else:
        print_verify(report)
    raise typer.Exit(0 if report.clean else 1)


def run_verify(settings, f, workers: int = 0, public_key: Optional[Path] = None, quiet: bool = False):
    from consumers.audit.replay import select
    from consumers.audit.verify import read_checkpoints, read_live_records, verify_log

    pub = _public_key(settings, public_key)
    cps = read_checkpoints(settings)
    live = read_live_records(settings)
    rep = _replay(settings, f, workers, quiet=quiet, hashes=True)
    keys = None if f is None or f.empty else set(select(rep, f))
    report = verify_log(rep.log, live=live, checkpoints=cps, public_key=pub, log_ends=rep.offsets, keys=keys)
    if pub is None and cps:
        report.notes.append("no public key: checkpoints could not be checked (pass --public-key)")
    return report, rep


def print_verify(report) -> None:
    from rich.console import Console

    con = Console()
    con.print(f"{report.events:,} events · {report.chains:,} chains checked · {report.unanchored:,} without anchor")
    for c in report.checkpoints:
        mark = "[green]✔[/]" if c.ok else "[red]✘[/]"
        con.print(f"{mark} checkpoint {c.checkpoint_id} ({c.created_at}, {c.ref}): signature "
                  f"{'valid' if c.valid_signature else 'INVALID'}, root "
                  f"{'reproduced' if c.root_reproduced else 'NOT reproduced' if c.root_reproduced is False else '—'}")
        for p in c.problems:
            con.print(f"    [red]{p}[/]")
    for c in report.conflicts:
        con.print(f"[red]✘ conflict[/] {c.describe()}")
    for b in report.breaks:
        con.print(f"[red]✘ chain break[/] {b.describe()} [dim](anchor: {b.anchor}"
                  f"{', confirmed by recomputation' if b.confirmed else ''})[/]")
    for n in report.notes:
        con.print(f"[yellow]• {n}[/]")
    con.print("[green]✔ intact / nguyên vẹn[/]" if report.clean else "[red]✘ TAMPERING DETECTED / phát hiện sai lệch[/]")


@audit_app.command("checkpoint")
def checkpoint_cmd(ctx: typer.Context, workers: int = WorkersOpt,
                   dry_run: bool = typer.Option(False, "--dry-run", help="Sign and print, do not publish."),
                   as_json: bool = JsonOpt) -> None:
    """Sign every chain head up to the current end offsets and publish it on ocop.audit.checkpoints / Ký điểm kiểm."""
    from rich.console import Console

    from consumers.audit.replay import connect, plan, read_log, LOG_TOPICS
    from consumers.audit.verify import key_paths, load_private_key, make_checkpoint, publish_checkpoint, walk

    with _errors():
        s = ctx.obj
        key = load_private_key(key_paths(s)[0])
        consumer = connect(s)
        try:
            slices = plan(consumer, s, LOG_TOPICS)
        finally:
            consumer.close()
        log = [m for batch in read_log(s, slices, workers=_workers(workers)) for m in batch]
        cp = make_checkpoint(walk(log), {x.ref: x.end for x in slices}, key)
        where = None if dry_run else publish_checkpoint(s, cp)
    summary = {k: v for k, v in cp.items() if k not in ("heads", "signature")}
    summary["signature"] = cp["signature"].hex()
    summary["published"] = None if where is None else {"partition": where[0], "offset": where[1]}
    if as_json:
        _print_json(summary)
    else:
        Console().print(f"[green]✔[/] checkpoint {cp['checkpoint_id']}: {cp['chain_count']:,} chains, root "
                        f"{cp['root'][:16]}…, key {cp['key_id']}"
                        + ("" if where is None else f", published at partition {where[0]} offset {where[1]}"))


@audit_app.command("keygen")
def keygen_cmd(ctx: typer.Context, force: bool = typer.Option(False, "--force", help="Replace an existing key.")):
    """Create the Ed25519 key pair that signs checkpoints; hand the .pub.pem to auditors / Tạo khóa ký."""
    from rich.console import Console

    from consumers.audit.verify import keygen

    with _errors():
        priv, pub, kid = keygen(ctx.obj, force=force)
    Console().print(f"[green]✔[/] {kid}\n  private (keep secret / giữ bí mật): {priv}\n  public (give to auditors): {pub}")


@audit_app.command("export")
def export_cmd(ctx: typer.Context,
               fmt: str = typer.Option("epcis", "--format", help="epcis (EPCIS 2.0 JSON-LD) | csv (FSMA-204 KDEs) "
                                                                  "| html (report with lineage graph)."),
               out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default: stdout)."),
               lot: Optional[str] = LotOpt, subject: Optional[str] = SubjectOpt, area: Optional[str] = AreaOpt,
               product: Optional[str] = ProductOpt, since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
               workers: int = WorkersOpt,
               verify: bool = typer.Option(False, "--verify", help="html: verify the chains and show the result."),
               public_key: Optional[Path] = typer.Option(None, "--public-key")) -> None:
    """Export the selection as EPCIS 2.0, a KDE spreadsheet or an HTML report / Xuất dữ liệu."""
    from consumers.audit import export as ex
    from consumers.audit.replay import BadFilter, select

    with _errors():
        if fmt not in ("epcis", "csv", "html"):
            raise BadFilter(f"--format {fmt!r}: use epcis, csv or html")
        f = _filters(lot, subject, area, product, since, until)
        verification = None
        if verify and fmt == "html":
            report, rep = run_verify(ctx.obj, f, workers, public_key, quiet=out is None)
            verification = report.as_dict()
        else:
            rep = _replay(ctx.obj, f, workers, quiet=out is None)
        lots = select(rep, f)
    if fmt == "epcis":
        text = ex.dumps(ex.epcis_document(rep, lots, f))
    elif fmt == "csv":
        text = ex.kde_csv(ex.kde_rows(rep, lots, f))
    else:
        text = ex.html_report(rep, lots, f, verification=verification)
    if out is None:
        sys.stdout.write(text)
    else:
        ex.write(out, text)
        _err().print(f"[green]✔[/] {fmt}: {len(lots)} lots → {out}")
