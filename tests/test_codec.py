"""Crockford Base32, hex and decimal forms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoid.codec import (
    base32_width,
    decode_base32,
    decode_hex,
    encode_base32,
    encode_hex,
    format_id,
    parse_id,
)
from chronoid.errors import DecodeError, InvalidArgument


@given(st.integers(0, 2**64 - 1))
def test_base32_round_trip_64(value: int) -> None:
    text = encode_base32(value, 64)
    assert len(text) == 13
    assert decode_base32(text, 64) == value
    assert decode_base32(text.lower(), 64) == value


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_base32_sorts_like_the_integers(a: int, b: int) -> None:
    assert (encode_base32(a, 32) < encode_base32(b, 32)) == (a < b)


def test_spec_example_and_erratum() -> None:
    # Spec 002 §6.1 says 9402115 is "8Z5Y03"; it is 8YXR3 (7 symbols at 32 bits).
    assert encode_base32(9402115, 32) == "008YXR3"
    assert decode_base32("8YXR3", 32, exact_width=False) == 9402115
    assert base32_width(64) == 13 and base32_width(32) == 7


def test_aliases_and_hyphens() -> None:
    assert decode_base32("0O8-YXR3", 32) == decode_base32("008YXR3", 32)
    assert decode_base32("00000IL", 32) == decode_base32("0000011", 32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("00000U1", "invalid Crockford Base32 character 'U' at position 5"),
        ("0000!00", "character '!'"),
        ("123", "has 3 symbols; a 32-bit ID has 7"),
        ("ZZZZZZZ", "overflows 32 bits"),
        ("", "empty"),
    ],
)
def test_bad_base32_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_base32(text, 32)


def test_hex_and_decimal_forms() -> None:
    assert encode_hex(255, 64) == "00000000000000ff"
    assert decode_hex("0xFF", 64) == 255
    assert format_id(31, 32, "base32") == "000000Z"
    assert parse_id("0x1f", 64) == 31 and parse_id("31", 64) == 31 and parse_id("z", 64) == 31
    with pytest.raises(DecodeError):
        decode_hex("0xZZ", 64)
    with pytest.raises(DecodeError, match="does not fit"):
        parse_id(str(2**64), 64)
    with pytest.raises(InvalidArgument, match="unknown format"):
        format_id(1, 64, "octal")
    with pytest.raises(InvalidArgument, match="does not fit"):
        encode_base32(-1, 64)
