"""Validation of a value against its Avro schema *and* the project's constraints written in the same .avsc files.

The schema is the only place a field is defined: besides the Avro type, a field may carry

* ``"ocop.check"``: ``uuid`` | ``datetime`` (ISO 8601 with a UTC offset) | ``date`` (YYYY-MM-DD) | ``gtin`` (GTIN-8/12/13/14,
  check digit verified) | ``lot`` (GS1 AI 10: up to 20 characters of the GS1 character set 82) | ``code`` (an identifier:
  up to 64 printable characters, no spaces at the ends) | ``text`` (non-empty, at most 500 characters)
* ``"ocop.min"`` / ``"ocop.max"``: bounds of a number; ``"ocop.minlen"``: minimum array length
* ``"ocop.after"``: the name of a sibling date field that this one may not precede

:func:`validate` raises :class:`Invalid` naming the first bad field (a dotted path) and the reason.

Each schema is compiled once, twice over: into nested closures that name the first bad field and why (the
definition of every message), and into the source of one Python function per record type that only answers
valid / not valid, with no call per field (the fast path: nearly every value is valid). :func:`validate` asks the
fast one first and, only when it says no, the closures for the error; the two are built from the same schema walk
and tests check that they agree (``tests/unit/test_validation_fast.py``).
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


def parse_datetime_uncached(value: str) -> datetime:
    """An ISO 8601 date-time with a UTC offset (``datetime.fromisoformat``); ValueError without an offset."""
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-11-20T07:30:00+07:00")
    return dt


# text -> parsed (datetimes are immutable), emptied when full. Small on purpose: it serves the texts of the last few
# hundred events (validation, then validate_event, parse each event's two timestamps); a log's timestamps are nearly
# all distinct, so a large one would mostly cost its upkeep (the fold's ordering has its own cache of instants).
_DATETIMES: dict[str, datetime] = {}
_DATETIMES_MAX = 1024


def parse_datetime(value: str) -> datetime:
    """:func:`parse_datetime_uncached`, remembered: every event's two timestamps are parsed by the validation, then
    again by :func:`schemas.events.validate_event`. Same result and same errors for any input (only valid texts are
    remembered; tests check it on arbitrary text)."""
    if type(value) is str:  # noqa: E721 - a str subclass may compare equal to a remembered text yet differ
        dt = _DATETIMES.get(value)
        if dt is not None:
            return dt
        dt = parse_datetime_uncached(value)
        if len(_DATETIMES) >= _DATETIMES_MAX:
            _DATETIMES.clear()
        _DATETIMES[value] = dt
        return dt
    return parse_datetime_uncached(value)


def _check_uuid(value: Any) -> str | None:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return "must be a UUID"
    return None


def _check_datetime(value: Any) -> str | None:
    try:
        parse_datetime(value)
    except ValueError as e:
        return f"not an ISO 8601 date-time with offset ({e})"
    return None


def _check_date(value: Any) -> str | None:
    try:
        if len(value) != 10:
            raise ValueError
        date.fromisoformat(value)
    except (ValueError, TypeError):
        return "must be a date YYYY-MM-DD"
    return None


def _check_lot(value: Any) -> str | None:
    if not GS1_AI82.match(value):
        return "must be 1-20 characters of the GS1 set (letters, digits, ! \" % & ' ( ) * + , - . / : ; < = > ? _)"
    return None


def _check_code(value: Any) -> str | None:
    if not CODE.match(value):
        return "must be 1-64 printable characters without leading/trailing spaces"
    return None


def _check_text(value: Any) -> str | None:
    if not value.strip():
        return "must not be empty"
    if len(value) > 500:
        return "too long (max 500 characters)"
    return None


# "ocop.check" kind -> why a value is not one (None: it is)
_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "uuid": _check_uuid, "datetime": _check_datetime, "date": _check_date, "gtin": gtin_problem,
    "lot": _check_lot, "code": _check_code, "text": _check_text,
}


def _check(kind: str, value: Any) -> str | None:
    f = _CHECKS.get(kind)
    return f(value) if f is not None else None


# The canonical text of a UUID (any case): certainly accepted by uuid.UUID, which also takes braces, "urn:uuid:"
# and other spellings (those go through uuid.UUID itself).
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


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


class _FastCompiler:
    """Writes the source of a predicate per schema: one function per record type, fields checked inline.

    The predicate answers True only for a value the closures of :class:`_Compiler` accept; it answers False (or
    raises, which counts as False) for anything else, including some valid values it does not bother with (a str
    or dict subclass, an int in a double field beyond 2**1000): the closures then decide. Rules mirrored from
    :class:`_Compiler`: the types of ``_PRIMITIVE`` (no bool for numbers), int/long ranges, finite doubles,
    ``ocop.check`` (the same :data:`_CHECKS` functions), ``ocop.min``/``ocop.max``, ``ocop.minlen``, enums, unions
    (null and branches), arrays, maps, records (no unknown field, required fields, defaults, ``ocop.selector``,
    ``ocop.after``).
    """

    def __init__(self, top: str):
        self.top = top
        self.slow = _Compiler(top)  # for its named types and name resolution
        self.env: dict[str, Any] = {"_M": object(), "_isfinite": math.isfinite, "_BIG": 2**1000,
                                    "_UUID": _CANONICAL_UUID.fullmatch, "_LOT": GS1_AI82.match, "_CODE": CODE.match,
                                    "_DATETIMES": _DATETIMES}
        self.functions: dict[str, str] = {}  # record full name -> function name
        self.sources: list[str] = []
        self.late: list[str] = []  # assignments that name functions (after every definition)
        self.n = 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, value: Any, prefix: str = "_k") -> str:
        name = self.name(prefix)
        self.env[name] = value
        return name

    def build(self) -> Callable[[Any], bool]:
        top = self.predicate(self.slow.named[self.top], "", None)
        self.sources.append(f"def _valid(v):\n    try:\n        return {top}(v)\n    except Exception:\n"
                            f"        return False\n")
        exec(compile("\n".join(self.sources + self.late), f"<fast validation of {self.top}>", "exec"),  # noqa: S102
             self.env)
        return self.env["_valid"]

    @property
    def source(self) -> str:
        return "\n".join(self.sources + self.late)

    def predicate(self, s: Any, ns: str, field: dict | None) -> str:
        """The name of a function ``f(v) -> bool`` for schema ``s`` (a record's own function, else a new one)."""
        s = self.slow.resolve(s, ns)
        if isinstance(s, dict) and s.get("type") == "record":
            return self.record(s, ns)
        fn = self.name("_p")
        body: list[str] = []
        self.emit(s, ns, field, "v", body, "    ")
        self.sources.append(f"def {fn}(v):\n" + "".join(body) + "    return True\n")
        return fn

    def emit(self, s: Any, ns: str, field: dict | None, v: str, out: list[str], ind: str) -> None:
        """Statements that ``return False`` unless the value in variable ``v`` is valid."""
        s = self.slow.resolve(s, ns)
        if isinstance(s, list):
            others = [b for b in s if b != "null"]
            nullable = len(others) < len(s)
            if not others:
                out.append(f"{ind}if {v} is not None: return False\n")
            elif len(others) == 1:
                if nullable:
                    out.append(f"{ind}if {v} is not None:\n")
                    self.emit(others[0], ns, field, v, out, ind + "    ")
                else:
                    self.emit(others[0], ns, field, v, out, ind)
            else:
                alts = " or ".join(f"{self.predicate(b, ns, field)}({v})" for b in others)
                out.append(f"{ind}if {v} is None:\n{ind}    {'pass' if nullable else 'return False'}\n"
                           f"{ind}elif not ({alts}): return False\n")
            return
        if isinstance(s, str):
            self.primitive(s, field, v, out, ind)
            return
        t = s["type"]
        if t == "record":
            out.append(f"{ind}if not {self.record(s, ns)}({v}): return False\n")
        elif t == "enum":
            out.append(f"{ind}if {v} not in {self.const(frozenset(s['symbols']))}: return False\n")
        elif t == "array":
            minlen = (field or {}).get("ocop.minlen", 0)
            item = self.name("i")
            out.append(f"{ind}if (type({v}) is not list and type({v}) is not tuple) or len({v}) < {minlen!r}: "
                       f"return False\n{ind}for {item} in {v}:\n")
            self.emit(s["items"], ns, None, item, out, ind + "    ")
        elif t == "map":
            item = self.name("i")
            out.append(f"{ind}if type({v}) is not dict: return False\n{ind}for {item} in {v}.values():\n")
            self.emit(s["values"], ns, None, item, out, ind + "    ")
        elif isinstance(t, str) and t in _PRIMITIVE:
            self.primitive(t, field, v, out, ind)
        elif isinstance(t, (list, dict)) or t in self.slow.named or f"{ns}.{t}" in self.slow.named:
            self.emit(t, ns, field, v, out, ind)
        else:  # nothing the closures know either: let them say so
            out.append(f"{ind}return False\n")

    def primitive(self, name: str, field: dict | None, v: str, out: list[str], ind: str) -> None:
        f = field or {}
        check, lo, hi = f.get("ocop.check"), f.get("ocop.min"), f.get("ocop.max")
        if name == "string":
            out.append(f"{ind}if type({v}) is not str: return False\n")
        elif name in ("int", "long"):
            lo_int, hi_int = (-(2**31), 2**31) if name == "int" else (-(2**63), 2**63)
            out.append(f"{ind}if type({v}) is not int or not {lo_int!r} <= {v} < {hi_int!r}: return False\n")
        elif name in ("double", "float"):
            out.append(f"{ind}if type({v}) is float:\n{ind}    if not _isfinite({v}): return False\n"
                       f"{ind}elif type({v}) is not int or not -_BIG < {v} < _BIG: return False\n")
        elif name == "boolean":
            out.append(f"{ind}if type({v}) is not bool: return False\n")
        elif name == "bytes":
            out.append(f"{ind}if type({v}) is not bytes: return False\n")
        else:  # null
            out.append(f"{ind}if {v} is not None: return False\n")
        if check in _CHECKS:  # each line means `_CHECKS[check](v) is not None`, some with a shortcut
            fn = self.const(_CHECKS[check], "_ck")
            if check == "uuid":  # the canonical form, else uuid.UUID
                out.append(f"{ind}if _UUID({v}) is None and {fn}({v}) is not None: return False\n")
            elif check == "datetime":  # a text parsed before, else parse it
                out.append(f"{ind}if {v} not in _DATETIMES and {fn}({v}) is not None: return False\n")
            elif check == "lot":
                out.append(f"{ind}if not _LOT({v}): return False\n")
            elif check == "code":
                out.append(f"{ind}if not _CODE({v}): return False\n")
            elif check == "text":
                out.append(f"{ind}if not {v}.strip() or len({v}) > 500: return False\n")
            else:
                out.append(f"{ind}if {fn}({v}) is not None: return False\n")
        if lo is not None:
            out.append(f"{ind}if {v} < {self.const(lo)}: return False\n")
        if hi is not None:
            out.append(f"{ind}if {v} > {self.const(hi)}: return False\n")

    def record(self, s: dict, ns: str) -> str:
        ns = s.get("_ns") or s.get("namespace") or ns
        full = s["name"] if "." in s["name"] else f"{ns}.{s['name']}"
        fn = self.functions.get(full)
        if fn is not None:
            return fn  # also a recursive reference: the name is looked up when called
        fn = self.functions[full] = self.name("_r")
        names = self.const(frozenset(f["name"] for f in s["fields"]))
        body = [f"    if type(v) is not dict or not {names}.issuperset(v): return False\n"]
        for f in s["fields"]:
            x = self.name("x")
            if "default" in f:  # may be left out
                body.append(f"    {x} = v.get({f['name']!r}, _M)\n    if {x} is not _M:\n")
                ind = "        "
            else:  # required: a KeyError is a no
                body.append(f"    {x} = v[{f['name']!r}]\n")
                ind = "    "
            selector = f.get("ocop.selector")
            if selector:  # the branch named by a sibling enum (Event.payload by event_type)
                enum = self.slow.resolve(next(y for y in s["fields"] if y["name"] == selector)["type"], ns)
                sel = self.name("_sel")
                branches = ", ".join(f"{sym!r}: {self.predicate(b, ns, f)}"
                                     for sym, b in zip(enum["symbols"], f["type"], strict=True))
                self.late.append(f"{sel} = {{{branches}}}\n")
                body.append(f"{ind}{x}f = {sel}.get(v.get({selector!r}))\n"
                            f"{ind}if {x}f is None or not {x}f({x}): return False\n")
            else:
                self.emit(f["type"], ns, f, x, body, ind)
            after = f.get("ocop.after")
            if after:
                body.append(f"{ind}if {x} is not None:\n{ind}    {x}a = v.get({after!r})\n"
                            f"{ind}    if {x}a is not None and {x} < {x}a: return False\n")
        self.sources.append(f"def {fn}(v):\n" + "".join(body) + "    return True\n")
        return fn


@lru_cache(maxsize=None)
def _compiled(top: str) -> Check:
    c = _Compiler(top)
    return c.compile(c.named[top], "")


@lru_cache(maxsize=None)
def _fast(top: str) -> Callable[[Any], bool]:
    return _FastCompiler(top).build()


def is_valid(top: str, datum: Any) -> bool:
    """True if ``datum`` is certainly a valid ``top`` (the fast path of :func:`validate`; False: ask it why)."""
    return _fast(top)(datum)


def validate(top: str, datum: Any) -> None:
    """Raise :class:`Invalid` if ``datum`` is not a valid ``top`` (a top-level schema name)."""
    if not _fast(top)(datum):
        _compiled(top)(datum)
