"""Aligned wall-clock boundaries: pure functions, no clock.

Second, minute and hour boundaries are whole multiples of their length since the Unix epoch
(as Go's ``Truncate``); in a zone with a half-hour offset an hour boundary falls at :30
local time. Day boundaries follow the calendar of a time zone: local midnight, found with
``zoneinfo``, so a DST day lasts 23 or 25 hours. Where midnight does not exist (a DST gap at
00:00) the day starts at the first instant after the gap.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

from chronoid.stream.event import Frequency

__all__ = ["FIXED_NS", "boundaries_between", "next_boundary"]

_NS_PER_S = 1_000_000_000
FIXED_NS: dict[Frequency, int] = {
    Frequency.SECOND: _NS_PER_S,
    Frequency.MINUTE: 60 * _NS_PER_S,
    Frequency.HOUR: 3_600 * _NS_PER_S,
}
"""Length of each fixed-size frequency (ns)."""


def _midnight_ns(day: date, zone: tzinfo) -> int:
    # fold=0 on a non-existent local midnight maps to the first instant after the gap.
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    seconds = local.timestamp()
    return int(seconds) * _NS_PER_S


def next_boundary(now_ns: int, frequency: Frequency, zone: tzinfo) -> int:
    """The first boundary strictly after ``now_ns`` (ns since the Unix epoch)."""
    unit = FIXED_NS.get(frequency)
    if unit is not None:
        return (now_ns // unit + 1) * unit
    local_day = datetime.fromtimestamp(now_ns // _NS_PER_S, tz=zone).date()
    candidate = _midnight_ns(local_day + timedelta(days=1), zone)
    while candidate <= now_ns:  # only if a zone's day is shorter than its offset change
        local_day += timedelta(days=1)
        candidate = _midnight_ns(local_day + timedelta(days=1), zone)
    return candidate


def boundaries_between(
    after_ns: int, upto_ns: int, frequency: Frequency, zone: tzinfo, keep: int
) -> tuple[int, list[int]]:
    """Boundaries ``b`` with ``after_ns < b <= upto_ns``: how many, and the last ``keep``.

    Fixed frequencies are counted by arithmetic, so a jump of years costs nothing; days are
    walked one by one (3,650 steps for ten years).
    """
    unit = FIXED_NS.get(frequency)
    if unit is not None:
        first = after_ns // unit + 1
        last = upto_ns // unit
        count = max(0, last - first + 1)
        kept = [k * unit for k in range(max(first, last - keep + 1), last + 1)]
        return count, kept
    count, kept = 0, []
    boundary = next_boundary(after_ns, frequency, zone)
    while boundary <= upto_ns:
        count += 1
        kept.append(boundary)
        if len(kept) > keep:
            kept.pop(0)
        boundary = next_boundary(boundary, frequency, zone)
    return count, kept
