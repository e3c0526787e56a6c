"""`ocop-trace demo`: the whole system on one machine, with the seeds' examples, in a few minutes.

Starts (or reuses) the local broker, creates the topics, starts a worker, the SQL sink and the web server as child
processes, pushes the supply chains of the seeds' examples plus generated subjects, waits until the read side shows
them, writes a printable stamp sheet, plays a copied-stamp scenario, prints where to look, and runs until Ctrl-C.
Running it twice is fine: the events have fixed ids, so the second run adds nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from ocop_trace.config import PROJECT_ROOT, Settings, get_settings

console = Console()

# The demo's three stamps: a genuine one, one of a recalled lot, one copied onto fake boxes.
GENUINE_LOT = "TC-2026-T01"
RECALLED_LOT = "TA-2026-F01-B"
COPIED_INDEX = 7


@dataclass
class Children:
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, args: list[str], settings: Settings, log_dir: Path, **env: str) -> subprocess.Popen:
        log = (log_dir / f"{name}.log").open("ab")
        full_env = dict(os.environ, OCOP_BOOTSTRAP=settings.bootstrap_servers, OCOP_DATA_DIR=str(settings.data_dir),
                        OCOP_TOPIC_PREFIX=settings.topic_prefix, PYTHONUNBUFFERED="1", **env)
        p = subprocess.Popen([sys.executable, "-m", "ocop_trace.cli", *args], cwd=PROJECT_ROOT, env=full_env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, p))
        return p

    def check(self) -> None:
        for name, p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} stopped (exit {p.returncode}); see its log under var/demo/")

    def stop(self) -> None:
        for _, p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _wait(what: str, fn, timeout: float, children: Children):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check()
        try:
            got = fn()
        except Exception:  # noqa: BLE001 - anything not ready yet counts as "not yet"
            got = None
        if got:
            return got
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f}s")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def demo_events(subjects: int, lots: int, seed: int) -> list[dict]:
    """The seeds' named chain, a recall of one garlic pack lot, then generated subjects and their chains."""
    from producers.generator import demo_chain, generate
    from schemas.events import new_event

    named = demo_chain()
    recall = new_event("recall", {"scope": "lot", "target": RECALLED_LOT,
                                  "reason": "Bao bì lỗi, nguy cơ nấm mốc / packaging defect, risk of mould",
                                  "authority": "Chi cục Quản lý chất lượng Thái Bình"},
                       subject_id="TOIDEN-TRUONGAN", occurred_at="2026-11-05T09:00:00+07:00",
                       recorded_at="2026-11-05T09:00:00+07:00", event_id="4f1c0de0-0000-4000-8000-00000000dead",
                       source="cli")
    named_ids = {e["event_id"] for e in named}
    named_lots = {e["payload"].get("lot") for e in named}
    extra = [e for e in generate(subjects, lots, seed) if e["event_id"] not in named_ids
             and e["payload"].get("lot") not in named_lots]
    return named + [recall] + extra


def run(settings: Settings, *, subjects: int, lots: int, seed: int, keep_running: bool) -> dict:
    from ocop_trace import broker
    from producers.client import EventProducer
    from schemas.topics import create_topics

    log_dir = settings.data_dir / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    children = Children()
    try:
        if settings.local_broker:
            console.print("[bold]1.[/] Kafka (KRaft) cục bộ / local broker …")
            info = broker.start(settings)
            console.print(f"   ✔ Kafka {info.bootstrap}" + ("" if not info.already_running
                                                                 else " (đã chạy / already running)"))
        console.print("[bold]2.[/] Tạo topic / creating topics …")
        created = create_topics(settings.bootstrap_servers, settings.topic_prefix, settings.partitions)
        console.print(f"   ✔ {sum(v == 'created' for v in created.values())} mới / new, "
                      f"{sum(v == 'exists' for v in created.values())} đã có / existing")

        console.print("[bold]3.[/] Khởi động worker, sink, web / starting worker, sink, web server …")
        children.start("worker", ["worker", "--loglevel", "warning"], settings, log_dir)
        children.start("sink", ["sink"], settings, log_dir)
        children.start("web", ["serve", "--port", str(settings.web_port), "--log-level", "warning"], settings, log_dir)
        base = f"http://{settings.web_host}:{settings.web_port}"
        _wait("web server", lambda: _http_ok(f"{base}/healthz"), 60, children)
        _wait("worker", lambda: _http_ok(f"http://{settings.web_host}:{settings.worker_web_port}/readyz")
              or _http_ok(f"http://{settings.web_host}:{settings.worker_web_port}/"), 90, children)

        events = demo_events(subjects, lots, seed)
        console.print(f"[bold]4.[/] Gửi {len(events)} sự kiện / sending {len(events)} events …")
        with EventProducer(settings) as producer, Progress(console=console) as progress:
            task = progress.add_task("chuỗi cung ứng / supply chains", total=len(events))
            producer.send_many(events, progress=lambda n: progress.update(task, completed=n))

        console.print("[bold]5.[/] Chờ bản ghi lô và tem / waiting for records and stamps …")
        from consumers.store import Store

        store = Store(settings.sqlalchemy_url)
        _wait("records of the demo lots", lambda: all(
            (store.lot(lot) or {}).get("stamps") or (store.lot(lot) or {}).get("stamp_ranges")
            for lot in (GENUINE_LOT, RECALLED_LOT)), 180, children)
        _wait("recall of the demo lot", lambda: (store.lot(RECALLED_LOT) or {}).get("status") == "recalled",
              60, children)

        console.print("[bold]6.[/] In tờ tem PDF / writing the stamp sheet …")
        from ocop_trace.stamps_cli import stamp_urls, write_lot_sheet

        pdf = settings.data_dir / "demo" / f"tem-{GENUINE_LOT}.pdf"
        write_lot_sheet(settings, store, GENUINE_LOT, pdf, limit=None, console=console)
        genuine_url = stamp_urls(settings, store, GENUINE_LOT, first=0, count=1)[0]
        recalled_url = stamp_urls(settings, store, RECALLED_LOT, first=0, count=1)[0]
        copied_url = stamp_urls(settings, store, GENUINE_LOT, first=COPIED_INDEX, count=1)[0]

        console.print("[bold]7.[/] Mô phỏng tem bị sao chép / simulating a copied stamp …")
        for region in ("19", "79", "01"):  # Thái Nguyên, TP Hồ Chí Minh, Hà Nội within minutes
            urllib.request.urlopen(f"{copied_url}&region={region}" if "?" in copied_url
                                   else f"{copied_url}?region={region}", timeout=5).read()
        _wait("copied-stamp alert", lambda: store.serial_flagged(copied_url.rsplit("/21/", 1)[1].split("?")[0]),
              60, children)
        store.close()

        summary = {"genuine": genuine_url, "recalled": recalled_url, "copied": copied_url, "pdf": str(pdf),
                   "events": len(events)}
        console.rule("[bold green]OCOP trace demo")
        console.print(f"[green]✔ Chính hãng / genuine:[/]        {genuine_url}")
        console.print(f"[red]⛔ Bị thu hồi / recalled:[/]      {recalled_url}")
        console.print(f"[yellow]⚠ Tem sao chép / copied:[/]      {copied_url}")
        console.print(f"🖨  Tờ tem PDF / stamp sheet:   {pdf}")
        console.print(f"📖 API: {base}/docs   ·   lô / lot: ocop-trace lot show {GENUINE_LOT}")
        console.print("Dừng: Ctrl-C (dừng worker, sink, web; Kafka vẫn chạy: ocop-trace broker down) / "
                      "Stop: Ctrl-C (stops worker, sink, web; the broker keeps running: ocop-trace broker down)")
        if keep_running:
            stop = {"now": False}
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.update(now=True))
            while not stop["now"]:
                children.check()
                time.sleep(0.5)
            console.print("Đang dừng / stopping …")
        return summary
    finally:
        children.stop()


def demo_command(
    subjects: int = typer.Option(6, help="Subjects to generate beside the seeds' examples."),
    lots: int = typer.Option(40, help="Generated lot chains."),
    seed: int = typer.Option(2026, help="Generator seed (same seed, same events)."),
    keep_running: bool = typer.Option(True, "--keep-running/--exit", help="Keep serving until Ctrl-C."),
) -> None:
    """Run the whole demo: broker, topics, workers, sink, web, sample chains, stamps / Chạy bản trình diễn."""
    try:
        run(get_settings(), subjects=subjects, lots=lots, seed=seed, keep_running=keep_running)
    except RuntimeError as e:
        console.print(f"[red]✖ {e}[/]")
        raise typer.Exit(1) from None
