"""The server sinks keep their word (issue 15.6, 15.7): each boundary stored once, whoever
sends it and however often, and a server restart ridden through with the events kept.

Servers that must be killed and restarted are our own, on spare ports; the de-duplication
across producers uses the shared nats-server with a stream of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

import nats
import pytest
import redis

from chronoid.errors import InvalidArgument
from chronoid.stream.engine import Engine
from chronoid.stream.event import Event, Frequency, build
from chronoid.stream.sinks import (
    MAX_OUTAGE_LIMIT_S,
    NatsJetStreamSink,
    RedisStreamSink,
    parse_sink,
)
from chronoid.stream.timesource import FakeTimeSource
from tests.support import (
    OwnServer,
    free_port,
    nats_delete_stream,
    nats_ready,
    nats_stored,
    redis_ready,
    wait_until,
)

S = 1_000_000_000
START = 1_767_225_600 * S + 123_456_789  # 2026-01-01T00:00:00.123456789Z
MINUTE = 60 * S

pytestmark = pytest.mark.integration


def _run(sink: Any, start_ns: int, count: int, freq: Frequency = Frequency.MINUTE) -> Engine:
    engine = Engine([freq], [sink], UTC, time_source=FakeTimeSource(start_ns), max_events=count)
    asyncio.run(engine.run())
    return engine


def _boundary(n: int) -> int:
    """The n-th minute boundary after START (n from 1)."""
    return (START // MINUTE + n) * MINUTE


def test_two_producers_and_a_restart_store_each_boundary_once_in_jetstream(
    nats_url: str,
) -> None:
    tag = uuid.uuid4().hex[:12]
    subject, stream = f"chronoid.test.{tag}", f"CHRONOID_TEST_{tag.upper()}"
    try:
        first = NatsJetStreamSink(nats_url, subject, stream)
        _run(first, START, 5)  # boundaries 1..5, sequences 1..5
        # A second producer started 2 minutes later: boundaries 3..7 with sequences 1..5.
        second = NatsJetStreamSink(nats_url, subject, stream)
        _run(second, START + 2 * MINUTE, 5)
        # The first producer restarted (its counter back at 1): boundaries 2..4.
        restarted = NatsJetStreamSink(nats_url, subject, stream)
        _run(restarted, START + MINUTE, 3)
        events = [json.loads(m.data) for m in asyncio.run(nats_stored(nats_url, stream))]
        assert [e["timestamp"] for e in events] == [_boundary(n) for n in range(1, 8)]
        assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5, 4, 5]
        assert (first.duplicates, second.duplicates, restarted.duplicates) == (0, 3, 3)
    finally:
        asyncio.run(nats_delete_stream(nats_url, stream))


class _KillOnce:
    """Passes events to ``sink``; before the ``at``-th it kills ``server`` and starts it again
    ``down_s`` later from another thread, as an operator restarting it would."""

    def __init__(self, sink: Any, server: OwnServer, at: int, down_s: float = 1.5) -> None:
        self.sink, self.server, self.at, self.down_s = sink, server, at, down_s
        self.seen = 0
        self.restarter: threading.Timer | None = None

    async def write(self, event: Event) -> None:
        self.seen += 1
        if self.seen == self.at:
            self.server.stop()
            self.restarter = threading.Timer(self.down_s, self.server.start)
            self.restarter.start()
        await self.sink.write(event)

    async def close(self) -> None:
        await self.sink.close()


def test_redis_sink_rides_through_a_restart_and_stores_each_boundary_once(
    tmp_path: Path,
) -> None:
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed (scripts/install.sh installs it)"
    port = free_port()
    # Append-only with fsync per write: what was stored survives the kill.
    server = OwnServer(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
         "--appendfsync", "always", "--dir", str(tmp_path)],
        redis_ready(port),
        tmp_path / "redis.log",
    )  # fmt: skip
    server.start()
    url, key = f"redis://127.0.0.1:{port}/0", "chronoid:test:events"
    try:
        sink = RedisStreamSink(url, key, max_outage_s=30)
        killer = _KillOnce(sink, server, at=4)
        engine = _run(killer, START, 8)
        assert killer.restarter is not None
        killer.restarter.join()
        assert sink.outages == 1 and engine.stats.written == 8 and engine.stats.dropped == 0
        # A second producer over boundaries 5..10 adds only 9 and 10.
        again = RedisStreamSink(url, key)
        _run(again, START + 4 * MINUTE, 6)
        assert again.duplicates == 4
        client = redis.Redis(port=port, decode_responses=True)
        entries = [fields for _, fields in client.xrange(key)]
        client.close()
        assert [int(e["timestamp"]) for e in entries] == [_boundary(n) for n in range(1, 11)]
    finally:
        server.stop()


def test_nats_sink_rides_through_a_server_restart(tmp_path: Path) -> None:
    exe = shutil.which("nats-server")
    assert exe, "nats-server is not installed (scripts/install.sh installs it)"
    port = free_port()
    server = OwnServer(
        [exe, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
        nats_ready(port),
        tmp_path / "nats.log",
    )
    server.start()
    url = f"nats://127.0.0.1:{port}"
    try:
        sink = NatsJetStreamSink(
            url, "chronoid.test.restart", "RESTART", timeout=1.0, max_outage_s=30
        )
        killer = _KillOnce(sink, server, at=4)
        engine = _run(killer, START, 8)
        assert killer.restarter is not None
        killer.restarter.join()
        assert sink.outages == 1 and engine.stats.written == 8
        events = [json.loads(m.data) for m in asyncio.run(nats_stored(url, "RESTART"))]
        assert [e["timestamp"] for e in events] == [_boundary(n) for n in range(1, 9)]
    finally:
        server.stop()


def test_cli_stream_to_redis_survives_a_redis_restart(tmp_path: Path) -> None:
    # At a95c2b7 a Redis restart ended `chronoid stream` with exit 1.
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed (scripts/install.sh installs it)"
    port = free_port()
    server = OwnServer(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
         "--appendfsync", "always", "--dir", str(tmp_path)],
        redis_ready(port),
        tmp_path / "redis.log",
    )  # fmt: skip
    server.start()
    key = "chronoid:test:cli"
    sink = f"redis://127.0.0.1:{port}/0?stream={key}&max_outage_s=20"
    process = subprocess.Popen(
        [sys.executable, "-m", "chronoid", "stream", "--freq", "second", "--count", "4",
         "--sink", sink],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port, decode_responses=True)
        wait_until(lambda: client.xlen(key) >= 1, "a first event", timeout_s=15)
        client.close()
        server.stop()
        time.sleep(1.5)  # at least one boundary passes while Redis is down
        server.start()
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "reconnecting" in err and "Traceback" not in err
        client = redis.Redis(port=port, decode_responses=True)
        stamps = [int(fields["timestamp"]) for _, fields in client.xrange(key)]
        client.close()
        assert len(stamps) == 4 and [b - a for a, b in itertools.pairwise(stamps)] == [S] * 3
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        server.stop()


def test_the_dedup_window_outlasts_the_longest_outage_ridden_through(
    redis_url: str, nats_url: str
) -> None:
    """An event can wait in the buffer for up to ``max_outage_s`` and only then reach the
    server, where another producer stored the same boundary when it was due. On main at
    d4e129d the Redis marker expired after 120 s and JetStream's window stayed 2 minutes
    whatever ``max_outage_s`` was, so with ``max_outage_s=600`` the late copy was stored again
    (the docs said retrying is safe because of the deduplication)."""
    tag = uuid.uuid4().hex[:12]
    client = redis.Redis.from_url(redis_url)
    for max_outage_s in (600, MAX_OUTAGE_LIMIT_S):  # the limit still makes a valid EX
        key = f"chronoid:test:{tag}:{max_outage_s}"
        engine = _run(RedisStreamSink(redis_url, key, max_outage_s=max_outage_s), START, 1)
        assert engine.stats.written == 1
        try:
            ttl_s = client.ttl(f"{key}:boundary:minute-{_boundary(1)}")
            assert ttl_s >= max_outage_s, ttl_s
        finally:
            client.delete(key, f"{key}:boundary:minute-{_boundary(1)}")
    client.close()
    for beyond in (MAX_OUTAGE_LIMIT_S + 1, 1e308, float("nan")):
        with pytest.raises(InvalidArgument, match="max_outage_s must be"):
            parse_sink(f"redis://127.0.0.1:1/0?max_outage_s={beyond}")

    subject, stream = f"chronoid.test.{tag}", f"CHRONOID_TEST_{tag.upper()}"
    _run(NatsJetStreamSink(nats_url, subject, stream, max_outage_s=600), START, 1)

    async def window_s() -> float:
        connection = await nats.connect(nats_url)
        try:
            info = await connection.jetstream().stream_info(stream)
            await connection.jetstream().delete_stream(stream)
            return float(info.config.duplicate_window or 0)
        finally:
            await connection.close()

    assert asyncio.run(window_s()) >= 600


def test_two_producers_racing_on_the_same_boundaries_store_each_once(redis_url: str) -> None:
    """Two sinks (two connections) send the same 20 boundaries at the same instant, many
    writes in flight at once: the check-and-add is one Lua script, so nothing slips between."""
    key = f"chronoid:test:{uuid.uuid4().hex[:12]}:events"
    events = [build(Frequency.MINUTE, _boundary(n), n, instance_id="x") for n in range(1, 21)]

    async def race() -> tuple[int, int]:
        first, second = RedisStreamSink(redis_url, key), RedisStreamSink(redis_url, key)
        try:
            writes = [sink.write(e) for e in events for sink in (first, second, first, second)]
            await asyncio.gather(*writes)
            return first.duplicates, second.duplicates
        finally:
            await first.close()
            await second.close()

    duplicates = asyncio.run(race())
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        stored = [int(fields["timestamp"]) for _, fields in client.xrange(key)]
        client.delete(key, *(f"{key}:boundary:{e.boundary_id}" for e in events))
    finally:
        client.close()
    assert sorted(stored) == [_boundary(n) for n in range(1, 21)]
    assert sum(duplicates) == 60
