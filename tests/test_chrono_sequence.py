"""ChronoSequence, spec 000: its five test groups, plus the hardening of its "next actions"."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import pytest

from chronoid import ChronoSequence, ClockMovedBackwards, ManualClock
from chronoid.variants import get_layout

EPOCH_S = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
MS = 1_000_000


# Group 1: API and state.
def test_api_and_initial_state() -> None:
    seq = ChronoSequence(7)
    assert seq.worker_id == 7
    assert seq.last_timestamp == -1
    assert seq.sequence == 0
    assert (seq.next_id() >> 12) & 1023 == 7  # the worker ID sits in bits 12..21


@pytest.mark.parametrize("worker_id", [-1, 1024, 5000])
def test_worker_id_out_of_range_is_a_value_error(worker_id: int) -> None:
    with pytest.raises(ValueError, match=r"worker_id .* allowed 0..1023"):
        ChronoSequence(worker_id)


@pytest.mark.parametrize("worker_id", ["3", 2.0, None, True])
def test_worker_id_must_be_an_int(worker_id: object) -> None:
    with pytest.raises(ValueError, match="worker_id must be an int"):
        ChronoSequence(worker_id)  # type: ignore[arg-type]


# Group 2: epoch timestamp.
def test_timestamp_is_ms_since_2024_and_increases() -> None:
    seq = ChronoSequence(1)
    before_ms = (time.time_ns() // MS) - EPOCH_S * 1000
    seq.next_id()
    after_ms = (time.time_ns() // MS) - EPOCH_S * 1000
    first = seq.last_timestamp
    assert isinstance(first, int) and first >= 0
    assert before_ms <= first <= after_ms
    # Time passing, on a manual clock instead of a sleep: 2 ms later, 2 ticks more.
    clock = ManualClock((EPOCH_S * 1000 + first) * MS)
    manual = ChronoSequence(1, clock=clock)
    manual.next_id()
    assert manual.last_timestamp == first
    clock.advance_ms(2)
    manual.next_id()
    assert manual.last_timestamp == first + 2


# Group 3: sequence state, with a controlled clock instead of monkeypatching time.time.
def test_sequence_increments_within_a_ms_and_resets_after() -> None:
    clock = ManualClock(EPOCH_S * 1_000_000_000 + 5 * MS)
    seq = ChronoSequence(1, clock=clock)
    seq.next_id()
    assert (seq.last_timestamp, seq.sequence) == (5, 0)
    seq.next_id()
    seq.next_id()
    assert (seq.last_timestamp, seq.sequence) == (5, 2)
    clock.advance_ms(1)
    seq.next_id()
    assert (seq.last_timestamp, seq.sequence) == (6, 0)


def test_sequence_counts_to_the_last_id_of_the_last_ms() -> None:
    # The very last IDs of the layout reach sys.maxsize, where the tick's counter leaves C
    # longs: the sequence still reads exactly and the last ID is the largest the layout holds.
    layout = get_layout("snowflake")
    clock = ManualClock(layout.tick_start_ns(layout.max_timestamp))
    seq = ChronoSequence(1023, clock=clock)
    ids = [seq.next_id() for _ in range(4096)]
    assert (seq.last_timestamp, seq.sequence) == (layout.max_timestamp, 4095)
    assert ids[-1] == layout.max_id == sys.maxsize
    assert ids == sorted(set(ids))


# Group 4: bit layout.
def test_bit_layout() -> None:
    clock = ManualClock(EPOCH_S * 1_000_000_000 + 123_456 * MS)
    seq = ChronoSequence(0b1010101010, clock=clock)
    seq.next_id()
    value = seq.next_id()
    assert isinstance(value, int)
    assert value >> 63 == 0
    assert value >> 22 == 123_456
    assert (value >> 12) & 0x3FF == 0b1010101010
    assert value & 0xFFF == 1
    assert value == (123_456 << 22) | (0b1010101010 << 12) | 1


# Group 5: uniqueness and order.
def test_thousands_of_ids_are_unique_and_increasing() -> None:
    seq = ChronoSequence(3)
    ids = [seq.next_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


# The spec's "next actions": overflow, clock regression.
def test_sequence_overflow_waits_for_the_next_ms() -> None:
    clock = ManualClock(EPOCH_S * 1_000_000_000)
    seq = ChronoSequence(1, clock=clock)
    ids = [seq.next_id() for _ in range(4097)]
    assert len(set(ids)) == 4097
    assert (seq.last_timestamp, seq.sequence) == (1, 0)
    assert ids[-1] > ids[-2]


def test_clock_regression_beyond_one_second_raises() -> None:
    clock = ManualClock(EPOCH_S * 1_000_000_000 + 10_000 * MS)
    seq = ChronoSequence(1, clock=clock)
    seq.next_id()
    clock.advance_ms(-1500)
    with pytest.raises(ClockMovedBackwards):
        seq.next_id()
