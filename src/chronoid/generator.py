"""Generators: time-ordered IDs over any layout, with explicit clock and overflow policies.

A generator owns one node of one layout and issues ``timestamp | node | sequence`` IDs that
strictly increase. What happens when the wall clock goes back, and when a tick's sequence
space runs out, is a policy chosen at construction (never a silent ``None``):

========================  ==============================================================
``on_backwards``          the clock reads earlier than the tick last used
========================  ==============================================================
``Backwards.WAIT``        sleep until the clock is back, if that is at most
                          ``max_wait_ms`` (default 1 s); beyond it raise
                          :class:`~chronoid.errors.ClockMovedBackwards`
``Backwards.RAISE``       raise :class:`~chronoid.errors.ClockMovedBackwards` at once
``Backwards.HLC``         hybrid logical clock (spec 003): keep issuing from the last
                          tick, never block on a regression; ``lead_ns`` says how far
                          the logical time runs ahead of the wall clock
========================  ==============================================================

========================  ==============================================================
``on_overflow``           the tick's 2^S sequence values are used up
========================  ==============================================================
``Overflow.WAIT``         wait for the next tick (at most ``max_wait_ms``, else raise
                          :class:`~chronoid.errors.SequenceExhausted`)
``Overflow.BORROW``       (HLC only) move the logical tick forward by one, while that
                          keeps the lead within ``max_lead_ms``
``Overflow.RAISE``        raise :class:`~chronoid.errors.SequenceExhausted`
========================  ==============================================================

Bounded HLC lead: under a load above 2^S IDs per tick, borrowing would run the logical time
ever further ahead of the wall clock (measured: 1.0 to 1.7 s in 3 s at 5,000 IDs/ms). HLC
borrows a tick only while it starts at most ``max_lead_ms`` (default 1 s) after the end of
the tick of the highest wall-clock reading seen (so the next tick can always be borrowed);
past that it *waits* for the wall clock, as ``Overflow.WAIT`` does
(at most ``max_wait_ms``), then raises :class:`~chronoid.errors.ClockLeadExceeded`. A clock
regression is not borrowing: after the clock goes back HLC still issues from its last tick
(that is its promise) and may borrow up to ``max_lead_ms`` beyond the time it had reached.
``max_lead_ms=None`` restores spec 003's unbounded lead.

Clocks before the epoch: a clock that reads earlier than the layout's epoch gets
:class:`~chronoid.errors.ClockBeforeEpoch` (epoch and reading in the message) under every
policy, except an HLC generator that has issued before: for it this is one more regression,
and it keeps going from its last tick.

Forward jumps: on every tick change the generator compares how far the wall clock moved with
how far the clock's steady reference moved (``steady_ns``: ``CLOCK_BOOTTIME`` for the system
clock). A step forward larger than ``max_jump_ms`` (default 1 s) is logged (logger
``chronoid``, WARNING) and counted in :attr:`Generator.forward_jumps`; with
``on_forward_jump="raise"`` that call raises :class:`~chronoid.errors.ClockJumpedForward`
once (the next call issues at the new time). Without the report a jump followed by the
correction back would leave WAIT and RAISE generators stuck, and HLC carrying the jump as a
lead, in silence.

Thread safety: within a tick, IDs come from the tick's counter (a range iterator), whose
``next()`` is atomic under the GIL, so the common call takes no lock (4 threads sharing a
generator keep their throughput); one lock per generator guards tick changes and the
policies. On a free-threaded (no-GIL) build that atomicity is not promised, so there every
call takes the lock.

Fork safety: a child process made by ``os.fork()`` inherits the generator with the parent's
node; if both kept going they would issue the same IDs. So in the child every call raises
:class:`~chronoid.errors.GeneratorForked` until :meth:`Generator.reassign_node` gives it a
node of its own (the parent keeps its node and is not affected). Python's ``os.fork()`` runs
the at-fork hook that marks the generator at once. A raw C-level ``fork()`` (a pre-fork
server written in C, ``ctypes``) runs no hook: there the generator notices the changed
process ID on its slow path, i.e. at the next tick change, the next overflow or the next
``next_ids`` call, and raises then (also when one of the parent's threads held the
generator's lock at the fork: a busy lock makes the slow path read the process ID before it
waits). The window that remains: ``next_id`` calls in the child
inside the tick that was current at the fork (at most one tick: 1 ms for ``ms`` layouts, 1 s
for ``s`` layouts) may repeat the parent's IDs; the process ID is not read on the fast path
(a system call would double its cost).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from enum import Enum
from itertools import islice
from operator import length_hint
from typing import Any, Protocol

from chronoid.clock import SYSTEM_CLOCK, Clock, steady_reader
from chronoid.errors import (
    ClockBeforeEpoch,
    ClockJumpedForward,
    ClockLeadExceeded,
    ClockMovedBackwards,
    GeneratorForked,
    InvalidArgument,
    SequenceExhausted,
)
from chronoid.fork import reset_after_fork
from chronoid.layout import Layout
from chronoid.variants import SNOWFLAKE, VariantName, get_layout

__all__ = ["MAX_BATCH", "Backwards", "ChronoSequence", "Generator", "Overflow", "hlc_generator"]

MAX_BATCH = 10_000_000
"""Largest count one :meth:`Generator.next_ids` call accepts (IDs)."""

log = logging.getLogger("chronoid")


class Backwards(Enum):
    """What to do when the wall clock reads earlier than the last tick used."""

    WAIT = "wait"
    RAISE = "raise"
    HLC = "hlc"


class Overflow(Enum):
    """What to do when one tick's sequence values are all used."""

    WAIT = "wait"
    BORROW = "borrow"
    RAISE = "raise"


# next() on a range iterator is one C call, atomic only while a GIL serialises threads.
_GIL_ENABLED: bool = getattr(sys, "_is_gil_enabled", lambda: True)()

_State = tuple[int, int, Iterator[int], int]
"""The current tick as the fast path sees it: wall-clock window [start_ns, end_ns), the
counter that hands out its IDs, and the tick's last ID."""


# Fast-path callers that read a tick's state just before it changes draw at most one value
# each past the tick's last ID, so a counter that runs this far beyond it never runs dry.
_COUNTER_SLACK = 1 << 32


def _counter(first: int, last_id: int) -> Iterator[int]:
    """Consecutive values from ``first``, the IDs of one tick up to ``last_id`` and beyond.

    A range iterator, not an itertools.count: its length hint says how far it has counted
    without consuming a value or parsing a repr (see :func:`_next_value`). Below
    ``sys.maxsize`` it counts in C longs, as fast as an itertools.count.
    """
    return iter(range(first, last_id + _COUNTER_SLACK))


def _next_value(ids: Iterator[int], last_id: int) -> int:
    """The value ``ids`` (made by :func:`_counter` for ``last_id``) hands out next."""
    return last_id + _COUNTER_SLACK - length_hint(ids)


def _closed(ids: Iterator[int], last_id: int) -> _State:
    # A window no clock reading falls in: every call takes the locked slow path.
    return (1, 0, ids, last_id)


class _LeaseHolder(Protocol):
    """What :meth:`Generator._next_id_within` reads around every ID it takes."""

    @property
    def _hold(self) -> tuple[int, object]:
        """(deadline_ns on the lease clock, the lease): replaced as a whole on every change."""
        ...


def _call_parts(reader: Callable[[], int]) -> tuple[Callable[..., int], tuple[Any, ...]]:
    """``reader`` as a function and a ready argument tuple, for a hot-path ``f(*args)``.

    CPython 3.11's ``time.clock_gettime_ns`` takes its clock as a tuple of arguments (parsed
    per call): through ``functools.partial`` (how :func:`chronoid.clock.boottime_ns` is made)
    a tuple is built on every call, while ``f(*args)`` hands it over as it is. Measured
    against ``time.monotonic_ns``: 1.55x through the partial, 1.30x with ``f(*args)``.
    Only a plain partial is unwrapped: a subclass may override ``__call__`` (an offset, a
    scale), and skipping it would check the lease against another clock than its own.
    """
    if type(reader) is functools.partial and not reader.keywords:
        return reader.func, reader.args
    return reader, ()


class Generator:
    """Issues strictly increasing IDs for one node of one layout.

    Args:
        layout: a :class:`~chronoid.layout.Layout` or a variant name (default
            ``"snowflake"``).
        node: this generator's node (worker) ID, 0..layout.max_node. Two generators of one
            layout must never share a node.
        clock: where time comes from (default: the system clock).
        on_backwards: clock regression policy (default WAIT, bounded by ``max_wait_ms``).
        on_overflow: sequence overflow policy (default WAIT; BORROW with HLC, the only
            overflow policy HLC accepts).
        max_wait_ms: longest the generator blocks for either reason (ms); beyond it it
            raises rather than stall a caller indefinitely.
        max_lead_ms: HLC only: how far borrowed ticks may run ahead of the wall clock (ms,
            default 1 s; None: unbounded, as in spec 003).
        max_jump_ms: a forward step of the wall clock larger than this is reported (ms,
            default 1 s; None: not watched).
        on_forward_jump: ``"report"`` (log and count) or ``"raise"`` (also raise
            :class:`~chronoid.errors.ClockJumpedForward` once).
        lease_remaining_ns: for generators that issue under a lease (Mode C): returns how
            long the lease still runs (ns) and raises when it is over. No wait of the
            generator outlasts it (waits are cut into slices that end inside the lease), and
            a batch is checked against it after every tick.
        tick_check: for generators that issue under a lease: called with every tick before
            the generator enters it; raises to refuse the tick (Mode C refuses ticks beyond
            what its registry has recorded for the next holder).

    Raises:
        InvalidNode: node out of range. InvalidArgument: a policy combination that cannot
        hold its promise, or a negative wait bound.
    """

    def __init__(
        self,
        layout: Layout | VariantName = SNOWFLAKE,
        node: int = 0,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_backwards: Backwards = Backwards.WAIT,
        on_overflow: Overflow | None = None,
        max_wait_ms: float = 1000.0,
        max_lead_ms: float | None = 1000.0,
        max_jump_ms: float | None = 1000.0,
        on_forward_jump: str = "report",
        lease_remaining_ns: Callable[[], int] | None = None,
        tick_check: Callable[[int], None] | None = None,
    ) -> None:
        self._layout = get_layout(layout)
        self._node = self._layout.check_node(node)
        if not isinstance(on_backwards, Backwards):
            raise InvalidArgument(f"on_backwards must be a Backwards policy, got {on_backwards!r}")
        if on_overflow is None:
            on_overflow = Overflow.BORROW if on_backwards is Backwards.HLC else Overflow.WAIT
        if not isinstance(on_overflow, Overflow):
            raise InvalidArgument(f"on_overflow must be an Overflow policy, got {on_overflow!r}")
        if (on_backwards is Backwards.HLC) != (on_overflow is Overflow.BORROW):
            raise InvalidArgument(
                "Backwards.HLC and Overflow.BORROW go together: borrowing a tick runs logical "
                "time ahead of the wall clock, which only the HLC policy tolerates "
                f"(got on_backwards={on_backwards.name}, on_overflow={on_overflow.name})"
            )
        if not max_wait_ms >= 0:
            raise InvalidArgument(f"max_wait_ms must be >= 0, got {max_wait_ms!r}")
        for label, bound in (("max_lead_ms", max_lead_ms), ("max_jump_ms", max_jump_ms)):
            if bound is not None and not (isinstance(bound, int | float) and bound >= 0):
                raise InvalidArgument(f"{label} must be a number >= 0 or None, got {bound!r}")
        if on_forward_jump not in ("report", "raise"):
            raise InvalidArgument(
                f'on_forward_jump must be "report" or "raise", got {on_forward_jump!r}'
            )
        if lease_remaining_ns is not None and not callable(lease_remaining_ns):
            raise InvalidArgument(
                f"lease_remaining_ns must be callable, got {lease_remaining_ns!r}"
            )
        self._max_lead_ns = None if max_lead_ms is None else int(max_lead_ms * 1_000_000)
        self._max_jump_ns = None if max_jump_ms is None else int(max_jump_ms * 1_000_000)
        self._raise_on_jump = on_forward_jump == "raise"
        self._steady = steady_reader(clock) if max_jump_ms is not None else None
        self._seen_wall_ns = 0  # wall and steady readings at the last tick change (jumps)
        self._seen_steady_ns = 0
        self._high_ns = 0  # highest wall-clock reading seen on the slow path (HLC lead)
        if tick_check is not None and not callable(tick_check):
            raise InvalidArgument(f"tick_check must be callable, got {tick_check!r}")
        self._lease_remaining = lease_remaining_ns
        self._tick_check = tick_check
        self.forward_jumps = 0
        """Forward steps of the wall clock larger than ``max_jump_ms`` seen so far."""
        self._clock = clock
        # The system clock is read directly: one Python call less on the hot path.
        self._now = time.time_ns if clock is SYSTEM_CLOCK else clock.now_ns
        self._on_backwards = on_backwards
        self._on_overflow = on_overflow
        self._max_wait_ns = int(max_wait_ms * 1_000_000)
        self._max_seq = self._layout.max_sequence
        self._shift = self._layout.node_bits + self._layout.sequence_bits
        self._node_field = self._node << self._layout.sequence_bits
        self._lock = threading.Lock()
        self._forked = False
        self._pid = os.getpid()
        # State: the last tick used and its first ID (base); the fast path reads only
        # _state, replaced as a whole (one attribute store) under the lock. IDs come from
        # the tick's counter, a range iterator whose next() is atomic under the GIL: the fast path
        # needs no lock, and a caller that still holds the previous tick's state can only
        # take an unused value of that tick (its call overlaps the tick change).
        self._tick = -1
        self._base = 0
        self._state: _State = _closed(_counter(1, 0), 0)
        if not _GIL_ENABLED:
            self.next_id = self._next_id_locked  # type: ignore[method-assign]
        reset_after_fork(self)

    # -- public read-only state ------------------------------------------------------------

    @property
    def layout(self) -> Layout:
        """The layout IDs are made in."""
        return self._layout

    @property
    def node(self) -> int:
        """This generator's node ID."""
        return self._node

    @property
    def last_tick(self) -> int:
        """The timestamp field of the last ID issued (ticks), -1 before the first."""
        return self._tick

    @property
    def lead_ns(self) -> int:
        """How far the last tick used runs ahead of the wall clock (ns), 0 when it does not.

        Non-zero only under HLC after a clock regression or borrowed ticks.
        """
        if self._tick < 0:
            return 0
        return max(0, self._layout.tick_start_ns(self._tick) - self._clock.now_ns())

    # -- issuing ---------------------------------------------------------------------------

    def next_id(self) -> int:
        """The next ID: larger than every ID this generator issued before."""
        start, end, ids, last_id = self._state
        now = self._now()
        if start <= now < end:
            value = next(ids)
            if value <= last_id:
                return value
        lock = self._lock
        if not lock.acquire(False):
            lock = self._acquire_contended()
        try:
            return self._next_slow(self._now())
        finally:
            lock.release()

    def _next_id_locked(self) -> int:
        lock = self._lock
        if not lock.acquire(False):
            lock = self._acquire_contended()
        try:
            start, end, ids, last_id = self._state
            now = self._now()
            if start <= now < end:
                value = next(ids)
                if value <= last_id:
                    return value
            return self._next_slow(now)
        finally:
            lock.release()

    def _acquire_contended(self) -> threading.Lock:
        """The generator's lock, acquired after a non-blocking try found it busy (the caller
        releases the lock returned).

        A raw C ``fork()`` copies the lock as it is: held, if one of the parent's threads was
        changing ticks, by a thread the child does not have. So a busy lock is the cue to
        read the process ID (one system call per contended acquisition, none otherwise): the
        child marks itself forked (a fresh lock) and raises GeneratorForked rather than
        block for ever.
        """
        if self._pid != os.getpid():
            self._mark_forked()
        lock = self._lock
        lock.acquire()
        return lock

    def _next_id_within(
        self,
        holder: _LeaseHolder,
        lease_clock_ns: Callable[[], int],
        slow: Callable[[], int],
    ) -> Callable[[], int]:
        """:meth:`next_id`'s fast path fused with a take-then-check against a lease (Mode C),
        as one function: one Python frame per ID instead of the lease's and the generator's.

        Each call reads ``holder._hold``, takes the ID as :meth:`next_id` does, then reads
        ``lease_clock_ns``: the ID is returned only if that reading lies before the deadline
        of the hold read first and that hold is still in place (so the ID was made inside
        the lease it was read under). Anything else (a tick change, a window closed by a
        fork or a node change, a hold replaced meanwhile, a deadline passed) goes to
        ``slow``, which takes its own ID and decides; the value taken here is dropped (a
        gap, never a repeat). Without a GIL the fast path takes the lock: ``slow`` alone.
        """
        if not _GIL_ENABLED:
            return slow
        lease_now, lease_now_args = _call_parts(lease_clock_ns)

        def next_id() -> int:
            hold = holder._hold
            start, end, ids, last_id = self._state
            now = self._now()
            if start <= now < end:
                value = next(ids)
                if (
                    value <= last_id
                    and lease_now(*lease_now_args) < hold[0]
                    and holder._hold is hold
                ):
                    return value
            return slow()

        return next_id

    def next_ids(self, count: int) -> list[int]:
        """``count`` IDs at once, in increasing order, as one call.

        Inside one tick the IDs are consecutive integers, so a batch costs one range per
        tick rather than a Python loop per ID. The overflow policy applies when the batch
        needs more than what is left of the tick.

        Raises:
            InvalidArgument: count outside 1..MAX_BATCH.
        """
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_BATCH:
            raise InvalidArgument(f"count must be an int in 1..{MAX_BATCH}, got {count!r}")
        out: list[int] = []
        lease_remaining = self._lease_remaining
        lock = self._lock
        if not lock.acquire(False):
            lock = self._acquire_contended()
        try:
            if self._pid != os.getpid():
                self._mark_forked()
            remaining = count
            while remaining:
                if out and lease_remaining is not None:
                    lease_remaining()  # every tick's IDs were made inside the lease
                chunk, now = self._tick_chunk(remaining)
                if not chunk:
                    chunk = [self._next_slow(now)]
                if out:
                    out += chunk
                else:
                    out = chunk
                remaining -= len(chunk)
            if lease_remaining is not None:
                lease_remaining()
        finally:
            lock.release()
        return out

    def _tick_chunk(self, wanted: int) -> tuple[list[int], int]:
        """Up to ``wanted`` IDs of the current tick, and the clock reading they were taken at.

        Empty when the clock is outside the tick's window or the tick is used up: the caller
        takes the slow path with that reading.
        """
        start, end, ids, last_id = self._state
        now = self._now()
        if not start <= now < end:
            return [], now
        # One C call takes consecutive values (atomic under the GIL), at most one tick's
        # worth so a huge batch stays linear in its size; values past the tick's last ID are
        # dropped, the rest comes from the next tick.
        chunk = list(islice(ids, min(wanted, self._max_seq + 1)))
        if chunk[-1] > last_id:
            del chunk[max(0, last_id - chunk[0] + 1) :]
        return chunk, now

    def reassign_node(self, node: int, *, after_ns: int = 0) -> None:
        """Move this generator to another node, e.g. in a child after ``os.fork()``.

        The new node must be unused by any other generator of the layout. The generator
        keeps its last tick, so its IDs still increase. ``after_ns`` (ns since the Unix
        epoch): the end of the last tick the node's previous holder used (Mode C's
        ``last_ns``); the tick before it counts as this generator's last, so a clock that
        steps back later is met by the clock policy, never by the previous holder's IDs.
        """
        with self._lock:
            self._node = self._layout.check_node(node)
            self._node_field = node << self._layout.sequence_bits
            self._forked = False
            self._pid = os.getpid()
            if after_ns > self._layout.epoch_ns:
                self._tick = max(self._tick, self._layout.tick_of_ns(after_ns - 1))
            if self._tick >= 0:
                # Continue after the last tick: the old node's sequence state means nothing
                # for the new node, but time order must hold: the tick counts as used up.
                self._base = (self._tick << self._shift) | self._node_field
            last_id = self._base | self._max_seq
            self._state = _closed(_counter(last_id + 1, last_id), last_id)

    # -- internals -------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._mark_forked()

    def _mark_forked(self) -> None:
        # Runs in the child right after fork(): the lock may have been held by a thread
        # that does not exist here; the fast-path window is closed so every call reaches
        # the forked check in _next_slow.
        self._lock = threading.Lock()
        self._forked = True
        _, _, ids, last_id = self._state
        self._state = _closed(ids, last_id)

    def _waited_to_borrow(self, now: int, last: int) -> bool:
        """Before tick ``last + 1`` is borrowed: True after waiting while it would lead the
        wall clock by more than max_lead_ms, False when it may be borrowed now.

        Raises:
            SequenceExhausted: the layout has no tick after ``last``.
            ClockLeadExceeded: the wait would be longer than max_wait_ms.
        """
        layout = self._layout
        if last + 1 > layout.max_timestamp:
            raise SequenceExhausted(f"{layout.name}: HLC logical time reached the layout's expiry")
        max_lead = self._max_lead_ns
        if max_lead is None:
            return False
        # The lead counts from the end of the tick the highest reading falls in, so the next
        # tick can always be borrowed (a year layout borrows a year).
        ref = max(now, self._high_ns)
        horizon = layout.tick_start_ns(layout.tick_of_ns(ref) + 1)
        lead = layout.tick_start_ns(last + 1) - horizon
        if lead <= max_lead:
            return False
        wait_ns = (ref - now) + (lead - max_lead)
        self._wait(
            wait_ns,
            ClockLeadExceeded(
                f"{layout.name}: borrowing tick {last + 1} would run {lead / 1e6:,.3f} ms ahead "
                f"of the wall clock, more than max_lead_ms ({max_lead / 1e6:,.0f}); the clock "
                f"needs {wait_ns / 1e6:,.3f} ms to catch up, more than max_wait_ms"
            ),
        )
        return True

    def _reopen(self, tick: int, ids: Iterator[int], last_id: int) -> None:
        # Back inside the last tick's wall window: the fast path may resume.
        layout = self._layout
        self._state = (layout.tick_start_ns(tick), layout.tick_start_ns(tick + 1), ids, last_id)

    def _enter_tick(self, tick: int) -> int:
        if self._tick_check is not None:
            self._tick_check(tick)  # raises to refuse it, before any state changes
        layout = self._layout
        self._tick = tick
        self._base = base = (tick << self._shift) | self._node_field
        last_id = base | self._max_seq
        self._state = (
            layout.tick_start_ns(tick),
            layout.tick_start_ns(tick + 1),
            _counter(base + 1, last_id),
            last_id,
        )
        return base

    def _wait(self, wait_ns: int, error: Exception) -> None:
        if wait_ns > self._max_wait_ns:
            raise error
        lease_remaining = self._lease_remaining
        if lease_remaining is None:
            self._clock.sleep_ns(wait_ns)
            return
        # Under a lease: sleep in slices that end inside it; a renewal extends it meanwhile,
        # and lease_remaining raises once it is over, so no wait outlasts the lease.
        while wait_ns > 0:
            step = min(wait_ns, lease_remaining())
            if step <= 0:
                step = min(wait_ns, 1_000_000)
            self._clock.sleep_ns(step)
            wait_ns -= step

    def _watch(self, now: int) -> None:
        # The slow path's clock checks: process ID (a raw fork), forward jumps, HLC's high
        # water mark. One os.getpid() and one steady read per tick change, none per ID.
        if self._pid != os.getpid():
            self._mark_forked()
        if now > self._high_ns:
            self._high_ns = now
        steady = self._steady
        if steady is None:
            return
        steady_now = steady()
        if self._seen_steady_ns:
            jump = (now - self._seen_wall_ns) - (steady_now - self._seen_steady_ns)
            if self._max_jump_ns is not None and jump > self._max_jump_ns:
                self._seen_wall_ns, self._seen_steady_ns = now, steady_now
                self._report_jump(jump)
        self._seen_wall_ns, self._seen_steady_ns = now, steady_now

    def _report_jump(self, jump_ns: int) -> None:
        self.forward_jumps += 1
        message = (
            f"{self._layout.name}: the wall clock jumped {jump_ns / 1e6:,.3f} ms forward "
            f"(node {self._node}, bound max_jump_ms {self._max_jump_ns / 1e6:,.0f}); IDs "
            "now carry the new time, and a later correction back is a regression"
            if self._max_jump_ns is not None
            else ""
        )
        log.warning("%s", message)
        if self._raise_on_jump:
            raise ClockJumpedForward(jump_ns, message)

    def _before_epoch(self, now: int) -> ClockBeforeEpoch:
        layout = self._layout
        return ClockBeforeEpoch(layout.name, layout.epoch_ns, now, layout.epoch.isoformat())

    def _next_slow(self, now: int) -> int:
        self._watch(now)
        if self._forked:
            raise GeneratorForked(
                f"this {self._layout.name} generator (node {self._node}) was inherited "
                "through fork(); the parent keeps node "
                f"{self._node}, so give the child its own with reassign_node(node)"
            )
        epoch_ns = self._layout.epoch_ns
        while True:
            last = self._tick
            if now < epoch_ns:
                if self._on_backwards is not Backwards.HLC or last < 0:
                    raise self._before_epoch(now)
                tick = -1  # HLC: one more regression, keep counting in the last tick
            else:
                tick = self._layout.tick_of_ns(now)
            if tick > last:
                return self._enter_tick(tick)
            if tick < last:
                behind_ns = self._layout.tick_start_ns(last) - now
                if self._on_backwards is Backwards.RAISE:
                    raise ClockMovedBackwards(behind_ns)
                if self._on_backwards is Backwards.WAIT:
                    self._wait(behind_ns, ClockMovedBackwards(behind_ns))
                    now = self._now()
                    continue
                # HLC: keep counting in the last (logical) tick.
            _, end, ids, last_id = self._state
            value = next(ids)
            if value <= last_id:
                if tick == last and end == 0:
                    self._reopen(last, ids, last_id)
                return value
            if self._on_overflow is Overflow.BORROW:
                if self._waited_to_borrow(now, last):
                    now = self._now()
                    continue
                return self._enter_tick(last + 1)
            exhausted = SequenceExhausted(
                f"{self._layout.name}: all {self._max_seq + 1} sequence values of tick {last} "
                f"are used (node {self._node}); the next tick starts in "
                f"{(self._layout.tick_start_ns(last + 1) - now) / 1e6:.3f} ms"
            )
            if self._on_overflow is Overflow.RAISE:
                raise exhausted
            self._wait(self._layout.tick_start_ns(last + 1) - now, exhausted)
            now = self._now()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layout={self._layout.name!r}, node={self._node}, "
            f"on_backwards={self._on_backwards.name}, on_overflow={self._on_overflow.name})"
        )


def hlc_generator(
    node: int = 0, layout: Layout | VariantName = SNOWFLAKE, *, clock: Clock = SYSTEM_CLOCK
) -> Generator:
    """A hybrid-logical-clock generator (spec 003): never blocks, never fails on clock skew."""
    return Generator(layout, node, clock=clock, on_backwards=Backwards.HLC)


class ChronoSequence(Generator):
    """The Snowflake generator of spec 000: ``ChronoSequence(worker_id).next_id()``.

    1 unused bit, 41 bits of ms since 2024-01-01 UTC, a 10-bit worker and a 12-bit
    sequence. ``last_timestamp`` is the ms timestamp of the last ID (-1 before the first)
    and ``sequence`` its sequence number (0 at start). A clock that goes back up to 1 s is
    waited out; further back raises :class:`~chronoid.errors.ClockMovedBackwards`. More
    than 4,096 IDs in one ms wait for the next ms.

    Raises:
        ValueError (:class:`~chronoid.errors.InvalidNode`): worker_id outside 0..1023.
    """

    def __init__(
        self,
        worker_id: int,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_backwards: Backwards = Backwards.WAIT,
        max_wait_ms: float = 1000.0,
    ) -> None:
        SNOWFLAKE.check_node(worker_id, "worker_id")
        super().__init__(
            SNOWFLAKE,
            worker_id,
            clock=clock,
            on_backwards=on_backwards,
            max_wait_ms=max_wait_ms,
        )

    @property
    def worker_id(self) -> int:
        """The 10-bit worker ID given at construction."""
        return self._node

    @property
    def last_timestamp(self) -> int:
        """ms since 2024-01-01 UTC of the last ID issued; -1 before the first."""
        return self._tick

    @property
    def sequence(self) -> int:
        """Sequence number of the last ID issued within its ms (0 at start)."""
        if self._tick < 0:
            return 0
        _, _, ids, last_id = self._state
        next_value = _next_value(ids, last_id)
        return min(next_value - 1 - self._base, self._max_seq)
