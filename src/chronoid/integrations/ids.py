"""The checks every integration shares: is this value an ID of that layout, and its forms.

One home for what "a valid ID" means at a boundary (an API, a column, a form field), so the
Pydantic type, the SQLAlchemy column and the Django field accept and refuse the same values.
"""

from __future__ import annotations

from typing import Literal

from chronoid.codec import base32_width, decode_base32, encode_base32
from chronoid.errors import DecodeError, InvalidArgument
from chronoid.layout import Layout
from chronoid.variants import VariantName, get_layout

__all__ = ["TextForm", "check_id", "format_text", "layout_of", "parse_text"]

TextForm = Literal["decimal", "base32"]
"""How an ID is written as a string: decimal digits, or fixed-width Crockford Base32."""


def layout_of(variant: VariantName | Layout) -> Layout:
    """The layout for ``variant`` (a name or a :class:`Layout`); UnknownVariant if none."""
    return get_layout(variant)


def check_form(form: object) -> TextForm:
    """``form`` if it is ``"decimal"`` or ``"base32"``; InvalidArgument otherwise."""
    if form == "decimal":
        return "decimal"
    if form == "base32":
        return "base32"
    raise InvalidArgument(f"form must be 'decimal' or 'base32', got {form!r}")


def check_id(layout: Layout, value: object) -> int:
    """``value`` if it is an int that an ID of ``layout`` can be (0..max_id); else DecodeError.

    ``bool`` is refused although it is an int: ``True`` is never meant as an ID.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError(f"a {layout.name} ID is an int, got {type(value).__name__}")
    if not 0 <= value <= layout.max_id:
        raise DecodeError(f"{value} is not a {layout.name} ID (allowed: 0..{layout.max_id})")
    return int(value)


def parse_text(layout: Layout, text: str, prefer: TextForm = "decimal") -> int:
    """An ID written as ASCII decimal digits or as fixed-width Crockford Base32.

    Strict on purpose: no sign, no spaces, no ``_`` separators, no non-ASCII digits, and
    Base32 only at the layout's full width (13 symbols for 64 bits, 7 for 32). A string valid
    in both forms (all digits, at the full width) is read as :func:`chronoid.codec.parse_id`
    reads it: with a leading ``0`` it is Base32 (no decimal ID is written with one; Base32
    IDs of today start with ``0``); otherwise as ``prefer``, the form the caller writes, so
    what :func:`format_text` writes always reads back to the same value.

    Raises:
        DecodeError: neither form, or a value outside the layout.
    """
    width = base32_width(layout.width)
    readings: dict[str, int] = {}
    decimal = text.isascii() and text.isdigit() and len(text) <= len(str(layout.max_id))
    if decimal and int(text) <= layout.max_id:
        readings["decimal"] = int(text)
    if len(text) == width and text.isascii() and text.isalnum():
        try:
            value = decode_base32(text, layout.width)
        except DecodeError:
            pass
        else:
            if value <= layout.max_id:
                readings["base32"] = value
    if len(readings) == 2:
        return readings["base32" if text[0] == "0" else prefer]
    if readings:
        return next(iter(readings.values()))
    if decimal:
        return check_id(layout, int(text))  # the out-of-range message
    raise DecodeError(
        f"{text[:40]!r} is not a {layout.name} ID: expected decimal digits (at most "
        f"{layout.max_id}) or {width} Crockford Base32 symbols"
    )


def format_text(layout: Layout, value: int, form: TextForm) -> str:
    """``value`` as a string of ``form`` (Base32 at the layout's full width, so it sorts)."""
    return str(value) if form == "decimal" else encode_base32(value, layout.width)
