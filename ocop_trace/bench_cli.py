"""``ocop-trace bench [NAME...] [--quick]``: run the benchmarks of ``bench/`` and print their results with ratios.

Each benchmark runs as its own process (``python -m bench.<name>``) and writes ``bench/results/<name>.json``
(``--quick``: small sizes, into ``var/bench/quick/``). The ones that need Kafka share one broker: ``OCOP_BOOTSTRAP``
if set, else a throw-away local broker started for the run. After a full run the results table in
``bench/README.md`` is rewritten from the JSON files. ``--table`` only prints the table of the existing results.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ocop_trace.config import PROJECT_ROOT

BENCHMARKS = ("stamps", "replay", "pipeline", "latency", "scan", "trace", "memory")
NEEDS_KAFKA = {"replay", "pipeline", "latency", "memory"}
RESULTS = PROJECT_ROOT / "bench" / "results"
QUICK = PROJECT_ROOT / "var" / "bench" / "quick"
README = PROJECT_ROOT / "bench" / "README.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"

console = Console()


def _load(folder: Path, names: list[str]) -> list[dict]:
    out = []
    for n in names:
        p = folder / f"{n}.json"
        if p.is_file():
            out.append(json.loads(p.read_text(encoding="utf-8")))
    return out


def _met(v: bool | None) -> str:
    return "–" if v is None else ("✔" if v else "✘")


def results_table(results: list[dict]) -> Table:
    t = Table(title="ocop-trace benchmarks (ratio = figure / baseline measured in the same run)", show_lines=False)
    for col in ("benchmark", "figure", "value", "baseline", "ratio", "goal", "met", "load 1m", "date"):
        t.add_column(col, overflow="fold")
    for r in results:
        load = r.get("load", {})
        for i, line in enumerate(r.get("rows", [])):
            t.add_row(r["name"] if i == 0 else "", line["figure"], line["value"], line["baseline"], line["ratio"],
                      line["goal"], _met(line["pass"]),
                      f"{load.get('mean_1min', '?')}/{load.get('cores', '?')}" if i == 0 else "",
                      r["date"][:16].replace("T", " ") if i == 0 else "")
    return t


def markdown(results: list[dict]) -> str:
    """The README's table and machine lines for ``results``."""
    lines = ["| benchmark | figure | value | baseline (same run) | ratio | goal | met |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        for i, line in enumerate(r.get("rows", [])):
            name = f"[{r['name']}](results/{r['name']}.json)" if i == 0 else ""
            cells = [name, line["figure"], line["value"], line["baseline"], line["ratio"], line["goal"],
                     _met(line["pass"])]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if results:
        m = results[0]["machine"]
        lines += ["", f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; Python "
                      f"{m['python']}, Apache Kafka {m['kafka_broker']}, kafka-python {m['kafka_python']}, aiokafka "
                      f"{m['aiokafka']}, faust-streaming {m['faust_streaming']}, SQLite {m['sqlite']}.", "",
                  "Load average while each ran (1-minute: mean / max over the run, machine shared with other work):",
                  ""]
        for r in results:
            ld = r["load"]
            notes = "".join(f"\n  - {n}" for n in r.get("notes", []))
            lines.append(f"- **{r['name']}** {r['date'][:16].replace('T', ' ')} UTC, {r['duration_s']:.0f} s, load "
                         f"{ld['mean_1min']} / {ld['max_1min']} on {ld['cores']} cores: `{r['command']}`{notes}")
    return "\n".join(lines)


def write_readme(results: list[dict]) -> None:
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{markdown(results)}\n{END}{tail}", encoding="utf-8")


@contextlib.contextmanager
def _broker(needed: bool):
    if not needed or os.environ.get("OCOP_BOOTSTRAP"):
        yield os.environ.get("OCOP_BOOTSTRAP")
        return
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    from bench.common import kafka

    with kafka() as bootstrap:
        yield bootstrap


def bench_command(
    names: list[str] = typer.Argument(None, help=f"Benchmarks to run (default: all): {', '.join(BENCHMARKS)}."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes (a smoke run); results in var/bench/quick."),
    table: bool = typer.Option(False, "--table", help="Only print the table of the existing results."),
    out: Path = typer.Option(None, "--out", help="Result folder (default: bench/results, or var/bench/quick)."),
) -> None:
    """Run the benchmarks and print figures beside their same-run baselines / Đo hiệu năng."""
    names = list(names or BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        console.print(f"[red]✖ unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}[/]")
        raise typer.Exit(2)
    folder = out or (QUICK if quick else RESULTS)
    if not (PROJECT_ROOT / "bench" / "common.py").is_file():
        console.print("[red]✖ bench/ not found: run from a source checkout[/]")
        raise typer.Exit(2)
    failed = []
    if not table:
        with _broker(bool(NEEDS_KAFKA & set(names))) as bootstrap:
            for n in names:
                argv = [sys.executable, "-m", f"bench.{n}", *(["--quick"] if quick else []), "--out", str(folder)]
                shown = shlex.join(["ocop-trace", "bench", n, *(["--quick"] if quick else [])])
                env = {**os.environ, "OCOP_BENCH_COMMAND": shown, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
                if bootstrap:
                    env["OCOP_BOOTSTRAP"] = bootstrap
                console.rule(f"[bold]{n}")
                t = time.monotonic()
                rc = subprocess.run(argv, cwd=PROJECT_ROOT, env=env).returncode
                if rc != 0:
                    failed.append(n)
                    console.print(f"[red]✖ {n} failed (exit {rc}) after {time.monotonic() - t:.0f}s[/]")
    results = _load(folder, names)
    console.print(results_table(results))
    if not quick and not table and out is None:
        write_readme(_load(RESULTS, list(BENCHMARKS)))
    if failed:
        raise typer.Exit(1)
