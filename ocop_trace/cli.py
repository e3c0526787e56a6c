"""`ocop-trace`: the one command line. Sub-command groups live beside the code they drive."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="OCOP traceability: broker, topics, workers, intake, stamps, audit.")


def main() -> None:  # pragma: no cover
    app()


from ocop_trace.broker import broker_app  # noqa: E402

app.add_typer(broker_app, name="broker")


# --- intake: register, intake (+ scanner station), generate — producers/cli.py -------------------------------
from producers.cli import generate_command, intake_app, register_app  # noqa: E402

app.add_typer(register_app, name="register")
app.add_typer(intake_app, name="intake")
app.command("generate")(generate_command)


# --- topics and workers ----------------------------------------------------------------------------------------
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics of the catalog / Các topic Kafka.")
app.add_typer(topics_app, name="topics")


@topics_app.command("create")
def topics_create() -> None:
    """Create every catalog topic that is missing (idempotent) / Tạo các topic còn thiếu."""
    from rich.console import Console

    from ocop_trace.config import get_settings
    from schemas.topics import create_topics

    s = get_settings()
    result = create_topics(s.bootstrap_servers, s.topic_prefix, s.partitions, s.replication_factor)
    con = Console()
    for name, state in result.items():
        con.print(f"  {'[green]✔ tạo mới / created' if state == 'created' else '[dim]• đã có / exists'}[/] {name}")


@topics_app.command("list")
def topics_list() -> None:
    """Show the catalog: names, keys, policies / Danh mục topic."""
    from rich.console import Console
    from rich.table import Table

    from ocop_trace.config import get_settings
    from schemas.topics import CATALOG

    s = get_settings()
    table = Table("topic", "key", "value", "policy", "partitions")
    for spec in CATALOG:
        table.add_row(spec.full(s.topic_prefix), spec.key, spec.value, spec.cleanup, str(spec.partitions or s.partitions))
    Console().print(table)


@app.command("worker")
def worker(
    web_port: int = typer.Option(None, help="Port of the worker's health/metrics web server."),
    loglevel: str = typer.Option("warning", help="faust log level."),
) -> None:
    """Run a stream worker (validate, lots, stamps, scans). Start it several times to scale / Chạy worker."""
    from ocop_trace.config import get_settings
    from streams.app import run_worker

    s = get_settings()
    if web_port is not None:
        s = s.model_copy(update={"worker_web_port": web_port})
    run_worker(s, loglevel=loglevel)


# --- read side: db upgrade, sink, lot show — consumers/cli.py --------------------------------------------------
from consumers.cli import register as _register_read_side  # noqa: E402

_register_read_side(app)


# --- web: HTTP intake API + EPCIS capture (+ scan pages) — ocop_trace/server.py ---------------------------------
from ocop_trace.server import serve_command  # noqa: E402

app.command("serve")(serve_command)

# --- API tokens: token create|list|revoke — producers/tokens.py -------------------------------------------------
from producers.tokens import token_app  # noqa: E402

app.add_typer(token_app, name="token")


# --- stamps and the demo ------------------------------------------------------------------------------------------
from ocop_trace.demo import demo_command  # noqa: E402
from ocop_trace.stamps_cli import stamps_app  # noqa: E402

app.add_typer(stamps_app, name="stamps")
app.command("demo")(demo_command)

# --- audit: replay|diff|verify|checkpoint|keygen|export — consumers/audit/cli.py -------------------------------
from consumers.audit.cli import audit_app  # noqa: E402

app.add_typer(audit_app, name="audit")

# --- bench: the benchmarks of bench/ with their same-run baselines — ocop_trace/bench_cli.py ---------------------
from ocop_trace.bench_cli import bench_command  # noqa: E402

app.command("bench")(bench_command)


if __name__ == "__main__":  # python -m ocop_trace.cli
    app()
