"""Tamper evidence: recompute every hash chain from the raw log, check it against the heads recorded elsewhere, and
name the first event where a chain breaks. Signed checkpoints (Ed25519) make a rewrite of the whole history visible.

The chain of a key (a lot; a master entity for checkpoints) is ``head_n = sha256(head_{n-1} || canonical_hash(e_n))``
over the accepted events *keyed* by it, in log order, a repeated event id skipped — exactly what
:func:`streams.fold.apply_event` does in the workers (see :func:`walk`).

Anchors are the (length, head) pairs recorded for a key outside the log: the live record's ``chain_length`` /
``chain_head`` (``ocop.records``) and, per signed checkpoint, the ``key=length:head`` lines it carries. Because a head
commits to the whole prefix, an anchor that matches the replayed running head at its length proves the first n
events intact; one that does not proves a change at or before n. The first break therefore lies after the longest
matching anchor and at or before the shortest failing one; inside that window the auditor recomputes the chain per
event to say *which* event and *how*: dropping one event that reproduces the anchor ⇒ it was injected; moving one
⇒ reordered; an event id the live record lists but the log lacks ⇒ removed; an event whose step differs from the
live record's ⇒ altered; a one-event window ⇒ that event was altered. Design notes: docs/AUDIT.md.
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from ocop_trace.config import Settings
from schemas import codec, topics
from schemas.events import canonical_json, event_key, lots_touched
from streams.fold import _step

from consumers.audit.replay import AuditError, Msg, connect, plan, read

SIGNING_CONTEXT = b"ocop-trace audit checkpoint v1\n"
MASTER_PREFIX = "master|"  # chain keys of master entities in checkpoints ('|' is not in a GS1 lot code)
SEARCH_WINDOW = 64  # events: the per-event repair search runs inside a window at most this long


def _h(prev: str, ehash: str) -> str:
    return hashlib.sha256((prev + ehash).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Walking the chains
# ---------------------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class Link:
    index: int  # 1-based position in the key's chain
    msg: Msg
    head: str  # running head after this event


@dataclass(frozen=True)
class Conflict:
    """The same event id carrying different content: the later copy is ignored by the workers (a duplicate), but
    nobody legitimate writes it — an attempt to alter an event."""

    event_id: str
    first: Msg
    later: Msg

    def describe(self) -> str:
        return (f"event {self.event_id} at {self.later.ref} reuses the id of {self.first.ref} with different content "
                f"({_diff_summary(self.first.event, self.later.event)})")


def _diff_summary(a: dict, b: dict, path: str = "") -> str:
    diffs: list[str] = []

    def rec(x, y, p):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                rec(x.get(k), y.get(k), f"{p}.{k}" if p else k)
        elif x != y:
            diffs.append(f"{p}: {x!r} → {y!r}")

    rec(a, b, path)
    return "; ".join(diffs[:5]) + (" …" if len(diffs) > 5 else "")


@dataclass
class Chains:
    links: dict[str, list[Link]] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)

    def head(self, key: str) -> tuple[int, str]:
        ch = self.links.get(key)
        return (len(ch), ch[-1].head) if ch else (0, "")


def walk(log: Iterable[Msg], *, master: bool = True) -> Chains:
    """Every chain of the log, event by event, as the workers compute it (supply lots; master entities too)."""
    out = Chains()
    seen: dict[str, set[str]] = {}
    first: dict[str, Msg] = {}
    for m in log:
        ev = m.event
        if ev is None:
            continue
        eid = ev["event_id"]
        f = first.get(eid)
        if f is None:
            first[eid] = m
        elif f.ehash != m.ehash:
            out.conflicts.append(Conflict(eid, f, m))
        if m.topic == topics.MASTER.name:
            if not master:
                continue
            keys, own = [MASTER_PREFIX + event_key(ev)], MASTER_PREFIX + event_key(ev)
        else:
            keys, own = lots_touched(ev), event_key(ev)
        for key in keys:
            s = seen.get(key)
            if s is None:
                s = seen[key] = set()
            if eid in s:
                continue
            s.add(eid)
            if key == own:
                ch = out.links.get(key)
                if ch is None:
                    ch = out.links[key] = []
                ch.append(Link(len(ch) + 1, m, _h(ch[-1].head if ch else "", m.ehash)))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Anchors and locating a break
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Anchor:
    length: int
    head: str
    source: str  # "live record" | "checkpoint <id>"


@dataclass
class Break:
    """The first event where a key's chain breaks."""

    key: str
    kind: str  # altered | removed | injected | reordered | diverged | truncated
    position: int  # 1-based position in the replayed chain of the first bad event (0: before the first)
    event_id: str | None
    ref: str | None  # topic:partition@offset of the event in the log (None for a removed one)
    detail: str
    confirmed: bool  # True when a per-event recomputation reproduced the recorded head
    anchor: str  # which anchor disagreed

    def describe(self) -> str:
        at = f" at {self.ref}" if self.ref else ""
        return f"{self.key}: {self.kind} event {self.event_id or '?'}{at} (#{self.position}) — {self.detail}"

    def as_dict(self) -> dict:
        return {"key": self.key, "kind": self.kind, "position": self.position, "event_id": self.event_id,
                "ref": self.ref, "detail": self.detail, "confirmed": self.confirmed, "anchor": self.anchor}


def _step_view(step: dict) -> dict:
    return {k: v for k, v in step.items() if k != "voided"}


def check_chain(key: str, links: list[Link], anchors: list[Anchor], live: dict | None = None) -> Break | None:
    """None if every anchor agrees with the replayed chain, else the first break, located as precisely as the
    anchors, the live record's steps and a per-event recomputation allow."""
    n = len(links)
    heads = [""] + [lk.head for lk in links]
    good = [a for a in anchors if a.length <= n and heads[a.length] == a.head]
    bad = [a for a in anchors if not (a.length <= n and heads[a.length] == a.head)]
    if not bad:
        return None
    target = min(bad, key=lambda a: a.length)
    # the first `lo` events are proven intact. An anchor that agrees at or beyond a disagreeing one was itself
    # computed from the altered log (e.g. live records rebuilt after a rewrite): it proves nothing before it.
    lo = max((a.length for a in good if a.length < target.length), default=0)
    win = links[lo:]

    def mk(kind: str, i: int | None, detail: str, confirmed: bool, event_id: str | None = None) -> Break:
        lk = links[i] if i is not None and i < n else None
        return Break(key, kind, (lk.index if lk else lo + 1), event_id or (lk.msg.event["event_id"] if lk else None),
                     lk.msg.ref if lk else None, detail, confirmed, target.source)

    def chain_from(seq: list[Link], upto: int) -> str | None:
        """Head after the first ``upto`` events of the proven prefix + ``seq`` (None if too short)."""
        need = upto - lo
        if need < 0 or need > len(seq):
            return None
        h = heads[lo]
        for lk in seq[:need]:
            h = _h(h, lk.msg.ehash)
        return h

    small = len(win) <= SEARCH_WINDOW
    # 1. injected: dropping one event of the window reproduces the recorded head
    if small and n > lo:
        for j in range(len(win)):
            if chain_from(win[:j] + win[j + 1:], target.length) == target.head:
                return mk("injected", lo + j, f"not part of the recorded chain: without it the chain reproduces "
                                              f"the {target.source} head at length {target.length}", True)
    # 2. reordered: moving one event of the window reproduces the recorded head
    if small and len(win) >= 2 and target.length <= n:
        for j in range(len(win)):
            rest = win[:j] + win[j + 1:]
            for p in range(len(win)):
                if p == j:
                    continue
                cand = rest[:p] + [win[j]] + rest[p:]
                if chain_from(cand, target.length) == target.head:
                    k = next(i for i in range(len(win)) if win[i] is not cand[i])
                    moved = win[j].msg.event["event_id"]
                    return mk("reordered", lo + k, f"out of order: the recorded chain has event {moved} "
                                                   f"{'earlier' if p < j else 'later'} (moved from #{lo + j + 1} "
                                                   f"to #{lo + p + 1} reproduces the {target.source} head)", True)
    # 3. the live record's steps name events the log lacks, or show different content
    if live is not None:
        steps = {s["event_id"]: s for s in live.get("steps", [])}
        in_log = {lk.msg.event["event_id"] for lk in links}
        for lk_i, lk in enumerate(win):
            ev = lk.msg.event
            step = steps.get(ev["event_id"])
            if step is not None and _step_view(step) != _step_view(_step(ev, False)):
                d = _diff_summary(_step_view(step), _step_view(_step(ev, False)))
                return mk("altered", lo + lk_i, f"differs from the live record's step: {d}", False)
        missing = [s for s in live.get("steps", []) if s["event_id"] not in in_log and _keyed(s, key)]
        if missing or target.length > n:
            if missing:
                s = missing[0]
                # where it stood: its rank among the lot's chain steps (the record orders them by time)
                keyed = [x["event_id"] for x in live.get("steps", []) if _keyed(x, key)]
                at = max(lo, sum(1 for x in keyed[:keyed.index(s["event_id"])] if x in in_log))
                return mk("removed", at if at < n else None,
                          f"the live record lists {s['event_type']} event {s['event_id']} of {s['occurred_at']}, "
                          f"absent from the log; the chain breaks at #{at + 1}, the first event after the gap",
                          False, event_id=s["event_id"])
        extra = [i for i, lk in enumerate(win) if lk.msg.event["event_id"] not in steps]
        if extra:
            return mk("injected", lo + extra[0], "absent from the live record's steps", False)
    # 5. a window of exactly one event: that event is not the one recorded
    if target.length == lo + 1 and n > lo:
        return mk("altered", lo, f"its content differs from the event recorded at #{target.length} "
                                 f"({target.source} head {target.head[:12]}…)", True)
    if target.length > n:
        return mk("truncated" if lo == n else "diverged", lo if lo < n else None,
                  f"the log has {n} events for this key, the {target.source} recorded {target.length}", False)
    # 6. only the window is known
    return mk("diverged", lo, f"the chain diverges from the {target.source} head within events "
                              f"#{lo + 1}..#{target.length}; this is the first of them", False)


def _keyed(step: dict, lot: str) -> bool:
    """Whether a live record's step is one of the lot's chain events (keyed by it): a transform counts only on its
    first output lot (its message key), every other step type on its own lot."""
    if step["event_type"] != "transform":
        return True
    outputs = step["detail"].rsplit("→", 1)[-1].strip()
    return outputs.split(",")[0].strip() == lot


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints: signed roots over every chain head
# ---------------------------------------------------------------------------------------------------------------

def head_lines(chains: Chains, cut: dict[str, int] | None = None) -> list[str]:
    """Sorted ``key=length:head`` lines, one per non-empty chain; with ``cut`` ({"topic:partition": end offset})
    only the events before it count."""
    lines = []
    for key, links in chains.links.items():
        if cut is None:
            length = len(links)
        else:
            length = 0
            for lk in links:
                if lk.msg.offset < cut.get(f"{lk.msg.topic}:{lk.msg.partition}", 0):
                    length = lk.index
                else:
                    break
        if length:
            lines.append(f"{key}={length}:{links[length - 1].head}")
    return sorted(lines)


def root_of(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


HEADS_MAGIC = b"OCL1"  # the heads blob: zlib of (varint key length, key, varint chain length, 32-byte head)*
PART_MAGIC = b"OCHP"  # a message carrying one part of a heads blob too big for one Kafka message
PART_SIZE = 900_000


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_heads(lines: list[str]) -> bytes:
    """The ``key=length:head`` lines, compactly (raw 32-byte heads) and zlib-compressed."""
    buf = bytearray()
    for line in lines:
        key, _, rest = line.rpartition("=")
        length, head = rest.split(":", 1)
        k = key.encode()
        buf += _varint(len(k)) + k + _varint(int(length)) + bytes.fromhex(head)
    return HEADS_MAGIC + zlib.compress(bytes(buf), 6)


def decode_heads(blob: bytes) -> list[str]:
    if not blob.startswith(HEADS_MAGIC):
        raise ValueError("not a heads blob")
    data, i, out = zlib.decompress(blob[len(HEADS_MAGIC):]), 0, []

    def varint() -> int:
        nonlocal i
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        klen = varint()
        key = data[i:i + klen].decode()
        i += klen
        length = varint()
        out.append(f"{key}={length}:{data[i:i + 32].hex()}")
        i += 32
    return out


def parse_lines(blob: bytes | None) -> dict[str, tuple[int, str]] | None:
    if not blob:
        return None
    out = {}
    for line in decode_heads(blob):
        key, _, rest = line.rpartition("=")
        length, head = rest.split(":", 1)
        out[key] = (int(length), head)
    return out


def split_parts(cp: dict, size: int = PART_SIZE) -> list[dict]:
    """The Kafka messages of a checkpoint: one, or several carrying consecutive parts of its heads blob (each
    message repeats the signed fields; the parts only count together, through the signed root)."""
    blob = cp.get("heads") or b""
    if len(blob) <= size:
        return [cp]
    chunks = [blob[i:i + size] for i in range(0, len(blob), size)]
    return [dict(cp, heads=PART_MAGIC + struct.pack(">HH", i, len(chunks)) + c) for i, c in enumerate(chunks)]


def join_parts(msgs: list[dict]) -> dict:
    """A checkpoint from its messages (see :func:`split_parts`); an incomplete set says so in ``_problem``."""
    first = msgs[0]
    if not (first.get("heads") or b"").startswith(PART_MAGIC):
        return first
    parts: dict[int, bytes] = {}
    count = 0
    for m in msgs:
        h = m.get("heads") or b""
        if h.startswith(PART_MAGIC):
            i, count = struct.unpack(">HH", h[4:8])
            parts[i] = h[8:]
    if len(parts) != count:
        return dict(first, heads=None, _problem=f"incomplete: {len(parts)} of {count} parts of its heads")
    return dict(first, heads=b"".join(parts[i] for i in range(count)))


def _signed_bytes(cp: dict) -> bytes:
    body = {k: cp[k] for k in ("checkpoint_id", "created_at", "offsets", "chain_count", "root", "key_id")}
    return SIGNING_CONTEXT + canonical_json(body)


def key_id_of(public_key) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def key_paths(settings: Settings) -> tuple[Path, Path]:
    priv = settings.audit_key_file or settings.data_dir / "audit" / "checkpoint-ed25519.pem"
    pub = settings.audit_public_key_file or priv.with_name(priv.stem + ".pub.pem")
    return Path(priv), Path(pub)


def keygen(settings: Settings, *, force: bool = False) -> tuple[Path, Path, str]:
    """A new Ed25519 key pair: the private key (PEM, mode 0600) and the public key to hand to auditors."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat,
                                                              PublicFormat)

    priv_path, pub_path = key_paths(settings)
    if priv_path.exists() and not force:
        raise AuditError(f"{priv_path} exists; use --force to replace it (old checkpoints then need the old "
                         "public key to verify)")
    key = Ed25519PrivateKey.generate()
    priv_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(priv_path, 0o600)
    pub_path.parent.mkdir(parents=True, exist_ok=True)
    pub_path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path, key_id_of(key.public_key())


def load_private_key(path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise AuditError(f"no checkpoint signing key at {path}: create one with `ocop-trace audit keygen`") from None
    except ValueError as e:
        raise AuditError(f"{path} is not a PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise AuditError(f"no checkpoint public key at {path} (pass --public-key)") from None
    except ValueError as e:
        raise AuditError(f"{path} is not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"{path} is not an Ed25519 public key")
    return key


def make_checkpoint(chains: Chains, offsets: dict[str, int], private_key, *, created_at: str | None = None,
                    checkpoint_id: str | None = None) -> dict:
    """A signed ``ocop.audit.Checkpoint`` over every chain head of the log up to ``offsets``."""
    lines = head_lines(chains, offsets)
    cp = {"checkpoint_id": checkpoint_id or str(uuid.uuid4()),
          "created_at": created_at or datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
          "offsets": dict(sorted(offsets.items())), "chain_count": len(lines), "root": root_of(lines),
          "key_id": key_id_of(private_key.public_key()), "signature": b"",
          "heads": encode_heads(lines)}
    cp["signature"] = private_key.sign(_signed_bytes(cp))
    return cp


@dataclass
class CheckpointCheck:
    checkpoint_id: str
    ref: str  # where it was read
    created_at: str
    valid_signature: bool
    root_reproduced: bool | None  # None: not checked (signature invalid, or log not covering it)
    problems: list[str] = field(default_factory=list)
    anchors: dict[str, tuple[int, str]] | None = None

    @property
    def ok(self) -> bool:
        return self.valid_signature and self.root_reproduced is not False and not self.problems

    def as_dict(self) -> dict:
        return {"checkpoint_id": self.checkpoint_id, "ref": self.ref, "created_at": self.created_at,
                "valid_signature": self.valid_signature, "root_reproduced": self.root_reproduced,
                "problems": self.problems}


def check_checkpoint(cp: dict, chains: Chains, public_key, *, ref: str = "",
                     log_ends: dict[str, int] | None = None) -> CheckpointCheck:
    """Signature, self-consistency, and whether the replayed log reproduces the checkpoint's root."""
    from cryptography.exceptions import InvalidSignature

    chk = CheckpointCheck(cp["checkpoint_id"], ref, cp["created_at"], False, None)
    if public_key is None:
        chk.problems.append("no public key to check the signature with")
        return chk
    if cp["key_id"] != key_id_of(public_key):
        chk.problems.append(f"signed by key {cp['key_id']}, not the auditor's {key_id_of(public_key)}: rejected")
        return chk
    try:
        public_key.verify(cp["signature"], _signed_bytes(cp))
        chk.valid_signature = True
    except InvalidSignature:
        chk.problems.append("invalid signature: the checkpoint was forged or altered; rejected")
        return chk
    anchors = None
    if cp.get("_problem"):
        chk.problems.append(cp["_problem"])
        return chk
    if cp.get("heads"):
        try:
            lines = decode_heads(cp["heads"])
        except (ValueError, IndexError, zlib.error):
            lines = None
        if lines is None or root_of(lines) != cp["root"] or len(lines) != cp["chain_count"]:
            chk.problems.append("its per-key heads do not hash to its signed root: rejected")
            return chk
        anchors = parse_lines(cp["heads"])
    chk.anchors = anchors
    if log_ends is not None:
        beyond = [f"{ref_}: checkpoint {off} > log end {log_ends.get(ref_, 0)}" for ref_, off in cp["offsets"].items()
                  if off > log_ends.get(ref_, 0)]
        if beyond:
            chk.problems.append("the log is shorter than the checkpoint covers (history truncated or rewritten): "
                                + "; ".join(beyond[:3]))
    mine = head_lines(chains, cp["offsets"])
    chk.root_reproduced = root_of(mine) == cp["root"]
    if not chk.root_reproduced:
        chk.problems.append(f"the replayed log does not reproduce its root (got {len(mine)} chains, "
                            f"checkpoint has {cp['chain_count']}): the history changed after it was taken")
    return chk


# ---------------------------------------------------------------------------------------------------------------
# The verification
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class VerifyReport:
    chains: int = 0
    events: int = 0
    breaks: list[Break] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    checkpoints: list[CheckpointCheck] = field(default_factory=list)
    unanchored: int = 0  # chains with no anchor at all (nothing recorded them yet)
    tails: int = 0  # chains with events after their longest anchor (recorded later than the anchors)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.breaks and not self.conflicts and all(c.ok for c in self.checkpoints)

    def as_dict(self) -> dict:
        return {"clean": self.clean, "chains": self.chains, "events": self.events,
                "breaks": [b.as_dict() for b in self.breaks],
                "conflicts": [{"event_id": c.event_id, "first": c.first.ref, "later": c.later.ref,
                               "detail": c.describe()} for c in self.conflicts],
                "checkpoints": [c.as_dict() for c in self.checkpoints], "unanchored": self.unanchored,
                "tails": self.tails, "notes": self.notes}


def verify_log(log: list[Msg], *, live: dict[str, dict] | None = None, checkpoints: Iterable[tuple[str, dict]] = (),
               public_key=None, log_ends: dict[str, int] | None = None, keys: set[str] | None = None) -> VerifyReport:
    """Verify an in-memory log: conflicts, checkpoints, and every chain against its anchors.

    ``live``: lot → live record (its chain head/length and steps are anchors and evidence); ``checkpoints``:
    (where, checkpoint) pairs; ``keys``: restrict the chains reported on (a lot filter)."""
    chains = walk(log)
    rep = VerifyReport(events=sum(1 for m in log if m.event is not None))
    rep.conflicts = [c for c in chains.conflicts if keys is None or set(lots_touched(c.first.event)) & keys]
    anchors: dict[str, list[Anchor]] = {}
    for ref, cp in checkpoints:
        chk = check_checkpoint(cp, chains, public_key, ref=ref, log_ends=log_ends)
        rep.checkpoints.append(chk)
        if chk.valid_signature and chk.anchors:
            for key, (length, head) in chk.anchors.items():
                anchors.setdefault(key, []).append(Anchor(length, head, f"checkpoint {cp['checkpoint_id'][:8]}"))
    for lot, rec in (live or {}).items():
        if rec.get("chain_length"):
            anchors.setdefault(lot, []).append(Anchor(rec["chain_length"], rec["chain_head"], "live record"))
    all_keys = set(chains.links) | set(anchors)
    if keys is not None:
        all_keys &= keys | {k for k in all_keys if k.startswith(MASTER_PREFIX)}
    for key in sorted(all_keys):
        links = chains.links.get(key, [])
        rep.chains += 1
        a = anchors.get(key, [])
        if not a:
            rep.unanchored += 1
            continue
        br = check_chain(key, links, a, (live or {}).get(key))
        if br:
            rep.breaks.append(br)
        elif len(links) > max(x.length for x in a):
            rep.tails += 1
    if rep.tails:
        rep.notes.append(f"{rep.tails} chains have events after their latest anchor (recorded since the last "
                         "checkpoint / not yet in the live records): take a checkpoint to cover them")
    return rep


def read_checkpoints(settings: Settings, consumer=None) -> list[tuple[str, dict]]:
    """Every checkpoint on ``ocop.audit.checkpoints`` as (ref, checkpoint) — the parts of a big one joined —;
    undecodable messages as entries that fail the checks."""
    own = consumer is None
    consumer = consumer or connect(settings)
    try:
        c = codec.codec(codec.CHECKPOINT)
        out: list = []
        groups: dict[str, list] = {}
        for s, records in read(consumer, plan(consumer, settings, [topics.CHECKPOINTS])):
            for r in records:
                ref = f"{s.topic}:{s.partition}@{r.offset}"
                try:
                    cp = c.decode(r.value)
                    if cp["checkpoint_id"] in groups:
                        groups[cp["checkpoint_id"]].append(cp)
                    else:
                        groups[cp["checkpoint_id"]] = [cp]
                        out.append((ref, cp["checkpoint_id"]))
                except codec.CodecError as e:
                    out.append((ref, {"checkpoint_id": f"undecodable@{r.offset}", "created_at": "", "offsets": {},
                                      "chain_count": 0, "root": "", "key_id": f"undecodable: {e.reason}",
                                      "signature": b"", "heads": None}))
        return [(ref, join_parts(groups[x]) if isinstance(x, str) else x) for ref, x in out]
    finally:
        if own:
            consumer.close()


def read_live_records(settings: Settings, consumer=None) -> dict[str, dict]:
    """The latest record per lot on the compacted ``ocop.records`` (a tombstone deletes)."""
    own = consumer is None
    consumer = consumer or connect(settings)
    try:
        c = codec.codec(codec.LOT_RECORD)
        out: dict[str, dict] = {}
        for _s, records in read(consumer, plan(consumer, settings, [topics.RECORDS])):
            for r in records:
                lot = r.key.decode("utf-8", "replace") if r.key is not None else None
                if r.value is None:
                    out.pop(lot, None)
                    continue
                try:
                    rec = c.decode(r.value)
                except codec.CodecError:
                    continue
                out[rec["lot"]] = rec
        return out
    finally:
        if own:
            consumer.close()


def publish_checkpoint(settings: Settings, cp: dict) -> tuple[int, int]:
    """Write a checkpoint to ``ocop.audit.checkpoints`` (the only topic the auditor writes), in parts if its heads
    do not fit one message. Returns (partition, offset) of its first message."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                 client_id="ocop-trace-auditor", bootstrap_timeout_ms=10_000)
    except (KafkaError, OSError) as e:
        from consumers.audit.replay import BrokerUnreachable

        raise BrokerUnreachable(f"Kafka broker unreachable at {settings.bootstrap_servers} ({e})") from None
    try:
        futures = [producer.send(topics.CHECKPOINTS.full(settings.topic_prefix), key=cp["checkpoint_id"].encode(),
                                 value=codec.codec(codec.CHECKPOINT).encode(part)) for part in split_parts(cp)]
        mds = [f.get(timeout=60) for f in futures]
        return mds[0].partition, mds[0].offset
    finally:
        producer.close()
