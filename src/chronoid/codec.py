"""String forms of IDs: decimal, ``0x`` hex and Crockford Base32, each with one strict grammar.

Crockford Base32 (https://www.crockford.com/base32.html) uses ``0-9`` and the letters
without I, L, O and U, so an ID survives being read aloud or typed by hand. Decoding is
case-insensitive, accepts the standard's aliases (``I``/``L`` → 1, ``O`` → 0) and single
hyphens between symbols (``0ABC-DEF``). Encoding pads to a fixed width per layout (13
characters for 64 bits, 7 for 32), so strings sort exactly like the integers.

The grammars are ASCII only; nothing else is an ID:

* decimal: ``[0-9]+``;
* hex: ``0x`` or ``0X`` then ``[0-9a-fA-F]+`` (the prefix is optional only when the form is
  named); :func:`format_id` writes ``0x`` and the full width (18 characters for 64 bits);
* Base32: Crockford symbols, hyphens only between them.

No sign, no spaces or underscores inside, no other digits (superscripts, Arabic-Indic,
fullwidth): Python's ``int()`` accepts several of those, so it is never called on raw input.
Leading and trailing ASCII whitespace (space, tab, CR, LF) is ignored.

Auto mode (:func:`parse_id` with ``form="auto"``) reads a string in every form whose grammar
it matches, Base32 only at its full width (13 symbols for 64 bits, 7 for 32), and keeps the
readings whose value fits the width (or the layout). One reading: that is the value. Several
(``0612345678901`` is decimal and Base32; ``0X1234567890A`` is hex and Base32): an all-digit
string that starts with ``0`` is Base32, because chronoid never writes a decimal ID with a
leading zero and every Base32 ID of today starts with ``0``; anything else is refused with
:class:`~chronoid.errors.AmbiguousId`, which shows every reading. Never a silent guess.

JSON and JavaScript: a JSON number above 2^53 (9,007,199,254,740,992) loses precision in
JavaScript's ``Number`` (``JSON.parse`` silently rounds it). Every 64-bit layout produces
such IDs within milliseconds of its epoch; send them to browsers as strings (decimal or
Base32), e.g. ``{"id": "7G0Q3P9R2B1KE"}`` rather than ``{"id": 1234567890123456789}``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from chronoid.errors import AmbiguousId, DecodeError, InvalidArgument
from chronoid.layout import Layout

__all__ = [
    "ALPHABET",
    "FORMATS",
    "base32_width",
    "decode_base32",
    "decode_hex",
    "encode_base32",
    "encode_hex",
    "format_id",
    "format_ids",
    "parse_id",
    "parse_id_reading",
    "well_formed",
]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's 32 symbols, in value order."""

_DECODE: dict[str, int] = {ch: i for i, ch in enumerate(ALPHABET)}
_DECODE.update({ch.lower(): i for ch, i in list(_DECODE.items())})
_DECODE.update({"I": 1, "i": 1, "L": 1, "l": 1, "O": 0, "o": 0})

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_WHITESPACE = " \t\r\n"  # ASCII only: str.strip() would also eat U+00A0, U+2003, U+0085 ...
_SHOWN_CHARS = 40  # longest input echoed in an error message (characters)

# Every pair of symbols, indexed by a 10-bit value: encoding takes one lookup per 2 symbols.
_PAIRS = tuple(a + b for a in ALPHABET for b in ALPHABET)


@functools.cache
def _triples() -> tuple[str, ...]:
    """Every 3 symbols, indexed by a 15-bit value (32,768 strings, about 2 MB): built on first
    use by :func:`format_ids`, where it makes Base32 about 2-3 times faster than pairs."""
    return tuple(a + b + c for a in ALPHABET for b in ALPHABET for c in ALPHABET)


def _check_width(bits: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 1024:
        raise InvalidArgument(f"width must be 1..1024 bits, got {bits!r}")


# repr() writes a byte that surrogateescape kept (argv, stdin) as \udcff: show it as \xff.
_ESCAPED_BYTE = re.compile(r"(?<!\\)\\udc([89a-f][0-9a-f])")


def well_formed(text: str) -> str:
    """``text`` with each undecodable byte (a lone surrogate from surrogateescape, as argv and
    ``chronoid inspect -`` keep them) written ``\\xNN``: fit for JSON, where a lone surrogate
    is no Unicode (Node's ``encodeURIComponent`` throws; jq and Go turn it into U+FFFD)."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no byte made (a Python caller's string)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _shown(text: str) -> str:
    """``text`` for an error message: quoted, escaped, and cut if long (one line, always)."""
    if len(text) <= _SHOWN_CHARS:
        return _ESCAPED_BYTE.sub(r"\\x\1", repr(text))
    cut = _ESCAPED_BYTE.sub(r"\\x\1", repr(text[:_SHOWN_CHARS]))
    return f"{cut}... ({len(text):,} characters)"


def _check_ascii(text: str, original: str) -> None:
    if text.isascii():
        return
    position, ch = next((i, c) for i, c in enumerate(original) if not c.isascii())
    if 0xDC80 <= ord(ch) <= 0xDCFF:  # how surrogateescape (argv, stdin) keeps a bad byte
        what = f"byte 0x{ord(ch) - 0xDC00:02X}, which is not UTF-8,"
    else:
        what = f"non-ASCII character {ch!r} (U+{ord(ch):04X})"
    raise DecodeError(
        f"{_shown(original)} is not an ID: {what} at position {position}; IDs are written in "
        "ASCII digits and letters only"
    )


def base32_width(bits: int) -> int:
    """Characters needed for a ``bits``-wide value: ceil(bits / 5)."""
    _check_width(bits)
    return -(-bits // 5)


def _check_value(value: int, bits: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise InvalidArgument(f"value {value!r} does not fit in {bits} unsigned bits")


def _base32_encoder(bits: int) -> Callable[[int], str]:
    """A fast encoder for one width (no checks): unrolled for 64 and 32 bits."""
    pairs, alphabet = _PAIRS, ALPHABET
    if bits == 64:
        return lambda v: (
            alphabet[v >> 60]
            + pairs[v >> 50 & 1023]
            + pairs[v >> 40 & 1023]
            + pairs[v >> 30 & 1023]
            + pairs[v >> 20 & 1023]
            + pairs[v >> 10 & 1023]
            + pairs[v & 1023]
        )
    if bits == 32:
        return lambda v: (
            alphabet[v >> 30] + pairs[v >> 20 & 1023] + pairs[v >> 10 & 1023] + pairs[v & 1023]
        )
    width = base32_width(bits)
    shifts = range(5 * (width - 1), -1, -5)
    return lambda v: "".join([alphabet[v >> shift & 31] for shift in shifts])


def encode_base32(value: int, bits: int = 64) -> str:
    """``value`` as fixed-width Crockford Base32 (``ceil(bits/5)`` characters).

    Raises:
        InvalidArgument: value negative or wider than ``bits``.
    """
    _check_width(bits)
    _check_value(value, bits)
    return _base32_encoder(bits)(value)


def _decode_base32(text: str, bits: int, *, exact_width: bool, original: str) -> int:
    symbols = text.replace("-", "")
    if not symbols:
        raise DecodeError(f"{_shown(original)} is not a Base32 ID: no symbols")
    if text[0] == "-" or text[-1] == "-" or "--" in text:
        raise DecodeError(
            f"{_shown(original)} is not a Base32 ID: a hyphen may only stand between two "
            "symbols (no sign, no leading, trailing or double hyphen)"
        )
    width = -(-bits // 5)
    if len(symbols) > width or (exact_width and len(symbols) != width):
        raise DecodeError(
            f"Base32 {_shown(original)} has {len(symbols)} symbols; a {bits}-bit ID has {width}"
        )
    value = 0
    for position, ch in enumerate(symbols):
        digit = _DECODE.get(ch)
        if digit is None:
            raise DecodeError(
                f"invalid Crockford Base32 character {ch!r} at position {position} in "
                f"{_shown(original)}"
            )
        value = (value << 5) | digit
    if value >> bits:
        raise DecodeError(f"Base32 {_shown(original)} overflows {bits} bits")
    return value


def decode_base32(text: str, bits: int = 64, *, exact_width: bool = True) -> int:
    """Parse Crockford Base32: case-insensitive, aliases accepted, hyphens between symbols.

    Args:
        text: the string to parse (nothing around it: no whitespace, no sign).
        bits: the width of the value (bits).
        exact_width: require exactly ``ceil(bits/5)`` symbols, as :func:`encode_base32`
            writes them; False accepts any length from 1 up to that.

    Raises:
        DecodeError: a non-ASCII or invalid character (with its position), a misplaced
        hyphen, the wrong length, or a value that overflows ``bits``.
    """
    _check_width(bits)
    if not isinstance(text, str):
        raise DecodeError(f"expected a string, got {type(text).__name__}")
    _check_ascii(text, text)
    if not text:
        raise DecodeError("empty Base32 string")
    return _decode_base32(text, bits, exact_width=exact_width, original=text)


def encode_hex(value: int, bits: int = 64) -> str:
    """``value`` as fixed-width lowercase hex (``ceil(bits/4)`` digits), no prefix."""
    _check_width(bits)
    _check_value(value, bits)
    return format(value, f"0{-(-bits // 4)}x")


def _decode_hex(text: str, bits: int, *, prefix_required: bool, original: str) -> int:
    has_prefix = text[:2] in ("0x", "0X")
    if prefix_required and not has_prefix:
        raise DecodeError(f"{_shown(original)} is not a hex ID: it needs the 0x prefix")
    digits = text[2:] if has_prefix else text
    if not digits or not _HEX_DIGITS.issuperset(digits):
        raise DecodeError(
            f"{_shown(original)} is not a hex ID: expected 0x then hex digits 0-9 a-f only "
            "(no sign, spaces or underscores)"
        )
    significant = digits.lstrip("0") or "0"
    if len(significant) > -(-bits // 4) or int(significant, 16) >> bits:
        raise DecodeError(f"hex {_shown(original)} does not fit in {bits} bits")
    return int(significant, 16)


def decode_hex(text: str, bits: int = 64) -> int:
    """Parse hex digits, with or without a ``0x``/``0X`` prefix (nothing else around them).

    Raises:
        DecodeError: not hex (sign, spaces, underscores, non-ASCII), or wider than ``bits``.
    """
    _check_width(bits)
    if not isinstance(text, str):
        raise DecodeError(f"expected a string, got {type(text).__name__}")
    _check_ascii(text, text)
    return _decode_hex(text, bits, prefix_required=False, original=text)


def _decode_decimal(text: str, bits: int, *, original: str) -> int:
    # isdigit() on an ASCII string is exactly 0-9; int() alone would accept "+5", "1_0", "٣".
    if not (text.isascii() and text.isdigit()):
        raise DecodeError(
            f"{_shown(original)} is not a decimal ID: expected ASCII digits 0-9 only "
            "(no sign, spaces or underscores)"
        )
    significant = text.lstrip("0") or "0"
    # Length first: int() of thousands of digits is slow, and refused past 4,300.
    if len(significant) > len(str((1 << bits) - 1)) or int(significant) >> bits:
        raise DecodeError(f"{_shown(original)} does not fit in {bits} bits")
    return int(significant)


FORMATS = ("int", "base32", "hex")
"""String forms :func:`format_id` writes and :func:`parse_id` reads."""

_FORM_NAMES = {"int": "decimal", "hex": "hex", "base32": "Crockford Base32"}


def format_id(value: int, bits: int, form: str = "int") -> str:
    """``value`` in one of :data:`FORMATS`: decimal, fixed-width Base32, or ``0x`` + fixed-width
    hex. Auto-mode :func:`parse_id` reads each back (or refuses it as ambiguous, never misreads).
    """
    if form == "int":
        return str(value)
    if form == "base32":
        return encode_base32(value, bits)
    if form == "hex":
        return "0x" + encode_hex(value, bits)
    raise InvalidArgument(f"unknown format {form!r}; allowed: {', '.join(FORMATS)}")


def format_ids(values: Iterable[int], bits: int, form: str = "int") -> list[str]:
    """Like :func:`format_id` for many values at once: checks the width and form once, then
    encodes with no per-value dispatch (``chronoid new -n 10000000`` spends its time here).

    Raises:
        InvalidArgument: an unknown form, or a value that does not fit ``bits``.
    """
    _check_width(bits)
    values = list(values)
    if not values:
        return []
    low, high = min(values), max(values)
    _check_value(low, bits)
    _check_value(high, bits)
    if form == "int":
        return list(map(str, values))
    if form == "base32":
        # Inlined for the common widths: no call per value (benchmarks/bench_codec.py).
        a, t = ALPHABET, _triples()
        if bits == 64:
            return [
                f"{a[v >> 60]}{t[v >> 45 & 32767]}{t[v >> 30 & 32767]}{t[v >> 15 & 32767]}"
                f"{t[v & 32767]}"
                for v in values
            ]
        if bits == 32:
            return [f"{a[v >> 30]}{t[v >> 15 & 32767]}{t[v & 32767]}" for v in values]
        return list(map(_base32_encoder(bits), values))
    if form == "hex":
        pattern = f"#0{2 + -(-bits // 4)}x"
        return [format(v, pattern) for v in values]
    raise InvalidArgument(f"unknown format {form!r}; allowed: {', '.join(FORMATS)}")


def _limit(bits: int | Layout) -> tuple[int, int, str]:
    """(width in bits, largest value, what the value must fit) for ``parse_id``."""
    if isinstance(bits, Layout):
        return bits.width, bits.max_id, f"{bits.name}'s largest ID {bits.max_id}"
    _check_width(bits)
    return bits, (1 << bits) - 1, f"{bits} bits"


def parse_id(text: str, bits: int | Layout, form: str = "auto") -> int:
    """Parse an ID written as decimal, ``0x`` hex or Crockford Base32 (see the module doc).

    Args:
        text: the ID; ASCII whitespace around it is ignored.
        bits: the width in bits, or a :class:`~chronoid.layout.Layout` (then the value must
            also be at most its largest ID, ambiguity is judged against it, and an
            :class:`~chronoid.errors.AmbiguousId` message shows each reading's time).
        form: ``"auto"`` (default), or one of :data:`FORMATS` to read only that form; a named
            form also accepts hex without ``0x`` and Base32 shorter than the full width.

    Raises:
        AmbiguousId: auto mode, and the text is a valid ID in two forms (both readings shown).
        DecodeError: the text is not an ID of that form and width.
        InvalidArgument: an unknown form.
    """
    return parse_id_reading(text, bits, form)[0]


def parse_id_reading(text: str, bits: int | Layout, form: str = "auto") -> tuple[int, str]:
    """Like :func:`parse_id`, and also the form the text was read in (``"int"``, ``"hex"``
    or ``"base32"``): what ``chronoid inspect`` reports as ``form``.

    Raises:
        the same as :func:`parse_id`.
    """
    width, max_value, fits = _limit(bits)
    if form not in ("auto", *FORMATS):
        raise InvalidArgument(f"unknown format {form!r}; allowed: auto, {', '.join(FORMATS)}")
    if not isinstance(text, str):
        raise DecodeError(f"expected a string, got {type(text).__name__}")
    body = text.strip(_WHITESPACE)
    _check_ascii(body, text)
    if not body:
        raise DecodeError("empty ID: expected decimal digits, 0x-hex or Crockford Base32")
    if body[0] in "+-":
        raise DecodeError(
            f"{_shown(text)} is not an ID: IDs are never negative and are written without a sign"
        )
    decoders: dict[str, Callable[[], int]] = {
        "int": lambda: _decode_decimal(body, width, original=text),
        "hex": lambda: _decode_hex(body, width, prefix_required=form == "auto", original=text),
        "base32": lambda: _decode_base32(body, width, exact_width=form == "auto", original=text),
    }
    if form != "auto":
        return _check_fits(decoders[form](), max_value, fits, text), form
    readings: dict[str, int] = {}
    failures: dict[str, DecodeError] = {}
    for name, decode in decoders.items():
        try:
            readings[name] = _check_fits(decode(), max_value, fits, text)
        except DecodeError as exc:
            failures[name] = exc
    if len(readings) == 1:
        ((name, value),) = readings.items()
        return value, name
    if not readings:
        raise _no_reading(body, text, width, failures)
    if set(readings) == {"int", "base32"} and body[0] == "0":
        # chronoid never writes a decimal ID with a leading zero; Base32 IDs of today start
        # with 0 (a 64-bit one until its value reaches 2^60).
        return readings["base32"], "base32"
    shown = " or ".join(
        f"{_FORM_NAMES[name]} {value}{_time_note(value, bits)}" for name, value in readings.items()
    )
    raise AmbiguousId(
        f"{_shown(text)} is ambiguous: {shown}; name the form (--input-format "
        f"{' or '.join(readings)}, or form= in parse_id)",
        readings,
    )


def _time_note(value: int, layout: int | Layout) -> str:
    if not isinstance(layout, Layout):
        return ""
    moment = layout.unpack(value).time.isoformat().replace("+00:00", "Z")
    return f" ({layout.name} time {moment})"


def _check_fits(value: int, max_value: int, fits: str, text: str) -> int:
    if value > max_value:
        raise DecodeError(f"{_shown(text)} is {value}, above {fits}")
    return value


def _no_reading(body: str, text: str, width: int, failures: dict[str, DecodeError]) -> DecodeError:
    """The one failure that explains best why ``body`` is no ID in auto mode."""
    if body[:2] in ("0x", "0X"):
        return failures["hex"]
    if body.isdigit():
        return failures["int"]
    forms = (
        f"auto mode reads ASCII decimal digits, 0x-hex, or Crockford Base32 of exactly "
        f"{base32_width(width)} symbols for {width} bits"
    )
    stray = next(((i, c) for i, c in enumerate(body) if c != "-" and c not in _DECODE), None)
    symbols = body.replace("-", "")
    if stray is not None and stray[1].isalnum() and len(symbols) == base32_width(width):
        return failures["base32"]  # Base32-shaped, one bad letter (U): say which
    if stray is not None:
        position, ch = stray
        return DecodeError(
            f"{_shown(text)} is not an ID: {ch!r} at position {position} belongs to no form "
            f"({forms})"
        )
    if len(symbols) != base32_width(width) and "-" + "-" not in body and body[-1] != "-":
        return DecodeError(
            f"{_shown(text)} is not an ID: {forms}, and this has {len(symbols)}; name the form "
            "(--input-format base32) to read shorter Base32"
        )
    return failures["base32"]
