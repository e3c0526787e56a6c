"""The sample-data generator: determinism, validity, realism, and that its faults really break the rules."""

from __future__ import annotations

import collections

import pytest
from typer.testing import CliRunner

from producers.generator import (FAULT_KINDS, GROUPS, SEED_SUBJECTS, demo_chain, from_jsonl, generate,
                                 generate_detailed, to_jsonl)
from schemas.events import MASTER_TYPES, decode_event, encode_event, event_key, event_types, validate_event
from schemas.validation import gtin_problem


def test_same_seed_same_bytes():
    a = to_jsonl(generate(12, 80, seed=42, faulty=0.1))
    b = to_jsonl(generate(12, 80, seed=42, faulty=0.1))
    assert a == b
    assert from_jsonl(a) == generate(12, 80, seed=42, faulty=0.1)


def test_different_seeds_differ():
    a, b = to_jsonl(generate(12, 80, seed=1)), to_jsonl(generate(12, 80, seed=2))
    assert a != b
    ids_a = {e["event_id"] for e in from_jsonl(a)}
    ids_b = {e["event_id"] for e in from_jsonl(b)}
    assert not ids_a & ids_b
    lots = lambda evs: {e["payload"]["lot"] for e in evs if "lot" in e["payload"]}  # noqa: E731
    assert not lots(from_jsonl(a)) & lots(from_jsonl(b))  # two seeds can share one topic


@pytest.mark.parametrize("seed", [0, 1, 7, 2026])
def test_every_event_is_valid_and_survives_avro(seed):
    events = generate(25, 150, seed=seed, faulty=0.2)
    ids = set()
    for ev in events:
        validate_event(ev)
        assert decode_event(encode_event(ev)) == ev  # every field present: canonical as generated
        event_key(ev)
        ids.add(ev["event_id"])
    assert len(ids) == len(events)
    supply = [e["occurred_at"] for e in events if e["event_type"] not in MASTER_TYPES]
    assert supply == sorted(supply)
    assert all(e["event_type"] in MASTER_TYPES for e in events[:len(events) - len(supply)])


def test_realistic_content():
    events = generate(60, 400, seed=3, faulty=0.05)
    types = collections.Counter(e["event_type"] for e in events)
    assert set(types) == set(event_types()) - {"void"}
    # the seeds' examples first, with their Vietnamese names
    subjects = [e["payload"] for e in events if e["event_type"] == "subject"]
    assert [s["subject_id"] for s in subjects[:3]] == [s["subject"]["subject_id"] for s in SEED_SUBJECTS]
    assert subjects[0]["name"] == "Hợp tác xã Chè Hảo Đạt"
    assert {s["kind"] for s in subjects} >= {"cooperative", "sme", "household"}
    products = [e["payload"] for e in events if e["event_type"] == "product"]
    assert {p["ocop_group"] for p in products} == set(GROUPS)
    for p in products:
        assert p["gtin"].startswith("0893") and gtin_problem(p["gtin"]) is None
    ratings = [e["payload"] for e in events if e["event_type"] == "rating"]
    for r in ratings:
        assert {3: 50, 4: 70, 5: 90}[r["stars"]] <= r["score"] <= {3: 69, 4: 89, 5: 100}[r["stars"]]
        assert "/QĐ-" in r["decision_no"] and r["valid_from"] < r["valid_to"]
    assert any(r["action"] == "renewed" for r in ratings)  # a rating history
    for a in (e["payload"] for e in events if e["event_type"] == "area"):
        for pt in a["location"]:
            assert 8 <= pt["lat"] <= 24 and 102 <= pt["lon"] <= 110  # in Vietnam
    assert any(a["certifications"] for a in (e["payload"] for e in events if e["event_type"] == "area"))
    transforms = [e["payload"] for e in events if e["event_type"] == "transform"]
    assert any(len(t["inputs"]) > 1 for t in transforms)  # blends
    assert any(len(t["outputs"]) > 1 for t in transforms)  # splits
    assert any(t["process"] == "fermentation" and 900 <= t["duration_hours"] <= 1010 for t in transforms)
    assert any(e["payload"]["stamps_requested"] for e in events if e["event_type"] == "package")
    assert all(e["source"] == "generator" for e in events)
    assert max(e["occurred_at"] for e in events) < "2026-11"  # all in the past, whatever the seed


def test_faults_break_the_rules_and_clean_chains_do_not():
    """Fold the events with the workers' pure logic: each injected fault raises its rule on its lot, nothing else
    is flagged."""
    from streams.fold import project

    g = generate_detailed(30, 250, seed=11, faulty=0.15)
    assert {f["kind"] for f in g.faults} == set(FAULT_KINDS)
    records = project(g.events, stamp_key_id="dev1")
    for f in g.faults:
        assert f["rule"] in [x["rule"] for x in records[f["lot"]]["flags"]], f
    faulty_lots = {f["lot"] for f in g.faults}
    unexpected = {lot: r["flags"] for lot, r in records.items() if r["flags"] and lot not in faulty_lots}
    assert unexpected == {}
    for rc in g.recalls:
        assert records[rc["lot"]]["status"] == "recalled"


def test_no_faults_when_faulty_is_zero():
    from streams.fold import project

    g = generate_detailed(10, 60, seed=5, faulty=0.0)
    assert g.faults == []
    assert all(not r["flags"] for r in project(g.events, stamp_key_id="dev1").values())


def test_arguments_checked():
    with pytest.raises(ValueError):
        generate(0, 1, 1)
    with pytest.raises(ValueError):
        generate(1, 1, 1, faulty=1.5)
    assert len([e for e in generate(1, 0, 1) if e["event_type"] not in MASTER_TYPES]) == 0


def test_demo_chain():
    from streams.fold import project

    a, b = demo_chain(), demo_chain()
    assert a == b
    for ev in a:
        validate_event(ev)
    lots = {e["payload"].get("lot") for e in a}
    assert {"TC-2026-001", "TC-2026-002", "TC-2026-T01", "TA-2026-001", "TA-2026-F01-A", "BBV-2026-W01"} <= lots
    ferment = next(e for e in a if e["event_type"] == "transform" and e["payload"]["process"] == "fermentation")
    assert ferment["payload"]["duration_hours"] == 960
    records = project(a, stamp_key_id="dev1")
    tea = records["TC-2026-T01"]
    assert {o["area_code"] for o in tea["origins"]} == {"VN-TN-TC-001", "VN-TN-TC-002"}
    assert tea["rating"]["stars"] == 4 and tea["units_packaged"] == 200 and tea["units_sold"] == 55
    assert records["TA-2026-F01-B"]["rating"]["stars"] == 4
    assert records["TA-2026-F01-B"]["parents"] == ["TA-2026-F01"]
    assert all(not r["flags"] for r in records.values())


def test_cli_generate_writes_identical_files(tmp_path):
    from ocop_trace.cli import app

    runner = CliRunner()
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        res = runner.invoke(app, ["generate", "--subjects", "5", "--lots", "20", "--seed", "3", "--out",
                                  str(tmp_path / name), "--lang", "en"])
        assert res.exit_code == 0, res.output
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1] == to_jsonl(generate(5, 20, 3))
    res = runner.invoke(app, ["generate", "--demo"])
    assert res.exit_code == 0
    assert res.stdout_bytes == to_jsonl(demo_chain())
