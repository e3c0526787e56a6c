"""GTIN-8/12/13/14: check digits, validation, normalisation to GTIN-14.

A GTIN is 8, 12, 13 or 14 digits whose last digit is a GS1 mod-10 check digit (GS1 General Specifications §7.9.1).
Everything in this project stores and compares GTINs as GTIN-14 (left-padded with zeros), as GS1 recommends and as
GS1 Digital Link URIs carry them.

    >>> to_gtin14("4006381333931")
    '04006381333931'
    >>> check_digit("400638133393")
    1
    >>> to_gtin14("4006381333932")
    Traceback (most recent call last):
    ...
    qr.gtin.GtinError: GTIN '4006381333932': wrong check digit (last digit) 2, expected 1

The weighting itself is biip's (:func:`biip.checksums.gs1_standard_check_digit`); the error messages and the rules
(lengths, all-zero GTIN) are ours so that callers get one readable reason.
"""

from __future__ import annotations

from biip.checksums import gs1_standard_check_digit
from biip.gtin import Gtin

__all__ = [
    "GTIN_LENGTHS",
    "GtinError",
    "check_digit",
    "gs1_prefix_usage",
    "is_valid",
    "make_gtin",
    "to_gtin14",
    "validate",
]

GTIN_LENGTHS = (8, 12, 13, 14)


class GtinError(ValueError):
    """A value that is not a valid GTIN. ``reason`` is the human-readable why, ``value`` the rejected input."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"GTIN {value!r}: {reason}")


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for ``body`` (the GTIN without its last digit, 7/11/12/13 digits)."""
    if not isinstance(body, str) or not body.isascii() or not body.isdigit():
        raise GtinError(body, "check digit body must be a string of ASCII digits")
    if len(body) + 1 not in GTIN_LENGTHS:
        raise GtinError(body, f"check digit body must be 7, 11, 12 or 13 digits, got {len(body)}")
    return gs1_standard_check_digit(body)


def make_gtin(body: str) -> str:
    """``body`` followed by its check digit."""
    return f"{body}{check_digit(body)}"


def validate(value: str) -> str:
    """Return ``value`` stripped of surrounding whitespace if it is a valid GTIN-8/12/13/14, else raise GtinError.

    The reason names the problem: wrong length, a non-digit (and where), an all-zero number, or the check digit
    given versus the one expected.
    """
    if not isinstance(value, str):
        raise GtinError(value, f"expected a string of digits, got {type(value).__name__}")
    s = value.strip()
    if not s:
        raise GtinError(value, "empty")
    for pos, ch in enumerate(s, start=1):
        if not ("0" <= ch <= "9"):
            raise GtinError(value, f"character {ch!r} at position {pos} is not a digit")
    if len(s) not in GTIN_LENGTHS:
        raise GtinError(value, f"must be 8, 12, 13 or 14 digits, got {len(s)}")
    if s.count("0") == len(s):
        raise GtinError(value, "all zeros is not a GTIN")
    expected = gs1_standard_check_digit(s[:-1])
    given = ord(s[-1]) - 48
    if given != expected:
        raise GtinError(value, f"wrong check digit (last digit) {given}, expected {expected}")
    return s


def is_valid(value: str) -> bool:
    """True if ``value`` is a valid GTIN-8/12/13/14."""
    try:
        validate(value)
    except GtinError:
        return False
    return True


def to_gtin14(value: str) -> str:
    """Validate ``value`` (GTIN-8/12/13/14) and return it as a 14-digit GTIN (left-padded with zeros)."""
    return validate(value).zfill(14)


def gs1_prefix_usage(value: str) -> str | None:
    """Who allocated this GTIN's prefix, per biip's GS1 prefix table (e.g. ``'GS1 Vietnam'`` for 893...), or None."""
    gtin = Gtin.parse(to_gtin14(value))
    return gtin.prefix.usage if gtin.prefix is not None else None
