"""GS1 Digital Link URIs and scanner input (qr.digital_link)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from hypothesis import given, settings
from hypothesis import strategies as st

from qr.digital_link import AI82_CHARS, DigitalLink, DigitalLinkError, check_ai82, parse_scan
from qr.gtin import make_gtin

GTIN = "08934588012112"
BASE = "https://truyxuat.ocop.vn"


def test_build_full_uri() -> None:
    dl = DigitalLink("8934588012112", "TC-2024-001", "123D7KQ2M9XA", date(2025, 12, 31))
    assert dl.gtin14 == GTIN
    uri = dl.build(BASE)
    assert uri == "https://truyxuat.ocop.vn/01/08934588012112/10/TC-2024-001/21/123D7KQ2M9XA?17=251231"
    assert DigitalLink.parse(uri) == dl
    assert DigitalLink.parse(uri, base=BASE) == dl


def test_build_under_a_base_path_and_trailing_slash() -> None:
    dl = DigitalLink(GTIN, "L1", "9")
    assert dl.build("https://r.example.vn/ocop/") == "https://r.example.vn/ocop/01/08934588012112/10/L1/21/9"
    assert DigitalLink.parse("https://r.example.vn/ocop/01/08934588012112/10/L1/21/9", base="https://r.example.vn/ocop") == dl
    assert DigitalLink.parse("https://r.example.vn/ocop/01/08934588012112/10/L1/21/9") == dl
    # a path prefix that itself contains /01/ is fine when the base is given
    uri = dl.build("https://r.example.vn/2024/01/x")
    assert DigitalLink.parse(uri, base="https://r.example.vn/2024/01/x") == dl


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/01/08934588012112", DigitalLink(GTIN)),
        ("/01/08934588012112/10/L%2F1", DigitalLink(GTIN, "L/1")),
        ("/01/08934588012112/21/S1", DigitalLink(GTIN, None, "S1")),
        ("/01/8934588012112/10/L1/21/S1", DigitalLink(GTIN, "L1", "S1")),  # GTIN-13 in the URI
        ("/01/036000291452/10/L1", DigitalLink("00036000291452", "L1")),  # GTIN-12
        ("/01/96385074", DigitalLink("00000096385074")),  # GTIN-8
        ("/gtin/08934588012112/lot/L1/ser/S1?exp=260228", DigitalLink(GTIN, "L1", "S1", date(2026, 2, 28))),
        ("/01/08934588012112/10/L1/?linkType=gs1:pip&context=x", DigitalLink(GTIN, "L1")),
        ("/01/08934588012112?17=240200", DigitalLink(GTIN, None, None, date(2024, 2, 29))),  # DD=00: month end
        ("/01/08934588012112/10/L1#frag", DigitalLink(GTIN, "L1")),
    ],
)
def test_short_forms_and_variants(path: str, expected: DigitalLink) -> None:
    assert DigitalLink.parse(path) == expected
    assert DigitalLink.parse(BASE + path) == expected
    assert DigitalLink.parse("HTTP://R.VN" + path) == expected


@pytest.mark.parametrize(
    ("uri", "part", "code", "reason"),
    [
        ("/01/08934588012113", "gtin", "bad_check_digit", "wrong check digit (last digit) 3, expected 2"),
        ("/01/08934588012", "gtin", "bad_gtin", "must be 8, 12, 13 or 14 digits, got 11"),
        ("/01/abc/10/L1", "gtin", "bad_gtin", "not a digit"),
        ("/01", "gtin", "missing", "no GTIN"),
        ("/10/L1/21/S1", "path", "missing", "no /01/<GTIN>"),
        ("/01/08934588012112/21/S1/10/L1", "path", "ai_order", "AI 10 (lot) must come before AI 21"),
        ("/01/08934588012112/10/L1/10/L2", "path", "ai_order", "AI 10 appears twice"),
        ("/01/08934588012112/22/V1/10/L1", "path", "unsupported_ai", "AI 22"),
        ("/01/08934588012112/99/X", "path", "unknown_ai", "'99' is not a key qualifier"),
        ("/01/08934588012112/10", "path", "dangling", "has no value"),
        ("/01/08934588012112/10//21/S", "lot", "empty", "is empty"),
        ("/01/08934588012112/10/" + "A" * 21, "lot", "too_long", "is 21 characters, at most 20"),
        ("/01/08934588012112/21/" + "9" * 21, "serial", "too_long", "is 21 characters"),
        ("/01/08934588012112/10/A%20B", "lot", "bad_char", "character ' ' at position 2"),
        ("/01/08934588012112/10/A~B", "lot", "bad_char", "character '~' at position 2"),
        ("/01/08934588012112/21/S%C3%A9", "serial", "bad_char", "character 'é' at position 2"),
        ("/01/08934588012112/21/S%FF", "serial", "bad_char", "not UTF-8"),
        ("/01/08934588012112/10/A%2", "lot", "bad_percent", "malformed percent-encoding"),
        ("/01/08934588012112/10/A%G1", "lot", "bad_percent", "malformed percent-encoding"),
        ("/01/08934588012112?17=251301", "expiry", "bad_date", "month 13 does not exist"),
        ("/01/08934588012112?17=250230", "expiry", "bad_date", "day 30 does not exist in 2025-02"),
        ("/01/08934588012112?17=2512", "expiry", "bad_date", "is not YYMMDD"),
        ("/01/08934588012112?17=", "expiry", "bad_date", "is not YYMMDD"),
        ("/01/08934588012112?17=251231&17=251230", "expiry", "ai_order", "AI 17 appears twice"),
        ("/01/08934588012112?10=L1", "lot", "ai_order", "belongs in the path"),
        ("ftp://r.vn/01/08934588012112", "uri", "bad_uri", "scheme 'ftp'"),
        ("https:///01/08934588012112", "uri", "bad_uri", "no host"),
        ("01/08934588012112", "uri", "bad_uri", "expected an http(s) URI"),
        ("https://r.vn/01/08934588012112/10/A B", "uri", "bad_uri", "whitespace"),
        ("", "uri", "missing", "empty"),
    ],
)
def test_rejections_name_part_and_reason(uri: str, part: str, code: str, reason: str) -> None:
    with pytest.raises(DigitalLinkError) as e:
        DigitalLink.parse(uri)
    assert (e.value.part, e.value.code) == (part, code), str(e.value)
    assert reason in e.value.reason
    assert str(e.value).startswith(f"{part}: ")
    assert isinstance(e.value, ValueError)


def test_wrong_base_is_rejected() -> None:
    uri = DigitalLink(GTIN, "L1").build("https://a.vn/ocop")
    with pytest.raises(DigitalLinkError) as e:
        DigitalLink.parse(uri, base="https://b.vn/ocop")
    assert (e.value.part, e.value.code) == ("base", "wrong_base")
    with pytest.raises(DigitalLinkError) as e:
        DigitalLink.parse(uri, base="https://a.vn/other")
    assert e.value.code == "wrong_base"
    with pytest.raises(DigitalLinkError) as e:
        DigitalLink(GTIN).build("not a url")
    assert e.value.part == "base"


@pytest.mark.parametrize(
    ("kwargs", "part", "code"),
    [
        ({"gtin14": "08934588012113"}, "gtin", "bad_check_digit"),
        ({"gtin14": GTIN, "lot": ""}, "lot", "empty"),
        ({"gtin14": GTIN, "lot": "lô-1"}, "lot", "bad_char"),
        ({"gtin14": GTIN, "serial": "x" * 21}, "serial", "too_long"),
        ({"gtin14": GTIN, "expiry": date(2100, 1, 1)}, "expiry", "bad_date"),
        ({"gtin14": 8934588012112}, "gtin", "bad_type"),
    ],
)
def test_constructor_validates(kwargs: dict, part: str, code: str) -> None:
    with pytest.raises(DigitalLinkError) as e:
        DigitalLink(**kwargs)
    assert (e.value.part, e.value.code) == (part, code)


def test_dot_segments_are_encoded_so_no_normaliser_can_eat_them() -> None:
    for lot in (".", ".."):
        dl = DigitalLink(GTIN, lot, "S")
        uri = dl.build(BASE)
        assert "/10/%2E" in uri
        assert DigitalLink.parse(uri) == dl


def test_every_ai82_character_round_trips_and_only_unreserved_stay_literal() -> None:
    chars = "".join(sorted(AI82_CHARS))
    for i in range(0, len(chars), 20):
        lot = chars[i : i + 20]
        dl = DigitalLink(GTIN, lot, lot[::-1])
        uri = dl.build(BASE)
        path = uri.split("?", 1)[0][len(BASE) :]
        for seg in path.split("/")[1:]:
            assert re.fullmatch(r"(?:[A-Za-z0-9\-._]|%[0-9A-F]{2})+", seg), seg
        assert DigitalLink.parse(uri) == dl


def test_check_ai82() -> None:
    assert check_ai82("lot", "A-1/2") == "A-1/2"
    with pytest.raises(DigitalLinkError, match="lot: is 21 characters"):
        check_ai82("lot", "1" * 21)


# --- properties -----------------------------------------------------------------------------------------------------
gtins = st.sampled_from([7, 11, 12, 13]).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n).filter(lambda s: s.strip("0"))
).map(make_gtin)
ai82 = st.text(alphabet=sorted(AI82_CHARS), min_size=1, max_size=20)
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
bases = st.sampled_from(
    [BASE, "http://127.0.0.1:8000", "https://r.example.vn/ocop", "https://r.example.vn/a/b/", "https://id.gs1.org"]
)


@settings(max_examples=150, deadline=None)
@given(gtins, st.none() | ai82, st.none() | ai82, st.none() | dates, bases)
def test_build_parse_round_trip(gtin: str, lot, serial, expiry, base: str) -> None:  # noqa: ANN001
    dl = DigitalLink(gtin, lot, serial, expiry)
    uri = dl.build(base)
    assert DigitalLink.parse(uri) == dl
    assert DigitalLink.parse(uri, base=base) == dl
    assert parse_scan(uri) == dl
    assert parse_scan(dl.element_string()) == dl
    if not any(c in "()" for c in (lot or "") + (serial or "")):  # HRI brackets are ambiguous inside values
        assert parse_scan(dl.element_string(hri=True)) == dl
    # biip reads the same element strings out of our URI
    found = {es.ai.ai: es.value for es in GS1DigitalLinkURI.parse(uri).element_strings}
    want = {"01": dl.gtin14}
    if lot is not None:
        want["10"] = lot
    if serial is not None:
        want["21"] = serial
    if expiry is not None:
        want["17"] = f"{expiry:%y%m%d}"
    assert found == want


@settings(max_examples=100, deadline=None)
@given(gtins, ai82, st.integers(0, 13), st.sampled_from("0123456789"))
def test_any_corrupted_gtin_digit_is_rejected(gtin: str, lot: str, pos: int, digit: str) -> None:
    g = DigitalLink(gtin).gtin14
    if g[pos] == digit:
        return
    bad = g[:pos] + digit + g[pos + 1 :]
    with pytest.raises(DigitalLinkError) as e:
        DigitalLink.parse(f"{BASE}/01/{bad}/10/{DigitalLink(g, lot).path.split('/10/')[1]}")
    assert e.value.part == "gtin"


# --- scanner input --------------------------------------------------------------------------------------------------
def test_parse_scan_forms() -> None:
    want = DigitalLink(GTIN, "L-1", "77A", date(2026, 3, 31))
    assert parse_scan("0108934588012112" "17260331" "10L-1\x1d" "2177A") == want
    assert parse_scan("]d20108934588012112" "17260331" "10L-1\x1d" "2177A\r\n") == want
    assert parse_scan("]C10108934588012112" "10L-1\x1d" "2177A" "\x1d17260331") == want
    assert parse_scan("(01)08934588012112(17)260331(10)L-1(21)77A") == want
    assert parse_scan("(01) 08934588012112 (10) L-1 (21) 77A (17) 260331") == want
    assert parse_scan("]Q3" + want.build(BASE)) == want
    assert parse_scan(want.build(BASE)) == want
    assert parse_scan("8934588012112") == DigitalLink(GTIN)
    assert parse_scan("0108934588012112|10L-1|2177A", separators=("|",)) == DigitalLink(GTIN, "L-1", "77A")
    # AIs a stamp does not use are ignored
    assert parse_scan("(01)08934588012112(11)240101(10)L-1") == DigitalLink(GTIN, "L-1")


@pytest.mark.parametrize(
    ("text", "part", "code"),
    [
        ("(10)L-1(21)77A", "gtin", "missing"),
        ("0108934588012113" "10L1", "gtin", "bad_check_digit"),
        ("(01)08934588012112(17)261301", "element string", "bad_element_string"),
        ("(01)08934588012112(99)X(10)" + "A" * 21, "element string", "bad_element_string"),
        ("]d2", "element string", "missing"),
        ("", "element string", "missing"),
        ("hello world", "element string", "bad_element_string"),
        ("893458801211", "gtin", "bad_check_digit"),
    ],
)
def test_parse_scan_rejections(text: str, part: str, code: str) -> None:
    with pytest.raises(DigitalLinkError) as e:
        parse_scan(text)
    assert (e.value.part, e.value.code) == (part, code), str(e.value)
