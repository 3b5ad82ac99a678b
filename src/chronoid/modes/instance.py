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

Durable state: with ``state_file``, the generator reserves counter values ahead of use and
writes the high-water mark atomically (temporary file, fsync, rename, fsync of the directory)
before issuing any of them, like a sequencer. A restart, even after a crash, resumes above
every counter the previous process could have used, so it never repeats an ID in the same
window. A lock on ``<state_file>.lock`` keeps two live processes off one state file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from chronoid.clock import SYSTEM_CLOCK, Clock
from chronoid.errors import (
    ClockBeforeEpoch,
    GeneratorForked,
    InvalidArgument,
    InvalidNode,
    SequenceExhausted,
    StateFileError,
)
from chronoid.generator import MAX_BATCH
from chronoid.layout import Layout
from chronoid.mix import compose, mix, multiplier, weyl_step_constant
from chronoid.variants import VariantName, get_layout

__all__ = ["DEFAULT_RESERVE", "STATE_VERSION", "InstanceGenerator", "mode_b_id", "mode_b_node"]

STATE_VERSION = 1
"""Format version written into state files."""

DEFAULT_RESERVE = 1 << 16
"""Counter values reserved per state-file write (IDs): one fsync per 65,536 IDs at most."""


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
    if not 0 <= base_node <= layout.max_node:
        raise InvalidNode(f"{layout.name}: base node {base_node} outside 0..{layout.max_node}")
    node = mode_b_node(layout, counter, base_node)
    return compose(layout, timestamp, node, counter & layout.max_sequence, salt, index)


_LIVE: weakref.WeakSet[InstanceGenerator] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for generator in list(_LIVE):
        generator._forked = True
        generator._lock = threading.Lock()
        generator._fast_end = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


def _write_atomically(path: str, payload: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be an int in {low}..{high}, got {value!r}")
    return value


class InstanceGenerator:
    """Mode B: a fixed instance node, a monotonic counter and a Weyl-stepped node.

    Args:
        layout: a Layout or variant name (default ``chrono64s``).
        node: the instance's base node, 0..max_node (default: drawn from :mod:`secrets`).
        clock: where time comes from (default: the system clock).
        rotation_s: seconds between timed node steps (default 600 s, > 0).
        state_file: path of the durable state (optional). If it exists, its node, salt,
            index and counter high-water mark are resumed.
        reserve: counter values reserved per state-file write (default 65,536 IDs).
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
        salt: int | None = None,
        index: int | None = None,
        randbits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        self._layout = lay = get_layout(layout)
        if (
            isinstance(rotation_s, bool)
            or not isinstance(rotation_s, int | float)
            or not 0 < rotation_s < 1e12
        ):
            raise InvalidArgument(f"rotation_s must be a number of seconds > 0, got {rotation_s!r}")
        self._reserve = _check_int("reserve", reserve, 1, 1 << 40)
        if node is not None and (
            not isinstance(node, int) or isinstance(node, bool) or not 0 <= node <= lay.max_node
        ):
            raise InvalidNode(
                f"node {node!r} is out of range for {lay.name}: allowed 0..{lay.max_node}"
            )
        if salt is not None:
            _check_int("salt", salt, 0, (1 << lay.suffix_bits) - 1)
        if index is not None:
            _check_int("index", index, 0, 63)
        self._clock = clock
        self._now = time.time_ns if clock is SYSTEM_CLOCK else clock.now_ns
        self._rotation_ns = int(rotation_s * 1e9)
        self._s_bits = lay.sequence_bits
        self._shift = lay.suffix_bits
        self._mask = lay.max_sequence
        self._span = 1 << lay.suffix_bits
        self._state_path = os.fspath(state_file) if state_file is not None else None
        self._lock_fd: int | None = None
        self._forked = False
        self._lock = threading.Lock()

        self._counter = 0
        self._reserved = -1 if self._state_path else (1 << 200)
        self._tick = -1
        self._tick_first = 0
        self._restart_floor: int | None = None
        stored = self._open_state() if self._state_path else None
        if stored is not None:
            self.base_node = self._stored_value(stored, "base_node", node)
            self.salt = self._stored_value(stored, "salt", salt)
            self.index = self._stored_value(stored, "index", index)
            self._counter = self._reserved = int(stored["reserved"])
            self._tick = int(stored["tick"])
            # Any tick the previous process used since its last write started at or above
            # this counter: a conservative floor for the 2^(N+S) span of the next window.
            self._tick_first = self._restart_floor = int(stored["tick_first"])
        else:
            self.base_node = node if node is not None else randbits(lay.node_bits)
            self.salt = salt if salt is not None else randbits(lay.suffix_bits)
            self.index = index if index is not None else randbits(6)
        self._mult = multiplier(self._s_bits, self.index)
        self._seq_salt = self.salt & self._mask
        self._node_salt = self.salt >> self._s_bits
        self._step = weyl_step_constant(lay.node_bits)
        self._rotate_at = self._now() + self._rotation_ns
        self._base = 0
        self._limit = 0
        self._fast_end = 0
        self.timed_rotations = 0
        """Node steps forced by ``rotation_s`` (not by a used-up window)."""
        self.borrowed_ticks = 0
        """Ticks taken ahead of the clock because one window needed more than 2^(N+S) IDs."""
        _LIVE.add(self)

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
            now = self._now()
            c = self._counter
            if not (now < self._fast_end and c < self._limit):
                self._prepare(now)
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
                now = self._now()
                if not (now < self._fast_end and self._counter < self._limit):
                    self._prepare(now)
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
        """Record the exact counter (if durable) and release the state file's lock."""
        with self._lock:
            if self._lock_fd is None or self._forked:
                return
            if self._counter < self._reserved:
                self._write_state(self._counter)
                self._reserved = self._counter
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> InstanceGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _prepare(self, now: int) -> None:
        if self._forked:
            raise GeneratorForked(
                f"this Mode B generator (node {self.base_node}) was inherited through os.fork(); "
                "its counter lives in the parent, so make a new generator in the child"
            )
        if self._state_path is not None and self._lock_fd is None:
            raise StateFileError(f"{self._state_path}: this generator was closed")
        layout = self._layout
        if now < layout.epoch_ns:  # a clock error, named as the Generator names it
            raise ClockBeforeEpoch(layout.name, layout.epoch_ns, now, layout.epoch.isoformat())
        tick = layout.tick_of_ns(now)
        if tick > self._tick:
            self._tick = tick
            floor = self._restart_floor
            self._tick_first = self._counter if floor is None else floor
        self._restart_floor = None
        # tick < self._tick: the clock went back; keep counting in the last tick.
        if now >= self._rotate_at:
            self._rotate_at = now + self._rotation_ns
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
        if self._counter >= self._reserved:
            # Durable before use: the mark is on disk before any counter below it is issued.
            self._write_state(self._counter + self._reserve)
            self._reserved = self._counter + self._reserve
        lap = self._counter >> self._s_bits
        node = (self.base_node + lap * self._step) & layout.max_node
        node_field = mix(node, layout.node_bits, self.index, self._node_salt) << self._s_bits
        self._base = (self._tick << self._shift) | node_field
        self._limit = min((lap + 1) << self._s_bits, self._reserved, self._tick_first + self._span)
        self._fast_end = min(layout.tick_start_ns(self._tick + 1), self._rotate_at)

    def _stored_value(self, stored: dict[str, Any], key: str, given: int | None) -> int:
        value = int(stored[key])
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
            fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateFileError(f"{path}: cannot open the lock file: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StateFileError(
                f"{path}: in use by another live generator (two instances on one state file "
                "would issue the same IDs)"
            ) from exc
        self._lock_fd = fd
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._unlock()
            raise StateFileError(f"{path}: cannot read the state file: {exc}") from exc
        try:
            stored = json.loads(raw)
            if not isinstance(stored, dict) or stored.get("version") != STATE_VERSION:
                raise ValueError(f"not a version {STATE_VERSION} Mode B state")
            for key in ("base_node", "salt", "index", "reserved", "tick", "tick_first"):
                int(stored[key])
        except (ValueError, KeyError, TypeError) as exc:
            self._unlock()
            raise StateFileError(f"{path}: not a valid Mode B state file ({exc})") from exc
        if stored.get("layout") != self._layout.name:
            self._unlock()
            raise StateFileError(
                f"{path}: the state belongs to layout {stored.get('layout')!r}, "
                f"not {self._layout.name!r}"
            )
        return stored

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def _write_state(self, reserved: int) -> None:
        if self._state_path is None:
            return
        state = {
            "version": STATE_VERSION,
            "layout": self._layout.name,
            "base_node": self.base_node,
            "salt": self.salt,
            "index": self.index,
            "reserved": reserved,
            "tick": self._tick,
            "tick_first": self._tick_first,
        }
        try:
            _write_atomically(self._state_path, json.dumps(state).encode())
        except OSError as exc:
            raise StateFileError(f"{self._state_path}: cannot write the state: {exc}") from exc

    def __del__(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            self._unlock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layout={self._layout.name!r}, node={self.base_node}, "
            f"counter={self._counter})"
        )
