"""Keyed stamp serials: unguessable, verifiable without a database row per stamp.

Format (GS1 AI 21, at most 20 characters, all in GS1 character set 82)::

    serial = <index> <key> <tag>
    e.g.      1234   D    7KQ2M9XA        -> "1234D7KQ2M9XA"

* ``index``: the stamp's position in its lot, canonical decimal (``0`` or no leading zero), at most
  ``19 - tag_len`` digits (10^11 stamps per lot with the default ``tag_len`` 8). Decimal keeps serials short for
  the ranges a cooperative prints and lets a person read the number off a label.
* ``key``: one Crockford base32 *letter* (``A-H J K M N P-T V-Z``) naming the signing key. Being a letter it ends the
  digit run, so the split is unambiguous from the left; ``tag`` has a fixed length, so it is also unambiguous from
  the right. A one-letter key id (``"K"``) is used as is; any other key id (``"dev1"``, ``"2026-01"``) gets the
  letter ``KEY_LETTERS[sha256(b"ocop-stamp-key\\x1f" + kid)[0] % 22]``. Two configured keys that land on the same
  letter are refused when the signer is built (rename one).
* ``tag``: ``tag_len`` Crockford base32 characters (``0-9 A-Z`` without ``I L O U``) of

      HMAC-SHA256(key, b"OCOP-STAMP-1" US kid US gtin14 US lot US index)        (US = 0x1F)

  where the n-th character is the symbol of the low 5 bits of the MAC's n-th byte: a truncated MAC of
  ``5 * tag_len`` bits (40 with the default 8: one random guess in 10^12 passes), computed with one C call
  (``bytes.translate``). The key id is inside the MAC'd message, so a tag made under one key never verifies
  under another; the separator cannot occur in any field (GS1 character set 82 has no control characters).

Key rotation: :class:`StampSigner` signs with ``active`` and verifies with every key it holds, so stamps printed
under a retired key stay genuine as long as the key stays in the configuration. Replaying a recorded stamp range
(key id, GTIN, lot, first index, count) regenerates exactly the same serials (``serials(..., key_id=...)``).

Speed: the HMAC inner and outer SHA-256 states are precomputed per (key, GTIN, lot) and cached, so a serial costs
two state copies, two small updates and two digests (the two SHA-256 compressions HMAC needs, ~0.6 µs of the
~0.8 µs a serial costs in ``verify_many`` on the benchmark machine). ``verify_many`` works on chunks of 256 with
C-level calls: index bytes cut out in one ``struct`` call, one :func:`hmac.compare_digest` over the chunk's
tags, indexes parsed only when read (see its docstring). Comparison is constant time (:func:`hmac.compare_digest`).

A copied genuine stamp verifies: clones are caught by scan patterns (DESIGN.md), not by the tag.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from itertools import islice, repeat
from operator import index as index_of
from operator import itemgetter
from struct import Struct
from typing import Any, NamedTuple, overload

from qr.digital_link import check_ai82
from qr.gtin import to_gtin14

try:  # CPython's own SHA-256: much lower per-call overhead than OpenSSL's EVP for 100-byte messages.
    from _sha256 import sha256 as _sha256  # Python <= 3.11
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha2 import sha256 as _sha256  # Python >= 3.12
    except ImportError:
        _sha256 = hashlib.sha256

__all__ = [
    "CROCKFORD",
    "KEY_LETTERS",
    "MAX_SERIAL_LEN",
    "StampSigner",
    "Verification",
    "VerificationBatch",
    "key_letter",
    "normalise_typed",
]

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KEY_LETTERS = "ABCDEFGHJKMNPQRSTVWXYZ"
MAX_SERIAL_LEN = 20
MIN_KEY_BYTES = 16
_DOMAIN = b"OCOP-STAMP-1"
_US = b"\x1f"
# byte -> Crockford symbol of its low 5 bits
_TAG_TABLE = bytes(ord(CROCKFORD[b & 31]) for b in range(256))
_TAG_CHARS = frozenset(CROCKFORD.encode())
_KEY_BYTES = frozenset(KEY_LETTERS.encode())
_TYPED = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None, " ": None})
_CACHE_MAX = 4096
_CHUNK = 256  # small enough to stay in cache; large enough to amortise the map() set-up
_HASH = type(_sha256())


class Verification(NamedTuple):
    """Outcome of checking one serial. ``reason``: ``ok`` | ``malformed`` | ``unknown_key`` | ``bad_tag``."""

    ok: bool
    index: int | None
    key_id: str | None
    reason: str


_MALFORMED = Verification(False, None, None, "malformed")


def key_letter(kid: str) -> str:
    """The one-letter code of key id ``kid`` inside serials (see the module docstring)."""
    if not isinstance(kid, str) or not kid:
        raise ValueError("key id must be a non-empty string")
    if len(kid) == 1 and kid in KEY_LETTERS:
        return kid
    return KEY_LETTERS[hashlib.sha256(b"ocop-stamp-key\x1f" + kid.encode("utf-8")).digest()[0] % len(KEY_LETTERS)]


def normalise_typed(code: str) -> str:
    """A serial typed by a person: upper-cased, spaces and hyphens dropped, ``I``/``L`` read as 1 and ``O`` as 0."""
    return code.strip().upper().translate(_TYPED)


class _Key(NamedTuple):
    kid: str
    letter: str
    inner_pad: bytes
    outer_pad: bytes


class StampSigner:
    """Signs and verifies stamp serials with a set of keys, ``active`` signing new ones.

    ``keys`` maps key id to secret bytes (``Settings.stamp_key_map()``), ``tag_len`` is the number of base32
    characters of MAC in each serial (``Settings.stamp_tag_len``). One instance can serve many threads: its only
    mutable state is a bounded cache of precomputed hash states, and a lost cache race only costs a recomputation.
    """

    def __init__(self, keys: Mapping[str, bytes], active: str, tag_len: int = 8) -> None:
        if not keys:
            raise ValueError("no stamp keys configured")
        if active not in keys:
            raise ValueError(f"active key {active!r} is not among the configured keys {sorted(keys)}")
        if not isinstance(tag_len, int) or not 6 <= tag_len <= 16:
            raise ValueError(f"tag_len must be an integer from 6 to 16, got {tag_len!r}")
        self.tag_len = tag_len
        self.active = active
        self.max_index_digits = MAX_SERIAL_LEN - 1 - tag_len
        self.max_index = 10**self.max_index_digits - 1
        self._keys: dict[str, _Key] = {}
        self._by_letter: dict[int, _Key] = {}
        for kid, secret in keys.items():
            if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_KEY_BYTES:
                raise ValueError(f"stamp key {kid!r} must be at least {MIN_KEY_BYTES} bytes")
            letter = key_letter(kid)
            if ord(letter) in self._by_letter:
                other = self._by_letter[ord(letter)].kid
                raise ValueError(f"stamp keys {other!r} and {kid!r} both map to serial letter {letter!r}: rename one")
            block = bytes(secret) if len(secret) <= 64 else hashlib.sha256(secret).digest()
            block = block.ljust(64, b"\0")
            k = _Key(kid, letter, bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block))
            self._keys[kid] = k
            self._by_letter[ord(letter)] = k
        self._states: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> StampSigner:
        """Build from a ``Settings``-like object (``stamp_key_map()``, ``stamp_active_key``, ``stamp_tag_len``)."""
        return cls(settings.stamp_key_map(), settings.stamp_active_key, settings.stamp_tag_len)

    def __repr__(self) -> str:  # never show secrets
        return f"StampSigner(keys={sorted(self._keys)}, active={self.active!r}, tag_len={self.tag_len})"

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def letter_of(self, kid: str) -> str:
        """The serial letter of configured key ``kid``."""
        return self._keys[kid].letter

    # --- internals ------------------------------------------------------------------------------------------------
    def _state(self, k: _Key, gtin14: str, lot: str) -> tuple[Any, Any]:
        """(inner state after the fixed prefix, outer state) for (key, GTIN, lot), cached; use copies of them."""
        ck = (k.kid, gtin14, lot)
        st = self._states.get(ck)
        if st is None:
            g = to_gtin14(gtin14)
            check_ai82("lot", lot)
            prefix = _US.join((_DOMAIN, k.kid.encode("utf-8"), g.encode("ascii"), lot.encode("ascii"), b""))
            prefix += b"\0" * (-len(prefix) % 64)  # absorb whole blocks now: the per-serial part is one block
            inner = _sha256(k.inner_pad)
            inner.update(prefix)
            outer = _sha256(k.outer_pad)
            if len(self._states) >= _CACHE_MAX:
                self._states.clear()
            st = self._states[ck] = (inner, outer)
        return st

    def _tag(self, st: tuple[Any, Any], index_ascii: bytes) -> bytes:
        i = st[0].copy()
        i.update(index_ascii)
        o = st[1].copy()
        o.update(i.digest())
        return o.digest()[: self.tag_len].translate(_TAG_TABLE)

    def _key(self, key_id: str | None) -> _Key:
        kid = self.active if key_id is None else key_id
        try:
            return self._keys[kid]
        except KeyError:
            raise ValueError(f"unknown stamp key id {kid!r}") from None

    def _check_index(self, index: int) -> None:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= self.max_index:
            raise ValueError(f"stamp index must be an integer from 0 to {self.max_index}, got {index!r}")

    # --- signing --------------------------------------------------------------------------------------------------
    def serial(self, gtin14: str, lot: str, index: int, *, key_id: str | None = None) -> str:
        """The serial of stamp ``index`` of (GTIN, lot), signed with ``key_id`` (default: the active key)."""
        self._check_index(index)
        k = self._key(key_id)
        idx = str(index)
        return idx + k.letter + self._tag(self._state(k, gtin14, lot), idx.encode("ascii")).decode("ascii")

    def serials(
        self, gtin14: str, lot: str, first: int, count: int, *, key_id: str | None = None
    ) -> Iterator[str]:
        """Serials ``first .. first+count-1`` of (GTIN, lot), lazily."""
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        self._check_index(first)
        if count:
            self._check_index(first + count - 1)
        k = self._key(key_id)
        ic, oc = (h.copy for h in self._state(k, gtin14, lot))
        n, table, letter = self.tag_len, _TAG_TABLE, k.letter
        for index in range(first, first + count):
            idx = str(index)
            i = ic()
            i.update(idx.encode("ascii"))
            o = oc()
            o.update(i.digest())
            yield idx + letter + o.digest()[:n].translate(table).decode("ascii")

    # --- verifying ------------------------------------------------------------------------------------------------
    def split(self, serial: str) -> tuple[int, str, str] | None:
        """(index, key letter, tag) if ``serial`` has the serial shape, else None. Does not check the tag."""
        try:
            b = serial.encode("ascii")
        except (AttributeError, UnicodeEncodeError):
            return None
        n1 = self.tag_len + 1
        if not n1 < len(b) <= MAX_SERIAL_LEN:
            return None
        idx, letter, tag = b[:-n1], b[-n1], b[-self.tag_len :]
        if not idx.isdigit() or (idx[0] == 48 and len(idx) > 1) or letter not in _KEY_BYTES:
            return None
        if not _TAG_CHARS.issuperset(tag):
            return None
        return int(idx), chr(letter), tag.decode("ascii")

    def verify(self, gtin14: str, lot: str, serial: str) -> Verification:
        """Is ``serial`` a genuine stamp of (GTIN, lot) under any configured key?"""
        n, n1 = self.tag_len, self.tag_len + 1
        if not isinstance(serial, str) or not serial.isascii() or not n1 < len(serial) <= MAX_SERIAL_LEN:
            return _MALFORMED
        b = serial.encode("ascii")
        idx, letter, tag = b[:-n1], b[-n1], b[-n:]
        if not idx.isdigit() or (idx[0] == 48 and len(idx) > 1) or not _TAG_CHARS.issuperset(tag):
            return _MALFORMED
        k = self._by_letter.get(letter)
        if k is None:
            return Verification(False, int(idx), None, "unknown_key" if letter in _KEY_BYTES else "malformed")
        inner, outer = self._state(k, gtin14, lot)
        i = inner.copy()
        i.update(idx)
        o = outer.copy()
        o.update(i.digest())
        if hmac.compare_digest(o.digest()[:n].translate(_TAG_TABLE), tag):
            return Verification(True, int(idx), k.kid, "ok")
        return Verification(False, int(idx), k.kid, "bad_tag")

    def verify_many(self, gtin14: str, lot: str, serials: Iterable[str]) -> VerificationBatch:
        """:meth:`verify` for many serials of one (GTIN, lot), in order, as a compact :class:`VerificationBatch`.

        Serials go by chunks of 256. A chunk of ASCII strings under one key letter takes the fast path: the index
        bytes are cut out once, the MACs are computed with C-level ``map`` calls over copies of the cached
        (key, GTIN, lot) states, and the chunk's expected tags are compared with its given tags in *one*
        :func:`hmac.compare_digest` over the whole chunk (column by column: the tag characters of every serial
        at position 0, then 1, ...). When all serials in the chunk have the same length (a printed range), they
        are cut out of the newline-joined chunk by stride (one ``struct`` call for the indexes, one slice per
        tag column) and their indexes are only parsed when read. Only a chunk
        where something does not come out genuine is then classified serial by serial, as :meth:`verify` would
        (the MACs are already computed); chunks mixing keys, or holding non-ASCII text or non-strings, go
        through :meth:`verify` one by one. Results live in flat arrays rather than a million tuples (which would
        also wake the garbage collector over and over).
        """
        batch = VerificationBatch(list(self._keys))
        slot = {kid: i for i, kid in enumerate(batch.key_ids)}
        it = iter(serials)
        while chunk := list(islice(it, _CHUNK)):
            self._verify_chunk(gtin14, lot, chunk, batch, slot)
        return batch

    def _verify_chunk(
        self, gtin14: str, lot: str, chunk: list[str], batch: VerificationBatch, slot: dict[str, int]
    ) -> None:
        n, n1, size = self.tag_len, self.tag_len + 1, len(chunk)
        try:
            text = "\n".join(chunk)
        except TypeError:  # not all strings
            text = ""
        if not text.isascii() or not text:
            return self._verify_each(gtin14, lot, chunk, batch, slot)
        raw = text.encode("ascii")
        stride = len(chunk[0]) + 1
        if len(raw) == size * stride - 1 and raw.count(10) == size - 1 == raw[stride - 1 :: stride].count(10):
            # One length (a printed range): every newline is a separator, so the serials can be cut by stride.
            length, digits = stride - 1, stride - 1 - n1
            if not n1 < length <= MAX_SERIAL_LEN:
                return self._verify_each(gtin14, lot, chunk, batch, slot)
            letters = raw[digits::stride]
            k = self._by_letter.get(letters[0])
            if k is None or letters.count(letters[0]) != size:
                return self._verify_each(gtin14, lot, chunk, batch, slot)
            idxs = _index_cutter(stride, digits, size).unpack(raw)
            given = b"".join([raw[c::stride] for c in range(digits + 1, length)])
            well_formed = b"".join([raw[c::stride] for c in range(digits)]).isdigit() and (
                digits == 1 or 48 not in raw[::stride]
            )
        else:
            lengths = set(map(len, chunk))
            letters_s = set(map(itemgetter(-n1), chunk)) if min(lengths) > n1 else ()
            k = self._by_letter.get(ord(letters_s.pop())) if len(letters_s) == 1 else None
            if k is None or max(lengths) > MAX_SERIAL_LEN:
                return self._verify_each(gtin14, lot, chunk, batch, slot)
            raw = b""
            idxs = list(map(str.encode, map(itemgetter(slice(None, -n1)), chunk)))
            tags = "".join(map(itemgetter(slice(-n, None)), chunk)).encode("ascii")
            given = b"".join([tags[c::n] for c in range(n)])
            # all digits (so "|" cannot occur in an index), and no index "0..." of more than one digit
            well_formed = b"".join(idxs).isdigit() and _LEADING_ZERO.search(b"|" + b"|".join(idxs)) is None
        inner, outer = self._state(k, gtin14, lot)
        ins = list(map(_COPY, repeat(inner, size)))
        deque(map(_UPDATE, ins, idxs), maxlen=0)
        outs = list(map(_COPY, repeat(outer, size)))
        deque(map(_UPDATE, outs, map(_DIGEST, ins)), maxlen=0)
        macs = b"".join(map(_DIGEST, outs))
        expected = b"".join([macs[c::32] for c in range(n)]).translate(_TAG_TABLE)
        key_slot = slot[k.kid]
        if hmac.compare_digest(expected, given) and well_formed:
            if raw:
                batch._add_run(raw, stride, digits, size, key_slot)
            else:
                batch._reason += bytes(size)  # 0 = ok
                batch._index.extend(map(int, idxs))
                batch._key += bytes((key_slot,)) * size
            return
        # Some did not come out genuine: classify each as verify() would (the MACs are already computed).
        reasons, indexes, keys = batch._reason, batch._index, batch._key
        for j, s in enumerate(chunk):
            idx = idxs[j]
            tag = s[-n:].encode("ascii")
            if not idx.isdigit() or (idx[0] == 48 and len(idx) > 1) or not _TAG_CHARS.issuperset(tag):
                reasons.append(1)  # malformed
                indexes.append(-1)
                keys.append(_NO_KEY)
            else:
                good = hmac.compare_digest(macs[32 * j : 32 * j + n].translate(_TAG_TABLE), tag)
                reasons.append(0 if good else 3)  # ok | bad_tag
                indexes.append(int(idx))
                keys.append(key_slot)

    def _verify_each(
        self, gtin14: str, lot: str, chunk: list[str], batch: VerificationBatch, slot: dict[str, int]
    ) -> None:
        for s in chunk:
            batch._add(self.verify(gtin14, lot, s), slot)


_COPY, _UPDATE, _DIGEST = _HASH.copy, _HASH.update, _HASH.digest
_LEADING_ZERO = re.compile(rb"\|0[0-9]")


@lru_cache(maxsize=64)
def _index_cutter(stride: int, digits: int, size: int) -> Struct:
    """Cuts the index out of each of ``size`` newline-joined serials of ``stride - 1`` characters, in one C call."""
    return Struct(f"{digits}s{stride - digits}x" * (size - 1) + f"{digits}s{stride - 1 - digits}x")


_REASONS = ("ok", "malformed", "unknown_key", "bad_tag")
_REASON_CODE = {r: i for i, r in enumerate(_REASONS)}
_NO_KEY = 255
_LAZY = -2  # in VerificationBatch._index: parse the index from the stored run when read
_LAZY_ROW = array("q", [_LAZY] * _CHUNK).tobytes()


class VerificationBatch(Sequence[Verification]):
    """The outcome of :meth:`StampSigner.verify_many`: a read-only sequence of :class:`Verification`, stored flat.

    Genuine runs of same-length serials keep their joined text and parse an index only when it is read.
    Batches pickle (a worker process can send one back) and :meth:`concat` joins the parts of one split batch.
    """

    def __init__(self, key_ids: list[str]) -> None:
        self.key_ids = key_ids
        self._reason = bytearray()
        self._index = array("q")  # -1: no index, _LAZY: in a run
        self._key = bytearray()
        self._run_at: list[int] = []  # first position of each genuine same-length run, ascending
        self._runs: list[tuple[bytes, int, int]] = []  # (its serials newline-joined, stride, index digits)

    def _add(self, v: Verification, slot: dict[str, int]) -> None:
        self._reason.append(_REASON_CODE[v.reason])
        self._index.append(-1 if v.index is None else v.index)
        self._key.append(_NO_KEY if v.key_id is None else slot[v.key_id])

    def _add_run(self, raw: bytes, stride: int, digits: int, size: int, key_slot: int) -> None:
        self._run_at.append(len(self._reason))
        self._runs.append((raw, stride, digits))
        self._reason += bytes(size)  # 0 = ok
        self._index.frombytes(_LAZY_ROW[: 8 * size])
        self._key += bytes((key_slot,)) * size

    @classmethod
    def concat(cls, parts: Sequence[VerificationBatch]) -> VerificationBatch:
        """One batch of ``parts`` in order (results of consecutive slices of one list, same key ids)."""
        out = cls(list(parts[0].key_ids) if parts else [])
        for p in parts:
            if p.key_ids != out.key_ids:
                raise ValueError("cannot join batches verified under different key sets")
            base = len(out._reason)
            out._run_at += [base + a for a in p._run_at]
            out._runs += p._runs
            out._reason += p._reason
            out._index += p._index
            out._key += p._key
        return out

    def __len__(self) -> int:
        return len(self._reason)

    @overload
    def __getitem__(self, i: int) -> Verification: ...
    @overload
    def __getitem__(self, i: slice) -> list[Verification]: ...
    def __getitem__(self, i: int | slice) -> Verification | list[Verification]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = index_of(i)
        reason, index, key = self._reason[i], self._index[i], self._key[i]  # IndexError when out of range
        if index == _LAZY:
            r = bisect_right(self._run_at, i % len(self._reason)) - 1
            raw, stride, digits = self._runs[r]
            at = (i % len(self._reason) - self._run_at[r]) * stride
            index = int(raw[at : at + digits])
        return Verification(
            reason == 0, None if index < 0 else index, None if key == _NO_KEY else self.key_ids[key], _REASONS[reason]
        )

    @property
    def all_ok(self) -> bool:
        """True if every serial in the batch is genuine."""
        return not any(self._reason)

    def count_ok(self) -> int:
        return self._reason.count(0)

    def counts(self) -> dict[str, int]:
        """How many serials came out with each reason (``ok``, ``malformed``, ``unknown_key``, ``bad_tag``)."""
        return {r: self._reason.count(code) for code, r in enumerate(_REASONS)}

    def failures(self) -> list[tuple[int, Verification]]:
        """(position, result) of every serial that is not genuine."""
        return [(j, self[j]) for j, r in enumerate(self._reason) if r]

    def __repr__(self) -> str:
        return f"<VerificationBatch {len(self)} serials, {self.count_ok()} ok>"
