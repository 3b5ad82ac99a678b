"""Aligned boundaries: the spec's table, DST days, and the scheduler's jump handling."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chronoid.errors import InvalidArgument
from chronoid.stream.boundaries import boundaries_between, next_boundary
from chronoid.stream.event import Frequency, build
from chronoid.stream.scheduler import Scheduler

S = 1_000_000_000


def ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1_000


def at(text: str, zone: str = "UTC") -> int:
    return ns(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)))


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [
        (Frequency.SECOND, "2026-02-20T10:15:43"),
        (Frequency.MINUTE, "2026-02-20T10:16:00"),
        (Frequency.HOUR, "2026-02-20T11:00:00"),
        (Frequency.DAY, "2026-02-21T00:00:00"),
    ],
)
def test_spec_boundary_table(frequency: Frequency, expected: str) -> None:
    now = at("2026-02-20T10:15:42.800")
    assert next_boundary(now, frequency, UTC) == at(expected)


def test_a_boundary_is_strictly_after_now() -> None:
    now = at("2026-02-20T10:16:00")
    assert next_boundary(now, Frequency.MINUTE, UTC) == at("2026-02-20T10:17:00")


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Berlin", "2026-03-29", 23),
        ("Europe/Berlin", "2026-10-25", 25),
        ("America/New_York", "2026-03-08", 23),
        ("America/New_York", "2026-11-01", 25),
        ("Europe/Berlin", "2026-06-01", 24),
    ],
)
def test_dst_days_last_23_or_25_hours(zone: str, day: str, hours: int) -> None:
    tz = ZoneInfo(zone)
    start = next_boundary(at(f"{day}T00:00:00", zone) - S, Frequency.DAY, tz)
    end = next_boundary(start, Frequency.DAY, tz)
    assert start == at(f"{day}T00:00:00", zone)
    assert end - start == hours * 3600 * S
    local_end = datetime.fromtimestamp(end / S, tz)
    assert (local_end.hour, local_end.minute) == (0, 0)


def test_a_missing_local_midnight_starts_the_day_after_the_gap() -> None:
    tz = ZoneInfo("America/Santiago")  # 2026-09-06 00:00 -04 does not exist: 01:00 -03
    start = next_boundary(at("2026-09-05T12:00:00", "America/Santiago"), Frequency.DAY, tz)
    assert datetime.fromtimestamp(start / S, tz).isoformat() == "2026-09-06T01:00:00-03:00"
    end = next_boundary(start, Frequency.DAY, tz)
    assert datetime.fromtimestamp(end / S, tz).isoformat() == "2026-09-07T00:00:00-03:00"
    assert end - start == 23 * 3600 * S


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [("Europe/Berlin", "2026-03-29", 23), ("America/New_York", "2026-11-01", 25)],
)
def test_second_minute_hour_boundaries_run_on_through_dst_days(
    zone: str, day: str, hours: int
) -> None:
    tz = ZoneInfo(zone)
    start = at(f"{day}T00:00:00", zone)
    end = next_boundary(start, Frequency.DAY, tz)
    for frequency, unit in ((Frequency.HOUR, 3600 * S), (Frequency.MINUTE, 60 * S)):
        count, _ = boundaries_between(start, end, frequency, tz, 0)
        assert count * unit == hours * 3600 * S
    boundary, seconds = start, 0
    while boundary < end:  # step one second at a time through the whole day
        nxt = next_boundary(boundary, Frequency.SECOND, tz)
        assert nxt - boundary == S
        boundary, seconds = nxt, seconds + 1
    assert seconds == hours * 3600


def test_day_boundaries_follow_the_zone_not_utc() -> None:
    tz = ZoneInfo("Asia/Tokyo")
    boundary = next_boundary(at("2026-05-01T12:00:00", "Asia/Tokyo"), Frequency.DAY, tz)
    assert datetime.fromtimestamp(boundary / S, UTC).hour == 15  # 00:00 JST


def test_boundaries_between_counts_by_arithmetic() -> None:
    count, kept = boundaries_between(0, 10 * 365 * 86400 * S, Frequency.SECOND, UTC, 3)
    assert count == 10 * 365 * 86400
    assert kept == [(count - 2) * S, (count - 1) * S, count * S]


# -- the scheduler, driven by numbers ----------------------------------------------------------


def test_no_drift_over_10000_ticks_with_random_lateness() -> None:
    rng = random.Random(7)
    now = at("2026-01-01T00:00:00.250")
    scheduler = Scheduler(Frequency.SECOND, UTC, now)
    emitted: list[int] = []
    for _ in range(10_000):
        target = scheduler.plan(now)
        now = target + rng.randrange(0, 900_000_000)  # woke up to 0.9 s late
        ticks = scheduler.due(now)
        assert len(ticks) == 1 and not ticks[0].late
        emitted.append(ticks[0].boundary)
    first = at("2026-01-01T00:00:01")
    assert emitted == [first + i * S for i in range(10_000)]  # every boundary, on the grid
    assert scheduler.skipped == 0


def test_waking_early_emits_nothing() -> None:
    now = at("2026-01-01T00:00:00.5")
    scheduler = Scheduler(Frequency.SECOND, UTC, now)
    assert scheduler.due(now + 100_000_000) == []
    assert [t.boundary for t in scheduler.due(now + 600_000_000)] == [at("2026-01-01T00:00:01")]


@pytest.mark.parametrize("back_s", [0.3, 5, 3600])
def test_backward_jump_never_repeats_a_boundary(back_s: float) -> None:
    now = at("2026-01-01T00:00:00.5")
    scheduler = Scheduler(Frequency.SECOND, UTC, now)
    for _ in range(3):
        now = scheduler.plan(now) + 1_000_000
        scheduler.due(now)
    last = scheduler.last_emitted
    assert last == at("2026-01-01T00:00:03")
    now -= int(back_s * S)
    # The next boundary due is the first after the last emitted, not one in the far future.
    assert scheduler.plan(now) == last + S
    assert scheduler.due(now) == []
    now = last + S + 2_000_000
    assert [t.boundary for t in scheduler.due(now)] == [last + S]


def test_forward_jump_counts_skipped_boundaries() -> None:
    now = at("2026-01-01T00:00:00.5")
    scheduler = Scheduler(Frequency.MINUTE, UTC, now)
    now = scheduler.plan(now) + 1
    scheduler.due(now)
    now += 3 * 3600 * S  # suspended for three hours
    ticks = scheduler.due(now)
    assert [t.late for t in ticks] == [False]
    assert ticks[0].boundary == at("2026-01-01T03:01:00")
    assert scheduler.skipped == 180 - 1


def test_forward_jump_catch_up_emits_late_events_oldest_first() -> None:
    now = at("2026-01-01T00:00:00.5")
    scheduler = Scheduler(Frequency.SECOND, UTC, now, catch_up=True, max_catch_up=5)
    now = scheduler.plan(now) + 1
    scheduler.due(now)
    now += 60 * S
    ticks = scheduler.due(now)
    assert [t.late for t in ticks] == [True] * 5 + [False]
    assert [t.boundary for t in ticks] == [at("2026-01-01T00:00:56") + i * S for i in range(6)]
    assert scheduler.skipped == 59
    with pytest.raises(InvalidArgument):
        Scheduler(Frequency.SECOND, UTC, now, max_catch_up=-1)


def test_event_identity_is_deterministic() -> None:
    event = build(Frequency.SECOND, 1_767_225_600_000_000_000, 3, "1.0", "node-a")
    assert event.id == "second-1767225600000000000-3"
    assert event.seed == 1_767_225_600_000_000_000 ^ 3
    assert event.schema_version == 1
    assert event == build(Frequency.SECOND, 1_767_225_600_000_000_000, 3, "1.0", "node-a")
    assert event.to_dict()["time"] == "2026-01-01T00:00:00Z"
    with pytest.raises(AttributeError):
        event.sequence = 4  # type: ignore[misc]
    with pytest.raises(InvalidArgument, match="starts at 1"):
        build(Frequency.SECOND, 0, 0)
    with pytest.raises(InvalidArgument, match="unknown frequency"):
        Frequency.parse("fortnight")
    assert ns(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=1)) % S == 0
