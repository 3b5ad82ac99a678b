"""The engine end to end: fake time, a stuck consumer, shutdown, Redis Streams, real time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
import redis

from chronoid.errors import InvalidArgument, SinkError
from chronoid.stream import (
    Buffer,
    Engine,
    Event,
    FakeTimeSource,
    Frequency,
    RedisStreamSink,
    build,
)
from chronoid.stream.sinks import parse_sink

S = 1_000_000_000
START = 1_767_225_600_000_000_000 + 250_000_000  # 2026-01-01T00:00:00.25Z


class ListSink:
    """Collects events with the wall-clock time each arrived (ns)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived: list[int] = []
        self.closed = False

    async def write(self, event: Event) -> None:
        self.events.append(event)
        self.arrived.append(time.time_ns())

    async def close(self) -> None:
        self.closed = True


class GateSink(ListSink):
    """Blocks every write until the test opens the gate: a consumer that does not read."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def write(self, event: Event) -> None:
        await self.gate.wait()
        await super().write(event)


def test_engine_with_fake_time_emits_aligned_sequenced_events() -> None:
    sink = ListSink()
    clock = FakeTimeSource(START, lateness=lambda: 3_000_000)
    engine = Engine([Frequency.SECOND], [sink], UTC, time_source=clock, max_events=100)
    stats = asyncio.run(engine.run())
    assert stats.emitted == stats.written == 100 and stats.dropped == 0
    assert [e.sequence for e in sink.events] == list(range(1, 101))
    first = (START // S + 1) * S
    assert [e.timestamp for e in sink.events] == [first + i * S for i in range(100)]
    assert sink.closed


def test_several_frequencies_have_their_own_sequences() -> None:
    sink = ListSink()
    clock = FakeTimeSource(START)
    engine = Engine(
        [Frequency.SECOND, Frequency.MINUTE], [sink], UTC, time_source=clock, max_events=200
    )
    asyncio.run(engine.run())
    for frequency, unit in ((Frequency.SECOND, S), (Frequency.MINUTE, 60 * S)):
        events = [e for e in sink.events if e.frequency is frequency]
        assert events, frequency
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert all(e.timestamp % unit == 0 for e in events)
        assert [e.timestamp for e in events] == sorted({e.timestamp for e in events})


def test_a_stuck_consumer_never_blocks_the_producer() -> None:
    sink = GateSink()
    clock = FakeTimeSource(START)
    engine = Engine([Frequency.SECOND], [sink], UTC, time_source=clock, buffer_size=8)

    async def scenario() -> None:
        run = asyncio.create_task(engine.run())
        while engine.stats.emitted < 50:
            await asyncio.sleep(0)
        engine.stop()
        await asyncio.sleep(0)
        assert engine.buffer.dropped > 0  # the producer kept going: drops, no deadlock
        sink.gate.set()
        await run

    asyncio.run(scenario())
    stats = engine.stats
    assert stats.emitted >= 50
    assert stats.dropped == engine.buffer.dropped
    assert stats.written + stats.dropped == stats.emitted  # nothing lost silently
    assert len(sink.events) == stats.written


def test_stop_flushes_the_buffer() -> None:
    sink = GateSink()
    engine = Engine(
        [Frequency.SECOND], [sink], UTC, time_source=FakeTimeSource(START), max_events=5
    )

    async def scenario() -> None:
        run = asyncio.create_task(engine.run())
        while engine.stats.emitted < 5:
            await asyncio.sleep(0)
        sink.gate.set()
        await run

    asyncio.run(scenario())
    assert [e.sequence for e in sink.events] == [1, 2, 3, 4, 5]


def test_backward_jump_in_the_engine_never_repeats_a_boundary() -> None:
    sink = ListSink()
    clock = FakeTimeSource(START)
    jumped = []

    def jump_back_once(source: FakeTimeSource) -> None:
        if source.sleeps == 10 and not jumped:
            jumped.append(True)
            source.jump(-30 * S)

    clock.on_sleep.append(jump_back_once)
    engine = Engine([Frequency.SECOND], [sink], UTC, time_source=clock, max_events=40)
    asyncio.run(engine.run())
    stamps = [e.timestamp for e in sink.events]
    assert jumped and stamps == sorted(set(stamps)) and len(stamps) == 40


def test_forward_jump_catch_up_in_the_engine() -> None:
    sink = ListSink()
    clock = FakeTimeSource(START)
    clock.on_sleep.append(lambda s: s.jump(10 * S) if s.sleeps == 3 else None)
    engine = Engine(
        [Frequency.SECOND], [sink], UTC, time_source=clock, catch_up=True, max_events=20
    )
    stats = asyncio.run(engine.run())
    stamps = [e.timestamp for e in sink.events]
    assert stamps == [stamps[0] + i * S for i in range(20)]  # nothing missing, in order
    assert stats.late == sum(e.late for e in sink.events) == 10
    assert stats.skipped == {"second": 10}


def test_engine_validates_its_arguments() -> None:
    with pytest.raises(InvalidArgument, match="at least one"):
        Engine([], [], UTC)
    with pytest.raises(InvalidArgument, match="duplicate"):
        Engine([Frequency.DAY, Frequency.DAY], [], UTC)
    with pytest.raises(InvalidArgument, match="capacity"):
        Engine([Frequency.DAY], [], UTC, buffer_size=0)
    with pytest.raises(InvalidArgument, match="unknown sink"):
        parse_sink("kafka://x")


def test_real_time_second_ticks_arrive_within_50_ms() -> None:
    sink = ListSink()
    engine = Engine([Frequency.SECOND], [sink], ZoneInfo("UTC"), max_events=3)
    asyncio.run(engine.run())
    lateness = [arrived - e.timestamp for e, arrived in zip(sink.events, sink.arrived, strict=True)]
    assert len(lateness) == 3
    assert all(0 <= late < 50_000_000 for late in lateness), lateness


@pytest.mark.integration
def test_redis_streams_sink(redis_url: str) -> None:
    key = f"chronoid:test:stream:{uuid.uuid4().hex}"
    sink = RedisStreamSink(redis_url, key, maxlen=1000)
    engine = Engine(
        [Frequency.MINUTE], [sink], UTC, time_source=FakeTimeSource(START), max_events=5
    )
    asyncio.run(engine.run())
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = client.xrange(key)
        assert [fields["sequence"] for _, fields in entries] == ["1", "2", "3", "4", "5"]
        assert entries[0][1]["frequency"] == "minute"
        assert entries[0][1]["id"] == f"minute-{(START // (60 * S) + 1) * 60 * S}-1"
    finally:
        client.delete(key)
        client.close()


def test_cli_prints_json_lines() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chronoid", "stream", "--freq", "second", "--count", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["sequence"] for e in lines] == [1, 2]
    assert lines[1]["timestamp"] - lines[0]["timestamp"] == S


class FailingSink(ListSink):
    """Fails on the third event, as a sink whose server went away."""

    async def write(self, event: Event) -> None:
        if len(self.events) == 2:
            raise SinkError("server went away")
        await super().write(event)


def test_a_failing_sink_ends_the_run_with_its_error() -> None:
    sink = FailingSink()
    engine = Engine([Frequency.SECOND], [sink], UTC, time_source=FakeTimeSource(START))
    # No max_events: before the fix the producers ran (and dropped) forever.
    with pytest.raises(SinkError, match="went away"):
        asyncio.run(asyncio.wait_for(engine.run(), timeout=10))
    assert len(sink.events) == 2 and sink.closed


def test_cli_exits_quietly_when_the_reader_closes_the_pipe() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "chronoid", "stream", "--freq", "second"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    json.loads(process.stdout.readline())
    process.stdout.close()  # as `chronoid stream | head -n 1` does
    assert process.wait(timeout=10) == 0
    assert "Traceback" not in process.stderr.read()


def test_cli_reports_an_unreachable_redis_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chronoid", "stream", "--sink", "redis://127.0.0.1:1/0?stream=x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("chronoid: error: cannot reach Redis at"), result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_stops_cleanly_on_a_signal(signum: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "chronoid", "stream", "--freq", "second", "--tz", "Europe/Berlin"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = json.loads(process.stdout.readline())
    process.send_signal(signum)
    _, err = process.communicate(timeout=20)
    assert process.returncode in (0, 130), err
    assert "Traceback" not in err
    assert first["sequence"] == 1


def test_cli_rejects_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chronoid", "stream", "--tz", "Mars/Olympus"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "unknown time zone 'Mars/Olympus'" in result.stderr


def test_a_buffer_nobody_reads_fills_then_counts_drops() -> None:
    buffer = Buffer(3)
    events = [build(Frequency.SECOND, i * S, i) for i in range(1, 11)]
    assert [buffer.offer(e) for e in events] == [True] * 3 + [False] * 7  # never blocks
    assert (len(buffer), buffer.dropped, buffer.offered, buffer.capacity) == (3, 7, 10, 3)
    assert [buffer.get_nowait(), buffer.get_nowait()] == events[:2]  # first in, first out
    assert buffer.offer(events[3])
    with pytest.raises(InvalidArgument, match="capacity"):
        Buffer(0)


def test_catch_up_is_capped_per_jump() -> None:
    sink = ListSink()
    clock = FakeTimeSource(START)
    clock.on_sleep.append(lambda s: s.jump(10 * S) if s.sleeps == 3 else None)
    engine = Engine(
        [Frequency.SECOND],
        [sink],
        UTC,
        time_source=clock,
        catch_up=True,
        max_catch_up=2,
        max_events=10,
    )
    stats = asyncio.run(engine.run())
    assert stats.late == sum(e.late for e in sink.events) == 2
    assert stats.skipped == {"second": 10}
    with pytest.raises(InvalidArgument, match="max_catch_up"):
        Engine([Frequency.SECOND], [], UTC, catch_up=True, max_catch_up=-1)


def test_time_between_construction_and_run_is_not_a_forward_jump() -> None:
    sink = ListSink()
    clock = FakeTimeSource(START)
    engine = Engine([Frequency.SECOND], [sink], UTC, time_source=clock, catch_up=True, max_events=3)
    clock.jump(30 * S)  # the caller did other things before run()
    stats = asyncio.run(engine.run())
    assert stats.late == 0 and stats.skipped == {"second": 0}
    assert sink.events[0].timestamp == (START + 30 * S) // S * S + S
