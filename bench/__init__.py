"""Benchmarks (``ocop-trace bench``): each module measures one figure beside a baseline run in the same process
and writes ``bench/results/<name>.json`` (see bench/README.md). Nothing here is imported by the application."""
