"""Tamper evidence on in-memory logs: every chain equals the workers' one; alter / drop / reorder / inject are each
detected and located at the exact event; checkpoints sign, verify, and catch a rewritten history."""

from __future__ import annotations

import copy
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.audit.replay import Msg, fold
from consumers.audit.verify import (MASTER_PREFIX, check_checkpoint, decode_heads, encode_heads, head_lines,
                                    join_parts, make_checkpoint, parse_lines, root_of, split_parts, verify_log,
                                    walk)
from schemas import codec, topics
from schemas.events import MASTER_TYPES, canonical_hash, event_key, new_event

SUBJECT, AREA, GTIN = "HTX-HAODAT", "VN-TN-TC-001", "08938505974194"
NS = uuid.UUID("6a3c0f4e-1111-4222-8333-444455556666")


def _ev(i: int, t: str, p: dict, day: int = 1) -> dict:
    at = f"2026-03-{day:02d}T08:{i % 60:02d}:00+07:00"
    return new_event(t, p, subject_id=SUBJECT, user="lan", facility="FAC-1", occurred_at=at, recorded_at=at,
                     event_id=str(uuid.uuid5(NS, str(i))))


def _q() -> dict:
    return {"value": 100.0, "unit": "kg"}


def history() -> list[dict]:
    evs = [
        _ev(1, "area", {"area_code": AREA, "owner_subject_id": SUBJECT, "name": "", "crops": ["chè"], "area_ha": 1.0,
                        "location": [{"lat": 21.6, "lon": 105.8}], "certifications": [], "valid_from": "2024-01-01",
                        "valid_to": None, "revoked": False}),
        _ev(2, "product", {"gtin": GTIN, "owner_subject_id": SUBJECT, "name_vi": "Chè", "name_en": "Tea",
                           "ocop_group": "beverage", "net_content": None, "shelf_life_days": None}),
    ]
    for n, lot in enumerate(("L-A", "L-B")):
        base = 10 + n * 20
        evs += [
            _ev(base, "harvest", {"lot": lot, "area_code": AREA, "crop": "chè", "quantity": _q(),
                                  "crate_tags": ["C1"]}, day=1),
            _ev(base + 1, "receive", {"lot": lot, "quantity": _q(), "from_facility": "FARM", "document_ref": "PN"}, 2),
            _ev(base + 2, "inspect", {"lot": lot, "lab": "Lab", "result": "pass", "parameters": [],
                                      "certificate_no": "KN-1"}, 3),
            _ev(base + 3, "package", {"lot": lot, "gtin": GTIN, "units": 100, "quantity": None,
                                      "production_date": "2026-03-04", "expiry_date": "2027-03-04",
                                      "stamps_requested": 0}, 4),
            _ev(base + 4, "ship", {"lot": lot, "units": 40, "to_facility": "POS-1", "carrier": None,
                                   "document_ref": None}, 5),
            _ev(base + 5, "ship", {"lot": lot, "units": 30, "to_facility": "POS-2", "carrier": None,
                                   "document_ref": None}, 6),
            _ev(base + 6, "sell", {"lot": lot, "units": 5, "point_of_sale": "POS-1"}, 7),
        ]
    evs.append(_ev(99, "transform", {"process": "blending", "inputs": [{"lot": "L-A", "quantity": _q()},
                                                                       {"lot": "L-B", "quantity": _q()}],
                                     "outputs": [{"lot": "L-AB", "quantity": {"value": 150.0, "unit": "kg"}}],
                                     "duration_hours": None}, 8))
    return evs


def as_log(events: list[dict]) -> list[Msg]:
    """One partition per topic, offsets in list order (enough for chains: a key lives in one partition)."""
    out, offsets = [], {}
    for ev in events:
        topic = topics.MASTER.name if ev["event_type"] in MASTER_TYPES else topics.SUPPLY.name
        off = offsets.get(topic, 0)
        offsets[topic] = off + 1
        out.append(Msg(topic, 0, off, 0, event_key(ev), ev, None, canonical_hash(ev)))
    return out


def ends(log: list[Msg]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in log:
        out[f"{m.topic}:{m.partition}"] = max(out.get(f"{m.topic}:{m.partition}", 0), m.offset + 1)
    return out


def live_of(events: list[dict]) -> dict[str, dict]:
    return fold(as_log(events))[1]


def pos(events: list[dict], event_type: str, lot: str = "L-A", nth: int = 0) -> int:
    return [i for i, e in enumerate(events) if e["event_type"] == event_type and e["payload"].get("lot") == lot][nth]


# ---------------------------------------------------------------------------------------------------------------

def test_walk_reproduces_the_workers_chains():
    evs = history()
    evs.insert(5, copy.deepcopy(evs[3]))  # a duplicate (producer retry): skipped by both
    log = as_log(evs)
    chains = walk(log)
    records = fold(log)[1]
    for lot, rec in records.items():
        assert chains.head(lot) == (rec["chain_length"], rec["chain_head"]), lot
    assert chains.head("L-AB")[0] == 1 and chains.head("L-A")[0] == 7  # the transform is keyed by its output
    assert chains.head(MASTER_PREFIX + GTIN)[0] == 1
    assert not chains.conflicts


def test_clean_log_verifies_clean():
    evs = history()
    rep = verify_log(as_log(evs), live=live_of(evs))
    assert rep.clean and rep.breaks == [] and rep.chains >= 3 and rep.unanchored == 2  # master keys: no live anchor


def test_altered_event_is_located():
    evs = history()
    live = live_of(evs)
    bad = copy.deepcopy(evs)
    i = pos(bad, "receive")
    bad[i]["payload"]["quantity"]["value"] = 90.0  # same event id, changed quantity (topic rewritten in place)
    rep = verify_log(as_log(bad), live=live)
    assert not rep.clean
    (br,) = rep.breaks
    assert (br.key, br.kind, br.event_id, br.position) == ("L-A", "altered", evs[i]["event_id"], 2)
    assert "quantity" in br.detail and br.ref == f"ocop.events.supply:0@{i - 2}"


def test_removed_event_is_located():
    evs = history()
    live = live_of(evs)
    i = pos(evs, "inspect")
    bad = evs[:i] + evs[i + 1:]
    (br,) = verify_log(as_log(bad), live=live).breaks
    assert (br.key, br.kind, br.event_id) == ("L-A", "removed", evs[i]["event_id"])
    assert br.position == 3  # the chain breaks at the 3rd event: the first one after the gap


def test_reordered_events_are_located():
    evs = history()
    live = live_of(evs)
    i = pos(evs, "ship")
    bad = copy.deepcopy(evs)
    bad[i], bad[i + 1] = bad[i + 1], bad[i]
    (br,) = verify_log(as_log(bad), live=live).breaks
    assert (br.key, br.kind, br.confirmed) == ("L-A", "reordered", True)
    assert br.position == 5 and br.event_id == evs[i + 1]["event_id"]  # the 2nd shipment now stands 5th


def test_injected_event_is_located():
    evs = history()
    live = live_of(evs)
    i = pos(evs, "package")
    forged = _ev(77, "sell", {"lot": "L-A", "units": 60, "point_of_sale": "POS-X"}, 4)
    bad = evs[:i] + [forged] + evs[i:]
    (br,) = verify_log(as_log(bad), live=live).breaks
    assert (br.key, br.kind, br.event_id, br.position, br.confirmed) == ("L-A", "injected", forged["event_id"], 4, True)


def test_same_id_with_other_content_at_a_later_offset_is_a_conflict():
    evs = history()
    live = live_of(evs)
    i = pos(evs, "receive", "L-B")
    forged = copy.deepcopy(evs[i])
    forged["payload"]["quantity"]["value"] = 1.0
    rep = verify_log(as_log(evs + [forged]), live=live)
    assert rep.breaks == []  # the workers ignore it as a duplicate: the chains are intact ...
    (c,) = rep.conflicts  # ... but the attempt is flagged at its offset
    assert c.event_id == evs[i]["event_id"] and c.later.offset == len(evs) - 2
    assert "payload.quantity.value: 100.0 → 1.0" in c.describe()
    assert not rep.clean


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


def test_checkpoint_signs_and_verifies(key):
    evs = history()
    log = as_log(evs)
    cp = make_checkpoint(walk(log), ends(log), key)
    data = codec.codec(codec.CHECKPOINT).encode(cp)
    cp2 = codec.codec(codec.CHECKPOINT).decode(data)
    assert cp2 == cp
    lines = decode_heads(cp["heads"])
    assert cp["root"] == root_of(lines) and cp["chain_count"] == len(lines) == len(head_lines(walk(log)))
    assert parse_lines(cp["heads"])["L-A"][0] == 7
    chk = check_checkpoint(cp2, walk(log), key.public_key(), log_ends=ends(log))
    assert chk.ok and chk.valid_signature and chk.root_reproduced


def test_checkpoint_covers_only_its_offsets(key):
    evs = history()
    log = as_log(evs)
    cut = ends(as_log(evs[:6]))
    cp = make_checkpoint(walk(log), cut, key)
    more = as_log(evs + [_ev(80, "sell", {"lot": "L-A", "units": 1, "point_of_sale": "POS-1"}, 9)])
    assert check_checkpoint(cp, walk(more), key.public_key()).root_reproduced
    rep = verify_log(more, live=live_of(evs), checkpoints=[("t", cp)], public_key=key.public_key())
    assert rep.clean and rep.tails >= 1


def test_forged_checkpoints_are_rejected(key):
    evs = history()
    log = as_log(evs)
    chains = walk(log)
    other = Ed25519PrivateKey.generate()
    forged = make_checkpoint(chains, ends(log), other)
    chk = check_checkpoint(forged, chains, key.public_key())
    assert not chk.ok and not chk.valid_signature and "not the auditor's" in chk.problems[0]
    forged = make_checkpoint(chains, ends(log), other)
    forged["key_id"] = make_checkpoint(chains, ends(log), key)["key_id"]  # claims the right key id
    chk = check_checkpoint(forged, chains, key.public_key())
    assert not chk.valid_signature and "invalid signature" in chk.problems[0]
    tampered = make_checkpoint(chains, ends(log), key)
    tampered["root"] = "0" * 64
    assert not check_checkpoint(tampered, chains, key.public_key()).valid_signature
    swapped = make_checkpoint(chains, ends(log), key)
    swapped["heads"] = encode_heads(["L-A=1:" + "0" * 64])
    assert "do not hash to its signed root" in check_checkpoint(swapped, chains, key.public_key()).problems[0]
    rep = verify_log(log, live=live_of(evs), checkpoints=[("x", forged)], public_key=key.public_key())
    assert not rep.clean and rep.breaks == []


def test_rewritten_history_with_rebuilt_live_records_is_caught_by_the_checkpoint(key):
    """The whole topic recreated with one event altered and the records rebuilt from it: the live records agree
    with the forgery, the signed checkpoint does not — and its per-lot heads locate the event."""
    evs = history()
    log = as_log(evs)
    cp = make_checkpoint(walk(log), ends(log), key)
    bad = copy.deepcopy(evs)
    i = pos(bad, "harvest", "L-B")
    bad[i]["payload"]["crate_tags"] = ["C9"]  # invisible in the record's steps
    rep = verify_log(as_log(bad), live=live_of(bad), checkpoints=[("c", cp)], public_key=key.public_key())
    assert not rep.clean
    (chk,) = rep.checkpoints
    assert chk.valid_signature and chk.root_reproduced is False
    (br,) = rep.breaks
    assert (br.key, br.event_id, br.position) == ("L-B", bad[i]["event_id"], 1)
    assert br.anchor.startswith("checkpoint")


def test_checkpoints_at_every_length_locate_an_invisible_alteration(key):
    evs = history()
    bad = copy.deepcopy(evs)
    i = pos(bad, "inspect", "L-A")
    bad[i]["payload"]["parameters"] = [{"name": "x", "value": "1", "limit": None, "passed": True}]
    cps = [("c%d" % k, make_checkpoint(walk(as_log(evs)), ends(as_log(evs[:k])), key))
           for k in range(3, len(evs) + 1)]
    rep = verify_log(as_log(bad), live=live_of(bad), checkpoints=cps, public_key=key.public_key())
    (br,) = rep.breaks
    assert (br.kind, br.event_id, br.position, br.confirmed) == ("altered", evs[i]["event_id"], 3, True)


def test_big_checkpoints_travel_in_parts(key):
    evs = history()
    log = as_log(evs)
    cp = make_checkpoint(walk(log), ends(log), key)
    parts = split_parts(cp, size=40)
    assert len(parts) > 2 and all(p["signature"] == cp["signature"] for p in parts)
    c = codec.codec(codec.CHECKPOINT)
    joined = join_parts([c.decode(c.encode(p)) for p in parts])
    assert joined == cp and check_checkpoint(joined, walk(log), key.public_key()).ok
    partial = join_parts(parts[:-1])
    chk = check_checkpoint(partial, walk(log), key.public_key())
    assert not chk.ok and "incomplete" in chk.problems[0]
    lines = ["a=b=1:" + "ab" * 32, "L-A=300:" + "0f" * 32]  # '=' in a lot code, lengths past one varint byte
    assert decode_heads(encode_heads(lines)) == lines
