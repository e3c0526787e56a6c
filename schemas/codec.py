"""Avro encoding of every value on the project's topics (fastavro).

Wire format of a value::

    b"O" | version byte 0x01 | 8-byte CRC-64-AVRO fingerprint of the writer schema | Avro binary body

The fingerprint names the exact writer schema, so a message written with an older schema version stays readable
after the schema evolves: the registry knows every version (the current ``schemas/*.avsc`` and each
``schemas/history/vN/`` overlay) and fastavro resolves writer → reader. Parsed schemas are built once and cached.

Decoding a message written with the current schema (nearly all) first tries a reader generated for that schema
(:func:`fast_reader`: straight-line Python over the bytes, about twice as fast as fastavro's generic walk, which reads
one byte at a time through a file object); anything it does not handle — a corrupt or truncated body, a negative
length or index, an over-long varint, trailing bytes — goes to fastavro, so results and errors are fastavro's.
Encoding likewise first tries a writer generated for the schema (:func:`fast_writer`: about 2.5 times faster than
fastavro's, whose C writer looks every field up through its generic schema walk): a lot record in ~30 µs instead of
~80. It takes values as the workers build them (every field present, unions by ``None``, by the (name, value)
notation or of one non-null branch, exact types); anything else goes to fastavro, which writes the same bytes or
raises its error. ``tests/unit/test_codec_fast.py`` checks both agree: on valid and mangled messages for reading,
byte for byte on random values for writing.
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


class _Slow(Exception):
    """Raised by a generated reader for input it leaves to fastavro."""


def _read_long(b: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint of up to 10 bytes at ``b[pos]``, as fastavro reads it (64-bit arithmetic)."""
    n = shift = 0
    for _ in range(10):
        c = b[pos]
        pos += 1
        n |= (c & 0x7F) << shift
        if not c & 0x80:
            n &= 0xFFFFFFFFFFFFFFFF
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
    raise _Slow("varint longer than 10 bytes")


class _ReaderSource:
    """Writes the source of a reader ``f(b, pos, nb) -> (datum, pos)`` for a fastavro-parsed schema, reading as
    fastavro's ``schemaless_reader`` does without a reader schema. Named types are inlined (unions of many branches
    call a function per branch); what it does not know (logical types, recursion) raises NotImplementedError."""

    PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")

    def __init__(self, parsed: Any):
        self.named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
        self.env: dict[str, Any] = {"_Slow": _Slow, "_long": _read_long, "_d": struct.Struct("<d").unpack_from,
                                    "_f": struct.Struct("<f").unpack_from}
        self.defs: list[str] = []
        self.late: list[str] = []
        self.inlining: list[str] = []
        self.n = 0

    def var(self, prefix: str = "v") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def function(self, schema: Any) -> str:
        fn = self.var("_read")
        body: list[str] = []
        x = self.emit(schema, body, "    ")
        self.defs.append(f"def {fn}(b, pos, nb):\n" + "".join(body) + f"    return {x}, pos\n")
        return fn

    def long(self, out: list[str], ind: str) -> str:
        x = self.var("n")
        out.append(f"{ind}c = b[pos]\n{ind}if c < 128:\n{ind}    {x} = (c >> 1) ^ -(c & 1)\n{ind}    pos += 1\n"
                   f"{ind}else:\n{ind}    {x}, pos = _long(b, pos)\n")
        return x

    def emit(self, s: Any, out: list[str], ind: str) -> str:
        """Statements that read one value of schema ``s`` into a new variable, whose name is returned."""
        if isinstance(s, list):
            return self.union(s, out, ind)
        if isinstance(s, str):
            if s in self.PRIMITIVES:
                return self.primitive(s, out, ind)
            if s in self.inlining:
                raise NotImplementedError(f"recursive type {s}")
            return self.emit(self.named[s], out, ind)
        if not isinstance(s, dict) or "logicalType" in s:
            raise NotImplementedError(f"schema {s!r}")
        t = s["type"]
        if t == "record":
            self.inlining.append(s["name"])
            values = [(f["name"], self.emit(f["type"], out, ind)) for f in s["fields"]]
            self.inlining.pop()
            x = self.var()
            out.append(f"{ind}{x} = {{{', '.join(f'{k!r}: {v}' for k, v in values)}}}\n")
            return x
        if t == "enum":
            i = self.long(out, ind)
            x, symbols = self.var(), self.var("_k")
            self.env[symbols] = tuple(s["symbols"])
            out.append(f"{ind}if not 0 <= {i} < {len(s['symbols'])}: raise _Slow\n{ind}{x} = {symbols}[{i}]\n")
            return x
        if t == "fixed":
            x = self.var()
            out.append(f"{ind}e = pos + {int(s['size'])}\n{ind}if e > nb: raise _Slow\n{ind}{x} = b[pos:e]\n"
                       f"{ind}pos = e\n")
            return x
        if t in ("array", "map"):
            x, count = self.var(), self.var("k")
            out.append(f"{ind}{x} = {'[]' if t == 'array' else '{}'}\n")
            first = self.long(out, ind)
            out.append(f"{ind}{count} = {first}\n{ind}while {count}:\n{ind}    if {count} < 0:\n"
                       f"{ind}        {count} = -{count}\n")
            self.long(out, ind + "        ")  # the block's size in bytes: not needed
            out.append(f"{ind}    if {count} > nb: raise _Slow\n{ind}    for _ in range({count}):\n")
            if t == "array":
                y = self.emit(s["items"], out, ind + "        ")
                out.append(f"{ind}        {x}.append({y})\n")
            else:
                k = self.primitive("string", out, ind + "        ")
                y = self.emit(s["values"], out, ind + "        ")
                out.append(f"{ind}        {x}[{k}] = {y}\n")
            nxt = self.long(out, ind + "    ")
            out.append(f"{ind}    {count} = {nxt}\n")
            return x
        if isinstance(t, str) and t in self.PRIMITIVES:
            return self.primitive(t, out, ind)
        if isinstance(t, (list, dict)):
            return self.emit(t, out, ind)
        raise NotImplementedError(f"type {t!r}")

    def primitive(self, name: str, out: list[str], ind: str) -> str:
        if name in ("int", "long"):
            return self.long(out, ind)
        x = self.var()
        if name == "null":
            out.append(f"{ind}{x} = None\n")
        elif name == "boolean":
            out.append(f"{ind}{x} = b[pos] != 0\n{ind}pos += 1\n")
        elif name == "double":
            out.append(f"{ind}{x} = _d(b, pos)[0]\n{ind}pos += 8\n")
        elif name == "float":
            out.append(f"{ind}{x} = _f(b, pos)[0]\n{ind}pos += 4\n")
        else:  # bytes, string
            n = self.long(out, ind)
            out.append(f"{ind}e = pos + {n}\n{ind}if {n} < 0 or e > nb: raise _Slow\n"
                       f"{ind}{x} = b[pos:e]{'.decode()' if name == 'string' else ''}\n{ind}pos = e\n")
        return x

    def union(self, branches: list, out: list[str], ind: str) -> str:
        i = self.long(out, ind)
        x = self.var()
        if len(branches) <= 3:
            for k, b in enumerate(branches):
                out.append(f"{ind}{'if' if k == 0 else 'elif'} {i} == {k}:\n")
                y = self.emit(b, out, ind + "    ")
                out.append(f"{ind}    {x} = {y}\n")
            out.append(f"{ind}else:\n{ind}    raise _Slow\n")
        else:
            table = self.var("_u")
            self.late.append(f"{table} = ({', '.join(self.function(b) for b in branches)},)\n")
            out.append(f"{ind}if not 0 <= {i} < {len(branches)}: raise _Slow\n{ind}{x}, pos = {table}[{i}](b, pos, nb)\n")
        return x


def _write_long(n: int) -> bytes:
    """The zig-zag varint of a 64-bit integer, as fastavro writes it."""
    if not -(1 << 63) <= n < (1 << 63):
        raise OverflowError(n)
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class _WriterSource:
    """Writes the source of a writer ``f(v, a)`` for a fastavro-parsed schema: it appends the bytes fastavro's
    ``schemaless_writer`` writes for ``v`` to a list through ``a`` (its ``append``). It takes what the workers
    give it: every field present, unions chosen by ``None`` or by the (name, value) notation, or of one non-null
    branch; anything else raises, and :meth:`Codec.encode` leaves that value to fastavro (same bytes, or its error).
    Named types are inlined; recursion and logical types raise NotImplementedError."""

    def __init__(self, parsed: Any):
        self.named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
        self.env: dict[str, Any] = {"_long": _write_long, "_small": tuple(_write_long(i) for i in range(64)),
                                    "_d": struct.Struct("<d").pack, "_f": struct.Struct("<f").pack}
        self.defs: list[str] = []
        self.inlining: list[str] = []
        self.n = 0

    def var(self, prefix: str = "v") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def function(self, schema: Any) -> str:
        fn, v = self.var("_write"), self.var()
        body: list[str] = []
        self.emit(schema, v, body, "    ")
        self.defs.append(f"def {fn}({v}, a):\n" + ("".join(body) or "    pass\n"))
        return fn

    def long(self, x: str, out: list[str], ind: str) -> None:
        out.append(f"{ind}a(_small[{x}] if 0 <= {x} < 32 and type({x}) is int else _long({x}))\n")

    def emit(self, s: Any, v: str, out: list[str], ind: str) -> None:
        """Statements that append the bytes of value ``v`` (a variable name) of schema ``s``."""
        if isinstance(s, list):
            return self.union(s, v, out, ind)
        if isinstance(s, str):
            if s in _ReaderSource.PRIMITIVES:
                return self.primitive(s, v, out, ind)
            if s in self.inlining:
                raise NotImplementedError(f"recursive type {s}")
            return self.emit(self.named[s], v, out, ind)
        if not isinstance(s, dict) or "logicalType" in s:
            raise NotImplementedError(f"schema {s!r}")
        t = s["type"]
        if t == "record":
            self.inlining.append(s["name"])
            for f in s["fields"]:
                x = self.var()
                out.append(f"{ind}{x} = {v}[{f['name']!r}]\n")
                self.emit(f["type"], x, out, ind)
            self.inlining.pop()
        elif t == "enum":
            index = self.var("_e")
            self.env[index] = {sym: _write_long(i) for i, sym in enumerate(s["symbols"])}
            out.append(f"{ind}a({index}[{v}])\n")
        elif t == "fixed":
            out.append(f"{ind}if type({v}) is not bytes or len({v}) != {int(s['size'])}: raise TypeError\n"
                       f"{ind}a({v})\n")
        elif t in ("array", "map"):
            out.append(f"{ind}if {v}:\n")
            self.long(f"len({v})", out, ind + "    ")
            if t == "array":
                x = self.var()
                out.append(f"{ind}    for {x} in {v}:\n")
                self.emit(s["items"], x, out, ind + "        ")
            else:
                k, x = self.var("k"), self.var()
                out.append(f"{ind}    for {k}, {x} in {v}.items():\n")
                self.primitive("string", k, out, ind + "        ")
                self.emit(s["values"], x, out, ind + "        ")
            out.append(f"{ind}a(b'\\x00')\n")
        elif isinstance(t, str) and t in _ReaderSource.PRIMITIVES:
            self.primitive(t, v, out, ind)
        elif isinstance(t, (list, dict)):
            self.emit(t, v, out, ind)
        else:
            raise NotImplementedError(f"type {t!r}")

    def primitive(self, name: str, v: str, out: list[str], ind: str) -> None:
        if name in ("int", "long"):
            out.append(f"{ind}if type({v}) is not int: raise TypeError\n")
            self.long(v, out, ind)
        elif name == "boolean":
            out.append(f"{ind}if type({v}) is not bool: raise TypeError\n{ind}a(b'\\x01' if {v} else b'\\x00')\n")
        elif name == "double":
            out.append(f"{ind}if type({v}) is not float: raise TypeError\n{ind}a(_d({v}))\n")
        elif name == "float":
            out.append(f"{ind}if type({v}) is not float: raise TypeError\n{ind}a(_f({v}))\n")
        elif name in ("bytes", "string"):
            e = self.var("e")
            out.append(f"{ind}if type({v}) is not {'str' if name == 'string' else 'bytes'}: raise TypeError\n"
                       f"{ind}{e} = {v}{'.encode()' if name == 'string' else ''}\n")
            self.long(f"len({e})", out, ind)
            out.append(f"{ind}a({e})\n")
        # null: nothing

    def union(self, branches: list, v: str, out: list[str], ind: str) -> None:
        def name_of(b):
            return b if isinstance(b, str) else b.get("name") if isinstance(b, dict) else None
        null = branches.index("null") if "null" in branches else None
        others = [k for k, b in enumerate(branches) if b != "null"]
        out.append(f"{ind}if {v} is None:\n")
        if null is None:
            out.append(f"{ind}    raise TypeError\n")
        else:
            out.append(f"{ind}    a({_write_long(null)!r})\n")
        names = {name_of(branches[k]): k for k in others if name_of(branches[k]) in self.named}
        if names:  # the (name, value) notation
            table = self.var("_u")
            self.env[table] = {n: (_write_long(k), None) for n, k in names.items()}
            fns = {n: self.function(branches[k]) for n, k in names.items()}
            self.defs.append(f"{table}.update({{{', '.join(f'{n!r}: ({table}[{n!r}][0], {f})' for n, f in fns.items())}}})\n")
            x = self.var()
            out.append(f"{ind}elif type({v}) is tuple:\n{ind}    {x} = {table}[{v}[0]]\n"
                       f"{ind}    a({x}[0])\n{ind}    {x}[1]({v}[1], a)\n")
        if len(others) == 1:
            out.append(f"{ind}else:\n{ind}    a({_write_long(others[0])!r})\n")
            self.emit(branches[others[0]], v, out, ind + "    ")
        else:
            out.append(f"{ind}else:\n{ind}    raise TypeError\n")


def writer_source(parsed: Any) -> tuple[str, dict]:
    """The source of the generated writer of a parsed schema (its entry point is ``write``) and its constants."""
    w = _WriterSource(parsed)
    top = w.function(parsed)
    return "\n".join(w.defs) + f"\nwrite = {top}\n", w.env


@lru_cache(maxsize=None)
def fast_writer(name: str, version: str = "current") -> Any:
    """The generated writer ``write(datum, append)`` of a schema version, or None if it has none."""
    sv = load(name, version)
    try:
        src, env = writer_source(sv.parsed)
    except (NotImplementedError, KeyError, TypeError):
        return None
    exec(compile(src, f"<Avro writer of {sv.name} ({sv.version})>", "exec"), env)  # noqa: S102
    return env["write"]


def reader_source(parsed: Any) -> tuple[str, dict]:
    """The source of the generated reader of a parsed schema (its entry point is ``read``) and its constants."""
    w = _ReaderSource(parsed)
    top = w.function(parsed)
    return "\n".join(w.defs + w.late) + f"\nread = {top}\n", w.env


def fast_reader(sv: SchemaVersion) -> Any:
    """The generated reader ``read(b, pos, nb) -> (datum, end)`` of a schema version, or None if it has none.
    It raises (anything) for input it leaves to fastavro."""
    return _fast_reader(sv.name, sv.version)


@lru_cache(maxsize=None)
def _fast_reader(name: str, version: str) -> Any:
    sv = load(name, version)
    try:
        src, env = reader_source(sv.parsed)
    except (NotImplementedError, KeyError, TypeError):
        return None
    exec(compile(src, f"<Avro reader of {sv.name} ({sv.version})>", "exec"), env)  # noqa: S102
    return env["read"]


class Codec:
    """Encode/decode one top-level value schema. Cheap to call; build once per schema (see :func:`codec`)."""

    def __init__(self, name: str, writer_version: str = "current"):
        self.name = name
        self.reader = load(name)
        self.writer = load(name, writer_version)
        self._header = MAGIC + self.writer.fingerprint
        self._registry = registry()
        self._fast = fast_reader(self.reader)  # for messages written with the reader's own schema
        self._write = fast_writer(name, writer_version)

    def encode(self, datum: dict) -> bytes:
        if self._write is not None:
            parts = [self._header]
            try:
                self._write(datum, parts.append)
                return b"".join(parts)
            except Exception:  # noqa: BLE001 - a value it does not take: fastavro writes it or says what is wrong
                pass
        buf = io.BytesIO()
        buf.write(self._header)
        schemaless_writer(buf, self.writer.parsed, datum)
        return buf.getvalue()

    def is_current(self, data: bytes) -> bool:
        """Whether ``data`` was written with the schema version this codec writes."""
        return data[:HEADER_LEN] == self._header

    def decode(self, data: bytes | None) -> dict:
        if not data or len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise CodecError("undecodable", "not an ocop-trace Avro message (missing or bad header)")
        fp = data[2:HEADER_LEN]
        writer = self._registry.get(fp)
        if writer is None:
            raise CodecError("unknown_schema", f"unknown schema fingerprint {fp.hex()}")
        if writer.name != self.name:
            raise CodecError("unknown_schema", f"message is a {writer.name}, expected {self.name}")
        if writer is self.reader and self._fast is not None:
            try:
                datum, end = self._fast(data, HEADER_LEN, len(data))
                if end == len(data):
                    return datum
            except Exception:  # noqa: BLE001 - whatever it is, fastavro below reads it and says what it is
                pass
        return self._decode_fastavro(data, writer)

    def _decode_fastavro(self, data: bytes, writer: SchemaVersion) -> dict:
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
