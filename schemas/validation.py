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
from typing import Any

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


def _type_label(s: Any) -> str:
    if isinstance(s, dict):
        return s.get("name") or s.get("type")
    return str(s)


class _Validator:
    def __init__(self, top: str):
        self.named = _named_types(top)
        self.top = self.named[top]

    def resolve(self, s: Any, ns: str) -> Any:
        if isinstance(s, str) and s not in _PRIMITIVE:
            return self.named.get(s) or self.named[f"{ns}.{s}"]
        return s

    def value(self, s: Any, v: Any, path: str, ns: str, field: dict | None = None) -> None:
        s = self.resolve(s, ns)
        if isinstance(s, list):
            self.union(s, v, path, ns, field)
            return
        if isinstance(s, dict):
            t = s["type"]
            if t == "record":
                self.record(s, v, path, ns)
            elif t == "enum":
                if v not in s["symbols"]:
                    raise Invalid(path, f"{v!r} is not one of {', '.join(s['symbols'])}")
            elif t == "array":
                if not isinstance(v, (list, tuple)):
                    raise Invalid(path, f"must be a list, got {type(v).__name__}")
                minlen = (field or {}).get("ocop.minlen", 0)
                if len(v) < minlen:
                    raise Invalid(path, f"needs at least {minlen} item(s)")
                for i, x in enumerate(v):
                    self.value(s["items"], x, f"{path}[{i}]", ns)
            elif t == "map":
                if not isinstance(v, dict):
                    raise Invalid(path, f"must be a mapping, got {type(v).__name__}")
                for k, x in v.items():
                    self.value(s["values"], x, f"{path}.{k}", ns)
            else:
                self.value(t, v, path, ns, field)
            return
        ok = _PRIMITIVE[s]
        if not isinstance(v, ok) or (s != "boolean" and isinstance(v, bool)):
            raise Invalid(path, f"must be {s}, got {type(v).__name__}")
        if s in ("int", "long") and not (-(2**63) <= v < 2**63 and (s == "long" or -(2**31) <= v < 2**31)):
            raise Invalid(path, f"out of range for {s}")
        if s in ("double", "float") and not math.isfinite(v):
            raise Invalid(path, "must be a finite number")
        if field:
            self.constraints(field, v, path)

    def union(self, branches: list, v: Any, path: str, ns: str, field: dict | None) -> None:
        if v is None:
            if "null" in branches:
                return
            raise Invalid(path, "is required")
        non_null = [b for b in branches if b != "null"]
        if len(non_null) == 1:
            self.value(non_null[0], v, path, ns, field)
            return
        errors = []
        for b in non_null:
            try:
                self.value(b, v, path, ns, field)
                return
            except Invalid as e:
                errors.append(e)
        raise errors[0]

    def record(self, s: dict, v: Any, path: str, ns: str = "") -> None:
        if not isinstance(v, dict):
            raise Invalid(path, f"must be an object ({s['name']}), got {type(v).__name__}")
        ns = s.get("_ns") or s.get("namespace") or ns
        names = {f["name"] for f in s["fields"]}
        extra = sorted(set(v) - names)
        if extra:
            raise Invalid(_join(path, extra[0]), f"unknown field (expected one of {', '.join(sorted(names))})")
        for f in s["fields"]:
            p = _join(path, f["name"])
            if f["name"] not in v:
                if "default" in f:
                    continue
                raise Invalid(p, "is required")
            ftype = f["type"]
            selector = f.get("ocop.selector")
            if selector:  # a union whose branch is chosen by a sibling enum (Event.payload by event_type)
                ftype = self._selected(s, selector, v, f)
            self.value(ftype, v[f["name"]], p, ns, f)
            after = f.get("ocop.after")
            if after and v.get(f["name"]) is not None and v.get(after) is not None and v[f["name"]] < v[after]:
                raise Invalid(p, f"must not be before {after} ({v[after]})")

    def _selected(self, s: dict, selector: str, v: dict, f: dict) -> Any:
        enum = next(x for x in s["fields"] if x["name"] == selector)["type"]
        enum = self.resolve(enum, s.get("_ns") or s.get("namespace", ""))
        return f["type"][enum["symbols"].index(v[selector])]

    @staticmethod
    def constraints(f: dict, v: Any, path: str) -> None:
        check = f.get("ocop.check")
        if check:
            problem = _check(check, v)
            if problem:
                raise Invalid(path, problem)
        lo, hi = f.get("ocop.min"), f.get("ocop.max")
        if lo is not None and v < lo:
            raise Invalid(path, f"must be ≥ {lo}, got {v}")
        if hi is not None and v > hi:
            raise Invalid(path, f"must be ≤ {hi}, got {v}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@lru_cache(maxsize=None)
def _validator(top: str) -> _Validator:
    return _Validator(top)


def validate(top: str, datum: Any) -> None:
    """Raise :class:`Invalid` if ``datum`` is not a valid ``top`` (a top-level schema name)."""
    _validator(top).record(_validator(top).top, datum, "")
