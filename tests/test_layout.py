"""Layouts: pack/unpack round trips on every named layout, calendar units, validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoid import InvalidLayout, Layout, TimestampOutOfRange, get_layout
from chronoid.errors import DecodeError, InvalidArgument, InvalidNode
from chronoid.variants import VARIANTS

NAMES = sorted(VARIANTS)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_pack_unpack_round_trip(name: str, data: st.DataObject) -> None:
    layout = VARIANTS[name]
    t = data.draw(st.integers(0, layout.max_timestamp))
    n = data.draw(st.integers(0, layout.max_node))
    s = data.draw(st.integers(0, layout.max_sequence))
    value = layout.pack(t, n, s)
    assert 0 <= value <= layout.max_id
    parts = layout.unpack(value)
    assert (parts.timestamp, parts.node, parts.sequence) == (t, n, s)
    assert parts.time == layout.time_of(t)
    assert layout.node_of(value) == n


@pytest.mark.parametrize("name", NAMES)
def test_field_widths_fill_the_integer(name: str) -> None:
    layout = VARIANTS[name]
    usable = layout.width - (1 if layout.signed else 0)
    assert layout.timestamp_bits + layout.node_bits + layout.sequence_bits == usable
    top = layout.pack(layout.max_timestamp, layout.max_node, layout.max_sequence)
    assert top == layout.max_id
    if layout.signed:
        assert top < 2 ** (layout.width - 1)


@pytest.mark.parametrize("name", NAMES)
def test_time_order_is_integer_order(name: str) -> None:
    layout = VARIANTS[name]
    earlier = layout.pack(5, layout.max_node, layout.max_sequence)
    later = layout.pack(6, 0, 0)
    assert earlier < later


def test_expiry_is_first_unencodable_instant() -> None:
    for layout in VARIANTS.values():
        last_ns = layout.tick_start_ns(layout.max_timestamp + 1) - 1
        assert layout.tick_of_ns(last_ns) == layout.max_timestamp
        with pytest.raises(TimestampOutOfRange, match="expiry"):
            layout.tick_of_ns(last_ns + 1)


def test_before_epoch_is_refused() -> None:
    layout = get_layout("chrono64s")
    with pytest.raises(TimestampOutOfRange, match="before the epoch"):
        layout.tick_of_ns(layout.epoch_ns - 1)


@pytest.mark.parametrize(
    ("name", "moment", "tick"),
    [
        ("chrono64mo", datetime(2020, 1, 31, 23, 59, tzinfo=UTC), 0),
        ("chrono64mo", datetime(2020, 2, 1, tzinfo=UTC), 1),
        ("chrono64mo", datetime(2021, 3, 15, tzinfo=UTC), 14),
        ("chrono32q", datetime(2020, 3, 31, 23, 59, tzinfo=UTC), 0),
        ("chrono32q", datetime(2020, 4, 1, tzinfo=UTC), 1),
        ("chrono32hy", datetime(2026, 7, 1, tzinfo=UTC), 13),
        ("chrono32y", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), 6),
        ("chrono32y", datetime(2027, 1, 1, tzinfo=UTC), 7),
        # Weeks are 7-day periods from the epoch (a Wednesday), not ISO weeks.
        ("chrono64w", datetime(2020, 1, 7, 23, 59, tzinfo=UTC), 0),
        ("chrono64w", datetime(2020, 1, 8, tzinfo=UTC), 1),
        ("chrono32tm", datetime(2020, 1, 1, 0, 10, tzinfo=UTC), 1),
        ("chrono32bs", datetime(2020, 1, 1, 0, 0, 3, tzinfo=UTC), 1),
    ],
)
def test_calendar_and_fixed_units(name: str, moment: datetime, tick: int) -> None:
    layout = get_layout(name)
    assert layout.tick_of_ns(_ns(moment)) == tick
    assert layout.tick_start_ns(tick) <= _ns(moment) < layout.tick_start_ns(tick + 1)


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2250, 1, 1)))
def test_month_tick_contains_its_moment(naive: datetime) -> None:
    moment = naive.replace(tzinfo=UTC)
    for name in ("chrono64mo", "chrono32q", "chrono32hy", "chrono32y", "chrono64w", "chrono64d"):
        layout = get_layout(name)
        ns = _ns(moment) + moment.microsecond * 1000
        tick = layout.tick_of_ns(ns)
        assert layout.tick_start_ns(tick) <= ns < layout.tick_start_ns(tick + 1)


def test_user_defined_layout() -> None:
    layout = Layout("mine", "ms", datetime(2025, 1, 1, tzinfo=UTC), 40, 8, 15)
    assert layout.ids_per_tick == 2**15
    assert layout.unpack(layout.pack(1, 2, 3)).node == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timestamp_bits": 41, "node_bits": 10, "sequence_bits": 13}, "64 bits|has 63 bits"),
        ({"unit_code": "fortnight"}, "unknown time unit 'fortnight'"),
        ({"epoch": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"unit_code": "mo", "epoch": datetime(2024, 1, 2, tzinfo=UTC)}, "1st of a month"),
        ({"node_bits": -1, "sequence_bits": 23}, "non-negative"),
        ({"width": 4}, "width must be"),
    ],
)
def test_impossible_layouts_say_why(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "name": "bad",
        "unit_code": "ms",
        "epoch": datetime(2024, 1, 1, tzinfo=UTC),
        "timestamp_bits": 41,
        "node_bits": 10,
        "sequence_bits": 12,
    }
    args.update(kwargs)
    with pytest.raises(InvalidLayout, match=message):
        Layout(**args)  # type: ignore[arg-type]


def test_pack_and_unpack_validate() -> None:
    layout = get_layout("snowflake")
    with pytest.raises(
        InvalidNode, match=r"node 1024 is out of range for snowflake: allowed 0\.\.1023"
    ):
        layout.pack(0, 1024, 0)
    with pytest.raises(InvalidArgument, match="sequence 4096"):
        layout.pack(0, 0, 4096)
    with pytest.raises(TimestampOutOfRange):
        layout.pack(-1, 0, 0)
    with pytest.raises(DecodeError, match="outside"):
        layout.unpack(-5)
    with pytest.raises(DecodeError, match="outside"):
        layout.unpack(2**63)
    with pytest.raises(DecodeError, match="is an int"):
        layout.unpack("12")  # type: ignore[arg-type]
