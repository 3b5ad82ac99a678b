"""The named layouts: ``snowflake`` and every ChronoID variant of spec 002 §5.

Bit splits follow the spec's tables with the errata of ``docs/errata.md``:

* the tables give the unsigned (``uchrono``) split; the signed (``chrono``) form keeps the
  top bit 0 and takes that bit from the node field (``chrono64s`` = 33/15/15);
* ``uchrono32mo`` and ``uchrono32w`` are listed as 12/11/10 and 14/10/9, which need 33 bits:
  chronoid keeps the timestamp bits and takes the bit from the node (12/10/10, 14/9/9);
* ``chrono32bs`` has no node bits, so its signed form takes the bit from the timestamp
  (31/0/0) and its range halves;
* every expiry is computed from the layout, never copied from the tables.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import Literal, get_args

from chronoid.errors import UnknownVariant
from chronoid.layout import Layout

__all__ = [
    "CHRONO_EPOCH",
    "SNOWFLAKE",
    "SNOWFLAKE_EPOCH",
    "VARIANTS",
    "VariantName",
    "get_layout",
    "time_of",
]

SNOWFLAKE_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
"""Epoch of the Snowflake layout (spec 000 and 003): 2024-01-01T00:00:00Z."""

CHRONO_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
"""Epoch of every ChronoID variant (spec 002): 2020-01-01T00:00:00Z."""

SNOWFLAKE = Layout("snowflake", "ms", SNOWFLAKE_EPOCH, 41, 10, 12, width=64, signed=True)
"""1 unused bit, 41 bits of ms since 2024-01-01, 10-bit worker, 12-bit sequence."""

# Unsigned splits (T, N, S) per unit, as in spec 002 §5 after errata 1.
_SPLITS_64: dict[str, tuple[int, int, int]] = {
    "mo": (12, 26, 26),
    "w": (14, 26, 24),
    "d": (17, 24, 23),
    "h": (21, 22, 21),
    "m": (27, 19, 18),
    "s": (33, 16, 15),
    "ds": (36, 15, 13),
    "cs": (40, 12, 12),
    "ms": (43, 11, 10),
    "us": (53, 6, 5),
}
_SPLITS_32: dict[str, tuple[int, int, int]] = {
    "y": (8, 13, 11),
    "hy": (9, 12, 11),
    "q": (10, 11, 11),
    "mo": (12, 10, 10),  # spec: 12/11/10 = 33 bits (erratum 1)
    "w": (14, 9, 9),  # spec: 14/10/9 = 33 bits (erratum 1)
    "d": (17, 8, 7),
    "h": (22, 5, 5),
    "tm": (24, 4, 4),
    "m": (28, 2, 2),
    "bs": (32, 0, 0),
}


def _signed(t: int, n: int, s: int) -> tuple[int, int, int]:
    # The sign bit comes out of the node field; with no node bits, out of the timestamp.
    return (t, n - 1, s) if n > 0 else (t - 1, n, s)


def _build() -> dict[str, Layout]:
    table: dict[str, Layout] = {"snowflake": SNOWFLAKE}
    for width, splits in ((64, _SPLITS_64), (32, _SPLITS_32)):
        for unit, (t, n, s) in splits.items():
            u_name = f"uchrono{width}{unit}"
            table[u_name] = Layout(u_name, unit, CHRONO_EPOCH, t, n, s, width=width, signed=False)
            st, sn, ss = _signed(t, n, s)
            name = f"chrono{width}{unit}"
            table[name] = Layout(name, unit, CHRONO_EPOCH, st, sn, ss, width=width, signed=True)
    return table


VARIANTS: dict[str, Layout] = _build()
"""Every named layout by name: ``snowflake``, ``chrono64s``, ``uchrono32y``, ..."""


VariantName = Literal[
    "snowflake",
    "uchrono64mo",
    "chrono64mo",
    "uchrono64w",
    "chrono64w",
    "uchrono64d",
    "chrono64d",
    "uchrono64h",
    "chrono64h",
    "uchrono64m",
    "chrono64m",
    "uchrono64s",
    "chrono64s",
    "uchrono64ds",
    "chrono64ds",
    "uchrono64cs",
    "chrono64cs",
    "uchrono64ms",
    "chrono64ms",
    "uchrono64us",
    "chrono64us",
    "uchrono32y",
    "chrono32y",
    "uchrono32hy",
    "chrono32hy",
    "uchrono32q",
    "chrono32q",
    "uchrono32mo",
    "chrono32mo",
    "uchrono32w",
    "chrono32w",
    "uchrono32d",
    "chrono32d",
    "uchrono32h",
    "chrono32h",
    "uchrono32tm",
    "chrono32tm",
    "uchrono32m",
    "chrono32m",
    "uchrono32bs",
    "chrono32bs",
]
"""Every variant name, as a type: ``Generator("chrono64x")`` fails type checking (mypy,
pyright), not only at run time. A name only known at run time (from configuration) goes
through :func:`get_layout`, which takes any ``str`` and checks it."""


def get_layout(name: str | Layout) -> Layout:
    """The named layout (a :class:`Layout` passes through unchanged).

    Raises:
        UnknownVariant: the name is not a known variant; the message suggests close names.
    """
    if isinstance(name, Layout):
        return name
    layout = VARIANTS.get(name) if isinstance(name, str) else None
    if layout is None:
        close = difflib.get_close_matches(str(name), VARIANTS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownVariant(
            f"unknown variant {name!r}{hint} (run `chronoid variants` for the full list)"
        )
    return layout


if set(get_args(VariantName)) != set(VARIANTS):  # pragma: no cover - caught by the tests
    raise AssertionError("VariantName and VARIANTS list different names")


def time_of(value: int, variant: VariantName | Layout) -> datetime:
    """When the ID ``value`` of ``variant`` was made: the start of its tick, an aware UTC datetime.

    Precision is the layout's unit (a ``chrono64s`` ID knows its second, a ``chrono32y`` ID its
    year). Same as ``get_layout(variant).time_of_id(value)``.

    Raises:
        UnknownVariant: not a variant name.
        DecodeError: not an int, negative, or wider than the layout.
    """
    return get_layout(variant).time_of_id(value)
