"""Against the real broker: every ``ocop-trace register`` / ``intake`` verb puts the expected Avro event on the right
topic (with the test prefix) under the right key; invalid input exits 2 and sends nothing."""

from __future__ import annotations

import re
import uuid

import pytest
from typer.testing import CliRunner

from ocop_trace.cli import app
from schemas import codec, topics
from tests.kafka_io import read_all

UUID_RE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
GTIN13 = "8936045200018"
GTIN14 = "0" + GTIN13
S = ["--subject", "HTX-CHE-HAODAT", "--user", "ba-hao"]
VOIDED = "6f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b"

# (case id, argv, event type, topic, key, payload subset, words in the confirmation)
CASES = [
    ("register-subject", ["register", "subject", "--id", "HTX-CHE-HAODAT", "--name", "Hợp tác xã Chè Hảo Đạt",
                          "--kind", "htx", "--province", "VN-69", "--commune", "TAN-CUONG",
                          "--address", "xã Tân Cương, TP. Thái Nguyên"],
     "subject", topics.MASTER, "HTX-CHE-HAODAT", {"kind": "cooperative", "province_code": "VN-69"},
     "Đã đăng ký chủ thể HTX-CHE-HAODAT"),
    ("register-area", ["register", "area", "--code", "VN-TN-TC-001", "--owner", "HTX-CHE-HAODAT", "--crop", "chè",
                       "--ha", "5,2", "--location", "21.5712,105.7651", "--cert", "VietGAP:VG-TN-0231:2024-05-01:2027-04-30",
                       "--valid-from", "2020-04-01"],
     "area", topics.MASTER, "VN-TN-TC-001", {"area_ha": 5.2, "crops": ["chè"], "valid_from": "2020-04-01"},
     "Đã đăng ký vùng trồng VN-TN-TC-001"),
    ("register-product", ["register", "product", "--gtin", GTIN13, "--owner", "HTX-CHE-HAODAT",
                          "--name-vi", "Chè Tân Cương Hảo Đạt", "--name-en", "Hảo Đạt green tea", "--group", "beverage",
                          "--net", "200 g", "--shelf-life", "540"],
     "product", topics.MASTER, GTIN14, {"gtin": GTIN14, "net_content": {"value": 0.2, "unit": "kg"}},
     "Đã đăng ký sản phẩm"),
    ("register-rating", ["register", "rating", "--gtin", GTIN13, "--stars", "4", "--score", "82", "--level", "province",
                         "--decision", "1532/QĐ-UBND", "--decision-date", "10/07/2024"],
     "rating", topics.MASTER, GTIN14, {"stars": 4, "valid_from": "2024-07-10", "valid_to": "2027-07-09"},
     "4 sao (82 điểm)"),
    ("register-facility", ["register", "facility", "--id", "HAODAT-XUONG", "--owner", "HTX-CHE-HAODAT",
                           "--name", "Xưởng chế biến chè Hảo Đạt", "--kind", "plant", "--location", "21.5689,105.7633"],
     "facility", topics.MASTER, "HAODAT-XUONG", {"kind": "plant", "location": {"lat": 21.5689, "lon": 105.7633}},
     "Đã đăng ký cơ sở HAODAT-XUONG"),
    ("harvest", ["intake", "harvest", "--lot", "TC-2026-001", "--area", "VN-TN-TC-001", "--crop", "chè", "--qty", "120",
                 "--unit", "kg", "--at", "2026-11-20 07:30", "--crate", "TC-001#01", *S],
     "harvest", topics.SUPPLY, "TC-2026-001", {"quantity": {"value": 120.0, "unit": "kg"}, "crate_tags": ["TC-001#01"]},
     "Đã ghi nhận thu hoạch lô TC-2026-001: 120 kg chè từ vùng trồng VN-TN-TC-001"),
    ("receive", ["intake", "receive", "--lot", "TC-2026-001", "--qty", "119,5 kg", "--facility", "HAODAT-XUONG",
                 "--doc", "PN-0001", *S],
     "receive", topics.SUPPLY, "TC-2026-001", {"quantity": {"value": 119.5, "unit": "kg"}, "document_ref": "PN-0001"},
     "Đã ghi nhận nhận hàng lô TC-2026-001: 119,5 kg tại HAODAT-XUONG"),
    ("transform", ["intake", "transform", "--input", "TC-2026-001=26.5kg", "--input", "TC-2026-002=17.5kg",
                   "--output", "TC-2026-T01=44kg", "--process", "blending", "--duration", "2h", *S],
     "transform", topics.SUPPLY, "TC-2026-T01", {"process": "blending", "duration_hours": 2.0},
     "Đã ghi nhận chế biến (blending)"),
    ("inspect", ["intake", "inspect", "--lot", "TC-2026-T01", "--lab", "QUATEST 1", "--result", "pass",
                 "--param", "Pb=0.04<=2", "--param", "moisture=6.1", *S],
     "inspect", topics.SUPPLY, "TC-2026-T01", {"result": "pass"}, "Đã ghi nhận kiểm nghiệm lô TC-2026-T01"),
    ("package", ["intake", "package", "--lot", "TC-2026-T01", "--gtin", GTIN13, "--units", "200",
                 "--production-date", "2026-11-20", "--expiry-date", "2028-05-20", "--stamps", "200", *S],
     "package", topics.SUPPLY, "TC-2026-T01", {"gtin": GTIN14, "units": 200, "stamps_requested": 200},
     "200 tem truy xuất"),
    ("ship", ["intake", "ship", "--lot", "TC-2026-T01", "--units", "120", "--to", "QV-DINHHOA", *S],
     "ship", topics.SUPPLY, "TC-2026-T01", {"units": 120, "to_facility": "QV-DINHHOA"}, "120 đơn vị đến QV-DINHHOA"),
    ("sell", ["intake", "sell", "--lot", "TC-2026-T01", "--units", "35", "--pos", "QV-DINHHOA", *S],
     "sell", topics.SUPPLY, "TC-2026-T01", {"units": 35, "point_of_sale": "QV-DINHHOA"}, "tại điểm bán QV-DINHHOA"),
    ("recall", ["intake", "recall", "--scope", "area", "--target", "VN-TN-TC-009", "--reason", "Dư lượng thuốc BVTV",
                "--authority", "Chi cục QLCL", *S],
     "recall", topics.SUPPLY, "VN-TN-TC-009", {"scope": "area", "target": "VN-TN-TC-009"},
     "Đã ghi nhận thu hồi vùng trồng VN-TN-TC-009"),
    ("void", ["intake", "void", "--lot", "TC-2026-T01", "--voids", VOIDED, "--reason", "nhập nhầm", *S],
     "void", topics.SUPPLY, "TC-2026-T01", {"voided_event_id": VOIDED}, "Đã ghi nhận hủy bỏ sự kiện"),
]

INVALID = [  # (argv, option named in the message, reason words)
    (["intake", "harvest", "--lot", "BAD-1", "--area", "A", "--crop", "chè", "--qty", "-5 kg", *S], "--qty", "≥ 0"),
    (["intake", "receive", "--lot", "BAD-2", "--qty", "5 bao", *S], "--qty", "bao"),
    (["intake", "package", "--lot", "BAD-3", "--gtin", "8936045200017", "--units", "5", *S], "--gtin", "kiểm tra"),
    (["intake", "package", "--lot", "BAD-4", "--gtin", GTIN13, "--units", "5", "--production-date", "2026-11-20",
      "--expiry-date", "2026-01-01", *S], "--expiry-date", "production_date"),
    (["intake", "ship", "--lot", "BAD-5", "--units", "0", "--to", "X", *S], "--units", "≥ 1"),
    (["intake", "harvest", "--lot", "BAD-6", "--area", "A", "--crop", "chè", "--qty", "5kg", "--at", "hôm qua", *S],
     "--at", "thời điểm"),
    (["register", "product", "--gtin", "89360452000", "--owner", "X", "--name", "Y", "--group", "food"], "--gtin", "chữ số"),
    (["register", "rating", "--gtin", GTIN13, "--stars", "6", "--score", "95", "--level", "central", "--decision", "1/QĐ",
      "--decision-date", "2024-01-01"], "--stars", "≤ 5"),
]


@pytest.fixture(scope="module")
def env(kafka_broker) -> dict[str, str]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    topics.create_topics(kafka_broker.bootstrap, prefix)
    return {"OCOP_BOOTSTRAP": kafka_broker.bootstrap, "OCOP_TOPIC_PREFIX": prefix, "OCOP_LANG": "vi"}


@pytest.fixture(scope="module")
def recorded(env):
    """Run every case once (plus the invalid ones), then read both input topics once."""
    runner = CliRunner()
    results = {case[0]: runner.invoke(app, case[1], env=env) for case in CASES}
    results["english"] = runner.invoke(app, ["intake", "harvest", "--lot", "TC-2026-002", "--area", "VN-TN-TC-002",
                                             "--crop", "tea", "--qty", "80 kg", "--lang", "en", *S], env=env)
    results["quiet"] = runner.invoke(app, ["intake", "sell", "--lot", "TC-2026-T01", "--units", "1", "--facility",
                                           "QV-DINHHOA", "-q", *S], env=env)
    results["retry"] = [runner.invoke(app, ["intake", "sell", "--lot", "TC-2026-T01", "--units", "2", "--pos", "P1",
                                            "--event-id", "0b0b0b0b-1111-4222-8333-444455556666",
                                            "--at", "21/11/2026 10:00", *S], env=env)
                        for _ in range(2)]
    invalid = [runner.invoke(app, argv, env=env) for argv, _, _ in INVALID]
    msgs = {}
    for spec in (topics.MASTER, topics.SUPPLY):
        for key, value in read_all(env["OCOP_BOOTSTRAP"], spec.full(env["OCOP_TOPIC_PREFIX"]), codec.EVENT):
            msgs.setdefault(value["event_id"], []).append((spec.name, key.decode(), value))
    return results, invalid, msgs


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_verb_produces_its_event(recorded, case):
    name, argv, etype, spec, key, subset, words = case
    results, _, msgs = recorded
    res = results[name]
    assert res.exit_code == 0, res.output
    assert "✔" in res.stdout and words in res.stdout, res.stdout
    ids = re.findall(r"\(mã sự kiện ([0-9a-f-]{36})\)", res.stdout)
    assert len(ids) == 1 and UUID_RE.fullmatch(ids[0])
    assert len(msgs.get(ids[0], [])) == 1, f"event {ids[0]} not on Kafka exactly once"
    topic, got_key, ev = msgs[ids[0]][0]
    assert (topic, got_key, ev["event_type"], ev["source"]) == (spec.name, key, etype, "cli")
    for k, v in subset.items():
        assert ev["payload"][k] == v, (k, ev["payload"])
    assert ev["occurred_at"].endswith("+07:00")
    if spec is topics.SUPPLY:
        assert ev["actor"] == {"subject_id": "HTX-CHE-HAODAT", "user": "ba-hao"}
    if name == "harvest":
        assert ev["occurred_at"] == "2026-11-20T07:30:00+07:00"


def test_english_quiet_and_retry(recorded):
    results, _, msgs = recorded
    en = results["english"]
    assert en.exit_code == 0 and "✔ Recorded harvest of lot TC-2026-002: 80 kg of tea from growing area VN-TN-TC-002" \
        in en.stdout and "(event id " in en.stdout
    q = results["quiet"]
    assert q.exit_code == 0 and UUID_RE.fullmatch(q.stdout.strip())
    (_, _, ev), = msgs[q.stdout.strip()]
    assert ev["payload"]["point_of_sale"] == "QV-DINHHOA"  # --pos defaults to --facility
    assert all(r.exit_code == 0 for r in results["retry"])
    # the same --event-id twice: two identical messages, one event (consumers drop the duplicate by event_id)
    copies = msgs["0b0b0b0b-1111-4222-8333-444455556666"]
    assert len(copies) == 2 and copies[0][2]["payload"] == copies[1][2]["payload"]
    assert copies[0][2]["occurred_at"] == copies[1][2]["occurred_at"] == "2026-11-21T10:00:00+07:00"


@pytest.mark.parametrize("i", range(len(INVALID)), ids=[a[1] + "-" + a[0][1] for a in INVALID])
def test_invalid_input_exits_2_and_sends_nothing(recorded, i):
    _, invalid, msgs = recorded
    argv, option, words = INVALID[i]
    res = invalid[i]
    assert res.exit_code == 2, res.output
    assert "✘ Dữ liệu không hợp lệ — " + option in res.stderr and words in res.stderr, res.stderr
    assert "Không có gì được gửi." in res.stderr
    lot = argv[argv.index("--lot") + 1] if "--lot" in argv else None
    sent = [ev for copies in msgs.values() for _, _, ev in copies
            if lot and ev["payload"].get("lot") == lot or ev["event_type"] == "rating" and ev["payload"]["stars"] == 6
            or ev["event_type"] == "product" and ev["payload"]["owner_subject_id"] == "X"]
    assert sent == []


def test_unreachable_broker_exits_1(env):
    res = CliRunner().invoke(app, ["intake", "sell", "--lot", "L1", "--units", "1", "--pos", "P", "--lang", "en", *S],
                             env=dict(env, OCOP_BOOTSTRAP="127.0.0.1:9"))
    assert res.exit_code == 1, res.output
    assert "Could not send the event to Kafka (127.0.0.1:9)" in res.stderr


def test_generate_send_puts_every_event_on_its_topic(kafka_broker):
    from producers.generator import generate
    from schemas.events import MASTER_TYPES, event_key

    prefix = f"t{uuid.uuid4().hex[:8]}."
    topics.create_topics(kafka_broker.bootstrap, prefix)
    env = {"OCOP_BOOTSTRAP": kafka_broker.bootstrap, "OCOP_TOPIC_PREFIX": prefix}
    res = CliRunner().invoke(app, ["generate", "--subjects", "4", "--lots", "6", "--seed", "5", "--faulty", "0.5",
                                   "--send", "--lang", "en"], env=env)
    assert res.exit_code == 0, res.output
    expected = generate(4, 6, 5, 0.5)
    assert f"Sent {len(expected)} events to Kafka" in res.stderr
    got = {}
    for spec in (topics.MASTER, topics.SUPPLY):
        for key, value in read_all(kafka_broker.bootstrap, spec.full(prefix), codec.EVENT):
            got[value["event_id"]] = (spec, key.decode(), value)
    assert len(got) == len(expected)
    for ev in expected:
        spec, key, value = got[ev["event_id"]]
        assert value == ev and key == event_key(ev)
        assert spec is (topics.MASTER if ev["event_type"] in MASTER_TYPES else topics.SUPPLY)
