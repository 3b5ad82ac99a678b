"""Where time comes from.

Generators read time through a :class:`Clock`, never from ``time`` directly, so every
policy (clock going back, sequence overflow, waiting) is tested with a :class:`ManualClock`
without sleeping. Times are integers: nanoseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]

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


class SystemClock:
    """The operating system's wall clock (``time.time_ns``); it may jump either way."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()

    def sleep_ns(self, duration_ns: int) -> None:
        # time.sleep oversleeps by 50-100 µs on Linux, a tenth of a 1 ms tick: sleep for
        # all but the last 1.5 ms, then spin (yielding the GIL) until the deadline.
        deadline = time.time_ns() + duration_ns
        coarse = duration_ns - _SPIN_NS
        if coarse > 0:
            time.sleep(coarse / 1e9)
        while time.time_ns() < deadline:
            time.sleep(0)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that only moves when told to: set it, advance it, move it backwards.

    ``sleep_ns`` advances the clock by the requested duration, so a generator that waits for
    time to catch up does so instantly in tests. ``sleeps`` records every wait (ns).
    """

    def __init__(self, start_ns: int = 1_767_225_600_000_000_000) -> None:
        # Default start: 2026-01-01T00:00:00Z, inside every named layout's range.
        self._now = start_ns
        self._lock = threading.Lock()
        self.sleeps: list[int] = []

    def now_ns(self) -> int:
        return self._now

    def sleep_ns(self, duration_ns: int) -> None:
        with self._lock:
            self.sleeps.append(duration_ns)
            if duration_ns > 0:
                self._now += duration_ns

    def set_ns(self, now_ns: int) -> None:
        """Put the clock at ``now_ns`` (ns since the Unix epoch), forwards or backwards."""
        self._now = now_ns

    def advance_ns(self, delta_ns: int) -> None:
        """Move the clock by ``delta_ns`` ns; negative moves it backwards."""
        with self._lock:
            self._now += delta_ns

    def advance_ms(self, delta_ms: float) -> None:
        """Move the clock by ``delta_ms`` ms; negative moves it backwards."""
        self.advance_ns(round(delta_ms * 1_000_000))

    def __repr__(self) -> str:
        return f"ManualClock(now_ns={self._now})"
