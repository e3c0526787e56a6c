"""GTIN check digits and normalisation (qr.gtin)."""

from __future__ import annotations

import pytest
from biip.gtin import Gtin
from hypothesis import given, settings
from hypothesis import strategies as st

from qr.gtin import GtinError, check_digit, gs1_prefix_usage, is_valid, make_gtin, to_gtin14, validate

# Published GTINs: Stabilo pen (EAN-13), the GS1 GTIN-8 example, a UPC-A (Colgate), GS1 examples, a Vietnamese one.
KNOWN = {
    "4006381333931": "04006381333931",
    "96385074": "00000096385074",
    "036000291452": "00036000291452",
    "012345678905": "00012345678905",
    "9501101531000": "09501101531000",
    "5901234123457": "05901234123457",
    "00614141123452": "00614141123452",
    "8934588012112": "08934588012112",
    "10614141000415": "10614141000415",
}


@pytest.mark.parametrize(("gtin", "gtin14"), KNOWN.items())
def test_known_gtins_are_valid_and_normalise_to_14(gtin: str, gtin14: str) -> None:
    assert is_valid(gtin)
    assert validate(gtin) == gtin
    assert to_gtin14(gtin) == gtin14
    assert to_gtin14(gtin14) == gtin14
    assert check_digit(gtin[:-1]) == int(gtin[-1])


@pytest.mark.parametrize(
    ("body", "digit"),
    [("400638133393", 1), ("9638507", 4), ("03600029145", 2), ("893458801211", 2), ("950110153100", 0),
     ("9501234", 6), ("1061414100041", 5)],
)
def test_check_digit(body: str, digit: int) -> None:
    assert check_digit(body) == digit
    assert make_gtin(body) == body + str(digit)


def test_wrong_check_digit_names_given_and_expected() -> None:
    with pytest.raises(GtinError) as e:
        to_gtin14("4006381333932")
    assert e.value.reason == "wrong check digit (last digit) 2, expected 1"
    assert "4006381333932" in str(e.value)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("400638133391", "wrong check digit (last digit) 1, expected 0"),
        ("40063813339", "must be 8, 12, 13 or 14 digits, got 11"),
        ("400638133393100", "must be 8, 12, 13 or 14 digits, got 15"),
        ("4006381x33931", "character 'x' at position 8 is not a digit"),
        ("4006381-333931", "character '-' at position 8 is not a digit"),
        ("٤٠٠٦٣٨١٣٣٣٩٣١", "character '٤' at position 1 is not a digit"),  # Arabic-Indic digits are not GTIN digits
        ("", "empty"),
        ("   ", "empty"),
        ("00000000", "all zeros is not a GTIN"),
    ],
)
def test_invalid_gtins_say_why(value: str, reason: str) -> None:
    with pytest.raises(GtinError) as e:
        validate(value)
    assert reason in e.value.reason
    assert not is_valid(value)


def test_non_string_is_rejected() -> None:
    with pytest.raises(GtinError, match="expected a string"):
        validate(4006381333931)  # type: ignore[arg-type]


def test_surrounding_whitespace_is_stripped() -> None:
    assert to_gtin14(" 4006381333931\n") == "04006381333931"


@pytest.mark.parametrize("body", ["12345", "123456789012345", "12a4567", 1234567])
def test_check_digit_body_must_be_digits_of_a_gtin_length(body: object) -> None:
    with pytest.raises(GtinError):
        check_digit(body)  # type: ignore[arg-type]


def test_vietnamese_prefix() -> None:
    assert gs1_prefix_usage("8934588012112") == "GS1 Vietnam"


bodies = st.sampled_from([7, 11, 12, 13]).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n).filter(lambda s: s.strip("0"))
)


@settings(max_examples=100, deadline=None)
@given(bodies)
def test_made_gtins_validate_and_agree_with_biip(body: str) -> None:
    gtin = make_gtin(body)
    g14 = to_gtin14(gtin)
    assert len(g14) == 14 and g14.endswith(gtin) and g14.lstrip("0") == gtin.lstrip("0")
    assert to_gtin14(g14) == g14
    assert Gtin.parse(g14).as_gtin_14() == g14


@settings(max_examples=100, deadline=None)
@given(bodies, st.data())
def test_any_single_digit_error_is_caught(body: str, data: st.DataObject) -> None:
    gtin = make_gtin(body)
    pos = data.draw(st.integers(0, len(gtin) - 1))
    new = data.draw(st.sampled_from([d for d in "0123456789" if d != gtin[pos]]))
    wrong = gtin[:pos] + new + gtin[pos + 1 :]
    if wrong.strip("0"):
        assert not is_valid(wrong)
