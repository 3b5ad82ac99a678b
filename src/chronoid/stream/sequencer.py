"""Per-frequency event counters (spec 001 ``internal/sequence``): from 1, never reset.

Never resetting is what keeps event IDs unique: a counter that restarted would give a new
event the ID of an old one at the same boundary after a clock jump back.
"""

from __future__ import annotations

import threading

from chronoid.stream.event import Frequency

__all__ = ["EventSequencer"]


class EventSequencer:
    """Independent, thread-safe, strictly increasing counters, one per frequency."""

    def __init__(self) -> None:
        self._counters: dict[Frequency, int] = {}
        self._lock = threading.Lock()

    def next(self, frequency: Frequency) -> int:
        """The next number for ``frequency``: 1 on the first call, then 2, 3, ..."""
        with self._lock:
            value = self._counters.get(frequency, 0) + 1
            self._counters[frequency] = value
            return value
