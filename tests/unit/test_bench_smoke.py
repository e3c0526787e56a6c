"""Smoke test of the pure benchmarks (bench/stamps.py, bench/trace.py) at tiny sizes: they run and write
well-formed result JSON; and the table copies bench/memory.py loads. No timing is asserted here: benchmarks
measure, tests check behaviour."""

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


def test_memory_copies_lots_onto_their_partitions_and_rebuilds_the_master_index():
    """bench/memory.py fills a worker's tables with copies of real lot states: each copy under new lot codes, on the
    partition the worker would keep it on, the master index listing each partition's own lots."""
    import orjson

    from bench.memory import copied
    from streams.app import partition_of

    lots = ["CHE-L-00001-H1", "CHE-L-00001-P1", "CHE-L-00002-H1"]
    src = {"lots": {(partition_of(lot, 6), lot): orjson.dumps({"lot": lot, "parents": lots[:1]}) for lot in lots},
           "stamp-state": {(partition_of(lots[1], 6), lots[1]): b'{"next": 100}'},
           "master": {(q, f"{q}|area|VN-TN-1"): b'{"area_code": "VN-TN-1"}' for q in range(6)},
           "master-index": {}}
    for q in {partition_of(lot, 6) for lot in lots}:
        src["master-index"][(q, f"{q}|area|VN-TN-1")] = orjson.dumps([x for x in lots if partition_of(x, 6) == q])
    out = list(copied(src, 4, 6))
    by_table: dict[str, list] = {}
    for table, part, key, value in out:
        by_table.setdefault(table, []).append((part, orjson.loads(key), value))
    states = {k: (p, orjson.loads(v)) for p, k, v in by_table["lots"]}
    assert set(states) == {lot.replace("-L-", f"-L{c}-") for c in range(4) for lot in lots}
    for key, (part, state) in states.items():
        assert part == partition_of(key, 6) and state["lot"] == key
        assert state["parents"] == [f"CHE-{key.split('-')[1]}-00001-H1"]  # renamed inside the value too
    assert len(by_table["stamp-state"]) == 4 and len(by_table["master"]) == 6
    listed = []
    for part, key, value in by_table["master-index"]:
        members = orjson.loads(value)
        assert key == f"{part}|area|VN-TN-1" and all(partition_of(m, 6) == part for m in members)
        listed += members
    assert sorted(listed) == sorted(states)

    src["lots"][(0, "CHE-M-9-H1")] = b"{}"  # a second generator tag: renaming "-L-" would not rename every lot
    with pytest.raises(ValueError):
        list(copied(src, 1, 6))
