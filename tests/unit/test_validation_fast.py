"""The fast paths of schemas.validation agree with the definitions they shortcut, on every input, valid or not.

* ``is_valid`` (the predicate generated per schema) says yes only to what the closures accept, and to everything
  they accept that is made of plain JSON types; ``validate`` raises exactly the closures' error.
* ``parse_datetime`` (remembered results) returns and raises what ``parse_datetime_uncached`` does.
* the canonical-UUID shortcut only lets through what ``uuid.UUID`` takes.
"""

import copy
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas import codec
from schemas import validation as v
from schemas.events import validate_event
from tests.samples import SAMPLE_EVENTS, SAMPLE_VALUES

TOPS = sorted(SAMPLE_VALUES) + [codec.EVENT]
SAMPLES = [(codec.EVENT, ev) for _, ev in sorted(SAMPLE_EVENTS.items())] + sorted(SAMPLE_VALUES.items())


def closures(top, value):
    """The reference: the closures alone. None if valid, else (field, reason) or the exception type."""
    try:
        v._compiled(top)(value)
    except v.Invalid as e:
        return (e.field, e.reason)
    except Exception as e:  # noqa: BLE001 - the same non-Invalid errors must come out of both
        return type(e)
    return None


def via_validate(top, value):
    try:
        v.validate(top, value)
    except v.Invalid as e:
        return (e.field, e.reason)
    except Exception as e:  # noqa: BLE001
        return type(e)
    return None


def plain(value) -> bool:
    """Made of exactly dict / list / str / int / float / bool / None (what the Avro decoder and JSON give)."""
    if type(value) is dict:
        return all(type(k) is str and plain(x) for k, x in value.items())
    if type(value) is list:
        return all(plain(x) for x in value)
    return type(value) in (str, int, float, bool, type(None))


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, x in value.items():
            yield from paths(x, (*prefix, k))
    elif isinstance(value, list):
        for i, x in enumerate(value):
            yield from paths(x, (*prefix, i))


def agree(top, value):
    ref = closures(top, value)
    fast = v.is_valid(top, value)
    if fast:
        assert ref is None, f"fast path accepted what the closures reject: {ref}"
    if ref is None and plain(value):
        assert fast, "fast path rejected a valid plain value"
    assert via_validate(top, value) == ref


# Replacement values: the kinds of text the checks look at, wrong types, edge numbers.
SPECIAL = [
    None, True, False, 0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**400,
    0.0, -0.0, 1.5, -1.5, 90.0, 90.5, -180.5, 1e308, float("inf"), float("-inf"), float("nan"), b"x", [], [1], ["x"],
    {}, {"x": 1}, (), ("x",),
    "", " ", "x", "x ", " x", "a\n", "LOT-1\n", "LOT 1", "A" * 20, "A" * 21, "A" * 64, "A" * 65, "é", "\x00", "\t",
    "x" * 500, "x" * 501, " " * 3,
    "2026-11-20", "1999-01-01", "2999-12-31", "2026-02-30", "20261120", "2026-11-20T07:30:00+07:00",
    "2026-11-20T07:30:00", "2026-11-20T07:30:00Z", "2026-11-20 07:30:00+07:00", "2026-11-20T07:30:00.123456+07:00",
    "2026-11-20T07:30+07:00", "2026-11-20T24:00:00+07:00", "2026-11-20T07:30:00+07:00\n", "1999-01-01T00:00:00+00:00",
    "12345678-1234-4234-8234-123456789abc", "12345678-1234-4234-8234-123456789ABC",
    "{12345678-1234-4234-8234-123456789abc}", "urn:uuid:12345678-1234-4234-8234-123456789abc",
    "123456781234423482341234567890ab", "12345678-1234-4234-8234-123456789abg",
    "12345678-1234-4234-8234-123456789abc\n", "1234_5678-1234-4234-8234-123456789abc",
    "08938505974194", "08938505974195", "12345670", "abc", "cooperative", "harvest", "kg", "t", "pass", "fail",
]
ODD = st.one_of(
    st.sampled_from(SPECIAL), st.integers(), st.integers(-(2**64), 2**64), st.floats(allow_nan=True),
    st.text(max_size=30), st.binary(max_size=5), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def single_changes(value):
    """Every value with one change: each field or item replaced by each special value, removed, or an extra field."""
    for p in [p for p in paths(value) if p]:
        for new in SPECIAL:
            out = copy.deepcopy(value)
            parent = out
            for k in p[:-1]:
                parent = parent[k]
            parent[p[-1]] = copy.deepcopy(new)
            yield out
        out = copy.deepcopy(value)
        parent = out
        for k in p[:-1]:
            parent = parent[k]
        del parent[p[-1]]
        yield out
        if isinstance(parent, dict):
            parent["unknown_field"] = 1
            yield out


@st.composite
def mutated(draw):
    top, value = draw(st.sampled_from(SAMPLES))
    value = copy.deepcopy(value)
    for _ in range(draw(st.integers(1, 3))):
        ps = [p for p in paths(value) if p]
        if not ps:
            break
        p = draw(st.sampled_from(ps))
        parent = value
        for k in p[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(["set", "set", "set", "delete", "extra", "wrap"]))
        if action == "set":
            parent[p[-1]] = draw(ODD)
        elif action == "delete":
            del parent[p[-1]]
        elif action == "extra" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "payload", "lot", "event_id"]))] = draw(ODD)
        elif action == "wrap":
            parent[p[-1]] = draw(st.sampled_from([tuple, list, lambda x: [x], lambda x: {"x": x}]))(parent[p[-1]]) \
                if isinstance(parent[p[-1]], (list, tuple)) else [parent[p[-1]]]
    return top, value


@pytest.mark.parametrize("top,value", SAMPLES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(SAMPLES)])
def test_every_sample_is_valid_on_the_fast_path(top, value):
    assert v.is_valid(top, value)
    agree(top, value)


@pytest.mark.parametrize("top,value", SAMPLES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(SAMPLES)])
def test_fast_path_agrees_with_the_closures_on_every_single_change(top, value):
    n = 0
    for changed in single_changes(value):
        agree(top, changed)
        n += 1
    assert n > 100


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fast_path_agrees_with_the_closures_on_mangled_values(case):
    agree(*case)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TOPS), st.one_of(ODD, st.lists(ODD, max_size=3)))
def test_fast_path_agrees_on_values_of_any_type(top, value):
    agree(top, value)


def test_validate_event_is_unchanged_on_mangled_events():
    ev = copy.deepcopy(SAMPLE_EVENTS["transform"])
    ev["payload"]["outputs"][0]["lot"] = ev["payload"]["inputs"][0]["lot"]
    with pytest.raises(v.Invalid) as e:
        validate_event(ev)
    assert e.value.field == "payload.outputs"
    ev = copy.deepcopy(SAMPLE_EVENTS["harvest"])
    ev["occurred_at"] = "2026-11-22T07:30:00+07:00"  # more than a day after recorded_at
    with pytest.raises(v.Invalid, match="in the future"):
        validate_event(ev)


def test_subclasses_and_tuples_go_to_the_closures():
    class S(str):
        pass

    ev = copy.deepcopy(SAMPLE_EVENTS["harvest"])
    ev["event_id"] = S(ev["event_id"])
    assert closures(codec.EVENT, ev) is None
    v.validate(codec.EVENT, ev)  # valid: the closures say so when the fast path does not know
    ev = copy.deepcopy(SAMPLE_EVENTS["area"])
    ev["payload"]["crops"] = tuple(ev["payload"]["crops"])
    agree(codec.EVENT, ev)


# ------------------------------------------------------------------------------------------------ date-times
def outcome(f, value):
    try:
        return ("ok", f(value))
    except Exception as e:  # noqa: BLE001
        return ("error", type(e), str(e))


def same_datetime(value):
    slow = outcome(v.parse_datetime_uncached, value)
    for _ in range(2):  # first (maybe remembered now) and second (remembered)
        fast = outcome(v.parse_datetime, value)
        assert fast == slow
        if fast[0] == "ok":  # the same instant, offset and wall time, not only an equal one
            assert fast[1].utcoffset() == slow[1].utcoffset() and fast[1].isoformat() == slow[1].isoformat()


@st.composite
def iso_like(draw):
    dt = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    offset = draw(st.one_of(st.none(), st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timedelta(minutes=m))))
    if offset is not None:
        dt = dt.replace(tzinfo=timezone(offset))
    text = dt.isoformat(timespec=draw(st.sampled_from(["auto", "seconds", "milliseconds", "microseconds", "minutes"])))
    mangle = draw(st.sampled_from(["none", "none", "Z", "space", "cut", "char", "nl"]))
    if mangle == "Z" and text.endswith("+00:00"):
        text = text[:-6] + "Z"
    elif mangle == "space":
        text = text.replace("T", " ")
    elif mangle == "cut":
        text = text[:draw(st.integers(0, len(text)))]
    elif mangle == "char":
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + draw(st.characters()) + text[i + 1:]
    elif mangle == "nl":
        text += "\n"
    return text


@settings(max_examples=1000, deadline=None)
@given(st.one_of(iso_like(), st.text(max_size=40), st.from_regex(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,7})?)?"
                                                                  r"([+-]\d\d:?\d\d|Z)?", fullmatch=True)))
@example("2026-11-20T07:30:00+07:00")
@example("2026-11-20T07:30:00")
@example("2026-11-20")
@example("")
def test_remembered_datetimes_agree_with_parsing_on_any_text(text):
    same_datetime(text)


@pytest.mark.parametrize("value", [None, 1, 1.5, b"2026-11-20T07:30:00+07:00", ["2026-11-20T07:30:00+07:00"], {}])
def test_remembered_datetimes_agree_on_other_types(value):
    same_datetime(value)


@settings(max_examples=500, deadline=None)
@given(iso_like(), iso_like())
def test_remembering_one_text_changes_nothing_for_another(first, second):
    outcome(v.parse_datetime, first)
    same_datetime(second)
    for variant in (first.strip(), first + " ", first[:-1], first.upper(), first.replace("+", "-"), first[:19]):
        same_datetime(variant)


def test_remembered_datetimes_of_a_str_subclass_and_when_full(monkeypatch):
    class S(str):
        pass

    same_datetime(S("2026-11-20T07:30:00+07:00"))
    monkeypatch.setattr(v, "_DATETIMES_MAX", 3)
    texts = [f"2026-11-2{i}T07:30:00+07:00" for i in range(8)]
    for t in texts * 2:
        same_datetime(t)
    assert len(v._DATETIMES) <= 3


# ------------------------------------------------------------------------------------------------ UUIDs
@settings(max_examples=500, deadline=None)
@given(st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), st.text(max_size=40),
                 st.from_regex(r"[0-9a-fA-F-]{30,40}", fullmatch=True)))
def test_the_canonical_uuid_shortcut_only_takes_what_uuid_takes(text):
    if v._CANONICAL_UUID.fullmatch(text):
        uuid.UUID(text)  # never raises
    assert (v._check_uuid(text) is None) == (v.is_valid(codec.EVENT, {**SAMPLE_EVENTS["sell"], "event_id": text}))


def test_fast_predicate_source_is_one_function_per_record():
    c = v._FastCompiler(codec.EVENT)
    c.build()
    n_records = sum(1 for s in v._named_types(codec.EVENT).values() if s.get("type") == "record")
    assert c.source.count("\ndef _r") + c.source.startswith("def _r") == n_records
