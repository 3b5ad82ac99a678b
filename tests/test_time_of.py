"""``time_of``: when an ID was made, as an aware datetime."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chronoid import (
    DecodeError,
    Generator,
    ManualClock,
    UnknownVariant,
    get_layout,
    time_of,
)


@pytest.mark.parametrize(
    "variant", ["snowflake", "chrono64s", "chrono64ms", "chrono32y", "uchrono64mo"]
)
def test_time_of_is_the_start_of_the_tick(variant: str) -> None:
    moment = datetime(2026, 7, 15, 12, 34, 56, 789_000, tzinfo=UTC)
    clock = ManualClock(int(moment.timestamp() * 1e9))
    layout = get_layout(variant)
    value = Generator(layout, 1, clock=clock).next_id()
    when = time_of(value, layout)
    assert when.tzinfo is not None and when.utcoffset() is not None
    assert when == layout.time_of_id(value) == layout.unpack(value).time
    assert when <= moment
    assert layout.tick_of_ns(int(moment.timestamp() * 1e9)) == layout.unpack(value).timestamp


def test_time_of_examples() -> None:
    assert time_of(0, "snowflake") == datetime(2024, 1, 1, tzinfo=UTC)
    assert time_of(1 << 22, "snowflake") == datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
    assert time_of(5 << 23, "chrono32y") == datetime(2025, 1, 1, tzinfo=UTC)


def test_time_of_refuses_bad_input() -> None:
    with pytest.raises(UnknownVariant, match="chrono64x"):
        time_of(1, "chrono64x")  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        time_of(-1, "chrono64s")
    with pytest.raises(DecodeError):
        time_of(1 << 63, "chrono64s")
    with pytest.raises(DecodeError):
        time_of("12", "chrono64s")  # type: ignore[arg-type]
