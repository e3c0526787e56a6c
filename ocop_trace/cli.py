"""`ocop-trace`: the one command line. Sub-command groups live beside the code they drive."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="OCOP traceability: broker, topics, workers, intake, stamps, audit.")


def main() -> None:  # pragma: no cover
    app()
