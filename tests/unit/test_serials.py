"""Keyed stamp serials (qr.serials): format, verification, forgery rejection, key rotation."""

from __future__ import annotations

import hmac
import pickle
import random
import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from ocop_trace.config import Settings
from qr.digital_link import AI82_CHARS, DigitalLink
from qr.serials import (
    CROCKFORD,
    KEY_LETTERS,
    StampSigner,
    Verification,
    VerificationBatch,
    key_letter,
    normalise_typed,
)

GTIN = "08934588012112"
LOT = "TC-2024-001"
K_OLD = bytes.fromhex("6f636f702d6465762d6b65792d6e6f742d666f722d70726f64756374696f6e")
K_NEW = b"another-32-byte-secret-for-tests"
SIGNER = StampSigner({"dev1": K_OLD}, "dev1", 8)
SERIAL_RE = re.compile(r"(0|[1-9][0-9]*)([A-HJKMNP-TV-Z])([0-9A-HJKMNP-TV-Z]{8})")


def test_format_fits_ai21_and_splits_unambiguously() -> None:
    for index in (0, 1, 9, 10, 123456, SIGNER.max_index):
        s = SIGNER.serial(GTIN, LOT, index)
        m = SERIAL_RE.fullmatch(s)
        assert m, s
        assert int(m[1]) == index and m[2] == SIGNER.letter_of("dev1")
        assert len(s) <= 20 and set(s) <= AI82_CHARS
        assert SIGNER.split(s) == (index, m[2], m[3])
        DigitalLink(GTIN, LOT, s)  # a valid AI 21 value
    assert len(SIGNER.serial(GTIN, LOT, SIGNER.max_index)) == 20
    assert SIGNER.max_index == 10**11 - 1


def test_tag_is_the_documented_hmac() -> None:
    """Pin the construction so a refactor cannot silently change every printed stamp."""
    index = 4242
    msg = b"\x1f".join([b"OCOP-STAMP-1", b"dev1", GTIN.encode(), LOT.encode(), b""])
    msg += b"\0" * (-len(msg) % 64) + str(index).encode()
    mac = hmac.new(K_OLD, msg, "sha256").digest()
    tag = "".join(CROCKFORD[b & 31] for b in mac[:8])
    assert SIGNER.serial(GTIN, LOT, index) == f"{index}{key_letter('dev1')}{tag}"


def test_long_keys_are_hashed_like_hmac_does() -> None:
    long_key = bytes(range(100))
    signer = StampSigner({"K": long_key}, "K", 8)
    msg = b"\x1f".join([b"OCOP-STAMP-1", b"K", GTIN.encode(), LOT.encode(), b""])
    msg += b"\0" * (-len(msg) % 64) + b"7"
    mac = hmac.new(long_key, msg, "sha256").digest()
    assert signer.serial(GTIN, LOT, 7) == "7K" + "".join(CROCKFORD[b & 31] for b in mac[:8])


def test_deterministic_and_bound_to_gtin_lot_index_key() -> None:
    s = SIGNER.serial(GTIN, LOT, 5)
    assert SIGNER.serial(GTIN, LOT, 5) == s
    assert StampSigner({"dev1": K_OLD}, "dev1", 8).serial(GTIN, LOT, 5) == s  # replay: same config, same serial
    assert SIGNER.serial("8934588012112", LOT, 5) == s  # GTIN-13 is the same product
    others = {
        SIGNER.serial(GTIN, LOT + "X", 5),
        SIGNER.serial("08934588012129", LOT, 5),
        StampSigner({"dev1": K_NEW}, "dev1", 8).serial(GTIN, LOT, 5),
    }
    assert s not in others
    tags = {x[-8:] for x in SIGNER.serials(GTIN, LOT, 0, 2000)}
    assert len(tags) == 2000


def test_serials_range_equals_single_serials() -> None:
    assert list(SIGNER.serials(GTIN, LOT, 998, 5)) == [SIGNER.serial(GTIN, LOT, i) for i in range(998, 1003)]
    assert list(SIGNER.serials(GTIN, LOT, 0, 0)) == []


def test_genuine_serials_verify() -> None:
    for s in SIGNER.serials(GTIN, LOT, 0, 50):
        v = SIGNER.verify(GTIN, LOT, s)
        assert v == Verification(True, int(SERIAL_RE.fullmatch(s)[1]), "dev1", "ok")
    assert SIGNER.verify("8934588012112", LOT, SIGNER.serial(GTIN, LOT, 3)).ok


def test_genuine_serial_of_another_lot_or_product_is_rejected() -> None:
    s = SIGNER.serial(GTIN, LOT, 3)
    assert SIGNER.verify(GTIN, "TC-2024-002", s).reason == "bad_tag"
    assert SIGNER.verify("08934588012129", LOT, s).reason == "bad_tag"


def test_200k_random_tags_are_all_rejected() -> None:
    n = 200_000
    rng = random.Random(20240601)
    letter = SIGNER.letter_of("dev1")
    table = bytes(ord(CROCKFORD[b & 31]) for b in range(256))
    tags = rng.randbytes(8 * n).translate(table).decode()
    forged = [f"{i}{letter}{tags[8 * i : 8 * i + 8]}" for i in range(n)]
    batch = SIGNER.verify_many(GTIN, LOT, forged)
    assert isinstance(batch, VerificationBatch) and len(batch) == 200_000
    assert batch.count_ok() == 0
    assert {v.reason for v in batch} == {"bad_tag"}


def test_every_single_character_change_of_a_genuine_serial_is_rejected() -> None:
    genuine = SIGNER.serial(GTIN, LOT, 73105)
    alphabet = sorted(set(CROCKFORD) | set("ILOUilou-_./abcxyz"))
    tried = 0
    for pos in range(len(genuine)):
        for ch in alphabet:
            if ch == genuine[pos]:
                continue
            forged = genuine[:pos] + ch + genuine[pos + 1 :]
            v = SIGNER.verify(GTIN, LOT, forged)
            assert not v.ok, forged
            assert v.reason in ("malformed", "unknown_key", "bad_tag")
            tried += 1
    # also drop / add / swap characters
    for forged in (genuine[1:], genuine[:-1], genuine + "0", "1" + genuine, genuine[::-1], genuine.lower()):
        assert not SIGNER.verify(GTIN, LOT, forged).ok
    assert tried > 200


@pytest.mark.parametrize(
    ("serial", "reason"),
    [
        ("", "malformed"),
        ("NOT-A-SERIAL", "malformed"),
        ("12345678901234567890X", "malformed"),  # over 20 characters
        ("012D0000000A", "malformed"),  # leading zero in the index
        ("D00000000", "malformed"),  # no index
        ("12D0000000", "malformed"),  # tag one short
        ("12D0000000O", "malformed"),  # O is not Crockford
        ("12d00000000", "malformed"),  # lower-case key letter
        ("١٢D00000000", "malformed"),  # non-ASCII digits
        ("12Ü00000000", "malformed"),
        ("1200000000A", "malformed"),  # digit where the key letter goes
    ],
)
def test_malformed(serial: str, reason: str) -> None:
    v = SIGNER.verify(GTIN, LOT, serial)
    assert (v.ok, v.reason) == (False, reason)
    assert SIGNER.split(serial) is None


def test_unknown_key_letter() -> None:
    other = next(c for c in KEY_LETTERS if c != SIGNER.letter_of("dev1"))
    v = SIGNER.verify(GTIN, LOT, f"12{other}00000000")
    assert v == Verification(False, 12, None, "unknown_key")


def test_key_rotation_old_stamps_still_verify() -> None:
    before = StampSigner({"dev1": K_OLD}, "dev1", 8)
    old_serials = list(before.serials(GTIN, LOT, 1, 20))
    after = StampSigner({"dev1": K_OLD, "k2026": K_NEW}, "k2026", 8)
    new_serials = list(after.serials(GTIN, LOT, 21, 20))
    assert after.letter_of("k2026") != after.letter_of("dev1")
    assert all(after.verify(GTIN, LOT, s) == Verification(True, i, "dev1", "ok") for i, s in enumerate(old_serials, 1))
    assert all(after.verify(GTIN, LOT, s).key_id == "k2026" for s in new_serials)
    batch = after.verify_many(GTIN, LOT, old_serials + new_serials)
    assert batch.all_ok and [v.key_id for v in batch] == ["dev1"] * 20 + ["k2026"] * 20
    # replaying a recorded range signed with the old key gives the same serials
    assert list(after.serials(GTIN, LOT, 1, 20, key_id="dev1")) == old_serials
    # once the old key is retired its stamps are no longer recognised
    retired = StampSigner({"k2026": K_NEW}, "k2026", 8)
    assert retired.verify(GTIN, LOT, old_serials[0]).reason == "unknown_key"
    # a different secret under the old id does not verify them either
    assert StampSigner({"dev1": K_NEW}, "dev1", 8).verify(GTIN, LOT, old_serials[0]).reason == "bad_tag"


def test_key_id_is_inside_the_mac() -> None:
    """Two ids with the same secret: a tag made under one never verifies under the other."""
    signer = StampSigner({"A": K_OLD, "B": K_OLD}, "A", 8)
    s = signer.serial(GTIN, LOT, 9)
    swapped = s.replace("9A", "9B", 1)
    assert signer.verify(GTIN, LOT, s).ok
    assert signer.verify(GTIN, LOT, swapped) == Verification(False, 9, "B", "bad_tag")


def test_key_letters() -> None:
    assert key_letter("K") == "K"
    assert key_letter("dev1") in KEY_LETTERS and key_letter("dev1") == key_letter("dev1")
    ids = [f"k{i}" for i in range(40)]
    a, b = next((x, y) for i, x in enumerate(ids) for y in ids[i + 1 :] if key_letter(x) == key_letter(y))
    with pytest.raises(ValueError, match="both map to serial letter"):
        StampSigner({a: K_OLD, b: K_NEW}, a, 8)


@pytest.mark.parametrize(
    ("keys", "active", "tag_len", "message"),
    [
        ({}, "x", 8, "no stamp keys"),
        ({"dev1": K_OLD}, "other", 8, "active key 'other'"),
        ({"dev1": b"short"}, "dev1", 8, "at least 16 bytes"),
        ({"dev1": K_OLD}, "dev1", 5, "tag_len"),
        ({"dev1": K_OLD}, "dev1", 17, "tag_len"),
    ],
)
def test_bad_configuration(keys: dict, active: str, tag_len: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StampSigner(keys, active, tag_len)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="stamp index"):
        SIGNER.serial(GTIN, LOT, -1)
    with pytest.raises(ValueError, match="stamp index"):
        SIGNER.serial(GTIN, LOT, SIGNER.max_index + 1)
    with pytest.raises(ValueError, match="stamp index"):
        list(SIGNER.serials(GTIN, LOT, SIGNER.max_index, 2))
    with pytest.raises(ValueError, match="unknown stamp key"):
        SIGNER.serial(GTIN, LOT, 1, key_id="nope")
    with pytest.raises(ValueError):
        SIGNER.serial("08934588012113", LOT, 1)
    with pytest.raises(ValueError):
        SIGNER.serial(GTIN, "lô 1", 1)


@pytest.mark.parametrize("tag_len", [6, 8, 12, 16])
def test_tag_lengths(tag_len: int) -> None:
    signer = StampSigner({"dev1": K_OLD}, "dev1", tag_len)
    s = signer.serial(GTIN, LOT, signer.max_index)
    assert len(s) == 20 and signer.verify(GTIN, LOT, s).ok
    assert not StampSigner({"dev1": K_OLD}, "dev1", 8 if tag_len != 8 else 6).verify(GTIN, LOT, s).ok


def test_from_settings_and_repr_hides_secrets() -> None:
    cfg = Settings(
        _env_file=None,
        stamp_keys=SecretStr('{"dev1": "%s", "k2": "%s"}' % (K_OLD.hex(), K_NEW.hex())),
        stamp_active_key="k2",
        stamp_tag_len=10,
    )
    signer = StampSigner.from_settings(cfg)
    assert signer.active == "k2" and signer.tag_len == 10 and sorted(signer.key_ids) == ["dev1", "k2"]
    assert K_OLD.hex() not in repr(signer) and "dev1" in repr(signer)
    ns = SimpleNamespace(stamp_key_map=lambda: {"dev1": K_OLD}, stamp_active_key="dev1", stamp_tag_len=8)
    assert StampSigner.from_settings(ns).serial(GTIN, LOT, 1) == SIGNER.serial(GTIN, LOT, 1)


def test_normalise_typed() -> None:
    s = SIGNER.serial(GTIN, LOT, 1234)
    typed = s.lower()[:4] + " " + s.lower()[4:8] + "-" + s.lower()[8:]
    assert normalise_typed(typed) == s
    assert normalise_typed("1o2l3i") == "102131"


serial_like = st.one_of(
    st.text(alphabet=CROCKFORD + "ILOU-a", min_size=0, max_size=22),
    st.integers(0, 10**6).map(lambda i: SIGNER.serial(GTIN, LOT, i)),
    st.integers(0, 10**6).map(lambda i: StampSigner({"k2": K_NEW}, "k2", 8).serial(GTIN, LOT, i)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(serial_like, max_size=600))
def test_verify_many_equals_verify(serials: list[str]) -> None:
    batch = SIGNER.verify_many(GTIN, LOT, serials)
    assert list(batch) == [SIGNER.verify(GTIN, LOT, s) for s in serials]
    assert batch[1:3] == [SIGNER.verify(GTIN, LOT, s) for s in serials[1:3]]
    assert batch.failures() == [(i, v) for i, v in enumerate(batch) if not v.ok]


def test_verify_many_handles_chunks_mixed_keys_and_junk() -> None:
    signer = StampSigner({"dev1": K_OLD, "k2": K_NEW}, "k2", 8)
    mixed = list(signer.serials(GTIN, LOT, 0, 600)) + list(signer.serials(GTIN, LOT, 600, 300, key_id="dev1"))
    random.Random(1).shuffle(mixed)
    mixed[17] = mixed[17][:-1] + ("0" if mixed[17][-1] != "0" else "1")
    mixed.insert(400, None)  # type: ignore[arg-type]
    batch = signer.verify_many(GTIN, LOT, iter(mixed))
    assert len(batch) == 901 and batch.count_ok() == 899
    assert [i for i, _ in batch.failures()] == [17, 400]
    assert batch[400].reason == "malformed" and batch[17].reason == "bad_tag"


# --- verify_many == verify, on batches shaped like real ones (printed ranges with a few bad codes) ----------------
TWO_KEYS = StampSigner({"dev1": K_OLD, "k2": K_NEW}, "dev1", 8)


def _true_mac_serial(index_text: str) -> str:
    """A serial whose tag is the true MAC of ``index_text`` (canonical or not): only the key holder can make one."""
    k = SIGNER._keys["dev1"]
    return index_text + k.letter + SIGNER._tag(SIGNER._state(k, GTIN, LOT), index_text.encode()).decode()


def _edit(serial: str, index: int, edit: tuple) -> object:
    kind = edit[0]
    text = str(index)
    if kind == "char":  # one character replaced (a misprint, a misread, a forgery)
        pos = edit[1] % len(serial)
        return serial[:pos] + edit[2] + serial[pos + 1 :]
    if kind == "text":
        return edit[1]
    if kind == "none":
        return None
    if kind == "other_key":
        return TWO_KEYS.serial(GTIN, LOT, index, key_id="k2")
    if kind == "other_lot":  # same key, same length: only the tag is wrong
        return SIGNER.serial(GTIN, "TC-2024-002", index)
    if kind == "zero_index":  # a true MAC over a non-canonical index of the same length ("0234"): malformed
        return _true_mac_serial("0" + text[1:])
    if kind == "pipe_index":  # a true MAC over an index that is not all digits ("12|4"): malformed
        return _true_mac_serial(text[:-1] + "|" + text[-1:])
    if kind == "drop":  # one character fewer: the chunk no longer has one length
        return serial[1:]
    raise AssertionError(kind)


edits = st.one_of(
    st.tuples(st.just("char"), st.integers(0, 19), st.sampled_from(CROCKFORD + "ILOUa|-\n ١Ü")),
    st.tuples(st.just("text"), st.text(alphabet=CROCKFORD + "ILOUa|-", max_size=22)),
    st.tuples(st.sampled_from(["none", "other_key", "other_lot", "zero_index", "pipe_index", "drop"])),
)


@st.composite
def printed_batches(draw: st.DrawFn) -> list:
    """A range of genuine serials (mostly one length, like a printed roll), some edited, or serial-like junk."""
    first = draw(st.sampled_from([0, 7, 95, 990, 1_000, 99_800, 123_456, 10**6 - 300, SIGNER.max_index - 700]))
    count = draw(st.integers(0, 700))
    serials: list = list(SIGNER.serials(GTIN, LOT, first, count))
    for pos, edit in draw(st.dictionaries(st.integers(0, max(count - 1, 0)), edits, max_size=6)).items():
        if pos < count:
            serials[pos] = _edit(serials[pos], first + pos, edit)
    if draw(st.booleans()):
        serials += draw(st.lists(serial_like, max_size=40))
    return serials


@settings(max_examples=150, deadline=None)
@given(printed_batches(), st.sampled_from([SIGNER, TWO_KEYS]))
def test_verify_many_equals_verify_on_printed_ranges(serials: list, signer: StampSigner) -> None:
    batch = signer.verify_many(GTIN, LOT, serials)
    one_by_one = [signer.verify(GTIN, LOT, s) for s in serials]
    assert len(batch) == len(serials)
    assert list(batch) == one_by_one
    assert batch.count_ok() == sum(v.ok for v in one_by_one)
    assert batch.failures() == [(i, v) for i, v in enumerate(one_by_one) if not v.ok]
    if serials:
        assert batch[-1] == one_by_one[-1] and batch[-len(serials)] == one_by_one[0]
    # a batch split anywhere and joined again, or sent through pickle (a worker process), is the same batch
    cut = len(serials) // 3
    parts = [signer.verify_many(GTIN, LOT, serials[:cut]), signer.verify_many(GTIN, LOT, serials[cut:])]
    assert list(VerificationBatch.concat([pickle.loads(pickle.dumps(p)) for p in parts])) == one_by_one


def test_a_true_mac_over_a_non_canonical_index_is_still_malformed() -> None:
    rng = list(SIGNER.serials(GTIN, LOT, 1000, 256))  # one length: the strided fast path
    rng[5] = _true_mac_serial("0999")
    rng[9] = _true_mac_serial("99|9")
    batch = SIGNER.verify_many(GTIN, LOT, rng)
    assert [(i, v.reason) for i, v in batch.failures()] == [(5, "malformed"), (9, "malformed")]
    assert batch.counts() == {"ok": 254, "malformed": 2, "unknown_key": 0, "bad_tag": 0}
    assert batch[6] == Verification(True, 1006, "dev1", "ok") and batch[255].index == 1255
    too_long = [_true_mac_serial(str(10**11 + i)) for i in range(5)]  # a 12-digit index: 21 characters
    for serials in (too_long, too_long + rng[:3]):
        assert list(SIGNER.verify_many(GTIN, LOT, serials)) == [SIGNER.verify(GTIN, LOT, s) for s in serials]


def test_newlines_inside_serials_do_not_shift_the_cut() -> None:
    """The same-length path cuts the newline-joined chunk by stride: a string holding a newline where a
    separator would be must not pass for the genuine serial in front of it."""
    g = list(SIGNER.serials(GTIN, LOT, 100, 3))
    for serials in ([g[0], g[1] + "\n" + g[2][:-1], ""], [g[0], g[1] + "\n", g[2][:-1]], [g[0] + "\n" + g[1]]):
        assert list(SIGNER.verify_many(GTIN, LOT, serials)) == [SIGNER.verify(GTIN, LOT, s) for s in serials]


def test_batch_index_errors_and_empty_batches() -> None:
    batch = SIGNER.verify_many(GTIN, LOT, list(SIGNER.serials(GTIN, LOT, 10, 300)))
    assert batch.all_ok and [v.index for v in batch[::100]] == [10, 110, 210]
    with pytest.raises(IndexError):
        batch[300]
    with pytest.raises(IndexError):
        batch[-301]
    empty = SIGNER.verify_many(GTIN, LOT, [])
    assert len(empty) == 0 and empty.all_ok and list(VerificationBatch.concat([empty, empty])) == []
    with pytest.raises(ValueError, match="different key sets"):
        VerificationBatch.concat([batch, TWO_KEYS.verify_many(GTIN, LOT, [])])
