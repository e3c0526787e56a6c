"""Smoke test of the pure benchmarks (bench/stamps.py, bench/trace.py) at tiny sizes: they run and write
well-formed result JSON. No timing is asserted here: benchmarks measure, tests check behaviour."""

from __future__ import annotations

import json

import pytest

REQUIRED = {"name", "title", "quick", "sizes", "figures", "baseline", "ratio", "goals", "pass", "rows", "notes",
            "machine", "load", "date", "duration_s", "command"}


def _check(path, name: str) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert REQUIRED <= set(data), REQUIRED - set(data)
    assert data["name"] == name
    assert data["figures"] and data["baseline"]["description"] and data["baseline"]["figures"]
    assert all(isinstance(v, (int, float)) or v is None for v in data["ratio"].values())
    for g in data["goals"]:
        assert {"what", "target", "value", "pass"} <= set(g)
        assert g["pass"] in (True, False, None)
    assert data["rows"] and all({"figure", "value", "baseline", "ratio", "goal", "pass"} <= set(r)
                                for r in data["rows"])
    m = data["machine"]
    assert m["cores"] >= 1 and m["cpu_model"] and m["python"]
    assert len(data["load"]["start"]) == 3 and data["load"]["cores"] == m["cores"]
    return data


@pytest.mark.timeout(300)
def test_stamps_benchmark_writes_json(tmp_path):
    from bench import stamps

    stamps.run(quick=True, out=str(tmp_path), serials=2000, labels=30, naive_labels=2)
    data = _check(tmp_path / "stamps.json", "stamps")
    assert data["sizes"]["serials"] == 2000
    assert {"serials_verified_per_s", "sheet_labels_per_s"} <= set(data["figures"])


@pytest.mark.timeout(300)
def test_trace_benchmark_writes_json(tmp_path):
    from bench import trace

    trace.run(quick=True, out=str(tmp_path), db_dir=tmp_path / "db", template_chains=8, first_lots=10, lots=40,
              queries=10)
    data = _check(tmp_path / "trace.json", "trace")
    stages = data["extra"]["stages"]
    assert [s["lots"] for s in stages] == sorted(s["lots"] for s in stages) and stages[-1]["lots"] >= 40
    assert stages[-1]["trace"]["lineage_lots"]["n"] == 10
