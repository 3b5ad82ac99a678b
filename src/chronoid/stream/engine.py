"""The engine: one scheduler task per frequency, a buffer, and a consumer feeding the sinks.

Fixes the spec's engine bug: every event built is offered to the buffer. Producers never
wait for the consumer (a full buffer drops and counts); the consumer writes to the sinks in
order. :meth:`Engine.stop` (wired to SIGINT/SIGTERM by the CLI) ends the schedulers, then the
consumer flushes what the buffer still holds before the sinks close.

The engine's own parts live here too: the per-frequency counters (spec 001
``internal/sequence``) and the buffer (``internal/buffer``). The scheduler, which decides
what is due without any I/O, stays apart in :mod:`chronoid.stream.scheduler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

from chronoid.errors import InvalidArgument
from chronoid.stream.event import Event, Frequency, build
from chronoid.stream.scheduler import Scheduler
from chronoid.stream.sinks import Sink
from chronoid.stream.timesource import SystemTimeSource, TimeSource

__all__ = ["MAX_STEP_NS", "Buffer", "Engine", "EngineStats", "EventSequencer"]

MAX_STEP_NS = 1_000_000_000
"""Longest single wait (ns): the wall clock is re-read at least this often."""


class EventSequencer:
    """Independent, thread-safe, strictly increasing counters, one per frequency.

    Never resetting is what keeps event IDs unique: a counter that restarted would give a
    new event the ID of an old one at the same boundary after a clock jump back.
    """

    def __init__(self) -> None:
        self._counters: dict[Frequency, int] = {}
        self._lock = threading.Lock()

    def next(self, frequency: Frequency) -> int:
        """The next number for ``frequency``: 1 on the first call, then 2, 3, ..."""
        with self._lock:
            value = self._counters.get(frequency, 0) + 1
            self._counters[frequency] = value
            return value


class Buffer:
    """A bounded, non-blocking queue of up to ``capacity`` events (count), first in, first out.

    Time does not wait for consumers: :meth:`offer` never blocks and returns False when the
    buffer is full; every refusal is counted in :attr:`dropped`.
    """

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


@dataclass
class EngineStats:
    """Counters for monitoring (events, not bytes)."""

    emitted: int = 0
    late: int = 0
    dropped: int = 0
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


class Engine:
    """Emits events at aligned boundaries for several frequencies at once.

    Args:
        frequencies: one or more frequencies (no duplicates).
        sinks: where events go, in order.
        zone: calendar for day boundaries.
        time_source: wall clock and waiting (default: the system's).
        buffer_size: events held between producers and sinks.
        catch_up: after a forward jump, also emit skipped boundaries, flagged late.
        max_catch_up: at most this many late events per frequency and jump (count); older
            skipped boundaries are only counted.
        max_events: stop by itself after emitting this many events (None: run until stopped).
        producer_version, instance_id: copied into every event.
    """

    def __init__(
        self,
        frequencies: Sequence[Frequency],
        sinks: Sequence[Sink],
        zone: tzinfo,
        *,
        time_source: TimeSource | None = None,
        buffer_size: int = 1024,
        catch_up: bool = False,
        max_catch_up: int = 1000,
        max_events: int | None = None,
        producer_version: str = "",
        instance_id: str = "",
    ) -> None:
        if not frequencies:
            raise InvalidArgument("at least one frequency is needed")
        if len(set(frequencies)) != len(frequencies):
            raise InvalidArgument(f"duplicate frequencies: {[f.label for f in frequencies]}")
        if max_events is not None and max_events < 1:
            raise InvalidArgument(f"max_events must be >= 1, got {max_events}")
        self._time = time_source or SystemTimeSource()
        self._sinks = list(sinks)
        self.buffer = Buffer(buffer_size)
        self.sequencer = EventSequencer()
        # Provisional start; run() moves it to the moment the loop starts, so time spent
        # between construction and run() is not mistaken for a forward jump.
        start_ns = self._time.now_ns()
        self.schedulers = [
            Scheduler(f, zone, start_ns, catch_up=catch_up, max_catch_up=max_catch_up)
            for f in frequencies
        ]
        self._max_events = max_events
        self._producer_version = producer_version
        self._instance_id = instance_id
        self._stopping = asyncio.Event()
        self._writing: asyncio.Future[None] | None = None
        self.stats = EngineStats()

    def stop(self) -> None:
        """Ask the engine to finish: schedulers end, the buffer is flushed to the sinks."""
        self._stopping.set()

    async def run(self) -> EngineStats:
        """Run until :meth:`stop` or ``max_events``; returns the final counters.

        Raises:
            SinkError, OSError: a sink failed; the run ends at once (what the buffer holds
                is not delivered) and every sink is closed.
        """
        start_ns = self._time.now_ns()
        for scheduler in self.schedulers:
            scheduler.begin(start_ns)
        consumer = asyncio.create_task(self._consume())
        producers = [asyncio.create_task(self._produce(s)) for s in self.schedulers]
        stopper = asyncio.create_task(self._stopping.wait())
        tasks = [stopper, consumer, *producers]
        try:
            # The consumer is watched too: a sink that fails (closed pipe, Redis down) ends
            # the run with its error instead of leaving producers to fill and drop forever.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stopping.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.stats.dropped = self.buffer.dropped
            self.stats.skipped = {s.frequency.label: s.skipped for s in self.schedulers}
        failure = next(
            (t.exception() for t in (consumer, *producers) if not t.cancelled() and t.exception()),
            None,
        )
        try:
            if failure is not None:
                raise failure
            if self._writing is not None:
                await self._writing
            await self._flush()
        except BaseException:
            for sink in self._sinks:
                with contextlib.suppress(Exception):
                    await sink.close()
            raise
        for sink in self._sinks:
            await sink.close()
        return self.stats

    async def _produce(self, scheduler: Scheduler) -> None:
        time_source = self._time
        while not self._stopping.is_set():
            now_ns = time_source.now_ns()
            target_ns = scheduler.plan(now_ns)
            while now_ns < target_ns:
                await time_source.sleep(min(target_ns - now_ns, MAX_STEP_NS))
                now_ns = time_source.now_ns()
            for tick in scheduler.due(now_ns):
                sequence = self.sequencer.next(tick.frequency)
                event = build(
                    tick.frequency,
                    tick.boundary,
                    sequence,
                    self._producer_version,
                    self._instance_id,
                    late=tick.late,
                )
                self.stats.emitted += 1
                self.stats.late += tick.late
                self.buffer.offer(event)
                if self._max_events is not None and self.stats.emitted >= self._max_events:
                    return

    async def _write(self, event: Event) -> None:
        for sink in self._sinks:
            await sink.write(event)
        self.stats.written += 1

    async def _consume(self) -> None:
        while True:
            event = await self.buffer.get()
            # Shielded: stopping cancels the consumer only while it waits for an event, never
            # halfway through delivering one.
            self._writing = asyncio.ensure_future(self._write(event))
            await asyncio.shield(self._writing)

    async def _flush(self) -> None:
        while (event := self.buffer.get_nowait()) is not None:
            await self._write(event)
