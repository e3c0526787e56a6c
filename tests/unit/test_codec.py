"""The contract: every schema parses, every value round-trips, the header names the writer schema, evolution works."""

import copy
import io
import json

import pytest
from fastavro import schemaless_writer

from schemas import codec
from schemas.events import decode_event, encode_event, new_event, payload_schemas, reencoded, validate_event
from schemas.validation import Invalid, validate
from tests.samples import SAMPLE_EVENTS, SAMPLE_VALUES


def test_every_schema_file_parses():
    names = sorted(p.stem for p in codec.SCHEMA_DIR.glob("*.avsc"))
    assert len(names) >= 25
    for name in names:
        raw = codec.raw_schema(name)
        assert f"{raw['namespace']}.{raw['name']}" == name, "file name must be the schema's full name"
    for name in codec.TOP_LEVEL:
        assert codec.load(name).parsed


def test_every_event_type_has_a_sample():
    assert set(SAMPLE_EVENTS) == set(payload_schemas())


@pytest.mark.parametrize("event_type", sorted(SAMPLE_EVENTS))
def test_event_round_trip(event_type):
    ev = SAMPLE_EVENTS[event_type]
    validate_event(ev)
    data = encode_event(ev)
    assert data[:2] == codec.MAGIC
    assert data[2:10] == codec.load(codec.EVENT).fingerprint
    assert decode_event(data) == ev


@pytest.mark.parametrize("name", sorted(SAMPLE_VALUES))
def test_value_round_trip(name):
    value = SAMPLE_VALUES[name]
    validate(name, value)
    c = codec.codec(name)
    assert c.decode(c.encode(value)) == value
    assert codec.schema_name_of(c.encode(value)) == name


def test_header_rejects_foreign_and_unknown_bytes():
    with pytest.raises(codec.CodecError) as e:
        codec.codec(codec.EVENT).decode(b"\x00\x00\x00\x00\x01hello")
    assert e.value.kind == "undecodable"
    bad_fp = codec.MAGIC + b"\xff" * 8 + b"\x00"
    with pytest.raises(codec.CodecError) as e:
        codec.codec(codec.EVENT).decode(bad_fp)
    assert e.value.kind == "unknown_schema"
    # a message of another schema is not an event
    alert = codec.codec(codec.ALERT).encode(SAMPLE_VALUES[codec.ALERT])
    with pytest.raises(codec.CodecError, match="expected ocop.Event"):
        codec.codec(codec.EVENT).decode(alert)


def test_truncated_and_trailing_bytes_are_undecodable():
    data = encode_event(SAMPLE_EVENTS["harvest"])
    for cut in (11, len(data) // 2, len(data) - 1):
        with pytest.raises(codec.CodecError) as e:
            decode_event(data[:cut])
        assert e.value.kind == "undecodable"
    with pytest.raises(codec.CodecError, match="trailing"):
        decode_event(data + b"\x00")


def test_schema_evolution_old_messages_read_by_new_reader():
    """Harvest v1 had no crate_tags; a v1 message decodes with the current reader, crate_tags defaulting to []."""
    assert "v1" in codec.history_versions()
    v1 = codec.Codec(codec.EVENT, writer_version="v1")
    assert v1.writer.fingerprint != codec.load(codec.EVENT).fingerprint
    old = copy.deepcopy(SAMPLE_EVENTS["harvest"])
    del old["payload"]["crate_tags"]
    data = v1.encode(dict(old, payload=("ocop.supply.Harvest", old["payload"])))
    assert decode_event(data)["payload"]["crate_tags"] == []
    assert decode_event(data)["payload"]["lot"] == old["payload"]["lot"]


def test_an_accepted_event_is_its_own_message_when_current_else_reencoded():
    """The workers publish an accepted event as the input message itself when it was written with the current schema,
    and re-encoded with the current schema when it was written with an older one."""
    data = encode_event(SAMPLE_EVENTS["harvest"])
    assert reencoded(data, decode_event(data)) is data
    old = copy.deepcopy(SAMPLE_EVENTS["harvest"])
    del old["payload"]["crate_tags"]
    v1 = codec.Codec(codec.EVENT, writer_version="v1").encode(dict(old, payload=("ocop.supply.Harvest", old["payload"])))
    out = reencoded(v1, decode_event(v1))
    assert codec.codec(codec.EVENT).is_current(out) and not codec.codec(codec.EVENT).is_current(v1)
    assert out == encode_event(decode_event(v1)) and decode_event(out) == decode_event(v1)


def test_schema_evolution_new_messages_read_by_old_reader():
    """An old consumer (reader = v1) still reads messages written with the current schema: the new field is ignored."""
    from fastavro import schemaless_reader

    current = codec.load(codec.EVENT)
    old_reader = codec.load(codec.EVENT, "v1")
    data = encode_event(SAMPLE_EVENTS["harvest"])
    buf = io.BytesIO(data[codec.HEADER_LEN:])
    datum = schemaless_reader(buf, current.parsed, old_reader.parsed)
    assert "crate_tags" not in datum["payload"]
    assert datum["payload"]["quantity"] == SAMPLE_EVENTS["harvest"]["payload"]["quantity"]


def test_raw_fastavro_without_header_is_rejected():
    buf = io.BytesIO()
    ev = SAMPLE_EVENTS["harvest"]
    schemaless_writer(buf, codec.load(codec.EVENT).parsed, dict(ev, payload=("ocop.supply.Harvest", ev["payload"])))
    with pytest.raises(codec.CodecError):
        decode_event(buf.getvalue())


@pytest.mark.parametrize(
    "mutate, field, reason",
    [
        (lambda e: e["payload"].update(lot="x" * 21), "payload.lot", "1-20 characters"),
        (lambda e: e["payload"]["quantity"].update(value=-1.0), "payload.quantity.value", "≥ 0"),
        (lambda e: e["payload"]["quantity"].update(unit="lb"), "payload.quantity.unit", "not one of"),
        (lambda e: e.update(occurred_at="2026-11-20T07:30:00"), "occurred_at", "offset"),
        (lambda e: e.update(occurred_at="2027-11-20T07:30:00+07:00"), "occurred_at", "future"),
        (lambda e: e["payload"].pop("crop"), "payload.crop", "required"),
        (lambda e: e.update(event_id="nope"), "event_id", "UUID"),
        (lambda e: e.update(event_type="teleport"), "event_type", "not one of"),
        (lambda e: e["payload"].update(extra=1), "payload.extra", "unknown field"),
        (lambda e: e["payload"]["quantity"].update(value=float("nan")), "payload.quantity.value", "finite"),
        (lambda e: e["actor"].update(subject_id=7), "actor.subject_id", "must be string"),
    ],
)
def test_invalid_event_names_field_and_reason(mutate, field, reason):
    ev = copy.deepcopy(SAMPLE_EVENTS["harvest"])
    mutate(ev)
    with pytest.raises(Invalid) as e:
        validate_event(ev)
    assert e.value.field == field
    assert reason in e.value.reason


def test_package_rules_gtin_and_dates():
    ev = copy.deepcopy(SAMPLE_EVENTS["package"])
    ev["payload"]["gtin"] = ev["payload"]["gtin"][:-1] + str((int(ev["payload"]["gtin"][-1]) + 1) % 10)
    with pytest.raises(Invalid, match="check digit") as e:
        validate_event(ev)
    assert e.value.field == "payload.gtin"
    ev = copy.deepcopy(SAMPLE_EVENTS["package"])
    ev["payload"]["expiry_date"] = "2020-01-01"
    with pytest.raises(Invalid, match="before production_date") as e:
        validate_event(ev)
    assert e.value.field == "payload.expiry_date"


def test_rating_bounds():
    ev = copy.deepcopy(SAMPLE_EVENTS["rating"])
    ev["payload"]["stars"] = 6
    with pytest.raises(Invalid, match="≤ 5"):
        validate_event(ev)


def test_new_event_defaults_are_valid():
    ev = new_event("sell", {"lot": "L-1", "units": 2, "point_of_sale": "POS-QV"}, subject_id="HTX-X")
    validate_event(ev)
    assert ev["occurred_at"].endswith("+07:00")
    assert json.loads(json.dumps(ev)) == ev


def test_canonical_json_is_the_standard_library_form():
    """The hash chain's canonical bytes (orjson) equal json.dumps(sort_keys, compact, UTF-8) on real events."""
    from producers.generator import generate
    from schemas.events import canonical_json

    for ev in generate(3, 50, seed=5):
        assert canonical_json(ev) == json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
