"""The generator's clock and overflow policies, batches, threads and fork: manual clock only."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest

from chronoid import (
    Backwards,
    ClockMovedBackwards,
    Generator,
    GeneratorForked,
    InvalidArgument,
    InvalidNode,
    ManualClock,
    Overflow,
    SequenceExhausted,
    TimestampOutOfRange,
    get_layout,
    hlc_generator,
)

MS = 1_000_000
START = int(datetime(2026, 5, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
SNOWFLAKE = get_layout("snowflake")


def fields(value: int) -> tuple[int, int, int]:
    parts = SNOWFLAKE.unpack(value)
    return parts.timestamp, parts.node, parts.sequence


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


# -- clock going back -----------------------------------------------------------------------


@pytest.mark.parametrize("back_ms", [1, 1000])
def test_wait_policy_waits_out_small_regressions(clock: ManualClock, back_ms: int) -> None:
    gen = Generator("snowflake", 3, clock=clock)
    before = [gen.next_id() for _ in range(5)]
    clock.advance_ms(-back_ms)
    after = gen.next_id()
    assert after > before[-1]
    # It slept exactly until the last tick came round again (the manual clock advanced).
    assert clock.sleeps and sum(clock.sleeps) == back_ms * MS
    assert fields(after)[0] == fields(before[-1])[0]


def test_wait_policy_raises_beyond_its_bound(clock: ManualClock) -> None:
    gen = Generator("snowflake", 3, clock=clock)
    gen.next_id()
    clock.advance_ms(-3_600_000)  # one hour back
    with pytest.raises(ClockMovedBackwards) as caught:
        gen.next_id()
    assert caught.value.offset_ns == 3_600_000 * MS
    assert clock.sleeps == []  # refused at once rather than block for an hour


def test_wait_policy_bound_is_configurable(clock: ManualClock) -> None:
    gen = Generator("snowflake", 3, clock=clock, max_wait_ms=5)
    first = gen.next_id()
    clock.advance_ms(-6)
    with pytest.raises(ClockMovedBackwards, match="6.000 ms"):
        gen.next_id()
    clock.advance_ms(2)  # now 4 ms behind: within the bound
    assert gen.next_id() > first
    assert clock.sleeps == [4 * MS]  # it waited for the clock, exactly as long as it was behind


@pytest.mark.parametrize("back_ms", [1, 1000, 3_600_000])
def test_raise_policy_reports_the_offset(clock: ManualClock, back_ms: int) -> None:
    gen = Generator("snowflake", 3, clock=clock, on_backwards=Backwards.RAISE)
    last = gen.next_id()
    clock.advance_ms(-back_ms)
    with pytest.raises(ClockMovedBackwards) as caught:
        gen.next_id()
    assert caught.value.offset_ns == back_ms * MS
    clock.advance_ms(back_ms)  # caught up: issuing resumes, still increasing
    assert gen.next_id() > last


@pytest.mark.parametrize("back_ms", [1, 1000, 3_600_000])
def test_hlc_never_blocks_never_fails(clock: ManualClock, back_ms: int) -> None:
    gen = hlc_generator(3, clock=clock)
    ids = [gen.next_id() for _ in range(10)]
    clock.advance_ms(-back_ms)
    ids += [gen.next_id() for _ in range(10_000)]
    assert clock.sleeps == []
    assert strictly_increasing(ids)
    assert len(set(ids)) == len(ids)
    # 10,010 IDs at 4,096 per ms borrowed two ticks beyond the last real one.
    assert gen.lead_ns == (back_ms + 2) * MS
    clock.advance_ms(back_ms + 10)  # wall clock overtakes the logical time again
    assert gen.lead_ns == 0
    later = gen.next_id()
    assert later > ids[-1] and fields(later)[2] == 0


def test_hlc_borrows_the_next_tick_on_overflow(clock: ManualClock) -> None:
    gen = hlc_generator(1, clock=clock)
    ids = [gen.next_id() for _ in range(4096 + 3)]
    assert [fields(v)[0] for v in ids[4094:4098]] == [fields(ids[0])[0]] * 2 + [
        fields(ids[0])[0] + 1
    ] * 2
    assert gen.lead_ns == MS
    assert clock.sleeps == []


def test_policies_must_make_sense_together(clock: ManualClock) -> None:
    with pytest.raises(InvalidArgument, match="go together"):
        Generator("snowflake", 1, clock=clock, on_overflow=Overflow.BORROW)
    with pytest.raises(InvalidArgument, match="go together"):
        Generator("snowflake", 1, on_backwards=Backwards.HLC, on_overflow=Overflow.WAIT)
    with pytest.raises(InvalidArgument, match="max_wait_ms"):
        Generator("snowflake", 1, max_wait_ms=-1)
    with pytest.raises(InvalidArgument, match="Backwards policy"):
        Generator("snowflake", 1, on_backwards="hlc")  # type: ignore[arg-type]


# -- clock going forward and overflow --------------------------------------------------------


def test_forward_jump_starts_a_new_tick(clock: ManualClock) -> None:
    gen = Generator("snowflake", 9, clock=clock)
    a = gen.next_id()
    gen.next_id()
    clock.advance_ms(3_600_000)
    b = gen.next_id()
    assert fields(b) == (fields(a)[0] + 3_600_000, 9, 0)


def test_overflow_wait_moves_to_the_next_tick(clock: ManualClock) -> None:
    gen = Generator("snowflake", 2, clock=clock)
    ids = [gen.next_id() for _ in range(4096 * 3)]
    assert strictly_increasing(ids)
    assert [fields(ids[i])[0] - fields(ids[0])[0] for i in (4095, 4096, 8192)] == [0, 1, 2]
    assert len(clock.sleeps) == 2 and all(0 < s <= MS for s in clock.sleeps)


def test_overflow_raise(clock: ManualClock) -> None:
    gen = Generator("snowflake", 2, clock=clock, on_overflow=Overflow.RAISE)
    gen.next_ids(4096)
    with pytest.raises(SequenceExhausted, match="4096 sequence values"):
        gen.next_id()
    clock.advance_ms(1)
    assert fields(gen.next_id())[2] == 0


def test_overflow_wait_is_bounded_for_long_ticks(clock: ManualClock) -> None:
    # A month-long tick cannot be waited out: the bound turns the wait into an error.
    gen = Generator("chrono32mo", 1, clock=clock)
    gen.next_ids(get_layout("chrono32mo").ids_per_tick)
    with pytest.raises(SequenceExhausted, match="next tick starts in"):
        gen.next_id()


def test_past_expiry_raises(clock: ManualClock) -> None:
    layout = get_layout("chrono32bs")
    clock.set_ns(layout.tick_start_ns(layout.max_timestamp + 1))
    with pytest.raises(TimestampOutOfRange, match="expiry"):
        Generator(layout, 0, clock=clock).next_id()


# -- batches ---------------------------------------------------------------------------------


def test_batch_is_consecutive_within_a_tick(clock: ManualClock) -> None:
    gen = Generator("snowflake", 5, clock=clock)
    first = gen.next_id()
    batch = gen.next_ids(100)
    assert batch == list(range(first + 1, first + 101))


def test_batch_spans_ticks_and_continues_the_single_calls(clock: ManualClock) -> None:
    gen = Generator("snowflake", 5, clock=clock)
    batch = gen.next_ids(10_000)
    assert len(set(batch)) == 10_000 and strictly_increasing(batch)
    assert {fields(v)[1] for v in batch} == {5}
    assert fields(batch[-1])[0] - fields(batch[0])[0] == 2
    assert gen.next_id() == batch[-1] + 1


@pytest.mark.parametrize("count", [0, -1, 10_000_001, 2.5, True])
def test_batch_count_is_validated(count: object) -> None:
    with pytest.raises(InvalidArgument, match="count must be"):
        Generator("snowflake", 1).next_ids(count)  # type: ignore[arg-type]


def test_every_variant_issues_increasing_ids(clock: ManualClock) -> None:
    from chronoid.variants import VARIANTS

    for name, layout in VARIANTS.items():
        # Unbounded lead (spec 003): a 32-bit year layout borrows two years here.
        gen = Generator(
            layout, layout.max_node, clock=clock, on_backwards=Backwards.HLC, max_lead_ms=None
        )
        ids = [*gen.next_ids(min(3 * layout.ids_per_tick, 5000)), gen.next_id()]
        assert strictly_increasing(ids), name
        assert all(layout.node_of(v) == layout.max_node for v in ids), name


@pytest.mark.parametrize("node", [-1, 1024, "7", 3.0, None])
def test_node_is_validated(node: object) -> None:
    with pytest.raises(InvalidNode):
        Generator("snowflake", node)  # type: ignore[arg-type]


# -- threads and fork ------------------------------------------------------------------------


def test_eight_threads_share_one_generator_without_duplicates() -> None:
    gen = Generator("snowflake", 1)
    results: list[list[int]] = [[] for _ in range(8)]

    def work(out: list[int]) -> None:
        next_id = gen.next_id
        out.extend(next_id() for _ in range(100_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [v for out in results for v in out]
    assert len(everything) == 800_000
    assert len(set(everything)) == 800_000
    for out in results:
        assert strictly_increasing(out)  # each thread sees increasing IDs


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_forked_child_cannot_repeat_the_parents_ids() -> None:
    gen = Generator("snowflake", 1)
    parent_ids = gen.next_ids(1000)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        status = "no-error"
        try:
            gen.next_id()
        except GeneratorForked:
            status = "forked"
        gen.reassign_node(2)
        child_ids = gen.next_ids(1000)
        payload = status + "\n" + ",".join(map(str, child_ids))
        os.write(write_end, payload.encode())
        os.close(write_end)
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    status, child_csv = b"".join(chunks).decode().split("\n")
    child_ids = [int(v) for v in child_csv.split(",")]
    parent_more = gen.next_ids(1000)  # the parent is unaffected
    assert status == "forked"
    assert not set(child_ids) & set(parent_ids + parent_more)
    assert {SNOWFLAKE.node_of(v) for v in child_ids} == {2}
    assert min(child_ids) > max(parent_ids)


def test_locked_path_for_free_threaded_builds_is_equivalent() -> None:
    # Without a GIL the generator takes the lock on every call; same IDs either way.
    fast_clock, locked_clock = ManualClock(START), ManualClock(START)
    fast = Generator("snowflake", 4, clock=fast_clock)
    locked = Generator("snowflake", 4, clock=locked_clock)
    locked.next_id = locked._next_id_locked  # type: ignore[method-assign]
    for _ in range(3):
        assert [fast.next_id() for _ in range(5000)] == [locked.next_id() for _ in range(5000)]
        fast_clock.advance_ms(-1)
        locked_clock.advance_ms(-1)


def test_offset_after_reassign_is_measured_from_the_last_tick(clock: ManualClock) -> None:
    gen = Generator("snowflake", 1, clock=clock, on_backwards=Backwards.RAISE)
    gen.next_id()
    gen.reassign_node(2)
    clock.advance_ms(-5)
    with pytest.raises(ClockMovedBackwards) as caught:
        gen.next_id()
    assert caught.value.offset_ns == 5 * MS


def test_large_batch_across_many_ticks(clock: ManualClock) -> None:
    # 300 ticks of chrono64ms in one call: each tick contributes its 1,024 values once.
    layout = get_layout("chrono64ms")
    gen = Generator(layout, 7, clock=clock)
    batch = gen.next_ids(300 * 1024)
    assert len(set(batch)) == len(batch) == 300 * 1024
    assert strictly_increasing(batch)
    ticks = [layout.unpack(v).timestamp for v in batch[::1024]]
    assert ticks == list(range(ticks[0], ticks[0] + 300))


_RAW_FORK_UNDER_THREADS = """
import ctypes, faulthandler, os, threading, time
from chronoid.errors import GeneratorForked
from chronoid.generator import Generator
gen = Generator("chrono64ms", 1)
stop = threading.Event()
def issue():
    while not stop.is_set():
        gen.next_id()
workers = [threading.Thread(target=issue) for _ in range(3)]
for w in workers:
    w.start()
time.sleep(0.05)
pid = ctypes.PyDLL(None).fork()  # no at-fork hook: the lock is copied as the threads held it
if pid == 0:
    faulthandler.dump_traceback_later(5, exit=True)  # blocked for ever: exit 1
    end = time.monotonic() + 0.05
    while time.monotonic() < end:
        try:
            gen.next_id()
        except GeneratorForked:
            os._exit(7)
    os._exit(0)
stop.set()
for w in workers:
    w.join()
_, status = os.waitpid(pid, 0)
raise SystemExit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_raw_fork_while_threads_hold_the_lock_raises_in_the_child() -> None:
    # A raw C fork() copies the generator's lock held by a thread the child lacks: the
    # child's slow path must raise GeneratorForked, not block on that lock for ever.
    for _ in range(3):
        run = subprocess.run(
            [sys.executable, "-c", _RAW_FORK_UNDER_THREADS],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 7, run.stderr[-2000:]
