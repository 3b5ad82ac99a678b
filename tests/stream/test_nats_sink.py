"""The NATS JetStream sink against the real nats-server (started with ``-js``)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC

import pytest

from chronoid.errors import InvalidArgument, SinkError
from chronoid.stream.engine import Engine
from chronoid.stream.event import Frequency
from chronoid.stream.sinks import NatsJetStreamSink, parse_sink
from chronoid.stream.timesource import FakeTimeSource
from tests.support import nats_delete_stream, nats_stored

S = 1_000_000_000
START = 1_767_225_600 * S + 123_456_789  # 2026-01-01T00:00:00.123456789Z

pytestmark = pytest.mark.integration


def _names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:12]
    return f"chronoid.test.{tag}", f"CHRONOID_TEST_{tag.upper()}"


def _run(sink: NatsJetStreamSink, count: int) -> None:
    engine = Engine(
        [Frequency.MINUTE], [sink], UTC, time_source=FakeTimeSource(START), max_events=count
    )
    asyncio.run(engine.run())


def test_events_are_stored_once_each_with_their_id(nats_url: str) -> None:
    subject, stream = _names()
    try:
        sink = NatsJetStreamSink(nats_url, subject, stream)
        _run(sink, 5)
        messages = asyncio.run(nats_stored(nats_url, stream))
        events = [json.loads(m.data) for m in messages]
        assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5]
        first = f"minute-{(START // (60 * S) + 1) * 60 * S}-1"
        assert events[0]["id"] == first
        # The boundary, not the per-process counter, identifies the message.
        assert [m.headers["Nats-Msg-Id"] for m in messages] == [
            f"minute-{e['timestamp']}" for e in events
        ]
        assert sink.duplicates == 0
        # A second producer (or a retry after a lost ack) emitting the same boundaries:
        # JetStream keeps one copy of each.
        again = NatsJetStreamSink(nats_url, subject, stream)
        _run(again, 5)
        assert again.duplicates == 5
        assert len(asyncio.run(nats_stored(nats_url, stream))) == 5
    finally:
        asyncio.run(nats_delete_stream(nats_url, stream))


def test_a_stream_that_does_not_capture_the_subject_is_refused(nats_url: str) -> None:
    subject, stream = _names()
    try:
        _run(NatsJetStreamSink(nats_url, subject, stream), 1)
        with pytest.raises(SinkError, match="does not capture subject"):
            _run(NatsJetStreamSink(nats_url, subject + ".other", stream), 1)
    finally:
        asyncio.run(nats_delete_stream(nats_url, stream))


def test_cli_writes_to_nats_and_reports_an_unreachable_server(nats_url: str) -> None:
    subject, stream = _names()
    sink = f"{nats_url}?subject={subject}&stream={stream}"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "chronoid", "stream", "--sink", sink, "--count", "2"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        # A normal exit after --count drains the connection: no outage to report.
        assert result.stderr == "", result.stderr
        stored = asyncio.run(nats_stored(nats_url, stream))
        assert [json.loads(m.data)["sequence"] for m in stored] == [1, 2]
    finally:
        asyncio.run(nats_delete_stream(nats_url, stream))
    result = subprocess.run(
        [sys.executable, "-m", "chronoid", "stream", "--sink", "nats://127.0.0.1:1?subject=x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("chronoid: error: cannot connect to NATS"), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("nats://127.0.0.1:4222?subject=a.*", "wildcards"),
        ("nats://127.0.0.1:4222?stream=a.b", "stream name"),
        ("nats://127.0.0.1:4222?maxlen=3", "unknown NATS sink option"),
        ("nats://127.0.0.1:4222/path", "expected nats://host:port"),
        ("nats://:4222", "expected nats://host:port"),
    ],
)
def test_bad_nats_sinks_are_refused(spec: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        parse_sink(spec)


def test_an_unreachable_server_is_reported_without_the_password() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chronoid",
            "stream",
            "--sink",
            "nats://user:s3cretpw@127.0.0.1:1?subject=x",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("chronoid: error: cannot connect to NATS"), result.stderr
    assert "s3cretpw" not in result.stderr + result.stdout
