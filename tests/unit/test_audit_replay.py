"""The auditor's replay machinery without a broker: the batch acceptance gives what accept() gives per message."""

from typing import NamedTuple

import pytest

from consumers.audit import replay as R
from schemas import codec, topics
from schemas.events import canonical_hash, encode_event, event_key
from streams.accept import Source, accept
from tests.samples import SAMPLE_EVENTS


class Rec(NamedTuple):  # the fields of a consumer record the replay reads (kafka-python's and aiokafka's have them)
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list | tuple


def records(topic: str) -> list[Rec]:
    out = []
    for i, (t, ev) in enumerate(sorted(SAMPLE_EVENTS.items())):
        out.append(Rec(topic, 1, i, 1_700_000_000_000 + i, event_key(ev).encode(), encode_event(ev),
                       [("source", b"cli")] if i % 2 else []))
    ev = SAMPLE_EVENTS["harvest"]
    out += [
        Rec(topic, 2, 100, 1, b"not-the-lot", encode_event(ev), []),  # wrong key
        Rec(topic, 2, 101, 1, None, encode_event(ev), ()),  # no key
        Rec(topic, 2, 102, 1, b"k", b"garbage", [("h", None)]),  # undecodable
        Rec(topic, 2, 103, 1, b"k", None, []),  # a tombstone
        Rec(topic, 2, 104, 1, b"k", codec.MAGIC + b"\xff" * 8 + b"\x00", []),  # unknown schema
    ]
    return out


@pytest.mark.parametrize("spec", [topics.SUPPLY, topics.MASTER])
@pytest.mark.parametrize("hashes", [True, False])
def test_accept_rows_is_accept_per_message(spec, hashes):
    recs = records(spec.full("pfx."))
    rows = R.accept_rows(spec.name, recs, hashes)
    assert len(rows) == len(recs)
    for r, row in zip(recs, rows):
        ev, bad = accept(Source(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers)), spec)
        key = r.key.decode() if r.key is not None else None
        if ev is None:
            expected = (spec.name, r.partition, r.offset, r.timestamp, key, None, f"{bad['error']}: {bad['reason']}",
                        None)
        else:
            expected = (spec.name, r.partition, r.offset, r.timestamp, key, ev, None,
                        canonical_hash(ev) if hashes else None)
        assert row == expected
        assert R.accept_record(spec.name, r, hashes) == R.Msg(*expected)
    assert any(row[5] is None for row in rows) and any(row[5] is not None for row in rows)


def test_source_is_still_built_positionally_and_by_name():
    a = Source("t", 1, 2, b"k", b"v")
    assert a.headers == () and a == Source(topic="t", partition=1, offset=2, key=b"k", value=b"v", headers=())


class Text(str):  # a value marshal cannot encode
    pass


def test_a_batch_crosses_from_a_reader_to_the_parent_unchanged():
    """The readers send their rows with marshal (pickle for what marshal cannot encode): same values, same types."""
    import marshal
    import pickle

    rows = R.accept_rows(topics.SUPPLY.name, records(topics.SUPPLY.full("pfx.")), True)
    assert any(row[5] is None for row in rows) and any(row[5] is not None for row in rows)
    kind, body = R._pack(rows)
    assert kind == "marshal" and marshal.loads(body) == rows
    assert repr(marshal.loads(body)) == repr(rows)  # 1.0 stays a float, True a bool, tuples tuples
    odd = [(*rows[0][:4], Text("k"), *rows[0][5:])]
    kind, body = R._pack(odd)
    assert kind == "pickle" and pickle.loads(body) == odd and type(pickle.loads(body)[0][4]) is Text
