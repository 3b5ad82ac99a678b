"""Where time comes from.

Generators read time through a :class:`Clock`, never from ``time`` directly, so every
policy (clock going back, sequence overflow, waiting) is tested with a :class:`ManualClock`
without sleeping. Times are integers: nanoseconds since the Unix epoch (UTC).

Leases (Mode C's node lease, the sequencer's leader lease) are measured on a different clock,
:func:`boottime_ns`: Linux's ``CLOCK_BOOTTIME`` keeps counting while the host or VM is
suspended, where ``CLOCK_MONOTONIC`` stops, so a resumed holder sees its lease run out instead
of trusting it for the time it slept. Where ``CLOCK_BOOTTIME`` does not exist (macOS, Windows,
the BSDs) :data:`BOOT_CLOCK` says ``"CLOCK_MONOTONIC"`` and a suspend longer than the lease's
safety margin is not covered there.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = [
    "BOOT_CLOCK",
    "SYSTEM_CLOCK",
    "Clock",
    "ManualClock",
    "SystemClock",
    "boottime_ns",
    "boottime_s",
    "steady_reader",
]

_HAS_BOOTTIME = hasattr(time, "CLOCK_BOOTTIME")

BOOT_CLOCK = "CLOCK_BOOTTIME" if _HAS_BOOTTIME else "CLOCK_MONOTONIC"
"""The name of the clock :func:`boottime_ns` reads on this platform."""

boottime_ns: Callable[[], int] = (
    functools.partial(time.clock_gettime_ns, time.CLOCK_BOOTTIME)
    if _HAS_BOOTTIME
    else time.monotonic_ns
)
"""ns on a clock that never steps and keeps counting through a suspend (``CLOCK_BOOTTIME``;
``CLOCK_MONOTONIC`` where there is none): the clock every lease deadline is measured on."""

boottime_s: Callable[[], float] = (
    functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME) if _HAS_BOOTTIME else time.monotonic
)
"""The same clock as :func:`boottime_ns`, in seconds (float)."""

_SPIN_NS = 1_500_000


@runtime_checkable
class Clock(Protocol):
    """A source of wall-clock time (ns since the Unix epoch) that can also wait."""

    def now_ns(self) -> int:
        """Current wall-clock time, ns since 1970-01-01T00:00:00Z."""
        ...

    def sleep_ns(self, duration_ns: int) -> None:
        """Wait for ``duration_ns`` ns (a manual clock advances itself instead)."""
        ...


def steady_reader(clock: Clock) -> Callable[[], int] | None:
    """The clock's steady reference (``steady_ns``: never steps), or None if it has none.

    A generator compares how far ``now_ns`` moved with how far this moved to see a step of
    the wall clock (a forward jump) rather than a caller that was idle.
    """
    reader = getattr(clock, "steady_ns", None)
    return reader if callable(reader) else None


class SystemClock:
    """The operating system's wall clock (``time.time_ns``); it may jump either way."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()

    def steady_ns(self) -> int:
        """ns on :func:`boottime_ns` (never steps): the reference a jump is measured against."""
        return boottime_ns()

    def sleep_ns(self, duration_ns: int) -> None:
        # time.sleep oversleeps by 50-100 µs on Linux, a tenth of a 1 ms tick: sleep for
        # all but the last 1.5 ms, then spin (yielding the GIL) until the deadline.
        deadline_ns = time.time_ns() + duration_ns
        coarse = duration_ns - _SPIN_NS
        if coarse > 0:
            time.sleep(coarse / 1e9)
        while time.time_ns() < deadline_ns:
            time.sleep(0)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that only moves when told to: set it, advance it, move it backwards.

    ``sleep_ns`` advances the clock by the requested duration, so a generator that waits for
    time to catch up does so instantly in tests. ``sleeps`` records every wait (ns).

    ``steady_ns`` is the clock's steady reference: :meth:`advance_ns` and sleeps move it with
    the wall clock (time passing), :meth:`set_ns` and :meth:`jump_ns` do not (a step of the
    wall clock, as NTP or an operator makes).
    """

    def __init__(self, start_ns: int = 1_767_225_600_000_000_000) -> None:
        # Default start: 2026-01-01T00:00:00Z, inside every named layout's range.
        self._now_ns = start_ns
        self._steady = 0
        self._lock = threading.Lock()
        self.sleeps: list[int] = []

    def now_ns(self) -> int:
        return self._now_ns

    def steady_ns(self) -> int:
        """ns of time passed (advances and sleeps), not moved by steps of the wall clock."""
        return self._steady

    def sleep_ns(self, duration_ns: int) -> None:
        with self._lock:
            self.sleeps.append(duration_ns)
            if duration_ns > 0:
                self._now_ns += duration_ns
                self._steady += duration_ns

    def set_ns(self, now_ns: int) -> None:
        """Step the clock to ``now_ns`` (ns since the Unix epoch), forwards or backwards."""
        self._now_ns = now_ns

    def jump_ns(self, delta_ns: int) -> None:
        """Step the wall clock by ``delta_ns`` ns without time passing (a clock jump)."""
        with self._lock:
            self._now_ns += delta_ns

    def advance_ns(self, delta_ns: int) -> None:
        """Move the clock by ``delta_ns`` ns; negative moves it backwards."""
        with self._lock:
            self._now_ns += delta_ns
            self._steady += delta_ns

    def advance_ms(self, delta_ms: float) -> None:
        """Move the clock by ``delta_ms`` ms; negative moves it backwards."""
        self.advance_ns(round(delta_ms * 1_000_000))

    def __repr__(self) -> str:
        return f"ManualClock(now_ns={self._now_ns})"
