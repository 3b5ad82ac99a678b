"""A bounded, non-blocking queue between the engine and the sinks.

Time does not wait for consumers: :meth:`Buffer.offer` never blocks and returns False when
the buffer is full; every refusal is counted in :attr:`Buffer.dropped`.
"""

from __future__ import annotations

import asyncio

from chronoid.errors import InvalidArgument
from chronoid.stream.event import Event

__all__ = ["Buffer"]


class Buffer:
    """Holds up to ``capacity`` events (count), first in, first out."""

    def __init__(self, capacity: int = 1024) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise InvalidArgument(f"buffer capacity must be an int >= 1, got {capacity!r}")
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=capacity)
        self.dropped = 0
        self.offered = 0

    def offer(self, event: Event) -> bool:
        """Queue ``event`` if there is room; False (and one more drop) if full."""
        self.offered += 1
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def get(self) -> Event:
        """The oldest event, waiting for one if the buffer is empty."""
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        """The oldest event, or None if empty (used when flushing at shutdown)."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def __len__(self) -> int:
        return self._queue.qsize()

    @property
    def capacity(self) -> int:
        """Most events the buffer holds at once."""
        return self._queue.maxsize
