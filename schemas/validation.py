"""Validation of a value against its Avro schema *and* the project's constraints written in the same .avsc files.

The schema is the only place a field is defined: besides the Avro type, a field may carry

* ``"ocop.check"``: ``uuid`` | ``datetime`` (ISO 8601 with a UTC offset) | ``date`` (YYYY-MM-DD) | ``gtin`` (GTIN-8/12/13/14,
  check digit verified) | ``lot`` (GS1 AI 10: up to 20 characters of the GS1 character set 82) | ``code`` (an identifier:
  up to 64 printable characters, no spaces at the ends) | ``text`` (non-empty, at most 500 characters)
* ``"ocop.min"`` / ``"ocop.max"``: bounds of a number; ``"ocop.minlen"``: minimum array length
* ``"ocop.after"``: the name of a sibling date field that this one may not precede

:func:`validate` raises :class:`Invalid` naming the first bad field (a dotted path) and the reason.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Callable

from schemas import codec

# GS1 General Specifications, figure 7.11-1: character set 82 (AI 10 batch/lot, AI 21 serial).
GS1_AI82 = re.compile(r"""^[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$""")
CODE = re.compile(r"^\S(?:[^\x00-\x1f]{0,62}\S)?$")
FUTURE_TOLERANCE = timedelta(hours=24)


class Invalid(ValueError):
    """A value breaks its schema: ``field`` is the dotted path, ``reason`` says why (in English, for logs and APIs)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


def gtin_problem(value: str) -> str | None:
    """Why ``value`` is not a valid GTIN-8/12/13/14, or None."""
    if not isinstance(value, str) or not value.isdigit() or len(value) not in (8, 12, 13, 14):
        return "must be 8, 12, 13 or 14 digits"
    digits = [int(c) for c in value]
    body, given = digits[:-1], digits[-1]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    expected = (10 - total % 10) % 10
    if expected != given:
        return f"bad check digit {given}, expected {expected}"
    return None


def parse_datetime(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-11-20T07:30:00+07:00")
    return dt


def _check(kind: str, value: Any) -> str | None:
    if kind == "uuid":
        try:
            uuid.UUID(value)
        except (ValueError, AttributeError, TypeError):
            return "must be a UUID"
    elif kind == "datetime":
        try:
            parse_datetime(value)
        except ValueError as e:
            return f"not an ISO 8601 date-time with offset ({e})"
    elif kind == "date":
        try:
            if len(value) != 10:
                raise ValueError
            date.fromisoformat(value)
        except (ValueError, TypeError):
            return "must be a date YYYY-MM-DD"
    elif kind == "gtin":
        return gtin_problem(value)
    elif kind == "lot":
        if not GS1_AI82.match(value):
            return "must be 1-20 characters of the GS1 set (letters, digits, ! \" % & ' ( ) * + , - . / : ; < = > ? _)"
    elif kind == "code":
        if not CODE.match(value):
            return "must be 1-64 printable characters without leading/trailing spaces"
    elif kind == "text":
        if not value.strip():
            return "must not be empty"
        if len(value) > 500:
            return "too long (max 500 characters)"
    return None


_PRIMITIVE = {
    "string": (str,),
    "int": (int,),
    "long": (int,),
    "double": (int, float),
    "float": (int, float),
    "boolean": (bool,),
    "bytes": (bytes,),
    "null": (type(None),),
}


@lru_cache(maxsize=None)
def _named_types(top: str) -> dict[str, dict]:
    """Every named type reachable from ``top`` (with attributes), by full name."""
    out: dict[str, dict] = {}

    def visit(s: Any, ns: str) -> None:
        if isinstance(s, str):
            full = s if "." in s else f"{ns}.{s}"
            if s not in _PRIMITIVE and full not in out and s not in out:
                try:
                    raw = codec.raw_schema(full)
                except FileNotFoundError:
                    return
                visit(raw, ns)
            return
        if isinstance(s, list):
            for x in s:
                visit(x, ns)
            return
        if not isinstance(s, dict):
            return
        t = s.get("type")
        if t in ("record", "enum", "fixed"):
            nns = s.get("namespace", ns)
            full = s["name"] if "." in s["name"] else f"{nns}.{s['name']}"
            out[full] = dict(s, _ns=nns)
            for f in s.get("fields", []):
                visit(f["type"], nns)
        elif t == "array":
            visit(s["items"], ns)
        elif t == "map":
            visit(s["values"], ns)
        else:
            visit(t, ns)

    visit(codec.raw_schema(top), "")
    return out


Check = Callable[[Any], None]


def _at(prefix: str, e: Invalid) -> Invalid:
    """The same error one level up: ``prefix`` joined in front of its field path."""
    if not e.field:
        return Invalid(prefix, e.reason)
    return Invalid(prefix + e.field if e.field.startswith("[") else f"{prefix}.{e.field}" if prefix else e.field,
                   e.reason)


class _Compiler:
    """Turns a schema into nested closures once; checking a value then walks only the value.

    A closure raises :class:`Invalid` with the path *below* it; each level adds its own part on the way up, so the
    path strings are only built for a bad value.
    """

    def __init__(self, top: str):
        self.named = _named_types(top)
        self.records: dict[str, Check] = {}

    def resolve(self, s: Any, ns: str) -> Any:
        if isinstance(s, str) and s not in _PRIMITIVE:
            return self.named.get(s) or self.named[f"{ns}.{s}"]
        return s

    def compile(self, s: Any, ns: str, field: dict | None = None) -> Check:
        s = self.resolve(s, ns)
        if isinstance(s, list):
            return self.union(s, ns, field)
        if isinstance(s, str):
            return self.primitive(s, field)
        t = s["type"]
        if t == "record":
            return self.record(s, ns)
        if t == "enum":
            symbols = frozenset(s["symbols"])
            listed = ", ".join(s["symbols"])

            def check_enum(v: Any) -> None:
                if v not in symbols:
                    raise Invalid("", f"{v!r} is not one of {listed}")
            return check_enum
        if t == "array":
            return self.array(s, ns, (field or {}).get("ocop.minlen", 0))
        if t == "map":
            values = self.compile(s["values"], ns)

            def check_map(v: Any) -> None:
                if not isinstance(v, dict):
                    raise Invalid("", f"must be a mapping, got {type(v).__name__}")
                for k, x in v.items():
                    try:
                        values(x)
                    except Invalid as e:
                        raise _at(str(k), e) from None
            return check_map
        return self.compile(t, ns, field)

    def primitive(self, name: str, field: dict | None) -> Check:
        ok = _PRIMITIVE[name]
        numeric = name in ("int", "long", "double", "float")
        lo_int, hi_int = (-(2**31), 2**31) if name == "int" else (-(2**63), 2**63)
        finite = name in ("double", "float")
        f = field or {}
        check, lo, hi = f.get("ocop.check"), f.get("ocop.min"), f.get("ocop.max")

        def check_primitive(v: Any) -> None:
            if not isinstance(v, ok) or (numeric and isinstance(v, bool)):
                raise Invalid("", f"must be {name}, got {type(v).__name__}")
            if name in ("int", "long") and not lo_int <= v < hi_int:
                raise Invalid("", f"out of range for {name}")
            if finite and not math.isfinite(v):
                raise Invalid("", "must be a finite number")
            if check:
                problem = _check(check, v)
                if problem:
                    raise Invalid("", problem)
            if lo is not None and v < lo:
                raise Invalid("", f"must be ≥ {lo}, got {v}")
            if hi is not None and v > hi:
                raise Invalid("", f"must be ≤ {hi}, got {v}")
        return check_primitive

    def union(self, branches: list, ns: str, field: dict | None) -> Check:
        nullable = "null" in branches
        checks = [self.compile(b, ns, field) for b in branches if b != "null"]

        def check_union(v: Any) -> None:
            if v is None:
                if nullable:
                    return
                raise Invalid("", "is required")
            first = None
            for c in checks:
                try:
                    c(v)
                    return
                except Invalid as e:
                    first = first or e
            raise first
        return checks[0] if len(checks) == 1 and not nullable else check_union

    def array(self, s: dict, ns: str, minlen: int) -> Check:
        items = self.compile(s["items"], ns)

        def check_array(v: Any) -> None:
            if not isinstance(v, (list, tuple)):
                raise Invalid("", f"must be a list, got {type(v).__name__}")
            if len(v) < minlen:
                raise Invalid("", f"needs at least {minlen} item(s)")
            for i, x in enumerate(v):
                try:
                    items(x)
                except Invalid as e:
                    raise _at(f"[{i}]", e) from None
        return check_array

    def record(self, s: dict, ns: str) -> Check:
        ns = s.get("_ns") or s.get("namespace") or ns
        full = s["name"] if "." in s["name"] else f"{ns}.{s['name']}"
        if full in self.records:
            return lambda v: self.records[full](v)  # a recursive reference: resolved at call time
        self.records[full] = lambda v: None  # placeholder while compiling
        names = frozenset(f["name"] for f in s["fields"])
        expected = ", ".join(sorted(names))
        fields = []
        for f in s["fields"]:
            selector = f.get("ocop.selector")
            if selector:  # a union whose branch is chosen by a sibling enum (Event.payload by event_type)
                enum = self.resolve(next(x for x in s["fields"] if x["name"] == selector)["type"], ns)
                branches = {sym: self.compile(b, ns, f) for sym, b in zip(enum["symbols"], f["type"], strict=True)}
                check = None
            else:
                branches, check = None, self.compile(f["type"], ns, f)
            fields.append((f["name"], "default" in f, check, selector, branches, f.get("ocop.after")))
        label = s["name"]

        def check_record(v: Any) -> None:
            if not isinstance(v, dict):
                raise Invalid("", f"must be an object ({label}), got {type(v).__name__}")
            if not names.issuperset(v):
                extra = sorted(set(v) - names)[0]
                raise Invalid(extra, f"unknown field (expected one of {expected})")
            for name, has_default, check, selector, branches, after in fields:
                if name not in v:
                    if has_default:
                        continue
                    raise Invalid(name, "is required")
                x = v[name]
                try:
                    (branches[v[selector]] if branches else check)(x)
                except Invalid as e:
                    raise _at(name, e) from None
                if after and x is not None and v.get(after) is not None and x < v[after]:
                    raise Invalid(name, f"must not be before {after} ({v[after]})")
        self.records[full] = check_record
        return check_record


@lru_cache(maxsize=None)
def _compiled(top: str) -> Check:
    c = _Compiler(top)
    return c.compile(c.named[top], "")


def validate(top: str, datum: Any) -> None:
    """Raise :class:`Invalid` if ``datum`` is not a valid ``top`` (a top-level schema name)."""
    _compiled(top)(datum)
