"""Mode B, instance-native (spec 002 §3.2): exact uniqueness inside one instance.

One counter drives everything. Counter value ``c`` maps to an ID by the pure function
:func:`mode_b_id`::

    lap      = c >> S                       # which run of 2^S sequence values
    node     = (base_node + lap * STEP) mod 2^N     # Weyl step, STEP = weyl_step_constant(N)
    sequence = c mod 2^S
    ID       = compose(layout, timestamp, node, sequence, salt, index)     # node mixed

The counter only goes up, so a window's 2^S sequence values running out (a burst) simply
moves to the next lap, which is the next node of a full-period Weyl walk: generation goes on
without blocking. Within one window, any 2^(N+S) consecutive counter values give distinct
IDs (the walk visits every node once; ``compose`` is a bijection for a fixed salt and
index); if a window would need more, the generator borrows the next tick rather than wait.
Every ``rotation_s`` (10 minutes by default) the counter jumps to the next lap boundary, so
the node steps even without bursts.

PostgreSQL mirrors this with a sequence: ``c = nextval(...)`` and the same mapping.

What Mode B does not promise (erratum 9): the mixed sequence is not monotonic inside a window
(a lap's IDs share a node but their mixed sequences jump around), and two *instances* that
start on the same node or walk onto each other's node collide eventually. One instance per
node space, or Mode C, when uniqueness must hold across a fleet. The salt and multiplier stay
fixed for the instance's life (spec 002 §7.2 re-rolls the salt on each step; that could map a
new node and sequence onto an ID already issued in the same window, so chronoid does not).

Durable state: with ``state_file``, the generator persists ahead, like the sequencer's
watermark: before it issues an ID it has made durable (atomically: temporary file, fsync,
rename, fsync of the directory) a high-water mark above it, in the counter (``reserved``) and
in the tick (``tick``: the highest tick it may use before its next write, up to
``persist_ahead_s`` ahead of the clock, or ahead of the borrowed ticks in a burst). A restart,
even after kill -9 and whatever the clock says then, resumes strictly above that mark: in a
later tick, or in the marked tick with counters the previous process never reached. If the
clock is behind the mark, the generator borrows ticks (it never waits or raises for it), so
IDs after such a restart may carry timestamps up to ``persist_ahead_s`` ahead of the clock. A
lock held on ``<state_file>.lock`` keeps two live generators off one state file; temporary
files that a crash left behind are removed at start.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from chronoid.clock import SYSTEM_CLOCK, Clock
from chronoid.durable import FileIdentity, HeldLock, identity_of, remove_leftovers, write_atomically
from chronoid.errors import (
    ClockBeforeEpoch,
    GeneratorForked,
    InvalidArgument,
    SequenceExhausted,
    StateFileError,
    TimestampOutOfRange,
)
from chronoid.fork import reset_after_fork
from chronoid.generator import MAX_BATCH
from chronoid.layout import Layout
from chronoid.mix import compose, mix, multiplier, weyl_step_constant
from chronoid.variants import VariantName, get_layout

__all__ = [
    "DEFAULT_PERSIST_AHEAD_S",
    "DEFAULT_RESERVE",
    "STATE_VERSION",
    "InstanceGenerator",
    "mode_b_id",
    "mode_b_node",
]

STATE_VERSION = 2
"""Format version written into state files. Version 1 recorded the tick of its last write,
not a mark above every tick used; it is still read, conservatively (see ``_resume_v1``)."""

DEFAULT_RESERVE = 1 << 16
"""Counter values reserved per state-file write (IDs): one fsync per 65,536 IDs at most."""

DEFAULT_PERSIST_AHEAD_S = 1.0
"""How far ahead of the clock (s) the durable tick mark is set: about one state-file write
per second for ticks shorter than that, and the most a restart after a crash runs ahead."""

_STATE_KEYS = frozenset(
    ("version", "layout", "base_node", "salt", "index", "reserved", "tick", "tick_first")
)
_MAX_COUNTER = 1 << 63
"""Largest counter a state file may hold (IDs): far beyond any real process's count."""


def mode_b_node(layout: Layout, counter: int, base_node: int) -> int:
    """The plain (unmixed) node that counter value ``counter`` uses: the Weyl walk's lap."""
    step = weyl_step_constant(layout.node_bits)
    return (base_node + (counter >> layout.sequence_bits) * step) & layout.max_node


def mode_b_id(
    layout: Layout, timestamp: int, counter: int, base_node: int, salt: int, index: int
) -> int:
    """The Mode B ID of counter value ``counter`` in tick ``timestamp``: a pure function.

    ``base_node`` is the instance's node (0..max_node), ``salt`` an (N+S)-bit XOR salt and
    ``index`` the multiplier basket index, as for :func:`chronoid.mix.compose`. The SQL
    implementation computes the same value from ``nextval`` of a PostgreSQL sequence.

    Raises:
        InvalidArgument: a negative counter. InvalidNode, TimestampOutOfRange: see compose.
    """
    if not isinstance(counter, int) or counter < 0:
        raise InvalidArgument(f"counter must be an int >= 0, got {counter!r}")
    layout.check_node(base_node, "base node")
    node = mode_b_node(layout, counter, base_node)
    return compose(layout, timestamp, node, counter & layout.max_sequence, salt, index)


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be an int in {low}..{high}, got {value!r}")
    return value


def _check_arguments(
    layout: Layout,
    node: object,
    rotation_s: object,
    reserve: object,
    persist_ahead_s: object,
    salt: object,
    index: object,
) -> None:
    """Every argument of :class:`InstanceGenerator` checked once, before any state exists."""
    if (
        isinstance(rotation_s, bool)
        or not isinstance(rotation_s, int | float)
        or not 0 < rotation_s < 1e12
    ):
        raise InvalidArgument(f"rotation_s must be a number of seconds > 0, got {rotation_s!r}")
    _check_int("reserve", reserve, 1, 1 << 40)
    if (
        isinstance(persist_ahead_s, bool)
        or not isinstance(persist_ahead_s, int | float)
        or not 0 < persist_ahead_s <= 3600
    ):
        raise InvalidArgument(
            f"persist_ahead_s must be a number of seconds in (0, 3600], got {persist_ahead_s!r}"
        )
    if node is not None:
        layout.check_node(node)
    if salt is not None:
        _check_int("salt", salt, 0, (1 << layout.suffix_bits) - 1)
    if index is not None:
        _check_int("index", index, 0, 63)


class InstanceGenerator:
    """Mode B: a fixed instance node, a monotonic counter and a Weyl-stepped node.

    Args:
        layout: a Layout or variant name (default ``chrono64s``).
        node: the instance's base node, 0..max_node (default: drawn from :mod:`secrets`).
        clock: where time comes from (default: the system clock).
        rotation_s: seconds between timed node steps (default 600 s, > 0).
        state_file: path of the durable state (optional). If it exists, its node, salt,
            index and high-water marks are resumed (see the module docstring).
        reserve: counter values reserved per state-file write (default 65,536 IDs).
        persist_ahead_s: how far ahead of the clock the durable tick mark goes (default 1 s,
            0 < value <= 3600): fewer writes against more run-ahead after a crash.
        salt, index: mixing parameters (default: drawn from :mod:`secrets`).

    Raises:
        InvalidNode, InvalidArgument: bad arguments. StateFileError: the state file is
        unreadable, belongs to another layout or node, or is in use by another process.
    """

    def __init__(
        self,
        layout: Layout | VariantName = "chrono64s",
        node: int | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rotation_s: float = 600.0,
        state_file: str | os.PathLike[str] | None = None,
        reserve: int = DEFAULT_RESERVE,
        persist_ahead_s: float = DEFAULT_PERSIST_AHEAD_S,
        salt: int | None = None,
        index: int | None = None,
        randbits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        self._layout = lay = get_layout(layout)
        _check_arguments(lay, node, rotation_s, reserve, persist_ahead_s, salt, index)
        self._reserve = reserve
        self._ahead_ns = int(persist_ahead_s * 1e9)
        self._clock = clock
        self._now = time.time_ns if clock is SYSTEM_CLOCK else clock.now_ns
        self._rotation_ns = int(rotation_s * 1e9)
        self._s_bits = lay.sequence_bits
        self._shift = lay.suffix_bits
        self._mask = lay.max_sequence
        self._span = 1 << lay.suffix_bits
        self._state_path = os.fspath(state_file) if state_file is not None else None
        self._held: HeldLock | None = None
        self._identity: FileIdentity | None = None  # of the state file as last read or written
        self._forked = False
        self._lock = threading.Lock()
        self._start_counting(node, salt, index, randbits)
        self._mult = multiplier(self._s_bits, self.index)
        self._seq_salt = self.salt & self._mask
        self._node_salt = self.salt >> self._s_bits
        self._step = weyl_step_constant(lay.node_bits)
        self._rotate_at_ns = self._now() + self._rotation_ns
        self._base = 0
        self._limit = 0
        self._fast_end_ns = 0
        self.timed_rotations = 0
        """Node steps forced by ``rotation_s`` (not by a used-up window)."""
        self.borrowed_ticks = 0
        """Ticks taken ahead of the clock because one window needed more than 2^(N+S) IDs."""
        reset_after_fork(self)

    def _start_counting(
        self,
        node: int | None,
        salt: int | None,
        index: int | None,
        randbits: Callable[[int], int],
    ) -> None:
        """Counter, tick and identity (node, salt, index): resumed from the state file if it
        exists, else the given values or fresh draws."""
        self._counter = 0
        durable = self._state_path is not None
        self._reserved = -1 if durable else (1 << 200)  # counters below it may be issued
        self._durable_tick = -1 if durable else (1 << 200)  # ticks up to it may be used
        self._borrow_ahead = 1  # ticks marked per write in a burst of borrowing (doubles)
        self._tick = -1
        self._tick_first = 0
        stored = self._open_state() if self._state_path else None
        if stored is None:
            lay = self._layout
            self.base_node = node if node is not None else randbits(lay.node_bits)
            self.salt = salt if salt is not None else randbits(lay.suffix_bits)
            self.index = index if index is not None else randbits(6)
            return
        self.base_node = self._stored_value(stored, "base_node", node)
        self.salt = self._stored_value(stored, "salt", salt)
        self.index = self._stored_value(stored, "index", index)
        self._counter = self._reserved = stored["reserved"]
        # The previous process used no tick above the mark and, in the marked tick, no
        # counter below this floor nor at or above ``reserved``: resuming there, or in any
        # later tick with a fresh window, repeats nothing.
        self._tick = self._durable_tick = stored["tick"]
        self._tick_first = stored["tick_first"]

    # -- public state ----------------------------------------------------------------------

    @property
    def layout(self) -> Layout:
        """The layout IDs are made in."""
        return self._layout

    @property
    def counter(self) -> int:
        """The next counter value to use (IDs issued since the state began)."""
        return self._counter

    @property
    def last_tick(self) -> int:
        """The tick of the last ID issued (-1 before the first)."""
        return self._tick

    # -- issuing ---------------------------------------------------------------------------

    def next_id(self) -> int:
        """The next ID: distinct from every ID this instance (and its state file) issued."""
        lock = self._lock
        lock.acquire()
        try:
            now_ns = self._now()
            c = self._counter
            if not (now_ns < self._fast_end_ns and c < self._limit):
                self._prepare(now_ns)
                c = self._counter
            self._counter = c + 1
            return self._base | (((c * self._mult) ^ self._seq_salt) & self._mask)
        finally:
            lock.release()

    def next_ids(self, count: int) -> list[int]:
        """``count`` IDs in one call: one list comprehension per lap.

        Raises:
            InvalidArgument: count outside 1..MAX_BATCH.
        """
        _check_int("count", count, 1, MAX_BATCH)
        out: list[int] = []
        with self._lock:
            remaining = count
            while remaining:
                now_ns = self._now()
                if not (now_ns < self._fast_end_ns and self._counter < self._limit):
                    self._prepare(now_ns)
                first = self._counter
                take = min(remaining, self._limit - first)
                # base | ((v ^ salt) & mask) == (base ^ salt) ^ (v & mask): the base has no
                # low S bits and the salt no others; v steps by the multiplier.
                top, mult, mask = self._base ^ self._seq_salt, self._mult, self._mask
                out.extend(
                    [top ^ (v & mask) for v in range(first * mult, (first + take) * mult, mult)]
                )
                self._counter = first + take
                remaining -= take
        return out

    def close(self) -> None:
        """Record the exact counter and last tick (if durable) and release the state file."""
        with self._lock:
            if self._held is None or self._forked:
                return
            if self._counter < self._reserved or self._tick < self._durable_tick:
                # Nothing above these was used: the next run may start right here.
                self._write_state(self._counter, self._tick, self._tick_first)
                self._reserved = self._counter
                self._durable_tick = self._tick
            self._unlock()

    def __enter__(self) -> InstanceGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _prepare(self, now_ns: int) -> None:
        if self._forked:
            raise GeneratorForked(
                f"this Mode B generator (node {self.base_node}) was inherited through os.fork(); "
                "its counter lives in the parent, so make a new generator in the child"
            )
        if self._state_path is not None and self._held is None:
            raise StateFileError(f"{self._state_path}: this generator was closed")
        layout = self._layout
        if now_ns < layout.epoch_ns:  # a clock error, named as the Generator names it
            raise ClockBeforeEpoch(layout.name, layout.epoch_ns, now_ns, layout.epoch.isoformat())
        tick = layout.tick_of_ns(now_ns)
        if tick > self._tick:
            # A tick above every durable mark of a previous process: a fresh window.
            self._tick = tick
            self._tick_first = self._counter
            self._borrow_ahead = 1
        # tick < self._tick: the clock went back (or a restart resumed above it); keep
        # counting in the last tick.
        if now_ns >= self._rotate_at_ns:
            self._rotate_at_ns = now_ns + self._rotation_ns
            if self._counter & self._mask:
                self._counter = ((self._counter >> self._s_bits) + 1) << self._s_bits
            self.timed_rotations += 1
        if self._counter - self._tick_first >= self._span:
            # Every node has been walked in this window: borrow the next tick, never block.
            if self._tick + 1 > layout.max_timestamp:
                raise SequenceExhausted(f"{layout.name}: Mode B reached the layout's expiry")
            self._tick += 1
            self._tick_first = self._counter
            self.borrowed_ticks += 1
            if self._tick > self._durable_tick:
                self._durable_tick_ahead(self._tick + self._borrow_ahead - 1)
                self._borrow_ahead = min(self._borrow_ahead * 2, 1 << 20)
        if self._counter >= self._reserved or self._tick > self._durable_tick:
            self._durable_tick_ahead(self._tick)
        lap = self._counter >> self._s_bits
        node = (self.base_node + lap * self._step) & layout.max_node
        node_field = mix(node, layout.node_bits, self.index, self._node_salt) << self._s_bits
        self._base = (self._tick << self._shift) | node_field
        self._limit = min((lap + 1) << self._s_bits, self._reserved, self._tick_first + self._span)
        self._fast_end_ns = min(layout.tick_start_ns(self._tick + 1), self._rotate_at_ns)

    def _durable_tick_ahead(self, tick: int) -> None:
        """Make marks durable above the counter and above ``tick`` (and the clock's next
        ``persist_ahead_s``) before anything under them is issued."""
        layout = self._layout
        try:
            clock_tick = layout.tick_of_ns(self._now() + self._ahead_ns)
        except TimestampOutOfRange:
            clock_tick = layout.max_timestamp
        mark = min(max(self._durable_tick, tick, clock_tick), layout.max_timestamp)
        reserved = self._reserved
        if self._counter >= reserved:
            reserved = self._counter + self._reserve
        # In the current tick the window began at tick_first; a later tick up to the mark is
        # entered after this write, so at or above the counter now.
        floor = self._tick_first if mark == self._tick else self._counter
        self._write_state(reserved, mark, floor)
        self._reserved = reserved
        self._durable_tick = mark

    def _stored_value(self, stored: dict[str, Any], key: str, given: int | None) -> int:
        value: int = stored[key]
        if given is not None and given != value:
            raise StateFileError(
                f"{self._state_path}: the state file has {key} {value}, but {given} was given; "
                "a state file belongs to one instance (remove it to start a new one)"
            )
        return value

    def _open_state(self) -> dict[str, Any] | None:
        path = self._state_path
        assert path is not None
        try:
            self._held = HeldLock(f"{path}.lock", owner=f"Mode B state file {path}")
            remove_leftovers(path)
        except OSError as exc:
            self._unlock()
            raise StateFileError(f"{path}: cannot lock the state file: {exc}") from exc
        try:
            self._identity = identity_of(path)
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._unlock()
            raise StateFileError(f"{path}: cannot read the state file: {exc}") from exc
        try:
            return self._validated(raw)
        except BaseException:  # refused (or expired): let another generator use the file
            self._unlock()
            raise

    def _validated(self, raw: bytes) -> dict[str, Any]:
        """The state in ``raw``, every field checked against this layout; else StateFileError."""
        path, lay = self._state_path, self._layout

        def fail(what: str) -> StateFileError:
            return StateFileError(
                f"{path}: not a valid Mode B state file: {what}; refusing to guess (restore it, "
                "or remove it to start a new instance)"
            )

        try:
            stored = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError) as exc:
            raise fail(f"not JSON ({exc})") from exc
        if not isinstance(stored, dict):
            raise fail("empty" if stored is None else f"a {type(stored).__name__}, not an object")
        if set(stored) != _STATE_KEYS:
            raise fail(f"keys {sorted(stored)}, expected {sorted(_STATE_KEYS)}")
        version = stored["version"]
        if type(version) is not int or version not in (1, STATE_VERSION):
            raise fail(f"version {version!r}; this chronoid reads versions 1 and {STATE_VERSION}")
        if stored["layout"] != lay.name:
            raise StateFileError(
                f"{path}: the state belongs to layout {stored['layout']!r}, not {lay.name!r}"
            )
        reserved = stored["reserved"]
        limits = {
            "base_node": (0, lay.max_node),
            "salt": (0, (1 << lay.suffix_bits) - 1),
            "index": (0, 63),
            "reserved": (0, _MAX_COUNTER),
            "tick": (-1, lay.max_timestamp),
            "tick_first": (0, reserved if type(reserved) is int else 0),
        }
        for key, (low, high) in limits.items():
            value = stored[key]
            if type(value) is not int or not low <= value <= high:
                raise fail(f"{key} is {value!r}, expected an integer in {low}..{high}")
        if version == 1:
            self._resume_v1(stored)
        return stored

    def _resume_v1(self, stored: dict[str, Any]) -> None:
        """Turn a version 1 state into marks a restart may trust.

        Version 1 wrote ``tick`` at each reservation, and the process then went on into later
        ticks: by the clock (no later than the clock now, unless it was stepped back since)
        and by borrowing (one tick per 2^(N+S) counters, so at most that many up to
        ``reserved``). Resuming one tick above the larger bound, in a fresh window, repeats
        nothing unless the clock went back across the crash.
        """
        lay = self._layout
        borrowed = (stored["reserved"] - stored["tick_first"]) // self._span
        now_tick = lay.tick_of_ns(self._now())
        mark = max(stored["tick"], now_tick) + borrowed + 1
        if mark > lay.max_timestamp:
            raise SequenceExhausted(f"{lay.name}: Mode B reached the layout's expiry")
        stored["tick"] = mark
        stored["tick_first"] = stored["reserved"]

    def _after_fork_in_child(self) -> None:
        self._forked = True
        self._lock = threading.Lock()
        self._fast_end_ns = 0
        # The child must not keep the parent's state file locked after the parent ends.
        self._unlock()

    def _unlock(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    def _write_state(self, reserved: int, tick: int, tick_first: int) -> None:
        if self._state_path is None:
            return
        state = {
            "version": STATE_VERSION,
            "layout": self._layout.name,
            "base_node": self.base_node,
            "salt": self.salt,
            "index": self.index,
            "reserved": reserved,
            "tick": tick,
            "tick_first": tick_first,
        }
        self._check_ownership()
        try:
            self._identity = write_atomically(self._state_path, json.dumps(state).encode())
        except OSError as exc:
            raise StateFileError(f"{self._state_path}: cannot write the state: {exc}") from exc

    def _check_ownership(self) -> None:
        """Before a write: the lock file must still be ours (as the sequencer's FileStore).

        A deleted or replaced lock file lets a second generator lock a new inode and resume
        above our mark while we go on: lock the path again only if the state file is still
        the one we read or wrote (nobody else wrote a mark), else stop at our mark for good.
        """
        held, path = self._held, self._state_path
        assert held is not None and path is not None
        try:
            if held.guards_path():
                return
            if identity_of(path) == self._identity and held.retake():
                return
        except OSError as exc:
            raise StateFileError(f"{path}: cannot check the state file's lock: {exc}") from exc
        self._unlock()
        raise StateFileError(
            f"{path}: its lock file {held.path} was deleted or replaced and another generator "
            "may use the state now: this one issues no more (make a new generator)"
        )

    def __del__(self) -> None:
        if getattr(self, "_held", None) is not None:
            self._unlock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layout={self._layout.name!r}, node={self.base_node}, "
            f"counter={self._counter})"
        )
