"""GS1 Digital Link URIs for stamps: build, parse, and read scanner input.

The stamp URI (DESIGN.md, "Stamps")::

    https://<resolver>[/<base path>]/01/<GTIN-14>[/10/<lot>][/21/<serial>][?17=<expiry YYMMDD>]

* AI 01 (GTIN) is the primary key; GTIN-8/12/13 in a URI are accepted and normalised to GTIN-14; the check digit
  must be right.
* AI 10 (batch/lot) and AI 21 (serial) are key qualifiers: path only, in that order (GS1 Digital Link URI syntax
  1.2 fixes the order 22, 10, 21 after 01), each optional. Values are 1..20 characters of GS1 AI encodable
  character set 82 (``!"%&'()*+,-./0-9:;<=>?A-Z_a-z``) and are percent-encoded in the URI except for the RFC 3986
  unreserved ones (letters, digits, ``-._``); a segment that is exactly ``.`` or ``..`` is encoded too so that no URL
  normaliser can swallow it.
* AI 17 (expiry) is a query attribute ``YYMMDD``; ``DD = 00`` means the last day of the month (GS1 GenSpecs
  §7.12). The century is always 20YY: deterministic (replaying an old scan gives the same answer) and right for
  any expiry date this project will print.
* Other query parameters (``linkType``, ``context``, other GS1 data attributes) are ignored by :meth:`parse`.
  The short convenience names of Digital Link 1.1 (``gtin``, ``lot``, ``ser``, ``exp``) are accepted when parsing.

Errors are :class:`DigitalLinkError` (a ``ValueError``) with ``part`` (which part of the input: ``uri``, ``base``,
``path``, ``gtin``, ``lot``, ``serial``, ``expiry``, ``element string``), ``code`` (a stable machine-readable
reason) and ``reason`` (an English sentence).

Scanner input (a keyboard-wedge scanner reading a GS1 DataMatrix/GS1-128, a crate tag, a QR) goes through
:func:`parse_scan`, which accepts a Digital Link URI, a bracketed element string ``(01)...(10)...``, a raw GS1
element string with ``<GS>`` (0x1D) separators (optionally behind a symbology identifier such as ``]d2``), or a bare
GTIN. Element strings are parsed by biip.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from typing import NoReturn
from datetime import date
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from biip import ParseConfig, ParseError
from biip.gs1_messages import GS1Message
from biip.symbology import SymbologyIdentifier

from qr.gtin import GtinError, to_gtin14

__all__ = [
    "AI82_CHARS",
    "MAX_AI_LEN",
    "DigitalLink",
    "DigitalLinkError",
    "check_ai82",
    "parse_scan",
]

# GS1 General Specifications, figure 7.11-1: the 82 characters allowed in AI 10 and AI 21.
AI82_CHARS = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
MAX_AI_LEN = 20
_AI82_RE = re.compile(r"""[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}""")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_YYMMDD = re.compile(r"[0-9]{6}")
_DIGITS = re.compile(r"[0-9]+")

# Path keys: numeric AIs and the Digital Link 1.1 convenience names.
_GTIN_KEYS = {"01": "01", "gtin": "01"}
_QUALIFIER_KEYS = {"10": "10", "lot": "10", "21": "21", "ser": "21"}
_KNOWN_UNSUPPORTED = {"22": "consumer product variant", "235": "third-party controlled serial extension"}
_EXPIRY_KEYS = ("17", "exp")
_PART_OF_AI = {"01": "gtin", "10": "lot", "21": "serial", "17": "expiry"}
_GS = "\x1d"


class DigitalLinkError(ValueError):
    """Input that is not a stamp Digital Link: ``part`` (where), ``code`` (stable id), ``reason`` (English)."""

    def __init__(self, part: str, code: str, reason: str) -> None:
        self.part = part
        self.code = code
        self.reason = reason
        super().__init__(f"{part}: {reason}")


def check_ai82(part: str, value: object) -> str:
    """Return ``value`` if it is 1..20 characters of GS1 character set 82, else raise DigitalLinkError for ``part``."""
    if not isinstance(value, str):
        raise DigitalLinkError(part, "bad_type", f"expected a string, got {type(value).__name__}")
    if _AI82_RE.fullmatch(value):
        return value
    if not value:
        raise DigitalLinkError(part, "empty", "is empty")
    for pos, ch in enumerate(value, start=1):
        if ch not in AI82_CHARS:
            raise DigitalLinkError(
                part, "bad_char", f"character {ch!r} at position {pos} is not in the GS1 character set 82"
            )
    raise DigitalLinkError(part, "too_long", f"is {len(value)} characters, at most {MAX_AI_LEN} allowed")


def _encode_segment(value: str) -> str:
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _decode_segment(part: str, raw: str) -> str:
    if _BAD_PERCENT.search(raw):
        raise DigitalLinkError(part, "bad_percent", f"malformed percent-encoding in {raw!r}")
    try:
        return unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise DigitalLinkError(part, "bad_char", f"percent-encoding in {raw!r} is not UTF-8") from exc


def _check_gtin(raw: str) -> str:
    try:
        return to_gtin14(raw)
    except GtinError as exc:
        code = "bad_check_digit" if "check digit" in exc.reason else "bad_gtin"
        raise DigitalLinkError("gtin", code, exc.reason) from None


def _parse_yymmdd(raw: str) -> date:
    if not _YYMMDD.fullmatch(raw):
        raise DigitalLinkError("expiry", "bad_date", f"{raw!r} is not YYMMDD (6 digits)")
    year, month, day = 2000 + int(raw[0:2]), int(raw[2:4]), int(raw[4:6])
    if not 1 <= month <= 12:
        raise DigitalLinkError("expiry", "bad_date", f"{raw!r}: month {month:02d} does not exist")
    last = calendar.monthrange(year, month)[1]
    if day == 0:  # GS1: day 00 means the last day of the month
        day = last
    if day > last:
        raise DigitalLinkError("expiry", "bad_date", f"{raw!r}: day {day:02d} does not exist in {year}-{month:02d}")
    return date(year, month, day)


def _base_parts(base: str) -> tuple[str, str, list[str]]:
    """(scheme, netloc, path segments) of a resolver base URL; raise DigitalLinkError if it cannot be one."""
    if not isinstance(base, str):
        raise DigitalLinkError("base", "bad_base", f"expected a URL string, got {type(base).__name__}")
    sp = urlsplit(base.strip())
    if sp.scheme.lower() not in ("http", "https") or not sp.netloc:
        raise DigitalLinkError("base", "bad_base", f"{base!r} is not an http(s) URL with a host")
    if sp.query or sp.fragment:
        raise DigitalLinkError("base", "bad_base", f"{base!r} must not have a query or fragment")
    segs = [s for s in sp.path.split("/") if s]
    return sp.scheme.lower(), sp.netloc, segs


@dataclass(frozen=True, slots=True)
class DigitalLink:
    """The identifiers on one stamp. ``gtin14`` is normalised to 14 digits on construction; all fields validated."""

    gtin14: str
    lot: str | None = None
    serial: str | None = None
    expiry: date | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.gtin14, str):
            _raise_type("gtin", self.gtin14)
        object.__setattr__(self, "gtin14", _check_gtin(self.gtin14))
        if self.lot is not None:
            check_ai82("lot", self.lot)
        if self.serial is not None:
            check_ai82("serial", self.serial)
        if self.expiry is not None:
            if not isinstance(self.expiry, date):
                _raise_type("expiry", self.expiry)
            if not 2000 <= self.expiry.year <= 2099:
                raise DigitalLinkError("expiry", "bad_date", f"year {self.expiry.year} cannot be written as YYMMDD")

    # --- building -------------------------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The Digital Link path, e.g. ``/01/08934588012112/10/L1/21/123A7K2M9QX``."""
        p = f"/01/{self.gtin14}"
        if self.lot is not None:
            p += f"/10/{_encode_segment(self.lot)}"
        if self.serial is not None:
            p += f"/21/{_encode_segment(self.serial)}"
        return p

    @property
    def query(self) -> str:
        """The query string without ``?`` (``17=YYMMDD`` or empty)."""
        return f"17={self.expiry:%y%m%d}" if self.expiry is not None else ""

    def build(self, base: str) -> str:
        """The full URI under the resolver ``base`` (which may carry a path prefix, e.g. ``https://r.vn/ocop``)."""
        _base_parts(base)
        q = self.query
        return f"{base.strip().rstrip('/')}{self.path}{'?' + q if q else ''}"

    def element_string(self, *, hri: bool = False) -> str:
        """GS1 element string: ``(01)..(17)..(10)..(21)..`` if ``hri``, else the raw form with GS separators."""
        parts: list[tuple[str, str, bool]] = [("01", self.gtin14, False)]
        if self.expiry is not None:
            parts.append(("17", f"{self.expiry:%y%m%d}", False))
        if self.lot is not None:
            parts.append(("10", self.lot, True))
        if self.serial is not None:
            parts.append(("21", self.serial, True))
        if hri:
            return "".join(f"({ai}){v}" for ai, v, _ in parts)
        out = ""
        for i, (ai, v, variable) in enumerate(parts):
            out += ai + v
            if variable and i < len(parts) - 1:
                out += _GS
        return out

    # --- parsing --------------------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, uri: str, *, base: str | None = None) -> DigitalLink:
        """Parse a stamp URI (or just its path and query, starting with ``/``).

        With ``base`` the URI must live under it (same host, base path as a prefix); without it the first ``/01/``
        segment followed by a GTIN-looking segment starts the Digital Link path.
        """
        if not isinstance(uri, str):
            raise DigitalLinkError("uri", "bad_uri", f"expected a string, got {type(uri).__name__}")
        text = uri.strip()
        if not text:
            raise DigitalLinkError("uri", "missing", "is empty")
        if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in text):
            raise DigitalLinkError("uri", "bad_uri", "contains whitespace or control characters")
        sp = urlsplit(text)
        if sp.scheme:
            if sp.scheme.lower() not in ("http", "https"):
                raise DigitalLinkError("uri", "bad_uri", f"scheme {sp.scheme!r} is not http or https")
            if not sp.netloc:
                raise DigitalLinkError("uri", "bad_uri", "has no host")
        elif not text.startswith("/") or text.startswith("//"):
            raise DigitalLinkError("uri", "bad_uri", "expected an http(s) URI or a path starting with '/'")

        segs = sp.path.split("/")
        if segs and segs[0] == "":
            segs = segs[1:]
        if segs and segs[-1] == "":
            segs = segs[:-1]  # a trailing slash is harmless

        if base is not None:
            _, b_netloc, b_segs = _base_parts(base)
            if sp.netloc and sp.netloc.lower() != b_netloc.lower():
                raise DigitalLinkError("base", "wrong_base", f"host {sp.netloc!r} is not the resolver {b_netloc!r}")
            if segs[: len(b_segs)] != b_segs:
                raise DigitalLinkError(
                    "base", "wrong_base", f"path {sp.path!r} is not under the resolver path '/{'/'.join(b_segs)}'"
                )
            start = len(b_segs)
            if start >= len(segs) or segs[start] not in _GTIN_KEYS:
                raise DigitalLinkError("path", "missing", "no /01/<GTIN> after the resolver base")
        else:
            start = next(
                (i for i, s in enumerate(segs)
                 if s in _GTIN_KEYS and i + 1 < len(segs) and _DIGITS.fullmatch(segs[i + 1])),
                None,
            )
            if start is None:  # no /01/<digits>: report on the first /01/ if there is one
                start = next((i for i, s in enumerate(segs) if s in _GTIN_KEYS), None)
            if start is None:
                raise DigitalLinkError("path", "missing", "no /01/<GTIN> primary key in the path")

        rest = segs[start:]
        if len(rest) < 2 or rest[1] == "":
            raise DigitalLinkError("gtin", "missing", "no GTIN after /01/")
        if len(rest) % 2:
            raise DigitalLinkError("path", "dangling", f"AI {rest[-1]!r} has no value")
        gtin = _check_gtin(_decode_segment("gtin", rest[1]))

        values: dict[str, str] = {}
        order = ("10", "21")
        last = -1
        for i in range(2, len(rest), 2):
            key, raw = rest[i], rest[i + 1]
            ai = _QUALIFIER_KEYS.get(key)
            if ai is None:
                if key in _GTIN_KEYS:
                    raise DigitalLinkError("path", "ai_order", "AI 01 appears twice")
                if key in _KNOWN_UNSUPPORTED:
                    raise DigitalLinkError("path", "unsupported_ai",
                                           f"AI {key} ({_KNOWN_UNSUPPORTED[key]}) is not used on OCOP stamps")
                raise DigitalLinkError("path", "unknown_ai", f"{key!r} is not a key qualifier of AI 01 (10, 21)")
            if ai in values:
                raise DigitalLinkError("path", "ai_order", f"AI {ai} appears twice")
            pos = order.index(ai)
            if pos < last:
                raise DigitalLinkError("path", "ai_order", "AI 10 (lot) must come before AI 21 (serial)")
            last = pos
            part = _PART_OF_AI[ai]
            if raw == "":
                raise DigitalLinkError(part, "empty", "is empty")
            values[ai] = check_ai82(part, _decode_segment(part, raw))

        expiry: date | None = None
        if sp.query:
            if _BAD_PERCENT.search(sp.query):
                raise DigitalLinkError("uri", "bad_percent", "malformed percent-encoding in the query")
            seen = set()
            for key, val in parse_qsl(sp.query, keep_blank_values=True):
                if key in _EXPIRY_KEYS:
                    if "17" in seen:
                        raise DigitalLinkError("expiry", "ai_order", "AI 17 appears twice")
                    seen.add("17")
                    expiry = _parse_yymmdd(val)
                elif key in ("01", "10", "21", "gtin", "lot", "ser"):
                    ai = _GTIN_KEYS.get(key) or _QUALIFIER_KEYS[key]
                    raise DigitalLinkError(_PART_OF_AI[ai], "ai_order",
                                           f"AI {ai} belongs in the path, not the query")
        return cls(gtin, values.get("10"), values.get("21"), expiry)


def _raise_type(part: str, value: object) -> NoReturn:
    raise DigitalLinkError(part, "bad_type", f"unexpected type {type(value).__name__}")


def parse_scan(text: str, *, base: str | None = None, separators: tuple[str, ...] = (_GS,)) -> DigitalLink:
    """Read what a scanner typed: a Digital Link URI, ``(01)..(10)..`` element string, raw GS1 string, or a GTIN.

    Raw GS1 strings may start with a symbology identifier (``]d2``, ``]C1``, ``]Q3``, ``]e0``) and separate
    variable-length fields with any of ``separators`` (default the ASCII group separator 0x1D that scanners send for
    FNC1). AIs other than 01, 10, 17 and 21 are ignored; AI 01 is required.
    """
    if not isinstance(text, str):
        raise DigitalLinkError("element string", "bad_type", f"expected a string, got {type(text).__name__}")
    s = text.strip().strip("\r\n")
    if s.startswith("]") and len(s) >= 3:
        try:
            sym = SymbologyIdentifier.extract(s)
        except ParseError as exc:
            raise DigitalLinkError("element string", "bad_symbology", str(exc)) from None
        s = s[len(sym):]
    if not s:
        raise DigitalLinkError("element string", "missing", "is empty")
    if s[:5].lower() in ("http:", "https") or s.startswith("/"):
        return DigitalLink.parse(s, base=base)
    if s.isascii() and s.isdigit() and len(s) <= 14:
        return DigitalLink(_check_gtin(s))
    config = ParseConfig(separator_chars=tuple(separators))
    try:
        msg = GS1Message.parse_hri(s, config=config) if s.startswith("(") else GS1Message.parse(s, config=config)
    except ParseError as exc:
        raise DigitalLinkError("element string", "bad_element_string", str(exc)) from None
    found: dict[str, str] = {}
    for es in msg.element_strings:
        ai = es.ai.ai
        if ai in _PART_OF_AI:
            if ai in found:
                raise DigitalLinkError(_PART_OF_AI[ai], "ai_order", f"AI {ai} appears twice")
            found[ai] = es.value
    if "01" not in found:
        raise DigitalLinkError("gtin", "missing", "no AI (01) GTIN in the element string")
    expiry = _parse_yymmdd(found["17"]) if "17" in found else None
    return DigitalLink(_check_gtin(found["01"]), found.get("10"), found.get("21"), expiry)
