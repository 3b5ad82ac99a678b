"""Clients of the sequencer: a small synchronous client and an in-process range cache.

:class:`SequencerClient` keeps one connection open (reconnecting once if it was dropped) and
speaks RESP. :class:`RangeCache` fetches blocks of values with ``GETSEQ <n>`` and hands them
out in-process, fetching the next block in a background thread while the current one is
being used (double buffering), so a caller gets a value without a round trip. Values from a
cache are unique and increasing per cache; across processes they are unique but interleave
by block, and values a process never uses are skipped (a gap, never a repeat).

With failover (``chronoid serve --ha``) both clients follow a standby's ``-MOVED 0 host:port``
to the leader. Given ``servers``, they also move on to the next server when one is unreachable
or answers ``-TRYAGAIN`` (no leader yet), for up to ``failover_timeout`` seconds: a failover
inside that time costs the caller no exception. A redirect to a leader that does not answer
(it just died, and standbys name it until its lease runs out) is a failed attempt like any
other: pause, then start again from the next server. A command
retried on another server after a lost reply may skip values (a gap), never repeat one: the
servers' fencing sees to that. A connection that failed or timed out is closed, never reused:
a late reply on it would otherwise be read as the answer to the next command.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chronoid.errors import (
    InvalidArgument,
    SequencerMoved,
    SequencerReplyError,
    SequencerTryAgain,
)
from chronoid.sequencer.protocol import NEED_DATA, ReplyParser, encode_command, parse_address
from chronoid.sequencer.sequences import DEFAULT_NAME, MAX_COUNT

__all__ = [
    "AsyncBlockSource",
    "AsyncRangeCache",
    "AsyncSequencerClient",
    "BlockSource",
    "RangeCache",
    "SequencerClient",
    "parse_address",
]

MAX_REDIRECTS = 5
"""Redirects followed in a row; past it (standbys naming each other) the attempt counts as
failed: pause and start again from the next server, until ``failover_timeout``."""
MAX_PAUSE_S = 0.2
"""Longest pause between two attempts in a failover (they start at 50 ms and double, each
taken at a random 50-100 %, so clients do not retry in lockstep): a standby takes over within
one standby poll (0.2 s) of the dead leader's lease ending, so waiting longer only adds to the
caller's failover time (with 0.5 s, kill -9 to the next value took 2.76 s p50, 3.26 s max on
PostgreSQL, in the client's 0.5 s steps)."""


class _Route:
    """Which server a client talks to, and what it does after a failure (no I/O, so both
    clients share one policy): follow ``MOVED``, rotate through ``servers`` on a connection
    failure or ``TRYAGAIN`` until ``failover_timeout_s`` has passed, else give up."""

    def __init__(
        self, host: str, port: int, servers: Sequence[str], failover_timeout_s: float
    ) -> None:
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidArgument(f"port must be an int in 1..65535, got {port!r}")
        if isinstance(servers, str):
            raise InvalidArgument("servers must be a list of 'host:port' strings, not one string")
        if failover_timeout_s < 0:
            # The message names the public parameter (SequencerClient's failover_timeout).
            raise InvalidArgument(f"failover_timeout must be >= 0 s, got {failover_timeout_s!r}")
        self.address = (host, port)
        self.servers = [self.address]
        for text in servers:
            address = parse_address(text)
            if address not in self.servers:
                self.servers.append(address)
        self.failover_timeout_s = failover_timeout_s if len(self.servers) > 1 else 0.0
        self.switches = 0

    def begin(self) -> _Attempt:
        return _Attempt(time.monotonic() + self.failover_timeout_s)

    def after(self, attempt: _Attempt, exc: BaseException) -> float:
        """Move on after ``exc`` and return the pause before retrying (s); re-raise to give up.

        Only called for errors that end the connection's usefulness: reply errors other than
        ``MOVED``/``TRYAGAIN`` are the caller's answer and are raised before getting here.
        """
        if isinstance(exc, SequencerMoved) and attempt.redirects < MAX_REDIRECTS:
            attempt.redirects += 1
            self._switch(exc.address)
            return 0.0
        # TRYAGAIN, too many redirects in a row, unreachable or timed out (perhaps the
        # leader a redirect named has died since): a failed attempt. The next try, and the
        # next call, start at the next server.
        attempt.redirects = 0
        self._switch(self._next_server())
        remaining_s = attempt.deadline_s - time.monotonic()
        if remaining_s <= 0:
            raise exc
        pause_s, attempt.pause_s = attempt.pause_s, min(attempt.pause_s * 2, MAX_PAUSE_S)
        return min(pause_s * (0.5 + random.random() / 2), remaining_s)

    @staticmethod
    def retryable(exc: SequencerReplyError) -> bool:
        return isinstance(exc, (SequencerMoved, SequencerTryAgain))

    def _next_server(self) -> tuple[str, int]:
        index = self.servers.index(self.address) if self.address in self.servers else -1
        return self.servers[(index + 1) % len(self.servers)]

    def _switch(self, address: tuple[str, int]) -> None:
        self.address = address
        self.switches += 1
        if address not in self.servers:
            self.servers.append(address)


@dataclass(slots=True)
class _Attempt:
    deadline_s: float  # time.monotonic()
    redirects: int = 0
    pause_s: float = 0.05


class _Routed:
    """What both clients expose of their :class:`_Route`."""

    _route: _Route

    @property
    def host(self) -> str:
        """The server the next command goes to (after redirects, the leader)."""
        return self._route.address[0]

    @property
    def port(self) -> int:
        return self._route.address[1]

    @property
    def servers(self) -> list[tuple[str, int]]:
        """Every server known: the first, ``servers`` and any leader a redirect named."""
        return self._route.servers

    @property
    def redirects(self) -> int:
        """Redirects and server switches so far (for tests and logs)."""
        return self._route.switches


class SequencerClient(_Routed):
    """A blocking connection to ``chronoid serve``; not thread-safe (one per thread).

    ``timeout`` is in seconds. ``password`` is sent with ``AUTH`` on connect; ``ssl_context``
    wraps the socket in TLS (``server_hostname`` is ``host``). ``servers`` lists further
    members of a failover cluster (``"host:port"``) to try, after ``host:port``, when a server
    is unreachable or has no leader, for up to ``failover_timeout`` seconds per command.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 10001,
        *,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 5.0,
        servers: Sequence[str] = (),
        failover_timeout: float = 10.0,
    ) -> None:
        self._route = _Route(host, port, servers, failover_timeout_s=failover_timeout)
        if timeout <= 0:
            raise InvalidArgument(f"timeout must be > 0 seconds, got {timeout!r}")
        self.password = password
        self.ssl_context = ssl_context
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._replies = ReplyParser()

    def getseq(self, count: int = 1, name: str = DEFAULT_NAME) -> int:
        """Reserve ``count`` consecutive values of ``name``; returns the first."""
        if not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise InvalidArgument(f"count must be an int in 1..{MAX_COUNT}, got {count!r}")
        if name == DEFAULT_NAME:
            args: tuple[bytes, ...] = (b"GETSEQ", b"%d" % count) if count != 1 else (b"GETSEQ",)
        else:
            args = (b"GETSEQ", b"%d" % count, name.encode())
        return self._int(self.call(*args))

    def current(self, name: str = DEFAULT_NAME) -> int:
        """The value the next ``GETSEQ`` of ``name`` returns (consumes nothing)."""
        return self._int(self.call(b"CURRENT", name.encode()))

    def ping(self) -> bool:
        """True when the server answers ``PING``."""
        return self.call(b"PING") == b"PONG"

    def call(self, *args: bytes) -> int | bytes:
        """Send one command; an integer or simple/bulk string reply, or raise on an error.

        Follows ``MOVED`` redirects; with ``servers``, tries the next server on a connection
        failure or ``TRYAGAIN`` until ``failover_timeout`` has passed.
        """
        attempt = self._route.begin()
        while True:
            try:
                return self._call_here(args)
            except SequencerReplyError as exc:
                if not _Route.retryable(exc):
                    raise
                self.close()
                pause_s = self._route.after(attempt, exc)
            except (OSError, EOFError) as exc:
                self.close()
                pause_s = self._route.after(attempt, exc)
            time.sleep(pause_s)

    def _call_here(self, args: tuple[bytes, ...]) -> int | bytes:
        for attempt in (0, 1):
            fresh = self._sock is None
            sock = self._connect()
            try:
                sock.sendall(_encode(args))
                return self._read_reply()
            except (ConnectionError, EOFError):
                # A reused connection the server closed meanwhile (idle timeout, restart):
                # one retry on a fresh one.
                self.close()
                if fresh or attempt:
                    raise
            except OSError:  # timed out: a late reply must not answer the next command
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._replies = ReplyParser()

    def __enter__(self) -> SequencerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        self._sock = sock
        self._replies = ReplyParser()
        if self.password is not None:
            try:
                sock.sendall(_encode((b"AUTH", self.password.encode())))
                self._read_reply()
            except BaseException:  # refused or lost: never keep an unauthenticated connection
                self.close()
                raise
        return sock

    def _read_reply(self) -> int | bytes:
        assert self._sock is not None
        replies = self._replies
        while (reply := replies.next_reply()) is NEED_DATA:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise EOFError("the sequencer closed the connection")
            replies.receive(chunk)
        return _value(reply)

    @staticmethod
    def _int(reply: int | bytes) -> int:
        if not isinstance(reply, int):
            raise SequencerReplyError(f"expected an integer reply, got {reply!r}")
        return reply


def _encode(args: tuple[bytes, ...]) -> bytes:
    return encode_command(*args)


def _value(reply: object) -> int | bytes:
    """A reply as :meth:`SequencerClient.call` returns it; an error reply is raised."""
    if isinstance(reply, SequencerReplyError):
        raise reply
    if reply is None:
        return b""
    if isinstance(reply, (int, bytes)):
        return reply
    raise SequencerReplyError(f"unexpected reply {reply!r:.64}")


class BlockSource(Protocol):
    """What :class:`RangeCache` needs of a client: :class:`SequencerClient` is one."""

    def getseq(self, count: int = 1, name: str = DEFAULT_NAME) -> int: ...

    def close(self) -> None: ...


class AsyncBlockSource(Protocol):
    """What :class:`AsyncRangeCache` needs: :class:`AsyncSequencerClient` is one."""

    async def getseq(self, count: int = 1, name: str = DEFAULT_NAME) -> int: ...

    async def close(self) -> None: ...


def _check_block(block: object) -> int:
    if not isinstance(block, int) or isinstance(block, bool) or not 1 <= block <= MAX_COUNT:
        raise InvalidArgument(f"block must be an int in 1..{MAX_COUNT} values, got {block!r}")
    return block


def _reply_int(reply: object) -> int:
    # redis-py answers an integer reply with an int, or bytes with decode_responses off in
    # some RESP3 paths: accept an int or its decimal text, nothing else.
    if isinstance(reply, bytes | str) and reply.strip().isdigit():
        return int(reply)
    if not isinstance(reply, int) or isinstance(reply, bool):
        raise SequencerReplyError(f"expected an integer reply to GETSEQ, got {reply!r}")
    return reply


class _RedisPyBlocks:
    """A redis-py ``Redis`` client seen as a :class:`BlockSource` (``GETSEQ`` by
    ``execute_command``), so a cache can run over the client an application already has."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def getseq(self, count: int = 1, name: str = DEFAULT_NAME) -> int:
        return _reply_int(self.client.execute_command("GETSEQ", count, name))

    def close(self) -> None:
        self.client.close()


class _AsyncRedisPyBlocks:
    """A ``redis.asyncio.Redis`` client seen as an :class:`AsyncBlockSource`."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def getseq(self, count: int = 1, name: str = DEFAULT_NAME) -> int:
        return _reply_int(await self.client.execute_command("GETSEQ", count, name))

    async def close(self) -> None:
        await self.client.aclose()


class RangeCache:
    """Values of one sequence handed out in-process from blocks of ``block`` values.

    ``next()`` is thread-safe and takes no lock while the current block lasts. When a block
    is opened and less than one further block is fetched, a background thread fetches the
    next one with ``GETSEQ <block>``, so ``next()`` waits for the server only when values are
    used faster than one round trip per block. The client is owned by the cache (closed by
    :meth:`close` or at the end of a ``with`` block): a :class:`SequencerClient`, or a
    redis-py ``redis.Redis`` connected to ``chronoid serve``.
    """

    def __init__(
        self, client: BlockSource | Any, block: int = 10_000, name: str = DEFAULT_NAME
    ) -> None:
        block = _check_block(block)
        if not hasattr(client, "getseq") and hasattr(client, "execute_command"):
            client = _RedisPyBlocks(client)
        if not hasattr(client, "getseq"):
            raise InvalidArgument(
                "client must be a SequencerClient or a redis-py Redis client, "
                f"got {type(client).__name__}"
            )
        self.client: BlockSource = client
        self.block = block
        self.name = name
        self._ready: deque[range] = deque()
        self._lock = threading.Lock()
        self._fetched = threading.Condition(self._lock)
        self._fetching = False
        self._error: BaseException | None = None
        self._current: Iterator[int] = iter(())

    def next(self) -> int:
        """The next value (fetching a block from the server only when none is ready)."""
        try:
            return next(self._current)
        except StopIteration:
            return self._open_next_block()

    __next__ = next

    def __iter__(self) -> RangeCache:
        return self

    def close(self) -> None:
        """Close the client connection (unused values are skipped, never reused)."""
        with self._lock:
            while self._fetching:
                self._fetched.wait()
            self.client.close()

    def __enter__(self) -> RangeCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open_next_block(self) -> int:
        with self._lock:
            # Another thread may have opened a block while this one waited for the lock.
            for value in self._current:
                return value
            while not self._ready:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                if not self._fetching:
                    self._fetching = True
                    self._lock.release()
                    try:
                        self._fetch()
                    finally:
                        self._lock.acquire()
                else:
                    self._fetched.wait()
            self._current = iter(self._ready.popleft())
            if not self._ready and not self._fetching:
                self._fetching = True
                threading.Thread(target=self._fetch, daemon=True).start()
            return next(self._current)

    def _fetch(self) -> None:
        try:
            first = self.client.getseq(self.block, self.name)
        except BaseException as exc:  # handed to the next caller of next()
            with self._lock:
                self._error = exc
                self._fetching = False
                self._fetched.notify_all()
            return
        with self._lock:
            self._ready.append(range(first, first + self.block))
            self._fetching = False
            self._fetched.notify_all()


class AsyncSequencerClient(_Routed):
    """The asyncio form of :class:`SequencerClient`, with the same arguments: one reused
    connection, one command at a time (a lock serialises concurrent callers so replies cannot
    be mixed up)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 10001,
        *,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 5.0,
        servers: Sequence[str] = (),
        failover_timeout: float = 10.0,
    ) -> None:
        self._route = _Route(host, port, servers, failover_timeout_s=failover_timeout)
        if timeout <= 0:
            raise InvalidArgument(f"timeout must be > 0 seconds, got {timeout!r}")
        self.password = password
        self.ssl_context = ssl_context
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies = ReplyParser()
        self._lock = asyncio.Lock()

    async def getseq(self, count: int = 1, name: str = DEFAULT_NAME) -> int:
        """Reserve ``count`` consecutive values of ``name``; returns the first."""
        if not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise InvalidArgument(f"count must be an int in 1..{MAX_COUNT}, got {count!r}")
        reply = await self.call(b"GETSEQ", b"%d" % count, name.encode())
        return SequencerClient._int(reply)

    async def current(self, name: str = DEFAULT_NAME) -> int:
        """The value the next ``GETSEQ`` of ``name`` returns (consumes nothing)."""
        return SequencerClient._int(await self.call(b"CURRENT", name.encode()))

    async def call(self, *args: bytes) -> int | bytes:
        """Send one command; an integer or string reply, or raise on an error reply.

        Follows ``MOVED`` redirects; with ``servers``, tries the next server on a connection
        failure or ``TRYAGAIN`` until ``failover_timeout`` has passed.
        """
        async with self._lock:
            attempt = self._route.begin()
            while True:
                try:
                    return await self._call_here(args)
                except SequencerReplyError as exc:
                    if not _Route.retryable(exc):
                        raise
                    self._drop()
                    pause_s = self._route.after(attempt, exc)
                except (OSError, EOFError) as exc:  # TimeoutError is an OSError
                    pause_s = self._route.after(attempt, exc)
                await asyncio.sleep(pause_s)

    async def _call_here(self, args: tuple[bytes, ...]) -> int | bytes:
        for attempt in (0, 1):
            fresh = self._writer is None
            if fresh:
                try:
                    await asyncio.wait_for(self._connect(), self.timeout)
                except BaseException:  # unreachable, timed out or refused AUTH: start over
                    self._drop()
                    raise
            try:
                assert self._writer is not None
                self._writer.write(_encode(args))
                return await asyncio.wait_for(self._read_reply(), self.timeout)
            except SequencerReplyError:
                raise  # an answer: the connection is still in step
            except (ConnectionError, EOFError):
                # A reused connection the server closed meanwhile (idle timeout, restart):
                # one retry on a fresh one.
                self._drop()
                if fresh or attempt:
                    raise
            except BaseException:
                # Timed out or cancelled mid-command: a late reply must not be read as the
                # answer to the next command.
                self._drop()
                raise
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()

    async def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def __aenter__(self) -> AsyncSequencerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _connect(self) -> None:
        self._replies = ReplyParser()
        self._reader, self._writer = await asyncio.open_connection(
            self.host,
            self.port,
            ssl=self.ssl_context,
            server_hostname=self.host if self.ssl_context is not None else None,
        )
        if self.password is not None:
            self._writer.write(_encode((b"AUTH", self.password.encode())))
            await self._read_reply()

    async def _read_reply(self) -> int | bytes:
        assert self._reader is not None
        replies = self._replies
        while (reply := replies.next_reply()) is NEED_DATA:
            chunk = await self._reader.read(65536)
            if not chunk:
                raise EOFError("the sequencer closed the connection")
            replies.receive(chunk)
        return _value(reply)


class AsyncRangeCache:
    """The asyncio form of :class:`RangeCache`: ``await cache.next()`` takes values from a
    block in memory and fetches the next block in a background task while this one lasts.

    ``client`` is an :class:`AsyncSequencerClient` or a ``redis.asyncio.Redis`` connected to
    ``chronoid serve``; the cache owns it (``async with`` or :meth:`close`). Safe for many tasks
    of one event loop. A caller cancelled while a block is on its way leaves the fetch running
    for the next caller; values of a block never used are skipped (a gap, never a repeat).
    """

    def __init__(
        self, client: AsyncBlockSource | Any, block: int = 10_000, name: str = DEFAULT_NAME
    ) -> None:
        block = _check_block(block)
        if not hasattr(client, "getseq") and hasattr(client, "execute_command"):
            client = _AsyncRedisPyBlocks(client)
        if not hasattr(client, "getseq"):
            raise InvalidArgument(
                "client must be an AsyncSequencerClient or a redis.asyncio Redis client, "
                f"got {type(client).__name__}"
            )
        self.client: AsyncBlockSource = client
        self.block = block
        self.name = name
        self._current: Iterator[int] = iter(())
        self._next: asyncio.Future[range] | None = None
        self._lock: asyncio.Lock | None = None

    async def next(self) -> int:
        """The next value (waiting for the server only when no block is ready)."""
        for value in self._current:
            return value
        return await self._open_next_block()

    async def __anext__(self) -> int:
        return await self.next()

    def __aiter__(self) -> AsyncRangeCache:
        return self

    async def close(self) -> None:
        """Stop the prefetch and close the client (unused values are skipped, never reused)."""
        pending, self._next = self._next, None
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await self.client.close()

    async def __aenter__(self) -> AsyncRangeCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _fetch(self) -> range:
        first = await self.client.getseq(self.block, self.name)
        return range(first, first + self.block)

    async def _open_next_block(self) -> int:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # Another task may have opened a block while this one waited for the lock.
            for value in self._current:
                return value
            if self._next is None:
                self._next = asyncio.ensure_future(self._fetch())
            fetch = self._next
            try:
                block = await asyncio.shield(fetch)
            except BaseException:
                if fetch.done():  # the fetch failed: the next caller starts a new one
                    self._next = None
                raise
            self._current = iter(block)
            self._next = asyncio.ensure_future(self._fetch())
            return next(self._current)
