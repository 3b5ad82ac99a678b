"""The sequencer's network layer: an accept loop and an asyncio ``Protocol`` per connection
that feeds the sans-I/O parser.

The server accepts connections itself (a non-blocking listening socket watched by the event
loop) so that every connection counts against ``max_connections`` from the moment it is
accepted, TLS handshakes included, and so that running out of file descriptors (``EMFILE``)
is logged, counted and waited out instead of closing the listener. A TLS handshake that does
not finish within ``handshake_timeout_s`` closes the connection.

Per read: parse one command at a time, run it, and answer every reply of the read with one
``transport.write``. A ``GETSEQ`` whose values are not reserved yet waits for its
reservation (written in another thread) on its own: reading from that connection pauses and
its later commands keep their order, while every other connection is served. ``QUIT`` stops
the connection's parsing at once.

Limits, with what a client gets back, are in ``docs/sequencer.md``. The sweep once a second
closes connections idle for ``idle_timeout_s``, connections holding an unfinished command for
``request_timeout_s``, and (with a password) connections not authenticated within
``auth_timeout_s``. :func:`run` handles SIGINT/SIGTERM by closing the listener and connections,
then storing each sequence's exact next value; SIGHUP is logged and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import resource
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from chronoid.errors import InvalidArgument, ProtocolError, ServerStartError
from chronoid.extras import require_extra
from chronoid.sequencer.commands import ConnectionState, Dispatcher, Gate, Standalone, Wait
from chronoid.sequencer.logs import event
from chronoid.sequencer.protocol import (
    DEFAULT_MAX_ARGS,
    DEFAULT_MAX_BULK,
    DEFAULT_MAX_LINE,
    DEFAULT_MAX_REQUEST_BYTES,
    UNAUTHENTICATED_MAX_ARGS,
    UNAUTHENTICATED_MAX_BULK,
    Parser,
    encode_error,
)
from chronoid.sequencer.sequences import Sequences

if TYPE_CHECKING:
    from chronoid.sequencer.election import Elector

__all__ = [
    "FD_RESERVE",
    "HELD_BUDGET_BYTES",
    "MAX_CLIENTS_REPLY",
    "REFUSAL_REASONS",
    "SequencerServer",
    "ServerConfig",
    "bind_listener",
    "ensure_file_limit",
    "run",
]

log = logging.getLogger("chronoid.sequencer")

MAX_CLIENTS_REPLY = encode_error("ERR max number of clients reached")
FD_RESERVE = 64
"""File descriptors kept beyond ``max_connections`` (listener, state file, store
connections, metrics, logs)."""
_AUTH_TIMEOUT_REPLY = encode_error(
    "NOAUTH Authentication not completed in time: closing the connection"
)
_TURN_BYTES = 64 * 1024
_TURN_COMMANDS = 1024
"""Most reply bytes and commands one connection gets per event-loop turn: a long pipeline (100,000
``PING``; ``INFO``: 5 bytes in, over a KiB out) then continues on the next turn, and once the
client reads, instead of building one 100 MiB reply while every other client waits."""
HELD_BUDGET_BYTES = 16 * 1024 * 1024
"""Most bytes of unfinished commands all connections together may hold: past it, a connection
whose unfinished command passes :data:`_HELD_FLOOR_BYTES` is closed (without it, 1,000
connections each holding just under ``max_request_bytes`` took 256 MiB; RSS grows about twice
the bytes held, allocator overhead included)."""
_HELD_FLOOR_BYTES = 64 * 1024  # an unfinished command this small is never closed for the budget
_ACCEPT_BATCH = 64  # connections accepted per readiness event, so one burst cannot hog the loop
_EMFILE_PAUSE_S = 0.1  # out of descriptors: stop accepting this long, then try again
REFUSAL_REASONS = (
    "max_connections",
    "fd_exhausted",
    "handshake_timeout",
    "handshake_failed",
    "auth_timeout",
    "auth_failures",
    "request_timeout",
    "request_too_large",
    "protocol_error",
    "idle_timeout",
)
"""Why the server refused or closed a connection on its own (the metrics label ``reason``)."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Listening and connection settings (validated on construction; times in seconds)."""

    host: str = "127.0.0.1"
    port: int = 10001
    max_connections: int = 1000
    """Open connections, TLS handshakes in progress included."""
    idle_timeout_s: float = 300.0
    """Seconds without a request before a connection is closed; 0 disables."""
    handshake_timeout_s: float = 5.0
    """Seconds a TLS handshake may take before the connection is closed."""
    request_timeout_s: float = 10.0
    """Seconds one command may take to arrive in full (slow senders are closed), and the
    longest a ``GETSEQ`` waits for its reservation (then ``-ERR``)."""
    auth_timeout_s: float = 10.0
    """With a password: seconds a connection has to authenticate before it is closed."""
    max_line: int = DEFAULT_MAX_LINE
    """Longest inline request line (bytes)."""
    max_bulk: int = DEFAULT_MAX_BULK
    """Longest RESP bulk string (bytes)."""
    max_args: int = DEFAULT_MAX_ARGS
    """Most elements of one RESP array."""
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    """Most bytes held for one unfinished command."""

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InvalidArgument(f"port must be an int in 0..65535, got {self.port!r}")
        if not isinstance(self.max_connections, int) or self.max_connections < 1:
            raise InvalidArgument(
                f"max_connections must be an int >= 1, got {self.max_connections!r}"
            )
        if not self.idle_timeout_s >= 0:
            raise InvalidArgument(
                f"idle_timeout_s must be >= 0 seconds (0 disables), got {self.idle_timeout_s!r}"
            )
        for name in ("handshake_timeout_s", "request_timeout_s", "auth_timeout_s"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise InvalidArgument(f"{name} must be a number of seconds > 0, got {value!r}")
        for name in ("max_line", "max_bulk", "max_args", "max_request_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{name} must be an int >= 1, got {value!r}")


def bind_listener(host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket bound to ``host:port``, not yet listening (the server calls
    ``listen`` once it can serve, so a client that connects means a ready server);
    :class:`ServerStartError` (one line) when the address is in use or cannot be bound."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ServerStartError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    # One address: IPv4 first when a name resolves to both (as "localhost" does).
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ServerStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def ensure_file_limit(max_connections: int) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to what ``max_connections`` needs (plus
    :data:`FD_RESERVE`); :class:`ServerStartError` when the hard limit is below that.
    Returns the soft limit in force."""
    need = max_connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return soft if soft != resource.RLIM_INFINITY else need
    if hard != resource.RLIM_INFINITY and hard < need:
        raise ServerStartError(
            f"--max-connections {max_connections} needs {need} file descriptors but the hard "
            f"limit is {hard} (ulimit -Hn; LimitNOFILE= under systemd): raise it or lower "
            "--max-connections"
        )
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    except (ValueError, OSError) as exc:
        raise ServerStartError(
            f"cannot raise the file descriptor limit from {soft} to {need} for "
            f"--max-connections {max_connections}: {exc}"
        ) from None
    log.info(
        "raised the file descriptor limit from %d to %d", soft, need, extra=event("fd_limit_raised")
    )
    return need


def _ignore(data: bytes) -> None:
    """A closed connection's reader: nothing arrives after ``connection_lost``."""


class _Connection(asyncio.Protocol):
    __slots__ = (
        "data_received",
        "deferred",
        "dispatcher",
        "held",
        "last_active",
        "limited",
        "made",
        "opened_at",
        "parser",
        "paused",
        "pending_since",
        "reading_paused",
        "server",
        "state",
        "timer",
        "transport",
        "waiting",
        "write_paused",
    )

    # asyncio.Protocol's method, as a slot holding a closure: see __init__.
    data_received: Callable[[bytes], None]  # type: ignore[assignment]

    def __init__(self, server: SequencerServer) -> None:
        self.server = server
        config = server.config
        self.transport: asyncio.Transport | None = None
        self.dispatcher = server.dispatcher
        self.state: ConnectionState = server.dispatcher.new_state()
        self.limited = not self.state.authenticated
        self.parser = Parser(
            max_line=config.max_line,
            max_bulk=UNAUTHENTICATED_MAX_BULK if self.limited else config.max_bulk,
            max_args=UNAUTHENTICATED_MAX_ARGS if self.limited else config.max_args,
            max_request_bytes=config.max_request_bytes,
        )
        self.last_active = self.opened_at = server.now
        self.pending_since = 0.0  # when the unfinished command now buffered began (0: none)
        self.made = False
        self.waiting: Wait | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False  # reading paused while a reservation is awaited
        self.write_paused = False  # reading paused while the client does not read
        self.deferred = False  # reading paused: buffered commands continue on the next turn
        self.reading_paused = False
        self.held = 0  # bytes of unfinished command counted in server.held_bytes
        # data_received is one closure, built once: a read of nothing but plain GETSEQs is
        # answered in that one frame, anything else goes to _received (uvloop's transport
        # reads this attribute once, when it is created, so it is set here and never
        # replaced while connected).
        self.data_received = server.dispatcher.plain_reader(
            self.state, self.parser, self, server, self._received, _TURN_COMMANDS
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same API.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        self.made = True
        server.pending -= 1
        server.connections.add(self)
        server.accepted += 1
        self.last_active = self.opened_at = server.now

    def connection_lost(self, exc: Exception | None) -> None:
        self.data_received = _ignore  # the closure holds this connection: no cycle left behind
        self.server.connections.discard(self)
        self.server.held_bytes -= self.held
        self.held = 0
        self.waiting = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _received(self, data: bytes) -> None:
        """The general path of ``data_received`` (see ``plain_reader`` for the fused one, which
        has set ``last_active`` already)."""
        parser = self.parser
        try:
            parser.receive(data)
        except ProtocolError:  # already broken: the connection is closing
            return
        if self.waiting is None:
            self._process()
        else:
            self._hold(paced=False)

    def _hold(self, *, paced: bool) -> None:
        """Count this connection's buffered bytes against :data:`HELD_BUDGET_BYTES`, and close
        it when the budget is spent and its own share is large.

        ``paced``: the server itself holds these bytes back (commands left for the next turn)
        with reading paused, so they are bounded by what was read already and drain on their
        own: they are not counted, or 200 deep pipelines (15,000 ``GETSEQ`` each) would spend
        the budget and be closed as abusers. Behind an awaited reservation only the unfinished
        command at the end counts (a reservation can queue for seconds: 990 connections
        parked 250 KiB each behind them, +149 MiB, when none of it counted). Bytes held
        because the client does not read its replies are counted."""
        server = self.server
        parser = self.parser
        if paced:
            held = 0
        elif self.waiting is not None and parser.buffered > _HELD_FLOOR_BYTES:
            held = parser.unfinished()
        else:
            held = parser.buffered
        server.held_bytes += held - self.held
        self.held = held
        if held > _HELD_FLOOR_BYTES and server.held_bytes > HELD_BUDGET_BYTES:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                server.protocol_errors += 1
                server._close(
                    self,
                    "request_too_large",
                    encode_error(
                        "ERR server busy: too many bytes of unfinished commands held, closing "
                        "the connection"
                    ),
                )

    def _process(self) -> None:
        """Run the buffered commands in order until one waits, QUIT, or the input ends."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        server = self.server
        parser = self.parser
        state = self.state
        execute = server.dispatcher.execute
        replies: list[bytes] = []
        out_bytes = 0
        done = 0
        completed = False
        more = False
        runs = True  # a run of plain GETSEQs is taken at once until such a take is refused
        while self.waiting is None and not state.closing:
            if out_bytes >= _TURN_BYTES or done >= _TURN_COMMANDS:
                more = True  # the rest waits for the next turn (and for the client to read)
                break
            if runs:
                times = parser.plain_run(_TURN_COMMANDS - done)
                if times > 1:
                    run = server.dispatcher.plain_run(state, times)
                    if run is not None:
                        parser.skip_plain(times)
                        replies.append(run)
                        out_bytes += len(run)
                        done += times
                        completed = True
                        continue
                    runs = False  # one by one for the rest of the turn (a wait, a refusal)
            try:
                command = parser.next_command()
            except ProtocolError as exc:
                server.protocol_errors += 1
                replies.append(encode_error(f"ERR {exc}"))
                state.closing = True
                state.close_reason = (
                    "request_too_large" if "request larger than" in str(exc) else "protocol_error"
                )
                break
            if command is None:
                break
            completed = True
            done += 1
            reply = execute(state, command)
            if type(reply) is bytes:
                replies.append(reply)
                out_bytes += len(reply)
            else:
                self._wait(cast(Wait, reply))
            if self.limited and state.authenticated:
                # Redis 7's rule: the small limits hold only until AUTH succeeds.
                self.limited = False
                parser.max_args = server.config.max_args
                parser.max_bulk = server.config.max_bulk
        if more:
            self.pending_since = 0.0  # whole commands wait; nothing unfinished yet
        elif parser.buffered:
            if completed or not self.pending_since:
                self.pending_since = server.now
        else:
            self.pending_since = 0.0
        if replies:
            transport.write(replies[0] if len(replies) == 1 else b"".join(replies))
        self._hold(paced=more and not self.write_paused)
        if state.closing:
            if state.close_reason:
                server.count_refusal(state.close_reason)
            transport.close()
        elif more:
            self.deferred = True
            self._set_reading()
            assert server.loop is not None
            server.loop.call_soon(self._continue)

    def _continue(self) -> None:
        self.deferred = False
        if self.write_paused:
            return  # resume_writing continues
        self._set_reading()
        if self.waiting is None:
            self._process()

    def _set_reading(self) -> None:
        """Read from the client only while nothing holds its commands back: a reservation
        awaited, replies it does not read, or commands left for the next turn."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        pause = self.paused or self.write_paused or self.deferred
        if pause != self.reading_paused:
            self.reading_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    # -- waiting for a reservation ---------------------------------------------------------

    def _wait(self, wait: Wait) -> None:
        server = self.server
        loop = server.loop
        assert loop is not None
        self.waiting = wait
        self.paused = True
        self._set_reading()
        if self.timer is None:
            self.timer = loop.call_later(server.config.request_timeout_s, self._timed_out, wait)
        wait.future.add_done_callback(
            lambda _: loop.call_soon_threadsafe(self._resume, wait)  # from the writer thread
        )

    def _timed_out(self, wait: Wait) -> None:
        self.timer = None
        if self.waiting is not wait:
            return
        self._finish_wait(
            encode_error(
                "ERR reservation failed, not issuing: the store has not confirmed it within "
                f"{self.server.config.request_timeout_s:g} s"
            )
        )

    def _resume(self, wait: Wait) -> None:
        if self.waiting is not wait:
            return  # timed out meanwhile, or the connection is gone
        reply = self.server.dispatcher.resume(self.state, wait)
        if type(reply) is not bytes:
            self.waiting = None
            self._wait(cast(Wait, reply))  # another reservation is needed: keep waiting
            return
        self._finish_wait(reply)

    def _finish_wait(self, reply: bytes) -> None:
        self.waiting = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(reply)
        self.paused = False
        self._set_reading()
        if self.write_paused:
            # The client does not read: the commands behind it wait for resume_writing, as
            # they do after a turn (running them here gave each finished reservation one more
            # turn of replies: 20 such clients grew the server by 20 MiB/s).
            self.pending_since = 0.0  # whole commands held back by us, not a slow sender
            self._hold(paced=False)
            return
        self._process()  # the commands that arrived behind it, in order

    # -- flow control ----------------------------------------------------------------------

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests too.
        self.write_paused = True
        self._set_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._set_reading()
        if self.waiting is None and not self.deferred and self.parser.buffered:
            self._process()  # commands held back while the client did not read


class SequencerServer:
    """One listening sequencer: call :meth:`start`, then :meth:`close` (async).

    Standalone it issues from ``sequences``; with failover pass ``elector`` instead (and
    ``sequences=None``): it campaigns once the listener is bound and issues only while it
    leads. ``listener`` is a socket from :func:`bind_listener` (else :meth:`start` binds one).
    """

    def __init__(
        self,
        sequences: Sequences | None,
        config: ServerConfig,
        *,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        elector: Elector | None = None,
        listener: socket.socket | None = None,
    ) -> None:
        if (sequences is None) == (elector is None):
            raise InvalidArgument("a SequencerServer needs exactly one of sequences and elector")
        self.sequences = sequences
        self.elector = elector
        self.gate: Gate = elector if elector is not None else Standalone(cast(Sequences, sequences))
        """Whether this server may issue now, and from which sequences."""
        self.config = config
        self.ssl_context = ssl_context
        self.password_set = password is not None
        self.dispatcher = Dispatcher(self.gate, password, info=self._info)
        self.connections: set[_Connection] = set()
        self.pending = 0
        """Accepted connections not yet open (TLS handshakes in progress)."""
        self.held_bytes = 0
        """Bytes of unfinished commands held by all connections (see HELD_BUDGET_BYTES)."""
        self.accepted = 0
        self.refused = 0
        self.refusals: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        """Connections refused or closed by the server, by reason (metrics)."""
        self.protocol_errors = 0
        self.idle_closed = 0
        self.closing = False
        self.now = time.monotonic()
        self.started = self.now
        self._listener = listener
        self._accepting = False
        self._emfile_logged = 0.0
        self._opening: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        assert self._listener is not None
        port: int = self._listener.getsockname()[1]
        return port

    def count_refusal(self, reason: str) -> None:
        """Count one connection refused or closed for ``reason`` (see REFUSAL_REASONS)."""
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        if reason == "idle_timeout":
            self.idle_closed += 1
        elif reason == "max_connections":
            self.refused += 1

    async def start(self) -> None:
        """Bind (unless given a listener) and start accepting connections."""
        self.loop = asyncio.get_running_loop()
        if self._listener is None:
            self._listener = bind_listener(self.config.host, self.config.port)
        try:
            self._listener.listen(min(self.config.max_connections, 4096))
        except OSError as exc:  # another socket with SO_REUSEADDR listens there meanwhile
            raise ServerStartError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror}"
            ) from None
        self._resume_accepting()
        self._sweeper = asyncio.create_task(self._sweep())
        if self.elector is not None:
            self.elector.start()

    async def close(self) -> None:
        """Stop accepting, close every connection, then store the exact next values (and
        resign, with failover)."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._pause_accepting()
        if self._listener is not None:
            self._listener.close()
        for task in list(self._opening):
            task.cancel()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        await asyncio.sleep(0)
        if self.elector is not None:
            closer = self.elector.close
        else:
            assert self.sequences is not None
            closer = self.sequences.close
        await asyncio.get_running_loop().run_in_executor(None, closer)

    # -- accepting -------------------------------------------------------------------------

    def _resume_accepting(self) -> None:
        if self.closing or self._accepting or self._listener is None or self.loop is None:
            return
        self._accepting = True
        self.loop.add_reader(self._listener.fileno(), self._accept)

    def _pause_accepting(self) -> None:
        if self._accepting and self._listener is not None and self.loop is not None:
            self._accepting = False
            self.loop.remove_reader(self._listener.fileno())

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None and self.loop is not None
        limit = self.config.max_connections
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: the listener stays; accepting resumes shortly.
                    self.count_refusal("fd_exhausted")
                    if self.now - self._emfile_logged >= 1.0:
                        self._emfile_logged = self.now
                        log.error(
                            "cannot accept connections: %s (%d open, %d in TLS handshake); "
                            "retrying in %g s",
                            exc.strerror,
                            len(self.connections),
                            self.pending,
                            _EMFILE_PAUSE_S,
                            extra=event("accept_paused"),
                        )
                    self._pause_accepting()
                    self.loop.call_later(_EMFILE_PAUSE_S, self._resume_accepting)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that client gave up before we accepted it
                log.error("accept failed: %s", exc, extra=event("accept_failed"))
                return
            if self.closing or len(self.connections) + self.pending >= limit:
                self.count_refusal("max_connections")
                with contextlib.suppress(OSError):
                    sock.setblocking(False)
                    if self.ssl_context is None:
                        sock.send(MAX_CLIENTS_REPLY)
                sock.close()
                continue
            self.pending += 1
            task = self.loop.create_task(self._open(sock))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _open(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        connection = _Connection(self)
        started = time.monotonic()
        assert self.loop is not None
        try:
            if self.ssl_context is None:
                await self.loop.connect_accepted_socket(lambda: connection, sock)
            else:
                await self.loop.connect_accepted_socket(
                    lambda: connection,
                    sock,
                    ssl=self.ssl_context,
                    ssl_handshake_timeout=self.config.handshake_timeout_s,
                )
        except BaseException as exc:
            if not connection.made:
                self.pending -= 1
                with contextlib.suppress(OSError):
                    sock.close()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                timed_out = time.monotonic() - started >= self.config.handshake_timeout_s * 0.9
                self.count_refusal("handshake_timeout" if timed_out else "handshake_failed")
                log.debug("connection closed before it opened: %s", exc)
            elif isinstance(exc, asyncio.CancelledError):
                raise

    # -- sweeping --------------------------------------------------------------------------

    async def _sweep(self) -> None:
        # Once a second: refresh the cached clock and close idle, slow and unauthenticated
        # connections.
        config = self.config
        idle = config.idle_timeout_s
        while True:
            await asyncio.sleep(1.0)
            self.now = now = time.monotonic()
            for connection in list(self.connections):
                transport = connection.transport
                if transport is None or transport.is_closing():
                    continue
                if connection.waiting is not None:
                    continue  # bounded by its own timer
                if (
                    self.password_set
                    and not connection.state.authenticated
                    and now - connection.opened_at > config.auth_timeout_s
                ):
                    self._close(connection, "auth_timeout", _AUTH_TIMEOUT_REPLY)
                    continue
                if connection.pending_since and now - connection.pending_since > (
                    config.request_timeout_s
                ):
                    self._close(
                        connection,
                        "request_timeout",
                        encode_error(
                            f"ERR request not completed within {config.request_timeout_s:g} s: "
                            "closing the connection"
                        ),
                    )
                    continue
                if idle > 0 and now - connection.last_active > idle:
                    self._close(connection, "idle_timeout", b"")

    def _close(self, connection: _Connection, reason: str, reply: bytes) -> None:
        transport = connection.transport
        assert transport is not None
        self.count_refusal(reason)
        if reply:
            transport.write(reply)
        transport.close()

    def _info(self) -> dict[str, dict[str, object]]:
        # INFO sections as Redis names them: where each of these numbers is in Redis.
        return {
            "server": {
                "uptime_in_seconds": int(time.monotonic() - self.started),
                "tcp_port": self.port if self._listener is not None else self.config.port,
            },
            "clients": {
                "connected_clients": len(self.connections),
                "pending_handshakes": self.pending,
                "maxclients": self.config.max_connections,
            },
            "stats": {
                "total_connections_received": self.accepted,
                "rejected_connections": self.refused,
                "protocol_errors": self.protocol_errors,
                "idle_closed_connections": self.idle_closed,
                "auth_failures": self.dispatcher.auth_failures,
                **{f"refused_{reason}": count for reason, count in self.refusals.items()},
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
    listener: socket.socket | None = None,
    on_stopping: Callable[[SequencerServer], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (no gap in the sequences).

    ``on_started`` runs once the listener is bound (and, standalone, the first block is
    reserved: ``sequences`` did that when it was made); ``on_stopping`` when a stop signal
    arrives, before the connections close.

    ``event_loop`` is ``asyncio``, ``uvloop`` (faster per read; the ``server`` extra installs
    it) or ``auto`` (uvloop when it is installed). SIGHUP is logged and ignored: the
    configuration is read once, at start (restart to change it).
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
            sequences,
            config,
            password=password,
            ssl_context=ssl_context,
            elector=elector,
            listener=listener,
        )
        await server.start()
        # Everything loaded so far lives as long as the process: move it out of the cyclic
        # collector's reach, so a full collection never walks ~35,000 start-up objects while
        # clients wait (measured: 5-120 ms per full collection on this machine, 0.004 after).
        # No collection first: it would delay the first reply by as much.
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(
            signal.SIGHUP,
            lambda: log.warning(
                "SIGHUP received: nothing to reload (options are read at start; restart "
                "to change them); still serving",
                extra=event("sighup_ignored"),
            ),
        )
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
