"""The sequencer's network layer: an asyncio ``Protocol`` that feeds the sans-I/O parser.

Per read: parse every pipelined command in it, run them, and answer with one
``transport.write``. Connections above ``max_connections`` get Redis's exact
``-ERR max number of clients reached`` and are closed; idle connections are closed after
``idle_timeout`` seconds (a sweep once a second, so the hot path only stores a timestamp) and
TCP keepalive catches half-open ones. :func:`run` handles SIGINT/SIGTERM by closing the
listener and connections, then storing each sequence's exact next value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from chronoid.errors import InvalidArgument, ProtocolError
from chronoid.extras import require_extra
from chronoid.sequencer.commands import ConnectionState, Dispatcher
from chronoid.sequencer.logs import event
from chronoid.sequencer.protocol import (
    DEFAULT_MAX_BULK,
    DEFAULT_MAX_LINE,
    Parser,
    encode_error,
)
from chronoid.sequencer.sequences import Sequences

if TYPE_CHECKING:
    from chronoid.sequencer.ha import Elector

__all__ = ["MAX_CLIENTS_REPLY", "REFUSAL_REASONS", "SequencerServer", "ServerConfig", "run"]

log = logging.getLogger("chronoid.sequencer")

MAX_CLIENTS_REPLY = b"-ERR max number of clients reached\r\n"
_GETSEQ_PATTERNS = (b"*1\r\n$6\r\nGETSEQ\r\n", b"GETSEQ\r\n", b"GETSEQ\n")
REFUSAL_REASONS = ("max_connections", "protocol_error", "idle_timeout")
"""Why the server refused or closed a connection on its own (the metrics label ``reason``)."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Listening and connection settings (validated on construction)."""

    host: str = "127.0.0.1"
    port: int = 10001
    max_connections: int = 1000
    idle_timeout: float = 300.0
    """Seconds without a request before a connection is closed; 0 disables."""
    max_line: int = DEFAULT_MAX_LINE
    """Longest inline request line (bytes)."""
    max_bulk: int = DEFAULT_MAX_BULK
    """Longest RESP bulk string (bytes)."""

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InvalidArgument(f"port must be an int in 0..65535, got {self.port!r}")
        if not isinstance(self.max_connections, int) or self.max_connections < 1:
            raise InvalidArgument(
                f"max_connections must be an int >= 1, got {self.max_connections!r}"
            )
        if self.idle_timeout < 0:
            raise InvalidArgument(
                f"idle_timeout must be >= 0 seconds (0 disables), got {self.idle_timeout!r}"
            )


class _Connection(asyncio.Protocol):
    __slots__ = ("last_active", "parser", "server", "state", "transport")

    def __init__(self, server: SequencerServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = Parser(max_line=server.config.max_line, max_bulk=server.config.max_bulk)
        self.state: ConnectionState = server.dispatcher.new_state()
        self.last_active = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same API.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server = self.server
        if len(server.connections) >= server.config.max_connections or server.closing:
            server.count_refusal("max_connections")
            transport.write(MAX_CLIENTS_REPLY)
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                if hasattr(socket, "TCP_KEEPIDLE"):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        server.connections.add(self)
        server.accepted += 1
        self.last_active = server.now

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        server = self.server
        self.last_active = server.now
        if not self.parser.buffered:
            # Fast path: a read holding nothing but plain GETSEQs (pipelined or not), in
            # RESP or inline form, as load generators and batching clients send them.
            for pattern in _GETSEQ_PATTERNS:
                size = len(pattern)
                times = data.count(pattern)
                if times and times * size == len(data):
                    replies = server.dispatcher.getseq_repeated(self.state, times)
                    if replies is not None:
                        transport = self.transport
                        assert transport is not None
                        transport.write(replies)
                        return
                    break
        error: ProtocolError | None = None
        try:
            commands = self.parser.feed(data)
        except ProtocolError as exc:
            commands, error = exc.commands, exc
        state = self.state
        execute = server.dispatcher.execute
        if len(commands) == 1:
            replies = execute(state, commands[0])
        else:
            replies = b"".join([execute(state, command) for command in commands])
        if error is not None:
            server.protocol_errors += 1
            server.count_refusal("protocol_error")
            replies += encode_error(f"ERR {error}")
        transport = self.transport
        assert transport is not None
        if replies:
            transport.write(replies)
        if error is not None or state.closing:
            transport.close()

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests too.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class SequencerServer:
    """One listening sequencer: call :meth:`start`, then :meth:`close` (async).

    Standalone it issues from ``sequences``; with failover pass ``elector`` instead (and
    ``sequences=None``): it campaigns once the listener is bound and issues only while it
    leads.
    """

    def __init__(
        self,
        sequences: Sequences | None,
        config: ServerConfig,
        *,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        elector: Elector | None = None,
    ) -> None:
        self.sequences = sequences
        self.elector = elector
        self.config = config
        self.ssl_context = ssl_context
        self.dispatcher = Dispatcher(sequences, password, info=self._info, gate=elector)
        self.connections: set[_Connection] = set()
        self.accepted = 0
        self.refusals: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        """Connections refused or closed by the server, by reason (metrics)."""
        self.protocol_errors = 0
        self.idle_closed = 0
        self.closing = False
        self.now = time.monotonic()
        self.started = self.now
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        assert self._server is not None and self._server.sockets
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def count_refusal(self, reason: str) -> None:
        """Count one connection refused or closed for ``reason`` (see REFUSAL_REASONS)."""
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    async def start(self) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            self.config.host,
            self.config.port,
            ssl=self.ssl_context,
            backlog=min(self.config.max_connections, 4096),
            reuse_address=True,
        )
        self._sweeper = asyncio.create_task(self._sweep())
        if self.elector is not None:
            self.elector.start()

    async def close(self) -> None:
        """Stop accepting, close every connection, then store the exact next values (and
        resign, with failover)."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        if self.elector is not None:
            closer = self.elector.close
        else:
            assert self.sequences is not None
            closer = self.sequences.close
        await asyncio.get_running_loop().run_in_executor(None, closer)

    async def _sweep(self) -> None:
        # Once a second: refresh the cached clock and close idle connections.
        timeout = self.config.idle_timeout
        while True:
            await asyncio.sleep(1.0)
            self.now = now = time.monotonic()
            if timeout <= 0:
                continue
            for connection in list(self.connections):
                if now - connection.last_active > timeout and connection.transport is not None:
                    self.idle_closed += 1
                    self.count_refusal("idle_timeout")
                    connection.transport.close()

    def _info(self) -> dict[str, dict[str, object]]:
        # INFO sections as Redis names them: where each of these numbers is in Redis.
        return {
            "server": {
                "uptime_in_seconds": int(time.monotonic() - self.started),
                "tcp_port": self.port if self._server is not None else self.config.port,
            },
            "clients": {
                "connected_clients": len(self.connections),
                "maxclients": self.config.max_connections,
            },
            "stats": {
                "total_connections_received": self.accepted,
                "rejected_connections": self.refusals["max_connections"],
                "protocol_errors": self.protocol_errors,
                "idle_closed_connections": self.idle_closed,
            },
        }


def run(
    sequences: Sequences | None,
    config: ServerConfig,
    *,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    on_started: Callable[[SequencerServer], None] | None = None,
    event_loop: str = "auto",
    elector: Elector | None = None,
    on_stopping: Callable[[SequencerServer], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (no gap in the sequences).

    ``on_started`` runs once the listener is bound (and, standalone, the first block is
    reserved: ``sequences`` did that when it was made); ``on_stopping`` when a stop signal
    arrives, before the connections close.

    ``event_loop`` is ``asyncio``, ``uvloop`` (faster per read; the ``server`` extra installs
    it) or ``auto`` (uvloop when it is installed).
    """
    if event_loop not in ("auto", "asyncio", "uvloop"):
        raise InvalidArgument(f"event_loop must be auto, asyncio or uvloop, got {event_loop!r}")
    if event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                require_extra("server", "serve --event-loop uvloop", "uvloop")
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> None:
        server = SequencerServer(
            sequences, config, password=password, ssl_context=ssl_context, elector=elector
        )
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log.info(
            "chronoid sequencer listening on %s:%d%s (event loop %s)",
            config.host,
            server.port,
            " (TLS)" if ssl_context is not None else "",
            type(loop).__module__.split(".")[0],
            extra=event("listening", port=server.port),
        )
        if on_started is not None:
            on_started(server)
        await stop.wait()
        log.info("shutting down: storing the exact next values", extra=event("shutting_down"))
        if on_stopping is not None:
            on_stopping(server)
        await server.close()

    asyncio.run(main())
