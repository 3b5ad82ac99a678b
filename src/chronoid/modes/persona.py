"""Mode A, the autonomous persona (spec 002 §3.1): no coordination, probabilistic uniqueness.

A persona is a random node, a random (N+S)-bit XOR salt and a random multiplier index, all
drawn from :mod:`secrets`. Inside a time window (one tick of the layout) the persona counts
from a random sequence offset and mixes node and sequence with
:func:`chronoid.mix.compose`, so every ID a persona makes in a window is distinct. A new
persona is drawn every ``rotation_s`` seconds (60 s by default), at once when a window's 2^S
sequence values are used up (burst rotation), and when the clock goes back. The generator
never blocks and never raises on load.

What it does *not* promise (errata 3, 4 and 7 in ``docs/errata.md``): independent
personas share the window's 2^(N+S) suffix values like birthdays share a year. The risk of a
duplicate is a birthday bound on the number of *IDs* the whole fleet makes per window, not on
the number of nodes, and it accumulates over windows: :mod:`chronoid.capacity` states it per
window, day and year. A persona re-rolled inside a long window (60-second rotation in a
month-long ``chrono64mo`` window) can even collide with its own earlier IDs. Use Mode B or C
when a duplicate is not acceptable.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from chronoid.clock import SYSTEM_CLOCK, Clock
from chronoid.errors import ClockBeforeEpoch, InvalidArgument, UnsafeForModeA
from chronoid.fork import reset_after_fork
from chronoid.generator import MAX_BATCH
from chronoid.layout import Layout
from chronoid.mix import mix, multiplier
from chronoid.variants import VariantName, get_layout

__all__ = [
    "MIN_MODE_A_SUFFIX_BITS",
    "UNSAFE_MODE_A_UNITS",
    "PersonaGenerator",
    "check_mode_a_layout",
]

UNSAFE_MODE_A_UNITS = frozenset({"ms", "us"})
"""Time units Mode A refuses (spec 002 §12.2): windows so short the suffix is tiny."""

MIN_MODE_A_SUFFIX_BITS = 12
"""Fewest node+sequence bits Mode A accepts without ``force``: this refuses ``chrono64us``
and the 32-bit sort-key variants (``h``, ``tm``, ``m``, ``bs``), spec 002 §5.4."""

_NS_PER_DAY = 86_400 * 1_000_000_000


def check_mode_a_layout(layout: Layout | str, *, force: bool = False) -> Layout:
    """The layout, if it is safe enough for Mode A; else :class:`UnsafeForModeA`.

    Refused: millisecond and microsecond units, and any layout with fewer than
    :data:`MIN_MODE_A_SUFFIX_BITS` node+sequence bits. ``force=True`` accepts them anyway
    (for simulations, or a user who has done the arithmetic).

    Raises:
        UnsafeForModeA: the layout is refused and ``force`` is false; the message says why.
        UnknownVariant: an unknown variant name.
    """
    resolved = get_layout(layout)
    if force:
        return resolved
    reasons = []
    if resolved.unit_code in UNSAFE_MODE_A_UNITS:
        reasons.append(f"its window is one {resolved.unit.description}")
    if resolved.suffix_bits < MIN_MODE_A_SUFFIX_BITS:
        reasons.append(
            f"its node+sequence suffix has {resolved.suffix_bits} bits "
            f"(Mode A needs at least {MIN_MODE_A_SUFFIX_BITS})"
        )
    if reasons:
        space = 1 << resolved.suffix_bits
        per_day = _NS_PER_DAY / resolved.mean_unit_ns / space
        raise UnsafeForModeA(
            f"{resolved.name} ({resolved.bits_label()}) is unsafe for Mode A: "
            f"{' and '.join(reasons)}, so uncoordinated personas share only {space:,} suffix "
            f"values per window; just two IDs per window across the fleet already expect "
            f"{per_day:.3g} duplicates a day. Use Mode B (one instance) or Mode C (leased "
            "nodes), or pass force=True to accept the risk"
        )
    return resolved


class PersonaGenerator:
    """Mode A: IDs from a random, rotating persona; never blocks, never coordinates.

    Args:
        layout: a Layout or variant name (default ``chrono64s``).
        clock: where time comes from (default: the system clock).
        rotation_s: seconds between timed persona rotations (default 60 s, > 0).
        force: accept a layout :func:`check_mode_a_layout` refuses.
        randbits: the entropy source, ``randbits(k) -> int`` with k random bits. The default
            is :func:`secrets.randbits`; pass ``random.Random(seed).getrandbits`` only for
            reproducible simulations. A child made by ``os.fork()`` re-rolls its persona from
            :mod:`secrets` whatever this is, so it never shares the parent's.

    Raises:
        UnsafeForModeA: see :func:`check_mode_a_layout`. InvalidArgument: a bad rotation.
    """

    def __init__(
        self,
        layout: Layout | VariantName = "chrono64s",
        *,
        clock: Clock = SYSTEM_CLOCK,
        rotation_s: float = 60.0,
        force: bool = False,
        randbits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        if not isinstance(force, bool):
            raise InvalidArgument(f"force must be a bool, got {force!r}")
        self._layout = check_mode_a_layout(layout, force=force)
        if (
            isinstance(rotation_s, bool)
            or not isinstance(rotation_s, int | float)
            or not 0 < rotation_s < 1e12
        ):
            raise InvalidArgument(f"rotation_s must be a number of seconds > 0, got {rotation_s!r}")
        if not callable(randbits):
            raise InvalidArgument(f"randbits must be callable as randbits(k), got {randbits!r}")
        layout_ = self._layout
        self._clock = clock
        self._now = time.time_ns if clock is SYSTEM_CLOCK else clock.now_ns
        self._randbits = randbits
        self._rotation_ns = int(rotation_s * 1e9)
        self._s_bits = layout_.sequence_bits
        self._n_bits = layout_.node_bits
        self._shift = layout_.suffix_bits
        self._mask = layout_.max_sequence
        self._ids_per_tick = layout_.ids_per_tick
        self._lock = threading.Lock()
        # Persona (set by _reroll) and window state.
        self.node = 0
        self.salt = 0
        self.index = 0
        self._node_field = 0
        self._mult = 1
        self._seq_salt = 0
        self._rotate_at_ns = 0
        self._tick = -1
        self._base = 0
        self._offset = 0
        self._count = 0
        self._start_ns = 1
        self._fast_end_ns = 0
        self.rotations = 0
        """How many personas this generator has used (the first one counts)."""
        self.burst_rotations = 0
        """How many of those rotations a used-up window forced."""
        self._reroll(self._now())
        reset_after_fork(self)

    @property
    def layout(self) -> Layout:
        """The layout IDs are made in."""
        return self._layout

    # -- issuing ---------------------------------------------------------------------------

    def next_id(self) -> int:
        """The next ID; distinct from every other ID of this persona in this window."""
        lock = self._lock
        lock.acquire()
        try:
            now_ns = self._now()
            if not (
                self._start_ns <= now_ns < self._fast_end_ns and self._count < self._ids_per_tick
            ):
                self._prepare(now_ns)
            c = self._count
            self._count = c + 1
            return self._base | ((((self._offset + c) * self._mult) ^ self._seq_salt) & self._mask)
        finally:
            lock.release()

    def next_ids(self, count: int) -> list[int]:
        """``count`` IDs in one call (one list comprehension per window and persona).

        Raises:
            InvalidArgument: count outside 1..MAX_BATCH.
        """
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_BATCH:
            raise InvalidArgument(f"count must be an int in 1..{MAX_BATCH}, got {count!r}")
        out: list[int] = []
        with self._lock:
            remaining = count
            while remaining:
                now_ns = self._now()
                if not (
                    self._start_ns <= now_ns < self._fast_end_ns
                    and self._count < self._ids_per_tick
                ):
                    self._prepare(now_ns)
                first = self._count
                take = min(remaining, self._ids_per_tick - first)
                # base | ((v ^ salt) & mask) == (base ^ salt) ^ (v & mask): the base has no
                # low S bits and the salt no others; v steps by the multiplier.
                top, mult, mask = self._base ^ self._seq_salt, self._mult, self._mask
                start = (self._offset + first) * mult
                out.extend([top ^ (v & mask) for v in range(start, start + take * mult, mult)])
                self._count = first + take
                remaining -= take
        return out

    # -- internals -------------------------------------------------------------------------

    def _prepare(self, now_ns: int) -> None:
        """Make room for at least one more ID at ``now``: new window and/or new persona."""
        layout = self._layout
        if now_ns < layout.epoch_ns:  # a clock error, named as the Generator names it
            raise ClockBeforeEpoch(layout.name, layout.epoch_ns, now_ns, layout.epoch.isoformat())
        tick = layout.tick_of_ns(now_ns)
        if tick < self._tick:
            # Clock went back (spec 002 §2.4): a fresh persona in the earlier window.
            self._reroll(now_ns)
            self._enter(tick)
        elif now_ns >= self._rotate_at_ns:
            self._reroll(now_ns)
            self._enter(tick)
        elif tick > self._tick:
            self._enter(tick)
        elif self._count >= self._ids_per_tick:
            self.burst_rotations += 1
            self._reroll(now_ns)
            self._enter(tick)
        else:
            # Same window and persona; only the fast-path bounds were closed (e.g. after fork).
            self._set_bounds(tick)

    def _reroll(self, now_ns: int) -> None:
        rand = self._randbits
        s_bits = self._s_bits
        self.node = rand(self._n_bits) if self._n_bits else 0
        self.salt = rand(self._shift) if self._shift else 0
        self.index = rand(6)
        self._node_field = mix(self.node, self._n_bits, self.index, self.salt >> s_bits) << s_bits
        self._mult = multiplier(s_bits, self.index)
        self._seq_salt = self.salt & self._mask
        self._rotate_at_ns = now_ns + self._rotation_ns
        self.rotations += 1

    def _enter(self, tick: int) -> None:
        self._tick = tick
        self._base = (tick << self._shift) | self._node_field
        self._offset = self._randbits(self._s_bits) if self._s_bits else 0
        self._count = 0
        self._set_bounds(tick)

    def _set_bounds(self, tick: int) -> None:
        self._start_ns = self._layout.tick_start_ns(tick)
        self._fast_end_ns = min(self._layout.tick_start_ns(tick + 1), self._rotate_at_ns)

    def _after_fork_in_child(self) -> None:
        # The child must not keep the parent's persona: both would draw the same suffixes.
        self._lock = threading.Lock()
        self._randbits = secrets.randbits
        self._reroll(self._now())
        self._tick = -1
        self._start_ns, self._fast_end_ns = 1, 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layout={self._layout.name!r}, "
            f"rotation_s={self._rotation_ns / 1e9:g})"
        )
