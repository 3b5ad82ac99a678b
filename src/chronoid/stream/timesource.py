"""Wall-clock time for the stream, real or simulated.

The engine reads the wall clock (``now_ns``) and waits in short steps (``sleep``): asyncio's
timers run on the monotonic clock, which stops during a suspend and ignores NTP steps, so
the engine re-reads the wall clock after every step rather than trusting one long sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["FakeTimeSource", "SystemTimeSource", "TimeSource"]


class TimeSource(Protocol):
    """Wall-clock time (ns since the Unix epoch, UTC) and a way to wait."""

    def now_ns(self) -> int:
        """The wall clock now (ns since 1970-01-01T00:00:00Z)."""
        ...

    async def sleep(self, duration_ns: int) -> None:
        """Wait about ``duration_ns`` ns (a fake source moves its clock instead)."""
        ...


class SystemTimeSource:
    """The operating system's clock, ``time.time_ns``, and ``asyncio.sleep``."""

    def now_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, duration_ns: int) -> None:
        await asyncio.sleep(max(0, duration_ns) / 1e9)


class FakeTimeSource:
    """A clock that moves only when told to, for tests without sleeping.

    ``sleep`` advances the clock by the requested duration plus ``lateness()`` (ns; zero by
    default), as if the process woke up that late, then yields to the event loop. Tests move
    the clock at will with :meth:`jump` (forwards or backwards) and may attach ``on_sleep``
    hooks that run before each sleep returns (to script jumps at a given moment).
    """

    def __init__(self, start_ns: int, lateness: Callable[[], int] | None = None) -> None:
        self._now_ns = start_ns
        self._lateness = lateness or (lambda: 0)
        self.sleeps = 0
        self.on_sleep: list[Callable[[FakeTimeSource], None]] = []

    def now_ns(self) -> int:
        return self._now_ns

    async def sleep(self, duration_ns: int) -> None:
        self.sleeps += 1
        self._now_ns += max(0, duration_ns) + self._lateness()
        for hook in list(self.on_sleep):
            hook(self)
        await asyncio.sleep(0)

    def jump(self, delta_ns: int) -> None:
        """Move the clock by ``delta_ns`` ns (negative: backwards)."""
        self._now_ns += delta_ns
