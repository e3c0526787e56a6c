"""The scanner station driven through a pipe (not a terminal: no prompts) against the real broker: good codes become
events on the supply topic, bad ones get a message and the station carries on, a blank line ends it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import date

import pytest

from qr.digital_link import DigitalLink
from schemas import codec, topics
from tests.kafka_io import read_all

GTIN = "08936045200018"
RUN = [sys.executable, "-c", "from ocop_trace.cli import app; app()"]


@pytest.fixture(scope="module")
def env(kafka_broker) -> dict[str, str]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    topics.create_topics(kafka_broker.bootstrap, prefix)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OCOP_")}
    return dict(clean, OCOP_BOOTSTRAP=kafka_broker.bootstrap, OCOP_TOPIC_PREFIX=prefix, PYTHONIOENCODING="utf-8",
                COLUMNS="200")


def station(env, args: list[str], lines: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*RUN, "intake", "station", *args], input="".join(line + "\n" for line in lines),
                          env=env, capture_output=True, text=True, timeout=timeout)


def supply(env) -> list[tuple[str, dict]]:
    spec = topics.SUPPLY
    return [(k.decode(), v) for k, v in read_all(env["OCOP_BOOTSTRAP"], spec.full(env["OCOP_TOPIC_PREFIX"]), codec.EVENT)]


def test_receive_station_through_a_pipe(env):
    dl = DigitalLink(GTIN, "TC-2026-T01", "7Q2K9M3XAB", date(2028, 5, 20))
    lines = [
        "TC-2026-001 12,5 kg",  # a lot code with its weight on the line
        "TC-2026-002#03 8kg",  # a crate tag of a lot
        f"{dl.build('https://ocop.example.vn')} 2 kg",  # a stamp's Digital Link
        f"{dl.element_string()} 1.5 kg",  # a raw GS1 element string (GS separators) as a scanner types it
        "TC-2026-003",  # no quantity and no --qty: rejected, the station does not wait
        "https://ocop.example.vn/01/08936045200017/10/X 1 kg",  # bad GTIN check digit
        "TC-2026-004 -2 kg",  # negative
        "TC-2026-005 3 bao",  # unknown unit
        "",  # blank line: the end
        "NEVER-READ 1 kg",
    ]
    res = station(env, ["--facility", "HAODAT-XUONG", "--step", "receive", "--subject", "HTX-CHE-HAODAT",
                        "--user", "tram-can-1"], lines)
    assert res.returncode == 1, res.stdout + res.stderr  # some lines were rejected
    assert res.stdout.count("✔") == 4, res.stdout
    assert res.stderr.count("✘") == 4, res.stderr
    assert "Kết thúc: đã ghi nhận 4, từ chối 4." in res.stdout
    assert "Thiếu khối lượng cho mã TC-2026-003" in res.stderr
    assert "check digit" in res.stderr or "kiểm tra" in res.stderr
    assert "phải ≥ 0" in res.stderr and "bao" in res.stderr
    assert "NEVER-READ" not in res.stdout + res.stderr

    got = [(k, v) for k, v in supply(env) if v["facility"] == "HAODAT-XUONG" and v["event_type"] == "receive"]
    by_lot = {v["payload"]["lot"]: (k, v) for k, v in got}
    assert sorted(by_lot) == ["TC-2026-001", "TC-2026-002", "TC-2026-T01"]
    assert len(got) == 4
    key, ev = by_lot["TC-2026-001"]
    assert key == "TC-2026-001" and ev["source"] == "scanner"
    assert ev["payload"]["quantity"] == {"value": 12.5, "unit": "kg"}
    assert ev["actor"] == {"subject_id": "HTX-CHE-HAODAT", "user": "tram-can-1"}
    assert by_lot["TC-2026-002"][1]["payload"]["document_ref"] == "TC-2026-002#03"
    stamps = sorted(v["payload"]["quantity"]["value"] for k, v in got if v["payload"]["lot"] == "TC-2026-T01")
    assert stamps == [1.5, 2.0]


def test_sell_station_with_defaults_and_english(env):
    stamp = DigitalLink(GTIN, "TC-2026-T01", "AAAA1111").build("https://ocop.example.vn")
    res = station(env, ["--facility", "QV-DINHHOA", "--step", "sell", "--subject", "HTX-CHE-HAODAT", "--lang", "en"],
                  [stamp, "TC-2026-T01 3", "TC-2026-T01", "banana split"])  # ends at EOF, no blank line
    assert res.returncode == 1
    assert res.stdout.count("✔ Recorded sale of lot TC-2026-T01") == 2, res.stdout
    assert "Missing units for code TC-2026-T01" in res.stderr
    assert "Unreadable code" in res.stderr or "cannot understand" in res.stderr
    assert "Done: 2 recorded, 2 rejected." in res.stdout
    sales = [(k, v) for k, v in supply(env) if v["event_type"] == "sell" and v["facility"] == "QV-DINHHOA"]
    assert sorted(v["payload"]["units"] for _, v in sales) == [1, 3]  # a scanned stamp is one unit
    assert all(k == "TC-2026-T01" and v["payload"]["point_of_sale"] == "QV-DINHHOA" for k, v in sales)


def test_all_good_exits_0_and_dry_run_sends_nothing(env):
    res = station(env, ["--facility", "HAODAT-XUONG", "--step", "harvest", "--subject", "HTX-CHE-HAODAT",
                        "--area", "VN-TN-TC-001", "--crop", "chè", "--unit", "kg"], ["TC-2026-101 40", "TC-2026-102 35"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "đã ghi nhận 2, từ chối 0" in res.stdout
    before = len(supply(env))
    dry = station(env, ["--facility", "HAODAT-XUONG", "--step", "ship", "--subject", "HTX-CHE-HAODAT", "--to", "VOSO",
                        "--dry-run"], ["TC-2026-T01 5"])
    assert dry.returncode == 0 and '"to_facility": "VOSO"' in dry.stdout
    assert len(supply(env)) == before
    harvests = {v["payload"]["lot"]: v for _, v in supply(env) if v["event_type"] == "harvest"}
    assert harvests["TC-2026-101"]["payload"]["quantity"] == {"value": 40.0, "unit": "kg"}
    assert harvests["TC-2026-101"]["payload"]["area_code"] == "VN-TN-TC-001"


def test_unknown_step_is_a_usage_error(env):
    res = station(env, ["--facility", "F", "--step", "dance"], [])
    assert res.returncode == 2 and "--step" in res.stderr
