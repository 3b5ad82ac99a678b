"""Mode B: counter -> ID mapping, burst and timed Weyl steps, borrowed ticks, durable restarts."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chronoid.clock import ManualClock
from chronoid.errors import GeneratorForked, InvalidArgument, InvalidNode, StateFileError
from chronoid.layout import Layout
from chronoid.mix import compose
from chronoid.modes import InstanceGenerator, mode_b_id
from chronoid.modes.instance import mode_b_node

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def _unique(ids: list[int]) -> bool:
    values = np.sort(np.fromiter(ids, dtype=np.uint64, count=len(ids)))
    return bool((values[1:] != values[:-1]).all())


def test_ids_are_the_pure_function_of_the_counter() -> None:
    clock = ManualClock()
    gen = InstanceGenerator("chrono64s", 1234, clock=clock, salt=0x2BADF00D, index=17)
    layout = gen.layout
    tick = layout.tick_of_ns(clock.now_ns())
    ids = [gen.next_id() for _ in range(100)] + gen.next_ids(70_000)  # crosses two laps
    for counter in [*range(0, 100), 32_767, 32_768, 65_535, 65_536, 70_099]:
        expected = mode_b_id(layout, tick, counter, 1234, 0x2BADF00D, 17)
        assert ids[counter] == expected
        node = mode_b_node(layout, counter, 1234)
        sequence = counter & layout.max_sequence
        assert expected == compose(layout, tick, node, sequence, 0x2BADF00D, 17)
    assert mode_b_node(layout, 0, 1234) == 1234  # lap 0 is the instance's own node
    assert _unique(ids)


def test_ten_million_ids_in_one_window_through_burst_rotations() -> None:
    clock = ManualClock()
    gen = InstanceGenerator("chrono64ds", clock=clock)  # 2^13 IDs per lap: 1,221 node steps
    ids = gen.next_ids(10_000_000)
    layout = gen.layout
    assert {layout.unpack(ids[0]).timestamp, layout.unpack(ids[-1]).timestamp} == {
        layout.tick_of_ns(clock.now_ns())
    }
    assert clock.sleeps == []  # never waited
    assert _unique(ids)
    nodes = {layout.node_of(i) for i in ids[:: layout.ids_per_tick]}
    assert len(nodes) == -(-10_000_000 // layout.ids_per_tick)  # one mixed node per lap


def test_a_window_that_needs_more_than_the_whole_suffix_borrows_the_next_tick() -> None:
    clock = ManualClock()
    tiny = Layout("tiny", "s", EPOCH, 55, 3, 5)  # 2^8 = 256 IDs per window in all
    gen = InstanceGenerator(tiny, 0, clock=clock)
    ids = gen.next_ids(1000)
    assert _unique(ids) and gen.borrowed_ticks == 3
    assert ids[255] < ids[256]  # the borrowed tick sorts after the full one


def test_timed_rotation_steps_the_node_every_rotation_s() -> None:
    clock = ManualClock()
    gen = InstanceGenerator("chrono64s", 10, clock=clock, rotation_s=600, salt=0, index=0)
    layout = gen.layout
    first = gen.next_id()
    clock.advance_ms(599_000)
    same = gen.next_id()
    clock.advance_ms(1_000)
    stepped = gen.next_id()
    assert layout.node_of(first) == layout.node_of(same) != layout.node_of(stepped)
    assert gen.timed_rotations == 1 and gen.counter == (1 << layout.sequence_bits) + 1


def test_clock_going_back_keeps_the_last_tick() -> None:
    clock = ManualClock()
    gen = InstanceGenerator("chrono64s", clock=clock)
    before = gen.next_ids(1000)
    clock.advance_ms(-10_000)
    after = gen.next_ids(1000)
    assert _unique(before + after) and clock.sleeps == []
    assert {gen.layout.unpack(i).timestamp for i in after} == {
        gen.layout.unpack(before[-1]).timestamp
    }


def _crash_after(path: str, start_ns: int, count: int, out: Any) -> None:
    gen = InstanceGenerator("chrono64s", clock=ManualClock(start_ns), state_file=path, reserve=500)
    out.put(gen.next_ids(count))
    # Exit without close(): like a crash, the lock goes with the process.


def test_restart_inside_the_window_after_a_crash_repeats_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "instance.json")
    clock = ManualClock()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_crash_after, args=(path, clock.now_ns(), 1234, out))
    child.start()
    first = out.get(timeout=30)
    child.join(timeout=30)
    state = json.loads(Path(path).read_text())
    assert state["reserved"] == 1500  # reserved ahead of use, in blocks of 500
    again = InstanceGenerator("chrono64s", clock=clock, state_file=path, reserve=500)
    second = again.next_ids(5000)
    again.close()
    assert _unique(first + second)
    assert again.base_node == state["base_node"]
    # A clean close records the exact counter; a third run continues right there.
    third_gen = InstanceGenerator("chrono64s", clock=clock, state_file=path)
    assert third_gen.counter == 1500 + 5000
    third = third_gen.next_ids(100)
    third_gen.close()
    assert _unique(first + second + third)


def test_a_state_file_serves_one_live_generator(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    gen = InstanceGenerator("chrono64s", state_file=path)
    gen.next_id()
    with pytest.raises(StateFileError, match="in use"):
        InstanceGenerator("chrono64s", state_file=path)
    gen.close()
    with pytest.raises(StateFileError, match="layout 'chrono64s'"):
        InstanceGenerator("chrono64m", state_file=path)
    with pytest.raises(StateFileError, match="base_node"):
        InstanceGenerator("chrono64s", (gen.base_node + 1) % 100, state_file=path)
    path.write_text("{not json")
    with pytest.raises(StateFileError, match="not a valid Mode B state file"):
        InstanceGenerator("chrono64s", state_file=path)


def test_arguments_are_checked() -> None:
    with pytest.raises(InvalidNode, match="out of range"):
        InstanceGenerator("chrono64s", 1 << 15)
    with pytest.raises(InvalidArgument, match="rotation_s"):
        InstanceGenerator(rotation_s=-1)
    with pytest.raises(InvalidArgument, match="index"):
        InstanceGenerator(index=64)
    with pytest.raises(InvalidArgument, match="counter"):
        mode_b_id(InstanceGenerator().layout, 0, -1, 0, 0, 0)


def _use_in_child(gen: InstanceGenerator, out: Any) -> None:
    try:
        gen.next_id()
        out.put("issued")
    except GeneratorForked:
        out.put("refused")


def test_a_forked_child_may_not_continue_the_parents_counter() -> None:
    gen = InstanceGenerator("chrono64s")
    gen.next_id()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_use_in_child, args=(gen, out))
    child.start()
    assert out.get(timeout=30) == "refused"
    child.join(timeout=30)
    gen.next_id()  # the parent is unaffected
