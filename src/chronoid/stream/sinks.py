"""Where events go: JSON lines on stdout, a Redis Stream or a NATS JetStream stream.

A sink is anything with ``async write(event)`` and ``async close()``. The Redis sink uses
``XADD`` (with an optional approximate ``MAXLEN`` cap) through redis-py's asyncio client, so
any Redis Streams consumer group can read the events. The NATS sink publishes through
JetStream and waits for the server's acknowledgement (the event is stored when ``write``
returns); it sends the event's deterministic ID as ``Nats-Msg-Id``, so a publish retried after
a lost acknowledgement, or a second producer emitting the same boundary, is stored once
(within the stream's duplicate window, 2 minutes by default).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, urlparse

from chronoid.errors import InvalidArgument, SinkError
from chronoid.redact import redact_dsn
from chronoid.stream.event import Event

__all__ = ["NatsJetStreamSink", "RedisStreamSink", "Sink", "StdoutSink", "parse_sink"]

log = logging.getLogger("chronoid.stream")


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
                f"bad Redis URL {redact_dsn(url)!r} ({exc}); expected redis://host:port/db"
            ) from None
        self.stream = stream
        self._maxlen = maxlen
        self._url = redact_dsn(url)  # for messages: never the password

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


class NatsJetStreamSink:
    """Publish each event as JSON to a JetStream subject and wait for the acknowledgement.

    The stream is created (capturing just ``subject``) when it does not exist; an existing one
    must already capture ``subject``, or the first write fails saying so.

    Args:
        url: ``nats://host:port``.
        subject: the subject events are published on.
        stream: the JetStream stream that stores them.
        timeout: seconds to wait for connecting and for each acknowledgement.
    """

    def __init__(
        self,
        url: str,
        subject: str = "chronoid.events",
        stream: str = "CHRONOID_EVENTS",
        *,
        timeout: float = 5.0,
    ) -> None:
        try:
            import nats  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InvalidArgument(
                "the NATS sink needs nats-py: pip install 'chronoid[nats]'"
            ) from exc
        if not subject or any(c.isspace() for c in subject) or "*" in subject or ">" in subject:
            raise InvalidArgument(
                f"the NATS subject must be non-empty, without spaces or wildcards, got {subject!r}"
            )
        if not stream or any(c in stream for c in " .*>/\\\t"):
            raise InvalidArgument(
                f"the JetStream stream name must be non-empty, without spaces, '.', '*', '>' "
                f"or slashes, got {stream!r}"
            )
        if not 0 < timeout < float("inf"):
            raise InvalidArgument(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.url = url
        self.subject = subject
        self.stream = stream
        self.timeout = timeout
        self.duplicates = 0
        """Events the stream already held (same ID inside its duplicate window)."""
        self._client: Any = None
        self._js: Any = None
        self._last_error = ""

    async def _connect(self) -> Any:
        import nats
        from nats.js.errors import NotFoundError

        try:
            # Once connected, nats-py reconnects by itself (a publish still waits at most
            # ``timeout`` for its acknowledgement); the first connection must fail fast and
            # clearly, where nats-py would retry it for ever.
            client = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    connect_timeout=self.timeout,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                self.timeout,
            )
        except TimeoutError:
            reason = self._last_error or "no answer"
            raise SinkError(
                f"cannot connect to NATS at {self.url} within {self.timeout:g} s: {reason}"
            ) from None
        except Exception as exc:  # nats-py raises several unrelated types here
            raise SinkError(f"cannot connect to NATS at {self.url}: {exc}") from exc
        js = client.jetstream(timeout=self.timeout)
        try:
            try:
                info = await js.stream_info(self.stream)
            except NotFoundError:
                await js.add_stream(name=self.stream, subjects=[self.subject])
            else:
                if self.subject not in (info.config.subjects or []):
                    raise SinkError(
                        f"JetStream stream {self.stream!r} exists but does not capture subject "
                        f"{self.subject!r} (it captures {info.config.subjects}); choose "
                        "another stream or subject"
                    )
        except SinkError:
            await client.close()
            raise
        except Exception as exc:
            await client.close()
            raise SinkError(
                f"cannot set up JetStream stream {self.stream!r} at {self.url} (is the server "
                f"started with JetStream, -js?): {exc}"
            ) from exc
        self._client = client
        return js

    # nats-py's default callbacks print tracebacks; one log line each says enough.
    async def _on_error(self, exc: Exception) -> None:
        self._last_error = str(exc) or type(exc).__name__
        log.debug("NATS %s: %s", self.url, self._last_error)

    async def _on_disconnected(self) -> None:
        log.warning("NATS %s: disconnected; reconnecting (events wait in the buffer)", self.url)

    async def _on_reconnected(self) -> None:
        log.info("NATS %s: reconnected", self.url)

    async def write(self, event: Event) -> None:
        if self._js is None:
            self._js = await self._connect()
        payload = json.dumps(event.to_dict()).encode()
        try:
            ack = await self._js.publish(
                self.subject, payload, headers={"Nats-Msg-Id": event.id}, timeout=self.timeout
            )
        except Exception as exc:
            raise SinkError(
                f"JetStream publish of {event.id} to {self.subject!r} at {self.url} failed: {exc}"
            ) from exc
        if ack.duplicate:
            self.duplicates += 1

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None:
            await client.drain()


def parse_sink(spec: str) -> Sink:
    """``stdout``, ``redis://host:port/db?stream=NAME&maxlen=N`` or
    ``nats://host:port?subject=NAME&stream=NAME``.

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
    if parsed.scheme == "nats":
        query = parse_qs(parsed.query)
        unknown = sorted(set(query) - {"subject", "stream"})
        if unknown:
            raise InvalidArgument(
                f"unknown NATS sink option(s) {unknown}; allowed: subject, stream"
            )
        if not parsed.hostname or parsed.path not in ("", "/"):
            raise InvalidArgument(
                f"bad NATS sink {spec!r}; expected nats://host:port?subject=NAME&stream=NAME"
            )
        return NatsJetStreamSink(
            parsed._replace(query="", path="").geturl(),
            query.get("subject", ["chronoid.events"])[0],
            query.get("stream", ["CHRONOID_EVENTS"])[0],
        )
    raise InvalidArgument(
        f"unknown sink {spec!r}; allowed: stdout, redis://host:port/db?stream=NAME&maxlen=N, "
        "nats://host:port?subject=NAME&stream=NAME"
    )
