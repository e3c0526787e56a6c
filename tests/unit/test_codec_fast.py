"""The generated Avro readers (schemas.codec.fast_reader) decode exactly what fastavro decodes, and leave to it, with
the same result or error, every message they do not handle: random values of every top-level schema, and valid
messages truncated, extended and with bytes changed."""

import io
import math
import re
import struct

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import codec
from schemas.events import encode_event, payload_schemas
from tests.samples import SAMPLE_EVENTS, SAMPLE_VALUES


def strict_equal(a, b) -> bool:
    """Equal values of the same types (1 == 1.0 == True are not), floats bit for bit, dicts in the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    return a == b


def reference(name: str) -> codec.Codec:
    c = codec.Codec(name)
    c._fast = None  # fastavro only
    return c


def outcome(c: codec.Codec, data: bytes):
    try:
        return ("ok", c.decode(data))
    except codec.CodecError as e:
        return ("error", e.kind, re.sub(r"0x[0-9a-f]+", "0x…", e.reason))


def same(name: str, data: bytes) -> None:
    fast, slow = outcome(codec.codec(name), data), outcome(reference(name), data)
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "ok":
        assert strict_equal(fast[1], slow[1]), (fast, slow)
    else:
        assert fast == slow


def test_every_top_level_schema_has_a_generated_reader():
    for name in codec.TOP_LEVEL:
        assert codec.fast_reader(codec.load(name)) is not None, name
        assert codec.codec(name)._fast is not None


# ------------------------------------------------------------------------------------------------ random values
def values(schema, named: dict, depth: int = 0):
    """A strategy of values of a fastavro-parsed schema, in the form its writer takes (unions of named types as
    (name, value) pairs)."""
    if isinstance(schema, list):
        def branch(s):
            inner = values(s, named, depth + 1)
            name = s if isinstance(s, str) and s in named else s.get("name") if isinstance(s, dict) else None
            return inner.map(lambda v, n=name: (n, v)) if name and (named.get(name, s) or {}).get("type") == "record" \
                else inner
        return st.one_of([branch(s) for s in schema])
    if isinstance(schema, str):
        if schema in named:
            return values(named[schema], named, depth + 1)
        return {
            "null": st.none(), "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1), "long": st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(width=32), "double": st.floats(),
            "bytes": st.binary(max_size=20), "string": st.text(max_size=20),
        }[schema]
    t = schema["type"]
    if t == "record":
        named.setdefault(schema["name"], schema)
        return st.fixed_dictionaries({f["name"]: values(f["type"], named, depth + 1) for f in schema["fields"]})
    if t == "enum":
        named.setdefault(schema["name"], schema)
        return st.sampled_from(schema["symbols"])
    if t == "array":
        return st.lists(values(schema["items"], named, depth + 1), max_size=0 if depth > 6 else 3)
    if t == "map":
        return st.dictionaries(st.text(max_size=5), values(schema["values"], named, depth + 1), max_size=3)
    if t == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    return values(t, named, depth + 1)


@st.composite
def messages(draw):
    name = draw(st.sampled_from(codec.TOP_LEVEL))
    parsed = codec.load(name).parsed
    datum = draw(values(parsed, dict(parsed.get("__named_schemas", {}))))
    buf = io.BytesIO()
    buf.write(codec.MAGIC + codec.load(name).fingerprint)
    schemaless_writer(buf, parsed, datum)
    return name, buf.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages())
def test_random_values_of_every_schema_decode_as_fastavro_decodes_them(msg):
    name, data = msg
    same(name, data)


# ------------------------------------------------------------------------------------------------ mangled messages
SAMPLES = [(codec.EVENT, encode_event(ev)) for _, ev in sorted(SAMPLE_EVENTS.items())] + [
    (name, codec.codec(name).encode(value)) for name, value in sorted(SAMPLE_VALUES.items())]


@st.composite
def mangled(draw):
    name, data = draw(st.sampled_from(SAMPLES))
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(codec.HEADER_LEN, max(len(data) - 1, codec.HEADER_LEN)))
        action = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "append"]))
        if action == "flip" and where < len(data):
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and where < len(data):
            data[where] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x81]))
        elif action == "cut":
            del data[where:]
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=12))
        elif action == "delete":
            del data[where:where + draw(st.integers(1, 4))]
        else:
            data += draw(st.binary(min_size=1, max_size=12))
    return name, bytes(data)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled())
def test_mangled_messages_give_fastavros_result_or_error(msg):
    same(*msg)


@pytest.mark.parametrize("i", range(len(SAMPLES)))
def test_every_cut_of_every_sample(i):
    name, data = SAMPLES[i]
    for end in range(codec.HEADER_LEN, len(data) + 1):
        same(name, data[:end])
        same(name, data[:end] + b"\x00")


@pytest.mark.parametrize("tail", [b"\x80" * 11 + b"\x00", b"\xff" * 9 + b"\x7f", b"\xff" * 9 + b"\x01", b"\xff" * 10 + b"\x01", b"\x01", b"\x03\xff", b"\x7f"])
def test_over_long_and_negative_varints(tail):
    # a string field's length: negative, huge, or over 10 bytes long; and the same in an enum or union index
    name, data = SAMPLES[0]
    for where in (codec.HEADER_LEN, codec.HEADER_LEN + 37, len(data) - 3):
        same(name, data[:where] + tail + data[where:])
        same(name, data[:where] + tail)


@pytest.mark.parametrize("i", range(len(SAMPLES)))
def test_every_byte_of_every_sample_changed(i):
    name, data = SAMPLES[i]
    for where in range(codec.HEADER_LEN, len(data)):
        for byte in (0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xFF, data[where] ^ 0x40):
            same(name, data[:where] + bytes([byte]) + data[where + 1:])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(0x80, 0xFF), max_size=10), st.integers(0, 0x7F), st.binary(max_size=3))
def test_varints_read_as_fastavro_reads_them(head, last, rest):
    from fastavro import schemaless_reader

    data = bytes(head) + bytes([last]) + rest
    try:
        expected = ("ok", schemaless_reader(io.BytesIO(data), "long", None))
    except Exception as e:  # noqa: BLE001
        expected = ("error", type(e))
    try:
        got = ("ok", codec._read_long(data, 0)[0])
    except Exception:  # noqa: BLE001 - an over-long varint is left to fastavro
        assert len(head) >= 10
        return
    assert got == expected


# ------------------------------------------------------------------------------------------------ generated writers
def fastavro_bytes(name: str, datum) -> bytes:
    buf = io.BytesIO()
    buf.write(codec.MAGIC + codec.load(name).fingerprint)
    schemaless_writer(buf, codec.load(name).parsed, datum)
    return buf.getvalue()


def generated_bytes(name: str, datum) -> bytes:
    parts = [codec.MAGIC + codec.load(name).fingerprint]
    codec.fast_writer(name)(datum, parts.append)
    return b"".join(parts)


def test_every_top_level_schema_has_a_generated_writer():
    for name in codec.TOP_LEVEL:
        assert codec.fast_writer(name) is not None, name
        assert codec.codec(name)._write is not None


@st.composite
def data(draw):
    name = draw(st.sampled_from(codec.TOP_LEVEL))
    parsed = codec.load(name).parsed
    return name, draw(values(parsed, dict(parsed.get("__named_schemas", {}))))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data())
def test_random_values_encode_as_fastavro_encodes_them(nd):
    """What a generated writer writes is byte for byte what fastavro writes; what it refuses, ``Codec.encode`` leaves
    to fastavro (the same bytes or the same error). The plain form of a value (no (name, value) notation: what
    decoding gives and what the workers build) takes the generated path for every schema but the event's, whose
    payload union needs the notation (``encode_event`` gives it)."""
    name, datum = nd
    try:
        want = fastavro_bytes(name, datum)
    except Exception as e:  # noqa: BLE001
        with pytest.raises(type(e)):
            codec.codec(name).encode(datum)
        return
    try:
        assert generated_bytes(name, datum) == want
    except (TypeError, KeyError, OverflowError, AttributeError, struct.error):
        pass  # refused: left to fastavro
    assert codec.codec(name).encode(datum) == want
    plain = reference(name).decode(want)
    if name != codec.EVENT:
        assert generated_bytes(name, plain) == want


def test_the_workers_values_take_the_generated_path():
    for ev in SAMPLE_EVENTS.values():
        tagged = dict(ev, payload=(payload_schemas()[ev["event_type"]], ev["payload"]))  # as encode_event gives it
        assert generated_bytes(codec.EVENT, tagged) == fastavro_bytes(codec.EVENT, tagged)
    for name, value in SAMPLE_VALUES.items():
        assert generated_bytes(name, value) == fastavro_bytes(name, value), name
