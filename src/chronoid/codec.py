"""String forms of IDs: Crockford Base32, hex and decimal.

Crockford Base32 (https://www.crockford.com/base32.html) uses ``0-9`` and the letters
without I, L, O and U, so an ID survives being read aloud or typed by hand. Decoding is
case-insensitive and accepts the standard's aliases (``I``/``L`` → 1, ``O`` → 0) and
ignores hyphens. Encoding pads to a fixed width per layout (13 characters for 64 bits, 7
for 32), so strings sort exactly like the integers.

JSON and JavaScript: a JSON number above 2^53 (9,007,199,254,740,992) loses precision in
JavaScript's ``Number`` (``JSON.parse`` silently rounds it). Every 64-bit layout produces
such IDs within milliseconds of its epoch; send them to browsers as strings (decimal or
Base32), e.g. ``{"id": "7G0Q3P9R2B1KE"}`` rather than ``{"id": 1234567890123456789}``.
"""

from __future__ import annotations

from chronoid.errors import DecodeError, InvalidArgument

__all__ = [
    "ALPHABET",
    "FORMATS",
    "base32_width",
    "decode_base32",
    "decode_hex",
    "encode_base32",
    "encode_hex",
    "format_id",
    "parse_id",
]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's 32 symbols, in value order."""

_DECODE: dict[str, int] = {ch: i for i, ch in enumerate(ALPHABET)}
_DECODE.update({ch.lower(): i for ch, i in list(_DECODE.items())})
_DECODE.update({"I": 1, "i": 1, "L": 1, "l": 1, "O": 0, "o": 0})


def _check_width(bits: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 1024:
        raise InvalidArgument(f"width must be 1..1024 bits, got {bits!r}")


def base32_width(bits: int) -> int:
    """Characters needed for a ``bits``-wide value: ceil(bits / 5)."""
    _check_width(bits)
    return -(-bits // 5)


def encode_base32(value: int, bits: int = 64) -> str:
    """``value`` as fixed-width Crockford Base32 (``ceil(bits/5)`` characters).

    Raises:
        InvalidArgument: value negative or wider than ``bits``.
    """
    _check_width(bits)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise InvalidArgument(f"value {value!r} does not fit in {bits} unsigned bits")
    chars = []
    for _ in range(base32_width(bits)):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def decode_base32(text: str, bits: int = 64, *, exact_width: bool = True) -> int:
    """Parse Crockford Base32; case-insensitive, aliases accepted, hyphens ignored.

    Args:
        text: the string to parse.
        bits: the width of the value (bits).
        exact_width: require exactly ``ceil(bits/5)`` symbols, as :func:`encode_base32`
            writes them; False accepts any length up to that.

    Raises:
        DecodeError: an invalid character (with its position), the wrong length, or a
        value that overflows ``bits``.
    """
    _check_width(bits)
    if not isinstance(text, str):
        raise DecodeError(f"expected a string, got {type(text).__name__}")
    symbols = text.replace("-", "")
    width = base32_width(bits)
    if not symbols:
        raise DecodeError("empty Base32 string")
    if len(symbols) > width or (exact_width and len(symbols) != width):
        raise DecodeError(
            f"Base32 {text!r} has {len(symbols)} symbols; a {bits}-bit ID has {width}"
        )
    value = 0
    for position, ch in enumerate(symbols):
        digit = _DECODE.get(ch)
        if digit is None:
            raise DecodeError(
                f"invalid Crockford Base32 character {ch!r} at position {position} in {text!r}"
            )
        value = (value << 5) | digit
    if value >> bits:
        raise DecodeError(f"Base32 {text!r} overflows {bits} bits")
    return value


def encode_hex(value: int, bits: int = 64) -> str:
    """``value`` as fixed-width lowercase hex (``ceil(bits/4)`` digits), no prefix."""
    _check_width(bits)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise InvalidArgument(f"value {value!r} does not fit in {bits} unsigned bits")
    return format(value, f"0{-(-bits // 4)}x")


def decode_hex(text: str, bits: int = 64) -> int:
    """Parse hex with or without ``0x``.

    Raises:
        DecodeError: not hex, or wider than ``bits``.
    """
    _check_width(bits)
    body = text[2:] if text[:2].lower() == "0x" else text
    try:
        value = int(body, 16)
    except ValueError:
        raise DecodeError(f"not a hex ID: {text!r}") from None
    if value < 0 or value >> bits:
        raise DecodeError(f"hex {text!r} does not fit in {bits} bits")
    return value


FORMATS = ("int", "base32", "hex")
"""String forms :func:`format_id` and :func:`parse_id` know."""


def format_id(value: int, bits: int, form: str = "int") -> str:
    """``value`` in one of :data:`FORMATS` (fixed width for base32 and hex)."""
    if form == "int":
        return str(value)
    if form == "base32":
        return encode_base32(value, bits)
    if form == "hex":
        return encode_hex(value, bits)
    raise InvalidArgument(f"unknown format {form!r}; allowed: {', '.join(FORMATS)}")


def parse_id(text: str, bits: int, form: str = "auto") -> int:
    """Parse an ID written as decimal, hex (``0x`` prefix) or Crockford Base32.

    ``form="auto"`` reads all-digit strings as decimal, ``0x...`` as hex and anything else
    as Base32 of any length up to the width; name the form to force another reading.

    Raises:
        DecodeError: the text is not an ID of that form and width.
    """
    text = text.strip()
    if form == "auto":
        if text.isdigit():
            form = "int"
        elif text[:2].lower() == "0x":
            form = "hex"
        else:
            form = "base32"
    if form == "int":
        if not text.isdigit():
            raise DecodeError(f"not a decimal ID: {text!r}")
        value = int(text)
        if value >> bits:
            raise DecodeError(f"{text} does not fit in {bits} bits")
        return value
    if form == "hex":
        return decode_hex(text, bits)
    if form == "base32":
        return decode_base32(text, bits, exact_width=False)
    raise InvalidArgument(f"unknown format {form!r}; allowed: auto, {', '.join(FORMATS)}")
