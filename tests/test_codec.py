"""Crockford Base32, hex and decimal forms."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chronoid.codec import (
    FORMATS,
    base32_width,
    decode_base32,
    decode_hex,
    encode_base32,
    encode_hex,
    format_id,
    format_ids,
    parse_id,
)
from chronoid.errors import AmbiguousId, DecodeError, InvalidArgument
from chronoid.layout import Layout
from chronoid.variants import VARIANTS, get_layout


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
    assert format_id(255, 64, "hex") == "0x00000000000000ff"
    assert decode_hex("0xFF", 64) == 255
    assert format_id(31, 32, "base32") == "000000Z"
    assert parse_id("0x1f", 64) == 31 and parse_id("31", 64) == 31
    assert parse_id("z", 64, "base32") == 31 and parse_id("1f", 64, "hex") == 31
    with pytest.raises(DecodeError):
        decode_hex("0xZZ", 64)
    with pytest.raises(DecodeError, match="does not fit"):
        parse_id(str(2**64), 64)
    with pytest.raises(InvalidArgument, match="unknown format"):
        format_id(1, 64, "octal")
    with pytest.raises(InvalidArgument, match="does not fit"):
        encode_base32(-1, 64)


# -- one strict grammar per form (issue 15.1); each case below was misread at a95c2b7 -------

LAYOUTS = list(VARIANTS.values())


def test_an_all_digit_base32_id_is_read_as_base32_not_decimal() -> None:
    # A chrono64ms ID of 2026-07-27: every symbol happens to be a digit.
    layout = get_layout("chrono64ms")
    assert parse_id("0612345678901", layout) == decode_base32("0612345678901", 64)
    assert parse_id("0612345678901", 64) == decode_base32("0612345678901", 64)
    assert layout.unpack(parse_id("0612345678901", layout)).time.year == 2026
    # 7 digits at 32 bits likewise (about 0.5 % of fresh uchrono32y IDs look like this).
    assert parse_id("0123456", get_layout("uchrono32y")) == decode_base32("0123456", 32)


def test_a_string_valid_in_two_forms_is_refused_with_both_readings() -> None:
    with pytest.raises(AmbiguousId, match="decimal 1234567890123 .*or Crockford Base32 ") as info:
        parse_id("1234567890123", get_layout("chrono64ms"))
    assert info.value.readings == {
        "int": 1234567890123,
        "base32": decode_base32("1234567890123", 64),
    }
    assert "--input-format int or base32" in str(info.value)
    with pytest.raises(AmbiguousId, match="hex .* or Crockford Base32"):
        parse_id("0X1234567890A", 64)
    # Naming the form settles it.
    assert parse_id("1234567890123", 64, "int") == 1234567890123
    assert parse_id("0X1234567890A", 64, "hex") == 0x1234567890A
    # A reading that does not fit the layout is no reading: Base32 8... is >= 2^63.
    assert parse_id("8234567890123", get_layout("chrono64ms")) == 8234567890123


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-5", "never negative"),
        ("-ZZ", "never negative"),
        ("+5", "without a sign"),
        ("-0612345678901", "never negative"),
        ("²", r"non-ASCII character '²' \(U\+00B2\) at position 0"),
        ("١٢٣", r"non-ASCII character '١' \(U\+0661\)"),
        ("１２３", r"U\+FF11"),
        ("12 ", r"U\+00A0\) at position 2"),
        ("K" * 13, r"U\+212A"),  # KELVIN SIGN: lower() makes it an ASCII k
        ("0x+ff", "not a hex ID"),
        ("0x f", "not a hex ID"),
        ("0xf_f", "not a hex ID"),
        ("0x-ff", "not a hex ID"),
        ("0x", "not a hex ID"),
        ("1_000", "not an ID"),
        ("1 000", "not an ID"),
        ("0612-345678901-", "hyphen may only stand between"),
        ("06--12345678901", "hyphen may only stand between"),
        ("", "empty ID"),
        ("   ", "empty ID"),
        ("z", "exactly 13 symbols"),
        ("9" * 5000, "does not fit in 64 bits"),
        (str(2**63), "above snowflake's largest ID"),
    ],
)
def test_malformed_ids_are_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as info:
        parse_id(text, get_layout("snowflake"))
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize(
    ("text", "form", "message"),
    [
        ("-5", "int", "without a sign"),
        ("٣", "int", "non-ASCII"),
        ("+ff", "hex", "without a sign"),
        ("f_f", "hex", "not a hex ID"),
        ("-Z", "base32", "never negative"),
        ("Z-", "base32", "hyphen"),
        ("ZU", "base32", "invalid Crockford Base32 character 'U'"),
    ],
)
def test_named_forms_are_strict_too(text: str, form: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        parse_id(text, 64, form)


def test_public_decoders_refuse_what_int_would_accept() -> None:
    for bad in ("+ff", "f f", "f_f", "٣", " ff"):
        with pytest.raises(DecodeError):
            decode_hex(bad, 64)
    for bad in ("-Z", "Z-", "٣", "Z Z"):
        with pytest.raises(DecodeError):
            decode_base32(bad, 64, exact_width=False)


def _boundary_values(layout: Layout) -> list[int]:
    top = layout.max_id
    return sorted(
        {0, 1, 9, 10, 31, 32, top // 2, top - 1, top, *(1 << b for b in range(top.bit_length()))}
    )


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_every_form_of_boundary_values_reads_back_or_is_refused(layout: Layout) -> None:
    for value in _boundary_values(layout):
        for form in FORMATS:
            _assert_reads_back(format_id(value, layout.width, form), layout, value)
    too_big = layout.max_id + 1
    for form in ("int", "hex"):
        with pytest.raises(DecodeError):
            parse_id(format_id(too_big, layout.width + 1, form), layout)
    with pytest.raises(DecodeError):
        parse_id(format_id(too_big, layout.width + 1, "base32"), layout, "base32")


def _assert_reads_back(text: str, layout: Layout, value: int) -> None:
    try:
        got = parse_id(text, layout)
    except AmbiguousId as exc:
        # Loud, and the true value is among the readings shown.
        assert value in exc.readings.values(), (text, exc.readings)
        return
    assert got == value, (layout.name, text, got, value)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(LAYOUTS), st.data())
@example(get_layout("chrono64ms"), None)
def test_what_format_id_writes_auto_mode_reads_back_or_refuses(
    layout: Layout, data: object
) -> None:
    values = [0x0AB6_8CA1_0E30_0E41 & layout.max_id]
    if data is not None:
        draw = data.draw  # type: ignore[attr-defined]
        values = [draw(st.integers(0, layout.max_id))]
        # IDs of the next centuries, whose Base32 form is often all digits.
        digits = draw(
            st.text(alphabet="0123456789", min_size=1, max_size=base32_width(layout.width))
        )
        as_base32 = decode_base32(digits, layout.width + 5, exact_width=False)
        if as_base32 <= layout.max_id:
            values.append(as_base32)
    for value in values:
        for form in FORMATS:
            _assert_reads_back(format_id(value, layout.width, form), layout, value)
            _assert_reads_back(format_id(value, layout.width, form).lower(), layout, value)


_STRICT = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]+|[0-9A-Za-z]+(-[0-9A-Za-z]+)*")


@settings(max_examples=500, deadline=None)
@given(st.text(), st.sampled_from(LAYOUTS))
@example("²", get_layout("snowflake"))
@example("0٣", get_layout("snowflake"))
def test_arbitrary_text_is_an_id_or_one_clean_decode_error(text: str, layout: Layout) -> None:
    try:
        value = parse_id(text, layout)
    except DecodeError as exc:
        assert "\n" not in str(exc)
        return
    body = text.strip(" \t\r\n")
    assert body.isascii() and _STRICT.fullmatch(body), text
    assert 0 <= value <= layout.max_id


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="0123456789abcdefxXABCDEFGHJKMNPQRSTVWXYZ-+_ ", max_size=20),
    st.sampled_from(LAYOUTS),
)
def test_near_miss_text_never_gets_two_values(text: str, layout: Layout) -> None:
    # Whatever auto mode returns is what the form it matched would return when named.
    try:
        value = parse_id(text, layout)
    except DecodeError:
        return
    named = set()
    for form in FORMATS:
        with contextlib.suppress(DecodeError):
            named.add(parse_id(text, layout, form) == value)
    assert True in named


@given(st.lists(st.integers(0, 2**64 - 1), max_size=50), st.sampled_from([64, 32, 41, 5, 128]))
def test_format_ids_writes_what_format_id_writes(values: list[int], bits: int) -> None:
    values = [v % (1 << bits) for v in values]
    for form in FORMATS:
        assert format_ids(values, bits, form) == [format_id(v, bits, form) for v in values]
    with pytest.raises(InvalidArgument):
        format_ids([*values, 1 << bits], bits, "base32")
