"""Decoding an ID whose layout may be unknown: what ``chronoid inspect`` prints.

A bare integer does not say which layout made it, and every layout decodes it to *some*
date: a PostgreSQL ``chrono64s`` ID read as ``snowflake`` gives a plausible-looking wrong
time. So nothing here assumes a layout. Given one, :func:`read` decodes under it and says
whether the time is plausible; given none, :func:`candidates` decodes under every named
layout and keeps those whose time is plausible.

Plausible means: not after now plus :data:`PLAUSIBLE_LEAD_S` (1 day), which covers clock
skew between the machine that made the ID and the one reading it, and any HLC lead. (A
decoded time is never before its layout's epoch: the timestamp field starts at 0 there.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chronoid.codec import format_id, parse_id_reading
from chronoid.errors import AmbiguousId, DecodeError
from chronoid.layout import IdParts, Layout
from chronoid.variants import VARIANTS

__all__ = ["PLAUSIBLE_LEAD_S", "Reading", "candidates", "describe", "iso_utc", "read"]

PLAUSIBLE_LEAD_S = 86_400
"""How far past now (s) a decoded time may lie and still be plausible: 1 day."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One way to decode an input: the value, the form it was read in, its fields.

    ``plausible`` is False when the time lies more than :data:`PLAUSIBLE_LEAD_S` after the
    moment of reading (a wrong layout, or a clock far ahead).
    """

    text: str
    form: str
    parts: IdParts
    plausible: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields: :func:`describe` plus ``input``, ``form`` and ``plausible``."""
        return {
            "input": self.text,
            "form": self.form,
            **describe(self.parts.id, self.parts.layout),
            "plausible": self.plausible,
        }


def iso_utc(moment: datetime) -> str:
    """``moment`` (aware, UTC) as ISO 8601 with a ``Z``: how every chronoid output writes time."""
    return moment.isoformat().replace("+00:00", "Z")


def describe(value: int, layout: Layout) -> dict[str, Any]:
    """The fields of ``value`` under ``layout`` as a JSON-ready dict.

    The ID goes out as a decimal string as well as in Base32 and hex: JSON numbers above
    2^53 break in JavaScript.

    Raises:
        DecodeError: ``value`` is not an ID of ``layout``.
    """
    parts = layout.unpack(value)
    return {
        "id": str(value),
        "base32": format_id(value, layout.width, "base32"),
        "hex": format_id(value, layout.width, "hex"),
        "variant": layout.name,
        "time": iso_utc(parts.time),
        "timestamp": parts.timestamp,
        "unit": layout.unit.description,
        "node": parts.node,
        "sequence": parts.sequence,
        "bits": layout.bits_label(),
        "expiry": iso_utc(layout.expiry),
    }


def _plausible(parts: IdParts, now_ns: int) -> bool:
    layout = parts.layout
    return layout.tick_start_ns(parts.timestamp) <= now_ns + PLAUSIBLE_LEAD_S * 1_000_000_000


def read(text: str, layout: Layout, form: str = "auto", *, now_ns: int | None = None) -> Reading:
    """Decode ``text`` under ``layout``.

    Args:
        text: the ID in any form :func:`chronoid.codec.parse_id` reads.
        layout: the layout it was made in.
        form: ``"auto"`` or a form name (``"int"``, ``"hex"``, ``"base32"``).
        now_ns: the moment plausibility is judged against (ns since 1970; default: now).

    Raises:
        AmbiguousId: auto mode and two forms fit (each reading's time is in the message).
        DecodeError: not an ID of ``layout`` in that form.
    """
    value, how = parse_id_reading(text, layout, form)
    parts = layout.unpack(value)
    return Reading(text, how, parts, _plausible(parts, _now(now_ns)))


def _now(now_ns: int | None) -> int:
    return time.time_ns() if now_ns is None else now_ns


def candidates(text: str, form: str = "auto", *, now_ns: int | None = None) -> list[Reading]:
    """Every named layout under which ``text`` is an ID with a plausible time, newest time
    first (an ID made a moment ago most likely belongs to the layout that puts it nearest
    now; ties keep the order of :data:`chronoid.variants.VARIANTS`). A text that two forms
    fit (decimal and Base32) gives a reading per form, each marked with its ``form``.

    Raises:
        DecodeError: no layout reads ``text`` at all (the reason for a 64-bit layout), or no
            layout gives it a plausible time (it names the time under ``snowflake``).
    """
    judged_at_ns = _now(now_ns)
    found: list[Reading] = []
    implausible: list[Reading] = []
    first_error: DecodeError | None = None
    for layout in VARIANTS.values():
        try:
            values = [parse_id_reading(text, layout, form)]
        except AmbiguousId as exc:
            values = [(value, how) for how, value in exc.readings.items()]
        except DecodeError as exc:
            first_error = first_error or exc
            continue
        for value, how in values:
            parts = layout.unpack(value)
            reading = Reading(text, how, parts, _plausible(parts, judged_at_ns))
            (found if reading.plausible else implausible).append(reading)
    if found:
        return sorted(found, key=lambda r: -r.parts.layout.tick_start_ns(r.parts.timestamp))
    if not implausible:
        assert first_error is not None
        raise first_error
    example = implausible[0]
    raise DecodeError(
        f"{example.text.strip()!r} has no plausible time in any layout: every reading lies "
        f"more than {PLAUSIBLE_LEAD_S // 3600} h in the future (e.g. {example.parts.layout.name} "
        f"{iso_utc(example.parts.time)}); pass --variant to decode it anyway"
    )
