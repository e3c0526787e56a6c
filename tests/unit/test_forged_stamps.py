"""Fault suite (issue 9, §3), forged stamps: 1,000,000 forged serials are all rejected by
``StampSigner.verify_many`` and every genuine serial of an issued range is accepted. Pure and fast (a few seconds).

The forgeries are what a counterfeiter can actually make, 200,000 of each:

* *guessed tags*: the right shape for the lot (an index inside the issued range, the active key's letter, a random
  Crockford tag) — the forger knows the format and the range but not the key;
* *transplanted*: genuine serials of another lot of the same product (copied from a real pack of another lot);
* *foreign key*: serials computed with the same key id but another secret (a leaked format, a guessed key);
* *altered*: a genuine serial with one tag character changed, or its index moved to another issued position;
* *shaped junk*: random index digits, any key letter (known or not), random tags — what a scanner of fake labels
  sends (malformed, unknown key or bad tag).

The forgeries come from a fixed seed, so the test is deterministic; a random 40-bit tag matches a given serial
with probability 2^-40, so the whole million is expected to hold no genuine serial by chance (~10^-6).
"""

from __future__ import annotations

import random
import time
from collections import Counter

from ocop_trace.config import Settings
from qr.serials import CROCKFORD, KEY_LETTERS, StampSigner

GTIN = "08936045200018"
LOT = "TC-2026-T01"
OTHER_LOT = "TC-2026-T02"
ISSUED_FIRST, ISSUED_COUNT = 1_000, 100_000  # one issued range: stamps 1000 .. 100999
PER_KIND = 200_000


def _signer() -> StampSigner:
    return StampSigner.from_settings(Settings(_env_file=None))


def _random_tags(rng: random.Random, n: int, tag_len: int) -> list[str]:
    """n random Crockford tags (bytes -> low 5 bits -> symbol, one C call per tag)."""
    table = bytes(ord(CROCKFORD[b & 31]) for b in range(256))
    blob = rng.randbytes(n * tag_len).translate(table).decode("ascii")
    return [blob[i:i + tag_len] for i in range(0, n * tag_len, tag_len)]


def _forgeries(signer: StampSigner, genuine: list[str]) -> dict[str, list[str]]:
    rng = random.Random(20261123)
    n = signer.tag_len
    letter = signer.letter_of(signer.active)
    issued = range(ISSUED_FIRST, ISSUED_FIRST + ISSUED_COUNT)

    guessed = [f"{rng.choice(issued)}{letter}{tag}" for tag in _random_tags(rng, PER_KIND, n)]

    transplanted = list(signer.serials(GTIN, OTHER_LOT, ISSUED_FIRST, PER_KIND))

    foreign = StampSigner({signer.active: rng.randbytes(32)}, signer.active, n)
    foreign_key = list(foreign.serials(GTIN, LOT, ISSUED_FIRST, PER_KIND))

    altered = []
    for i in range(PER_KIND):
        s = genuine[i % len(genuine)]
        if i % 2:  # one tag character changed to another symbol
            pos = len(s) - 1 - rng.randrange(n)
            old = s[pos]
            new = CROCKFORD[(CROCKFORD.index(old) + 1 + rng.randrange(len(CROCKFORD) - 1)) % len(CROCKFORD)]
            altered.append(s[:pos] + new + s[pos + 1:])
        else:  # the genuine tag under another issued index
            idx, key, tag = signer.split(s)
            other = ISSUED_FIRST + (idx - ISSUED_FIRST + 1 + rng.randrange(ISSUED_COUNT - 1)) % ISSUED_COUNT
            altered.append(f"{other}{key}{tag}")

    junk_tags = _random_tags(rng, PER_KIND, n)
    shaped_junk = [f"{rng.randrange(10 ** rng.randint(1, 11))}{rng.choice(KEY_LETTERS)}{tag}" for tag in junk_tags]

    return {"guessed": guessed, "transplanted": transplanted, "foreign_key": foreign_key, "altered": altered,
            "shaped_junk": shaped_junk}


def test_a_million_forged_serials_are_all_rejected_and_every_genuine_one_accepted() -> None:
    signer = _signer()
    genuine = list(signer.serials(GTIN, LOT, ISSUED_FIRST, ISSUED_COUNT))
    forged = _forgeries(signer, genuine)
    assert sum(map(len, forged.values())) == 1_000_000

    t0 = time.perf_counter()
    ok = signer.verify_many(GTIN, LOT, genuine)
    results = {kind: signer.verify_many(GTIN, LOT, serials) for kind, serials in forged.items()}
    elapsed = time.perf_counter() - t0

    # every genuine stamp of the issued range is accepted, with its index and key
    assert len(ok) == ISSUED_COUNT and ok.all_ok
    assert [v.index for v in ok[:3]] == [ISSUED_FIRST, ISSUED_FIRST + 1, ISSUED_FIRST + 2]
    assert ok[-1].index == ISSUED_FIRST + ISSUED_COUNT - 1
    assert {ok[i].key_id for i in (0, ISSUED_COUNT // 2, ISSUED_COUNT - 1)} == {signer.active}

    # every forgery is rejected (all 1,000,000), and a sample says why, as its kind implies
    for kind, res in results.items():
        assert len(res) == PER_KIND and res.count_ok() == 0, (kind, res)
    sample = range(0, PER_KIND, 97)
    for kind in ("guessed", "transplanted", "foreign_key", "altered"):
        reasons = Counter(results[kind][i].reason for i in sample)
        assert reasons == Counter({"bad_tag": len(sample)}), (kind, reasons)
    junk = Counter(results["shaped_junk"][i].reason for i in sample)
    assert set(junk) == {"bad_tag", "unknown_key"}, junk  # the active letter (bad tag) or another (unknown key)
    print(f"verified {ISSUED_COUNT + 5 * PER_KIND:,} serials in {elapsed:.2f}s")  # a figure, not an assertion
