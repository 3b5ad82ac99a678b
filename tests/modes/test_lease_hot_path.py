"""Mode C's fused next_id (Generator._next_id_within, ef02647) attacked: threads racing a lost
lease and a node change, a lease clock that jumps, the no-GIL path, overflow waits, fork, the
lease clock in every shape a caller may pass, and the generator read from its class or copied.
Each test counts what the guarantee forbids: duplicates and IDs made outside the lease."""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import json
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chronoid import generator as generator_module
from chronoid.clock import ManualClock
from chronoid.errors import InvalidArgument, LeaseLost
from chronoid.lease.memory import MemoryRegistry
from chronoid.modes import LeaseGenerator
from chronoid.variants import get_layout

_GIL = pytest.mark.parametrize("gil", [True, False], ids=["fused", "no-gil"])


def _force_gil(monkeypatch: pytest.MonkeyPatch, gil: bool) -> None:
    # The free-threaded build's path (every call locked, no fused closure), forced here.
    if not gil:
        monkeypatch.setattr(generator_module, "_GIL_ENABLED", False)


def _increasing(ids: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(ids))


def _take_node(registry: MemoryRegistry, node: int, max_node: int) -> None:
    # The memory registry picks a free node at random: draw until it is ``node``.
    drawn = []
    while not drawn or drawn[-1].node != node:
        drawn.append(registry.acquire(max_node, 60_000, 0))
    for extra in drawn[:-1]:
        registry.release(extra, 0)


@_GIL
def test_threads_racing_a_lost_lease_and_a_node_change_get_nothing_of_the_old_node(
    monkeypatch: pytest.MonkeyPatch, gil: bool
) -> None:
    # Four threads call next_id while the test withdraws the lease ten times (the registry
    # forgets the token and an intruder takes the node) and the renewal moves the generator
    # to a fresh node. A call that started after a withdrawal must not return an ID of the
    # node withdrawn; no ID twice; each thread's IDs increase.
    _force_gil(monkeypatch, gil)
    registry = MemoryRegistry(node_range=(1, 12))
    gen = LeaseGenerator("chrono64ms", registry, ttl_ms=60_000, renew_ms=50_000)  # test renews
    assert isinstance(gen.next_id, functools.partial) != gil  # the slow path alone, no GIL
    order = itertools.count()  # next() is atomic: a global order of call starts and events
    got: list[list[tuple[int, int]]] = [[] for _ in range(4)]
    refused = [0]
    stop = threading.Event()

    def issue(out: list[tuple[int, int]]) -> None:
        while not stop.is_set():
            started = next(order)
            try:
                out.append((started, gen.next_id()))
            except LeaseLost:
                refused[0] += 1

    workers = [threading.Thread(target=issue, args=(out,)) for out in got]
    for worker in workers:
        worker.start()
    withdrawn: list[tuple[int, int]] = []  # (order after the withdrawal, node withdrawn)
    try:
        for _ in range(10):
            time.sleep(0.02)
            gen._renew_once()  # a plain renewal: replaces _hold under the racing threads
            old = gen.lease
            assert old is not None
            registry.release(old, 0)
            _take_node(registry, old.node, gen.layout.max_node)  # the intruder
            gen._renew_once()  # token unknown: withdraw, then lease a fresh node
            withdrawn.append((next(order), old.node))
            assert gen.node != old.node
        time.sleep(0.02)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
        gen.close()
    values = [value for out in got for _, value in out]
    late = [
        value
        for out in got
        for started, value in out
        for cut, node in withdrawn
        if started > cut and gen.node_of(value) == node
    ]
    assert len(values) > 1000
    assert len(set(values)) == len(values), f"{len(values) - len(set(values))} duplicates"
    assert late == [], f"{len(late)} IDs of a withdrawn node from calls that began after it"
    assert all(_increasing([value for _, value in out]) for out in got)


@_GIL
def test_threads_see_a_lease_clock_that_jumps_past_the_deadline(
    monkeypatch: pytest.MonkeyPatch, gil: bool
) -> None:
    # The lease clock jumps past the deadline (a SIGSTOP, a suspend) while four threads call
    # next_id: no call that began after the jump returns an ID.
    _force_gil(monkeypatch, gil)
    jump = [0]
    gen = LeaseGenerator(
        "chrono64ms",
        MemoryRegistry(),
        ttl_ms=60_000,
        renew_ms=50_000,
        lease_clock_ns=lambda: time.monotonic_ns() + jump[0],
    )
    order = itertools.count()
    got: list[list[tuple[int, int]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def issue(out: list[tuple[int, int]]) -> None:
        while not stop.is_set():
            started = next(order)
            with contextlib.suppress(LeaseLost):
                out.append((started, gen.next_id()))

    workers = [threading.Thread(target=issue, args=(out,)) for out in got]
    for worker in workers:
        worker.start()
    time.sleep(0.05)
    jump[0] = 120 * 1_000_000_000
    cut = next(order)
    time.sleep(0.05)
    stop.set()
    for worker in workers:
        worker.join(timeout=10)
    gen._stop.set()
    before = [value for out in got for started, value in out if started < cut]
    after = [value for out in got for started, value in out if started > cut]
    assert before and len(set(before)) == len(before)
    assert after == [], f"{len(after)} IDs made after the lease ended"


def test_an_overflow_under_the_fused_path_waits_only_inside_the_lease() -> None:
    # chrono64s: 2^15 IDs a second; the tick's end lies past the lease's deadline, so the
    # overflow wait is cut at the deadline and the call refuses: no ID made after it.
    wall = ManualClock()
    lease = wall.now_ns  # sleeps advance the lease clock too (time passing)
    gen = LeaseGenerator(
        "chrono64s",
        MemoryRegistry(now_ns=lease),
        clock=wall,
        ttl_ms=1000,
        renew_ms=700,
        skew_margin_ms=250,
        lease_clock_ns=lease,
    )
    deadline = gen._hold[0]
    ids: list[int] = []
    with pytest.raises(LeaseLost):
        for _ in range(40_000):
            ids.append(gen.next_id())
    gen._stop.set()
    assert len(ids) == 1 << 15 and _increasing(ids)
    assert sum(wall.sleeps) <= deadline - (wall.now_ns() - sum(wall.sleeps))
    assert wall.now_ns() >= deadline  # it waited up to the deadline, not past it


def test_a_wall_clock_stepped_back_under_the_fused_path_keeps_ids_increasing() -> None:
    wall = ManualClock()
    gen = LeaseGenerator("chrono64ms", MemoryRegistry(), clock=wall, ttl_ms=60_000)
    ids = [gen.next_id() for _ in range(10)]
    wall.jump_ns(-400_000_000)  # back 400 ms: waited out (max_wait_ms 1 s)
    ids += [gen.next_id() for _ in range(10)]
    gen.close()
    assert _increasing(ids) and sum(wall.sleeps) >= 400_000_000


class _Reading:
    """A lease clock to move: ``now_ns`` reads it, ``skip`` jumps it."""

    def __init__(self) -> None:
        self.value = time.monotonic_ns()

    def now_ns(self, scale: int = 1) -> int:
        return self.value * scale


def _read(reading: _Reading, scale: int = 1) -> int:
    return reading.value * scale


_SHAPES: dict[str, Callable[[_Reading], Callable[[], int]]] = {
    "bound method": lambda r: r.now_ns,
    "lambda": lambda r: lambda: r.now_ns(),
    "partial": lambda r: functools.partial(_read, r),
    "partial with keywords": lambda r: functools.partial(_read, r, scale=1),
    "partial of a partial": lambda r: functools.partial(functools.partial(_read), r),
    "partial of a bound method": lambda r: functools.partial(r.now_ns, 1),
}


@pytest.mark.parametrize("shape", list(_SHAPES))
def test_every_shape_of_lease_clock_is_read_after_the_id_is_made(shape: str) -> None:
    reading = _Reading()
    gen = LeaseGenerator(
        "chrono64s",
        MemoryRegistry(now_ns=time.monotonic_ns),
        ttl_ms=1000,
        renew_ms=700,
        lease_clock_ns=_SHAPES[shape](reading),
    )
    first = gen.next_id()
    reading.value += 10 * 1_000_000_000  # past the deadline
    with pytest.raises(LeaseLost):
        gen.next_id()
    reading.value -= 10 * 1_000_000_000
    assert gen.next_id() > first
    gen._stop.set()


class _Shifted(functools.partial):  # type: ignore[type-arg]
    """A partial whose call adds an offset: what a caller's adjusted clock may look like."""

    offset = 0

    def __call__(self, /, *args: object, **keywords: object) -> int:
        return int(super().__call__(*args, **keywords)) + self.offset


def _on_lease_clock(lease: ManualClock, clock: Callable[[], int]) -> LeaseGenerator:
    """A generator whose lease is granted on ``lease`` and checked through ``clock``, a
    caller's reader of it (the renewal thread is stopped by the caller's ``_stop``)."""
    return LeaseGenerator(
        "chrono64s",
        MemoryRegistry(now_ns=lease.now_ns),
        clock=ManualClock(),
        ttl_ms=1000,
        renew_ms=700,
        lease_clock_ns=clock,
    )


def test_a_partial_subclass_lease_clock_is_called_as_given() -> None:
    lease = ManualClock()
    clock = _Shifted(ManualClock.now_ns, lease)
    gen = _on_lease_clock(lease, clock)
    gen.next_id()
    clock.offset = 1_000 * 1_000_000_000  # the lease clock reads 1,000 s later
    try:
        assert gen.lease_remaining_ms < 0
        with pytest.raises(LeaseLost):
            gen.next_id()
    finally:
        gen._stop.set()


def test_next_id_read_from_the_class_and_from_the_instance_share_one_sequence() -> None:
    gen = LeaseGenerator("chrono64ms", MemoryRegistry(), ttl_ms=60_000)
    ids = []
    for _ in range(500):
        ids += [gen.next_id(), LeaseGenerator.next_id(gen)]
    gen.close()
    assert _increasing(ids)
    with pytest.raises(LeaseLost):
        gen.next_id()
    with pytest.raises(LeaseLost):
        LeaseGenerator.next_id(gen)
    with pytest.raises(LeaseLost):
        gen.next_ids(5)


def test_a_subclass_that_overrides_next_id_refuses_after_close() -> None:
    class Logged(LeaseGenerator):
        def next_id(self) -> int:
            return super().next_id()

    gen = Logged("chrono64ms", MemoryRegistry(), ttl_ms=60_000)
    first = gen.next_id()
    assert gen.next_id() > first
    gen.close()
    with pytest.raises(LeaseLost):
        gen.next_id()


_FORK_UNDER_THREADS = """
import ctypes, json, os, sys, threading, time
from chronoid.errors import GeneratorForked, LeaseLost
from chronoid.lease.memory import MemoryRegistry
from chronoid.modes import LeaseGenerator
how, out = sys.argv[1:3]
gen = LeaseGenerator("chrono64ms", MemoryRegistry(), ttl_ms=60_000)
parent_ids, stop = [], threading.Event()
def issue():
    while not stop.is_set():
        parent_ids.append(gen.next_id())
workers = [threading.Thread(target=issue) for _ in range(3)]
for w in workers:
    w.start()
time.sleep(0.05)
tick_at_fork = gen._generator.last_tick
pid = os.fork() if how == "os" else ctypes.PyDLL(None).fork()
if pid == 0:
    import faulthandler
    faulthandler.dump_traceback_later(5, exit=True)  # a child blocked for ever: exit 1
    ids, errors = [], []
    end = time.monotonic() + 0.05
    while time.monotonic() < end:
        try:
            ids.append(gen.next_id())
        except (GeneratorForked, LeaseLost) as exc:
            errors.append(type(exc).__name__)
    json.dump({"ids": ids, "errors": sorted(set(errors)), "tick": tick_at_fork},
              open(out + ".child", "w"))
    os._exit(0)
time.sleep(0.1)
stop.set()
for w in workers:
    w.join()
os.waitpid(pid, 0)
json.dump({"ids": parent_ids}, open(out + ".parent", "w"))
"""


@pytest.mark.parametrize("how", ["os", "raw"])
def test_a_fork_while_threads_generate_repeats_nothing_beyond_the_documented_window(
    how: str, tmp_path: Path
) -> None:
    # os.fork(): the at-fork hook closes the fused path at once, the child gets nothing.
    # A raw C fork runs no hook: the child may repeat the parent's IDs only inside the tick
    # current at the fork (chronoid.generator's documented window), then raises; before
    # the slow path read the process ID on a busy lock, the child blocked for ever on the
    # lock a parent's thread held at the fork (4 runs in 4).
    out = str(tmp_path / "ids")
    run = subprocess.run(
        [sys.executable, "-c", _FORK_UNDER_THREADS, how, out],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert Path(out + ".child").exists(), "the child blocked in next_id"
    child = json.loads(Path(out + ".child").read_text())
    parent = json.loads(Path(out + ".parent").read_text())
    shared = set(child["ids"]) & set(parent["ids"])
    assert "GeneratorForked" in child["errors"]
    chrono64ms = get_layout("chrono64ms")
    if how == "os":
        assert child["ids"] == [], f"{len(child['ids'])} IDs in the child, {len(shared)} shared"
    else:
        assert {chrono64ms.unpack(v).timestamp for v in child["ids"]} <= {child["tick"]}


def test_copy_and_pickle_of_a_lease_generator_are_refused() -> None:
    gen = LeaseGenerator("chrono64ms", MemoryRegistry(), ttl_ms=60_000)
    try:
        with pytest.raises(TypeError, match="cannot be copied or pickled"):
            pickle.dumps(gen)
    finally:
        gen.close()


def test_a_copy_issues_nothing_after_the_original_released_the_node() -> None:
    # A copy's lease state is a snapshot no renewal updates and no release withdraws: before
    # copies were refused, LeaseGenerator.next_id(copy) issued after the original's release.
    gen = LeaseGenerator("chrono64ms", MemoryRegistry(), ttl_ms=60_000)
    try:
        for make in (copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match="cannot be copied"):
                make(gen)
    finally:
        gen.close()


def _below_zero() -> int:
    return time.monotonic_ns() - 10**18


def test_a_lease_clock_below_zero_is_refused() -> None:
    # Deadline 0 means "nothing trusted" to the keeper: a clock reading below it would count
    # as inside every ended lease.
    with pytest.raises(InvalidArgument, match="must read an int >= 0 ns"):
        LeaseGenerator("chrono64ms", MemoryRegistry(), ttl_ms=60_000, lease_clock_ns=_below_zero)


@pytest.mark.parametrize("call", ["fused", "class"])
def test_a_lease_clock_that_falls_below_zero_issues_nothing_without_a_lease(call: str) -> None:
    # The hot path's empty hold is -2**127, below any reading: a clock that starts at 0 and
    # is later stepped below it (an injected one) still issues nothing once the lease is gone.
    offset = [0]

    def lease_clock() -> int:
        return time.monotonic_ns() + offset[0]

    gen = LeaseGenerator("chrono64ms", MemoryRegistry(), ttl_ms=60_000, lease_clock_ns=lease_clock)
    issue = gen.next_id if call == "fused" else functools.partial(LeaseGenerator.next_id, gen)
    first = issue()
    gen.close()
    offset[0] = -(10**18)
    assert first > 0
    with pytest.raises(LeaseLost):
        issue()


def test_the_no_gil_path_issues_under_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    _force_gil(monkeypatch, False)
    gen = LeaseGenerator("chrono64ms", MemoryRegistry(), ttl_ms=60_000)
    try:
        assert gen._issue == gen._generator._next_id_locked
        assert isinstance(gen.next_id, functools.partial)
        ids = [gen.next_id() for _ in range(100)]
    finally:
        gen.close()
    assert _increasing(ids)
    with pytest.raises(LeaseLost):
        gen.next_id()


def test_a_partial_lease_clock_changed_later_is_still_one_clock() -> None:
    lease = ManualClock()
    later = ManualClock(lease.now_ns() + 1_000 * 1_000_000_000)
    clock = functools.partial(ManualClock.now_ns, lease)
    gen = _on_lease_clock(lease, clock)
    gen.next_id()
    clock.__setstate__((ManualClock.now_ns, (later,), {}, None))
    try:
        remaining_ms = gen.lease_remaining_ms
        try:
            gen.next_id()
            handed_out = True
        except LeaseLost:
            handed_out = False
        # One clock for both: either the change counts everywhere or nowhere.
        assert handed_out == (remaining_ms > 0)
    finally:
        gen._stop.set()
