"""Avro encoding of every value on the project's topics (fastavro).

Wire format of a value::

    b"O" | version byte 0x01 | 8-byte CRC-64-AVRO fingerprint of the writer schema | Avro binary body

The fingerprint names the exact writer schema, so a message written with an older schema version stays readable
after the schema evolves: the registry knows every version (the current ``schemas/*.avsc`` and each
``schemas/history/vN/`` overlay) and fastavro resolves writer → reader. Parsed schemas are built once and cached.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.repository.base import AbstractSchemaRepository, SchemaRepositoryError
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent
HISTORY_DIR = SCHEMA_DIR / "history"
MAGIC = b"O\x01"
HEADER_LEN = len(MAGIC) + 8

# The value schemas that appear at the top level of a topic.
EVENT = "ocop.Event"
LOT_RECORD = "ocop.record.LotRecord"
ALERT = "ocop.alert.Alert"
STAMP_RANGE = "ocop.stamp.StampRange"
STAMP_REQUEST = "ocop.stamp.StampRequest"
SCAN = "ocop.scan.Scan"
DLQ_ENTRY = "ocop.dlq.DlqEntry"
CHECKPOINT = "ocop.audit.Checkpoint"
TOP_LEVEL = (EVENT, LOT_RECORD, ALERT, STAMP_RANGE, STAMP_REQUEST, SCAN, DLQ_ENTRY, CHECKPOINT)


class CodecError(ValueError):
    """A value could not be decoded. ``kind`` is ``undecodable`` or ``unknown_schema``."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _OverlayRepository(AbstractSchemaRepository):
    """Loads ``<full name>.avsc`` from the first directory that has it (a history overlay, then the current)."""

    def __init__(self, *dirs: Path):
        self.dirs = dirs

    def load(self, name: str) -> dict:
        for d in self.dirs:
            p = d / f"{name}.avsc"
            if p.exists():
                return json.loads(p.read_text(encoding="utf-8"))
        raise SchemaRepositoryError(f"no schema file for '{name}'")


def _fingerprint(parsed: Any) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


@dataclass(frozen=True)
class SchemaVersion:
    name: str
    version: str  # "current" or the history folder name
    parsed: Any
    fingerprint: bytes


@lru_cache(maxsize=None)
def raw_schema(name: str) -> dict:
    """The current schema file of ``name`` as JSON (with the project's ``ocop.*`` validation attributes)."""
    return json.loads((SCHEMA_DIR / f"{name}.avsc").read_text(encoding="utf-8"))


def load(name: str, version: str = "current") -> SchemaVersion:
    return _load(name, version)


@lru_cache(maxsize=None)
def _load(name: str, version: str) -> SchemaVersion:
    dirs = (SCHEMA_DIR,) if version == "current" else (HISTORY_DIR / version, SCHEMA_DIR)
    parsed = load_schema(name, repo=_OverlayRepository(*dirs), _write_hint=True)
    return SchemaVersion(name, version, parsed, _fingerprint(parsed))


def history_versions() -> list[str]:
    return sorted(p.name for p in HISTORY_DIR.iterdir() if p.is_dir()) if HISTORY_DIR.exists() else []


@lru_cache(maxsize=1)
def registry() -> dict[bytes, SchemaVersion]:
    """Every known writer schema by fingerprint: the current top-level schemas and all their history versions."""
    out: dict[bytes, SchemaVersion] = {}
    for name in TOP_LEVEL:
        for version in ["current", *history_versions()]:
            sv = load(name, version)
            out.setdefault(sv.fingerprint, sv)
    return out


class Codec:
    """Encode/decode one top-level value schema. Cheap to call; build once per schema (see :func:`codec`)."""

    def __init__(self, name: str, writer_version: str = "current"):
        self.name = name
        self.reader = load(name)
        self.writer = load(name, writer_version)
        self._header = MAGIC + self.writer.fingerprint
        self._registry = registry()

    def encode(self, datum: dict) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        schemaless_writer(buf, self.writer.parsed, datum)
        return buf.getvalue()

    def decode(self, data: bytes | None) -> dict:
        if not data or len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise CodecError("undecodable", "not an ocop-trace Avro message (missing or bad header)")
        fp = data[2:HEADER_LEN]
        writer = self._registry.get(fp)
        if writer is None:
            raise CodecError("unknown_schema", f"unknown schema fingerprint {fp.hex()}")
        if writer.name != self.name:
            raise CodecError("unknown_schema", f"message is a {writer.name}, expected {self.name}")
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            datum = schemaless_reader(buf, writer.parsed, self.reader.parsed)
        except (EOFError, StopIteration, IndexError, ValueError, struct.error, UnicodeDecodeError, TypeError) as e:
            raise CodecError("undecodable", f"corrupt Avro body: {type(e).__name__}: {e}") from None
        if buf.tell() != len(data):
            raise CodecError("undecodable", f"{len(data) - buf.tell()} trailing bytes after the Avro body")
        return datum


@lru_cache(maxsize=None)
def codec(name: str) -> Codec:
    return Codec(name)


def schema_name_of(data: bytes) -> str | None:
    """The top-level schema a message was written with, from its header (None if unknown)."""
    if len(data) < HEADER_LEN or data[:2] != MAGIC:
        return None
    sv = registry().get(data[2:HEADER_LEN])
    return sv.name if sv else None
