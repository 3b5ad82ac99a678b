"""Where events go: JSON lines on stdout, a Redis Stream or a NATS JetStream stream.

A sink is anything with ``async write(event)`` and ``async close()``. The Redis sink uses
``XADD`` (with an optional approximate ``MAXLEN`` cap) through redis-py's asyncio client, so
any Redis Streams consumer group can read the events. The NATS sink publishes through
JetStream and waits for the server's acknowledgement (the event is stored when ``write``
returns).

Both server sinks store each boundary once: they deduplicate on the event's
:attr:`~chronoid.stream.event.Event.boundary_id` (``{freq}-{timestamp}``, no per-process
counter), so a write retried after a lost reply, a second producer emitting the same
boundary, or a restarted producer adds nothing, within a duplicate window of
:data:`DEDUP_WINDOW_S` plus ``max_outage_s`` (an event may wait that long in the buffer before
it reaches the server): the Redis sink's marker keys expire after it, and the NATS sink
creates its stream with it as JetStream's duplicate window.

Both follow one outage rule (:class:`_OutageRule`): the first connection must succeed at once
(a wrong address fails fast); after that, a write that fails because the server is gone is
retried, reconnecting, for up to ``max_outage_s`` (30 s by default) while the engine's bounded
buffer holds the events that keep coming (drops counted when it is full); past that the run
ends with :class:`~chronoid.errors.SinkError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlparse

from chronoid.errors import InvalidArgument, SinkError
from chronoid.redact import redact_dsn
from chronoid.stream.event import Event

__all__ = [
    "DEDUP_WINDOW_S",
    "MAX_OUTAGE_LIMIT_S",
    "MAX_OUTAGE_S",
    "NatsJetStreamSink",
    "RedisStreamSink",
    "Sink",
    "StdoutSink",
    "parse_sink",
]

log = logging.getLogger("chronoid.stream")

MAX_OUTAGE_S = 30.0
"""How long (s) a server sink keeps retrying an event across reconnects before the run fails."""

MAX_OUTAGE_LIMIT_S = 86_400
"""The largest ``max_outage_s`` (s): the dedup window grows with it, and Redis keeps a marker
key per boundary for that long (a day of ``second`` boundaries is 86,400 keys)."""

DEDUP_WINDOW_S = 120
"""How long (s) past the longest outage a sink remembers a boundary (JetStream's default)."""

_RETRY_FIRST_S = 0.05  # first pause between retries (s); doubles up to _RETRY_MAX_S
_RETRY_MAX_S = 1.0

T = TypeVar("T")


class _OutageRule:
    """The reconnect-and-retry rule both server sinks share (see the module docstring).

    ``transient`` are the exceptions that mean "the server is gone for now"; anything else
    fails at once. Retrying is safe because the sinks deduplicate on the boundary.
    """

    def __init__(self, what: str, max_outage_s: float) -> None:
        if not 0 <= max_outage_s <= MAX_OUTAGE_LIMIT_S:
            raise InvalidArgument(
                f"max_outage_s must be a number of seconds from 0 to {MAX_OUTAGE_LIMIT_S:,} "
                f"(a day), got {max_outage_s!r}"
            )
        self.what = what
        self.max_outage_s = max_outage_s
        self.connected = False
        self.outages = 0
        """Outages ridden through (count)."""
        self.dedup_window_s = DEDUP_WINDOW_S + math.ceil(max_outage_s)
        """How long (s) the server must remember a stored boundary: an event may wait up to
        ``max_outage_s`` in the buffer while another producer's copy is already stored."""

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        transient: tuple[type[BaseException], ...],
        describe: Callable[[BaseException], str],
    ) -> T:
        started_s: float | None = None
        pause_s = _RETRY_FIRST_S
        while True:
            try:
                result = await attempt()
            except transient as exc:
                if not self.connected:
                    raise SinkError(f"cannot reach {self.what}: {describe(exc)}") from exc
                now_s = time.monotonic()
                if started_s is None:
                    started_s = now_s
                    log.warning(
                        "%s: %s; reconnecting for up to %g s (events wait in the buffer)",
                        self.what,
                        describe(exc),
                        self.max_outage_s,
                    )
                if now_s - started_s >= self.max_outage_s:
                    raise SinkError(
                        f"{self.what} unreachable for {now_s - started_s:.1f} s (the limit is "
                        f"{self.max_outage_s:g} s): {describe(exc)}"
                    ) from exc
                await asyncio.sleep(pause_s)
                pause_s = min(pause_s * 2, _RETRY_MAX_S)
                continue
            self.connected = True
            if started_s is not None:
                self.outages += 1
                log.warning(
                    "%s: delivering again after %.1f s", self.what, time.monotonic() - started_s
                )
            return result


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


# Stores the event unless its boundary was stored within the window; atomic, so a retried
# or second producer's XADD cannot slip between the check and the add.
# The marker is set only once the XADD succeeded (a WRONGTYPE stream key leaves none).
_XADD_ONCE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local id
if ARGV[2] == '' then
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return id
"""


class RedisStreamSink:
    """``XADD`` each event to a Redis Stream (fields as strings), each boundary once.

    A marker key ``{stream}:boundary:{boundary_id}`` (expiring after :data:`DEDUP_WINDOW_S`
    plus ``max_outage_s``)
    is set in the same Lua script as the ``XADD``, so a retry or a second producer does not
    add the boundary again. Reconnects under the module's outage rule.

    Args:
        url: ``redis://host:port/db``.
        stream: the stream key.
        maxlen: cap the stream at about this many entries (``MAXLEN ~``); None keeps all.
        timeout: seconds to wait for connecting and for each reply.
        max_outage_s: how long to keep retrying an event while Redis is gone (s).
    """

    def __init__(
        self,
        url: str,
        stream: str = "chronoid:events",
        maxlen: int | None = None,
        *,
        timeout: float = 5.0,
        max_outage_s: float = MAX_OUTAGE_S,
    ):
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
        if not 0 < timeout < float("inf"):
            raise InvalidArgument(f"timeout must be a number of seconds > 0, got {timeout!r}")
        try:
            self._client: Any = aioredis.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout
            )
        except ValueError as exc:
            raise InvalidArgument(
                f"bad Redis URL {redact_dsn(url)!r} ({exc}); expected redis://host:port/db"
            ) from None
        self.stream = stream
        self._maxlen = maxlen
        self._url = redact_dsn(url)  # for messages: never the password
        self._rule = _OutageRule(f"Redis at {self._url}", max_outage_s)
        self._script: Any = self._client.register_script(_XADD_ONCE)
        self.duplicates = 0
        """Events whose boundary the stream already held (within the window)."""

    @property
    def outages(self) -> int:
        """Times Redis went away and came back during the run (count)."""
        return self._rule.outages

    async def write(self, event: Event) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        args: list[str | int] = [
            self._rule.dedup_window_s,
            "" if self._maxlen is None else self._maxlen,
        ]
        for key, value in event.to_dict().items():
            args += [key, str(value)]
        keys = [self.stream, f"{self.stream}:boundary:{event.boundary_id}"]
        try:
            added = await self._rule.run(
                lambda: self._script(keys=keys, args=args),
                (RedisConnectionError, RedisTimeoutError, OSError),
                lambda exc: str(exc) or type(exc).__name__,
            )
        except RedisError as exc:
            raise SinkError(
                f"XADD to Redis stream {self.stream!r} at {self._url} failed: {exc}"
            ) from exc
        if added is None:
            self.duplicates += 1

    async def close(self) -> None:
        await self._client.aclose()


class NatsJetStreamSink:
    """Publish each event as JSON to a JetStream subject and wait for the acknowledgement.

    The event's :attr:`~chronoid.stream.event.Event.boundary_id` goes out as ``Nats-Msg-Id``,
    so JetStream stores each boundary once within its duplicate window (set to
    :data:`DEDUP_WINDOW_S` plus ``max_outage_s`` when the sink creates the stream; a warning if
    an existing stream's is shorter),
    whichever producer sends it and however often. The stream is created (capturing just
    ``subject``) when it does not exist; an existing one must already capture ``subject``, or
    the first write fails saying so. Reconnects under the module's outage rule.

    Args:
        url: ``nats://host:port``.
        subject: the subject events are published on.
        stream: the JetStream stream that stores them.
        timeout: seconds to wait for connecting and for each acknowledgement.
        max_outage_s: how long to keep retrying an event while the server is gone (s).
    """

    def __init__(
        self,
        url: str,
        subject: str = "chronoid.events",
        stream: str = "CHRONOID_EVENTS",
        *,
        timeout: float = 5.0,
        max_outage_s: float = MAX_OUTAGE_S,
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
        """Events whose boundary the stream already held (inside its duplicate window)."""
        self._client: Any = None
        self._js: Any = None
        self._last_error = ""
        self._closing = False
        self._shown_url = redact_dsn(url)  # for messages: never the password
        self._rule = _OutageRule(f"NATS at {self._shown_url}", max_outage_s)

    @property
    def outages(self) -> int:
        """Times the server went away and came back during the run (count)."""
        return self._rule.outages

    async def _connect(self) -> Any:
        client = await self._open_client()
        js = client.jetstream(timeout=self.timeout)
        try:
            await self._ensure_stream(js)
        except SinkError:
            await client.close()
            raise
        except Exception as exc:
            await client.close()
            raise SinkError(
                f"cannot set up JetStream stream {self.stream!r} at {self._shown_url} (is the "
                f"server started with JetStream, -js?): {exc}"
            ) from exc
        self._client = client
        return js

    async def _open_client(self) -> Any:
        import nats

        try:
            # Once connected, nats-py reconnects by itself (a publish still waits at most
            # ``timeout`` for its acknowledgement); the first connection must fail fast and
            # clearly, where nats-py would retry it for ever.
            return await asyncio.wait_for(
                nats.connect(
                    self.url,
                    connect_timeout=self.timeout,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=_RETRY_MAX_S,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                self.timeout,
            )
        except TimeoutError:
            reason = self._last_error or "no answer"
            raise SinkError(
                f"cannot connect to NATS at {self._shown_url} within {self.timeout:g} s: {reason}"
            ) from None
        except Exception as exc:  # nats-py raises several unrelated types here
            raise SinkError(f"cannot connect to NATS at {self._shown_url}: {exc}") from exc

    async def _ensure_stream(self, js: Any) -> None:
        """Create the stream, or check that the existing one captures the subject."""
        from nats.js.errors import NotFoundError

        try:
            info = await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(
                name=self.stream,
                subjects=[self.subject],
                duplicate_window=float(self._rule.dedup_window_s),
            )
            return
        window_s = info.config.duplicate_window or DEDUP_WINDOW_S
        if window_s < self._rule.dedup_window_s:
            log.warning(
                "JetStream stream %r keeps duplicates for %g s, less than the %d s an "
                "event may wait here (max_outage_s + %d s): a boundary sent that late "
                "by two producers is stored twice",
                self.stream,
                window_s,
                self._rule.dedup_window_s,
                DEDUP_WINDOW_S,
            )
        if self.subject not in (info.config.subjects or []):
            raise SinkError(
                f"JetStream stream {self.stream!r} exists but does not capture subject "
                f"{self.subject!r} (it captures {info.config.subjects}); choose "
                "another stream or subject"
            )

    # nats-py's default callbacks print tracebacks; one log line each says enough.
    async def _on_error(self, exc: Exception) -> None:
        self._last_error = str(exc) or type(exc).__name__
        log.debug("NATS %s: %s", self._shown_url, self._last_error)

    async def _on_disconnected(self) -> None:
        if not self._closing:  # close() drains and disconnects: that is no outage
            log.warning(
                "NATS %s: disconnected; reconnecting (events wait in the buffer)", self._shown_url
            )

    async def _on_reconnected(self) -> None:
        log.info("NATS %s: reconnected", self._shown_url)

    async def write(self, event: Event) -> None:
        import nats.errors
        import nats.js.errors

        if self._js is None:
            self._js = await self._connect()
            self._rule.connected = True
        payload = json.dumps(event.to_dict()).encode()
        headers = {"Nats-Msg-Id": event.boundary_id}
        try:
            ack = await self._rule.run(
                lambda: self._js.publish(
                    self.subject, payload, headers=headers, timeout=self.timeout
                ),
                (
                    nats.errors.TimeoutError,
                    nats.errors.NoRespondersError,
                    nats.errors.ConnectionReconnectingError,
                    nats.js.errors.ServiceUnavailableError,
                    TimeoutError,
                ),
                lambda exc: str(exc) or type(exc).__name__,
            )
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError(
                f"JetStream publish of {event.id} to {self.subject!r} at {self._shown_url} "
                f"failed: {exc}"
            ) from exc
        if ack.duplicate:
            self.duplicates += 1

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None:
            self._closing = True
            await client.drain()


def _outage_option(query: dict[str, list[str]]) -> float:
    text = query.get("max_outage_s", [str(MAX_OUTAGE_S)])[0]
    try:
        return float(text)
    except ValueError:
        raise InvalidArgument(f"max_outage_s must be a number of seconds, got {text!r}") from None


def parse_sink(spec: str) -> Sink:
    """``stdout``, ``redis://host:port/db?stream=NAME&maxlen=N`` or
    ``nats://host:port?subject=NAME&stream=NAME``; both take ``max_outage_s=S`` too.

    Raises:
        InvalidArgument: any other form.
    """
    if spec == "stdout":
        return StdoutSink()
    parsed = urlparse(spec)
    if parsed.scheme in ("redis", "rediss"):
        query = parse_qs(parsed.query)
        unknown = sorted(set(query) - {"stream", "maxlen", "max_outage_s"})
        if unknown:
            raise InvalidArgument(
                f"unknown Redis sink option(s) {unknown}; allowed: stream, maxlen, max_outage_s"
            )
        stream = query.get("stream", ["chronoid:events"])[0]
        maxlen_text = query.get("maxlen", [None])[0]
        try:
            maxlen = int(maxlen_text) if maxlen_text is not None else None
        except ValueError:
            raise InvalidArgument(f"maxlen must be an integer, got {maxlen_text!r}") from None
        base = parsed._replace(query="").geturl()
        return RedisStreamSink(base, stream, maxlen, max_outage_s=_outage_option(query))
    if parsed.scheme == "nats":
        query = parse_qs(parsed.query)
        unknown = sorted(set(query) - {"subject", "stream", "max_outage_s"})
        if unknown:
            raise InvalidArgument(
                f"unknown NATS sink option(s) {unknown}; allowed: subject, stream, max_outage_s"
            )
        if not parsed.hostname or parsed.path not in ("", "/"):
            raise InvalidArgument(
                f"bad NATS sink {spec!r}; expected nats://host:port?subject=NAME&stream=NAME"
            )
        return NatsJetStreamSink(
            parsed._replace(query="", path="").geturl(),
            query.get("subject", ["chronoid.events"])[0],
            query.get("stream", ["CHRONOID_EVENTS"])[0],
            max_outage_s=_outage_option(query),
        )
    raise InvalidArgument(
        f"unknown sink {spec!r}; allowed: stdout, redis://host:port/db?stream=NAME&maxlen=N, "
        "nats://host:port?subject=NAME&stream=NAME"
    )
