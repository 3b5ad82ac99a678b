"""Where events go: JSON lines on stdout, or a Redis Stream.

A sink is anything with ``async write(event)`` and ``async close()``. The Redis sink uses
``XADD`` (with an optional approximate ``MAXLEN`` cap) through redis-py's asyncio client, so
any Redis Streams consumer group can read the events.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, urlparse

from chronoid.errors import InvalidArgument, SinkError
from chronoid.stream.event import Event

__all__ = ["RedisStreamSink", "Sink", "StdoutSink", "parse_sink"]


class Sink(Protocol):
    """Receives every event the engine emits, in order."""

    async def write(self, event: Event) -> None:
        """Deliver one event."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...


class StdoutSink:
    """One JSON object per line on a text stream (stdout by default), flushed per event."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout

    async def write(self, event: Event) -> None:
        self._stream.write(json.dumps(event.to_dict()) + "\n")
        self._stream.flush()

    async def close(self) -> None:
        self._stream.flush()


class RedisStreamSink:
    """``XADD`` each event to a Redis Stream (fields as strings).

    Args:
        url: ``redis://host:port/db``.
        stream: the stream key.
        maxlen: cap the stream at about this many entries (``MAXLEN ~``); None keeps all.
    """

    def __init__(self, url: str, stream: str = "chronoid:events", maxlen: int | None = None):
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InvalidArgument(
                "the Redis sink needs redis-py: pip install 'chronoid[redis]'"
            ) from exc
        if maxlen is not None and maxlen < 1:
            raise InvalidArgument(f"maxlen must be >= 1, got {maxlen}")
        if not stream:
            raise InvalidArgument("the Redis stream key must not be empty")
        try:
            self._client: Any = aioredis.Redis.from_url(url)
        except ValueError as exc:
            raise InvalidArgument(
                f"bad Redis URL {url!r} ({exc}); expected redis://host:port/db"
            ) from None
        self.stream = stream
        self._maxlen = maxlen
        self._url = url

    async def write(self, event: Event) -> None:
        from redis.exceptions import RedisError

        fields = {key: str(value) for key, value in event.to_dict().items()}
        try:
            await self._client.xadd(
                self.stream, fields, maxlen=self._maxlen, approximate=self._maxlen is not None
            )
        except (RedisError, OSError) as exc:
            raise SinkError(
                f"XADD to Redis stream {self.stream!r} at {self._url} failed: {exc}"
            ) from exc

    async def close(self) -> None:
        await self._client.aclose()


def parse_sink(spec: str) -> Sink:
    """``stdout`` or ``redis://host:port/db?stream=NAME&maxlen=N``.

    Raises:
        InvalidArgument: any other form.
    """
    if spec == "stdout":
        return StdoutSink()
    parsed = urlparse(spec)
    if parsed.scheme in ("redis", "rediss"):
        query = parse_qs(parsed.query)
        stream = query.get("stream", ["chronoid:events"])[0]
        maxlen_text = query.get("maxlen", [None])[0]
        try:
            maxlen = int(maxlen_text) if maxlen_text is not None else None
        except ValueError:
            raise InvalidArgument(f"maxlen must be an integer, got {maxlen_text!r}") from None
        base = parsed._replace(query="").geturl()
        return RedisStreamSink(base, stream, maxlen)
    raise InvalidArgument(
        f"unknown sink {spec!r}; allowed: stdout, redis://host:port/db?stream=NAME&maxlen=N"
    )
