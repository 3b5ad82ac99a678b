"""When to wake and which boundaries are due: the scheduler's logic, free of I/O.

The loop around it (in :mod:`chronoid.stream.engine`) only asks :meth:`Scheduler.plan` what
to wait for and, after waking, :meth:`Scheduler.due` what to emit. Both take "now" as an
argument, so every clock behaviour is tested by passing numbers:

* **No drift.** The next boundary is recomputed from "now" every time, never by adding a
  period to the last wake-up; a late wake-up does not push later boundaries back.
* **Boundary stamps.** A tick carries the boundary it stands for, not the wake-up time.
* **Clock going back** (NTP step, VM migration; the spec's open TODO): no boundary at or
  before one already emitted is ever emitted again; the next one due is the first after the
  last emitted, which the wall clock reaches again as it moves on. Nothing is scheduled past
  that, so no far-future boundary.
* **Clock going forward** (suspend, VM pause, a long stall): the boundaries skipped over are
  counted in :attr:`Scheduler.skipped`; with ``catch_up`` the most recent ones (up to
  ``max_catch_up``) are emitted as well, flagged late, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from chronoid.errors import InvalidArgument
from chronoid.stream.boundaries import boundaries_between, next_boundary
from chronoid.stream.event import Frequency

__all__ = ["Scheduler", "Tick"]


@dataclass(frozen=True, slots=True)
class Tick:
    """A boundary that is due: ``boundary`` in ns since the Unix epoch."""

    frequency: Frequency
    boundary: int
    late: bool = False


class Scheduler:
    """Boundary bookkeeping for one frequency.

    Args:
        frequency: the boundary size.
        zone: the calendar for day boundaries.
        start_ns: no boundary at or before this instant is emitted (usually "now" at start).
        catch_up: emit skipped boundaries (flagged late) after a forward jump.
        max_catch_up: at most this many late events per jump; older ones are only counted.
    """

    def __init__(
        self,
        frequency: Frequency,
        zone: tzinfo,
        start_ns: int,
        *,
        catch_up: bool = False,
        max_catch_up: int = 1000,
    ) -> None:
        if max_catch_up < 0:
            raise InvalidArgument(f"max_catch_up must be >= 0, got {max_catch_up}")
        self.frequency = frequency
        self.zone = zone
        self.catch_up = catch_up
        self.max_catch_up = max_catch_up
        self.last_emitted: int | None = None
        self.skipped = 0
        """Boundaries passed over without a regular event (late ones included)."""
        self._floor = start_ns

    def begin(self, now_ns: int) -> None:
        """Start (again) from ``now_ns``: boundaries up to it are neither due nor skipped.

        Only moves the start forward and only before the first emission, so it can never
        allow a boundary at or before one already emitted.
        """
        if self.last_emitted is None:
            self._floor = max(self._floor, now_ns)

    def plan(self, now_ns: int) -> int:
        """The boundary to wait for, given the wall clock reads ``now_ns``.

        Never at or before the last boundary emitted, even when the clock went back.
        """
        return next_boundary(max(now_ns, self._floor), self.frequency, self.zone)

    def due(self, now_ns: int) -> list[Tick]:
        """The ticks to emit now, oldest first (empty when woken early or after a jump back)."""
        keep = 1 + (self.max_catch_up if self.catch_up else 0)
        count, latest = boundaries_between(self._floor, now_ns, self.frequency, self.zone, keep)
        if count == 0:
            return []
        self.skipped += count - 1
        self._floor = self.last_emitted = latest[-1]
        ticks = [Tick(self.frequency, b, late=True) for b in latest[:-1]] if self.catch_up else []
        ticks.append(Tick(self.frequency, latest[-1]))
        return ticks
