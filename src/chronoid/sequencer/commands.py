"""Command dispatch: a parsed command and the connection's state in, reply bytes out.

No I/O happens here apart from what :class:`~chronoid.sequencer.sequences.Sequences` does
for reservations. The commands, byte for byte (``<name>`` defaults to ``default``):

=========================  =================================================================
``GETSEQ``                 ``:N`` the next value
``GETSEQ <count>``         ``:N`` the first of ``count`` consecutive values (1..1,000,000)
``GETSEQ <count> <name>``  the same on the named sequence ``name``
``CURRENT [<name>]``       ``:N`` the value the next ``GETSEQ`` returns; consumes nothing
``PING [<message>]``       ``+PONG`` (or the message as a bulk string)
``AUTH [default] <pw>``    ``+OK`` or ``-WRONGPASS ...``
``INFO [<section> ...]``   a bulk string of ``key:value`` lines: the sections asked for
                           (server, clients, stats, replication, sequences; ``all``,
                           ``everything``, ``default`` or none: every one), empty for an
                           unknown one, as Redis answers
``QUIT``                   ``+OK``, then the server closes the connection
``CLIENT SETINFO|SETNAME`` ``+OK`` (what redis-py sends on connect)
``COMMAND [DOCS ...]``     ``*0`` (redis-cli asks for command docs on connect)
``CONFIG GET <key>``       ``*2 key ""`` (redis-benchmark reads its config on start)
``SELECT 0``               ``+OK``
``HELLO [2|3 [AUTH u p]]`` server facts as a RESP2 array or RESP3 map (redis-py 8 sends
                           ``HELLO 3`` on connect); every other reply is the same in both
=========================  =================================================================

With failover (:mod:`chronoid.sequencer.election`) a member that may not issue answers ``GETSEQ``
and ``CURRENT`` with ``-MOVED 0 <leader host:port>`` or ``-TRYAGAIN <why>``.

Anything else gets ``-ERR Unknown command 'X'. Supported: ...`` (control and non-ASCII bytes
of X shown as ``\\xNN``). With a password set, every command but ``AUTH``, ``QUIT`` and
``HELLO ... AUTH`` gets ``-NOAUTH Authentication required.`` until authentication succeeds,
and consumes nothing; after ``MAX_AUTH_FAILURES`` wrong passwords the connection is closed.

A count is written as Redis writes integers: decimal digits without sign or leading zero.

A ``GETSEQ`` whose values are not reserved yet returns a :class:`Wait` instead of reply bytes:
the server holds that connection's later commands back until :meth:`Dispatcher.resume`
gives the reply, and serves every other connection meanwhile.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from chronoid.errors import InvalidArgument, StoreUnavailable
from chronoid.sequencer.protocol import (
    EMPTY_ARRAY,
    INTEGER,
    NOAUTH,
    OK,
    PONG,
    RESP_GETSEQ,
    WRONGPASS,
    Command,
    Parser,
    encode_array,
    encode_bulk,
    encode_error,
    encode_integer,
    encode_integers,
    encode_map,
    plain_getseqs,
    shown,
)
from chronoid.sequencer.sequences import (
    DEFAULT_NAME,
    MAX_COUNT,
    MAX_VALUE,
    Sequences,
    SequenceStats,
)
from chronoid.version import package_version

__all__ = [
    "MAX_AUTH_FAILURES",
    "SUPPORTED",
    "Clock",
    "ConnectionState",
    "Dispatcher",
    "Gate",
    "Reading",
    "Standalone",
    "Wait",
    "Writer",
]

MAX_AUTH_FAILURES = 3
"""Wrong passwords one connection may send; the last gets its ``-WRONGPASS`` and the
connection is closed (Redis never closes; a guesser then needs a new TCP connection, and the
server counts every failure)."""

SUPPORTED = (
    "GETSEQ",
    "CURRENT",
    "PING",
    "AUTH",
    "INFO",
    "QUIT",
    "CLIENT",
    "COMMAND",
    "CONFIG",
    "SELECT",
    "HELLO",
)
"""Every command name the server answers, in the order the unknown-command error lists them."""
INFO_SECTIONS = ("server", "clients", "stats", "replication", "sequences")
"""The sections of ``INFO``, in the order it prints them."""

_SUPPORTED_TEXT = ", ".join(SUPPORTED)


class Gate(Protocol):
    """Decides per command whether this server may issue: :class:`Standalone` always does,
    a failover :class:`~chronoid.sequencer.election.Elector` while it leads."""

    def serving(self) -> Sequences | None:
        """The sequences to issue from, or None when this member may not issue."""
        ...

    def refusal(self) -> bytes:
        """The error reply sent instead of a value (a redirect or why not)."""
        ...

    def info(self) -> dict[str, object] | None:
        """INFO ``replication`` lines about leadership (None: no such section)."""
        ...


class Standalone:
    """The gate of a server without failover: it always serves its one :class:`Sequences`."""

    __slots__ = ("sequences",)

    def __init__(self, sequences: Sequences) -> None:
        self.sequences = sequences

    def serving(self) -> Sequences:
        """Always the same sequences."""
        return self.sequences

    def refusal(self) -> bytes:
        """Never sent: :meth:`serving` never refuses."""
        return encode_error("ERR this server is not issuing")

    def info(self) -> None:
        """No ``replication`` section: a standalone server has no failover facts."""
        return None


@dataclass(slots=True)
class ConnectionState:
    """What one connection carries between commands."""

    authenticated: bool = False
    closing: bool = False  # set by QUIT: the server closes after writing the replies
    auth_failures: int = 0
    close_reason: str = ""  # why the server closes it ("" for QUIT), for the metrics


@dataclass(frozen=True, slots=True)
class Wait:
    """A ``GETSEQ`` waiting for a reservation: call :meth:`Dispatcher.resume` once
    ``future`` is done (or give up after the wait timeout)."""

    future: Future[None]
    command: Command


class Writer(Protocol):
    """Where replies go (a transport)."""

    def write(self, data: bytes) -> None:
        """Send ``data`` (buffered: never blocks)."""
        ...


class Reading(Protocol):
    """What :meth:`Dispatcher.plain_reader` reads and writes of the connection it serves."""

    last_active: float
    """When the connection last received bytes (monotonic s)."""

    @property
    def waiting(self) -> Wait | None:
        """The reservation a command waits for (its later commands wait behind it)."""
        ...

    @property
    def transport(self) -> Writer | None:
        """Where the connection's replies go (None before it is connected)."""
        ...


class Clock(Protocol):
    """The server's cached clock, refreshed once a second."""

    @property
    def now(self) -> float:
        """Monotonic seconds."""
        ...


class Dispatcher:
    """Runs commands against the :class:`Sequences` the ``gate`` allows: a
    :class:`Standalone` server's own, with failover the current term's (none on a standby).

    ``password`` (None: no authentication) is compared in constant time. ``info`` returns
    extra ``INFO`` lines by section (connections, uptime) from the server, which owns those numbers.
    """

    def __init__(
        self,
        gate: Gate,
        password: str | None = None,
        info: Callable[[], dict[str, dict[str, object]]] | None = None,
    ) -> None:
        if password is not None and not password:
            raise InvalidArgument("password must be a non-empty string or None, got ''")
        self.gate = gate
        self._standalone = gate.sequences if isinstance(gate, Standalone) else None
        self._lent: Sequences | None = self._standalone  # see _take
        self.password = password.encode() if password is not None else None
        self._requests: dict[str, int] = {}
        self._plain_getseqs = 0  # answered by plain_reader: one addition per read
        self.errors = 0
        """Error replies sent."""
        self.auth_failures = 0
        """Wrong passwords received (``AUTH`` and ``HELLO ... AUTH``)."""
        self._info = info

    @property
    def requests(self) -> dict[str, int]:
        """Commands answered, by upper-case name (``OTHER`` for unknown ones)."""
        counts = dict(self._requests)
        if self._plain_getseqs:
            counts["GETSEQ"] = counts.get("GETSEQ", 0) + self._plain_getseqs
        return counts

    def new_state(self) -> ConnectionState:
        """State for a new connection: authenticated when no password is set."""
        return ConnectionState(authenticated=self.password is None)

    def execute(self, state: ConnectionState, command: Command) -> bytes | Wait:
        """The reply to ``command`` (or a :class:`Wait`); never raises for anything a client
        can send."""
        name = command[0].upper()
        try:
            text = name.decode("ascii")
        except UnicodeDecodeError:
            text = "OTHER"
        requests = self._requests
        key = text if text in _KNOWN else "OTHER"
        requests[key] = requests.get(key, 0) + 1
        if not state.authenticated and name not in _BEFORE_AUTH:
            self.errors += 1
            return NOAUTH
        handler = _HANDLERS.get(name)
        if handler is None:
            self.errors += 1
            return encode_error(
                f"ERR Unknown command '{shown(command[0])}'. Supported: {_SUPPORTED_TEXT}"
            )
        reply = handler(self, state, command)
        if type(reply) is bytes and reply[0] == 45:  # b"-"
            self.errors += 1
        return reply

    def resume(self, state: ConnectionState, wait: Wait) -> bytes | Wait:
        """Run the waiting command again once its reservation is done (counted once)."""
        reply = self._getseq(state, wait.command)
        if type(reply) is bytes and reply[0] == 45:
            self.errors += 1
        return reply

    def plain_reader(
        self,
        state: ConnectionState,
        parser: Parser,
        connection: Reading,
        clock: Clock,
        slow: Callable[[bytes], None],
        most: int,
    ) -> Callable[[bytes], None]:
        """The connection's ``data_received``, fused for the read that load generators and
        batching clients send most: one to ``most`` plain ``GETSEQ`` and nothing else
        (:func:`~chronoid.sequencer.protocol.plain_getseqs`), nothing buffered before it,
        the connection authenticated, not closing and not waiting, the values reserved. It
        answers that read in one Python frame (the general path takes four: the read, the
        parser, the dispatcher and the sequences), and hands every other read to ``slow``
        (the general path, which parses and runs it command by command).

        The values are those the general path would hand out: one event-loop thread runs
        both. Standalone, the take repeats :meth:`Sequences.try_take`'s fast path on the
        default sequence's record (values below the durable watermark only; past it, the
        top of the range included, ``slow`` runs and answers as it always does, consuming
        nothing). With failover it takes through :meth:`_take`: take, then check the term,
        on every read. Counted as the general path counts (requests, values issued).
        """
        # Module constants are read as globals and the rest as few closure cells as it
        # takes: each cell is copied into the frame on every call.
        dispatcher = self
        sequences = self._standalone
        if sequences is None:
            take = self._take

            def read_leading(data: bytes) -> None:
                connection.last_active = clock.now
                if (
                    state.authenticated
                    and not state.closing
                    and connection.waiting is None
                    and not parser._buffer
                ):
                    times = 1 if data == RESP_GETSEQ else plain_getseqs(data, most)
                    if times:
                        first = take(times, DEFAULT_NAME)
                        if type(first) is int:
                            dispatcher._plain_getseqs += times
                            connection.transport.write(  # type: ignore[union-attr]  # connected
                                INTEGER % first if times == 1 else encode_integers(first, times)
                            )
                            return
                        # Refused or not reserved yet (any values taken became a gap): the
                        # general path takes again and answers each command on its own.
                slow(data)

            return read_leading

        seq, prefetch, stats = sequences.fast_take_parts()

        def read(data: bytes) -> None:
            connection.last_active = clock.now
            if (
                state.authenticated
                and not state.closing
                and connection.waiting is None
                and not parser._buffer
            ):
                times = 1 if data == RESP_GETSEQ else plain_getseqs(data, most)
                if times:
                    # Sequences.try_take's fast path, read for read.
                    first = seq.next
                    end = first + times
                    limit = seq.limit
                    if end <= limit:
                        seq.next = end
                        if limit - end < seq.refill_below and not seq.prefetching:
                            prefetch(seq)
                        stats.values_issued += times
                        dispatcher._plain_getseqs += times
                        connection.transport.write(  # type: ignore[union-attr]  # connected
                            INTEGER % first if times == 1 else encode_integers(first, times)
                        )
                        return
            slow(data)

        return read

    def plain_run(self, state: ConnectionState, times: int) -> bytes | None:
        """The reply to ``times`` plain ``GETSEQ`` in a row of a deep pipeline, from one take
        (as :meth:`plain_reader` answers a read of them), or None when they must run one by
        one through :meth:`execute` (not authenticated, a reservation to wait for, a refusal:
        whatever the take consumed then became a gap). Counted as the general path counts."""
        if not state.authenticated:
            return None
        first = self._take(times, DEFAULT_NAME)
        if type(first) is not int:
            return None
        self._plain_getseqs += times
        return encode_integers(first, times)

    # -- handlers --------------------------------------------------------------------------

    def _getseq(self, state: ConnectionState, command: Command) -> bytes | Wait:
        argc = len(command)
        if argc == 1:
            count = 1
            name = DEFAULT_NAME
        elif argc <= 3:
            raw = command[1]
            # Redis's integer rule: digits, no sign, no leading zero.
            if not raw.isdigit() or raw[0] == 48 or len(raw) > _COUNT_DIGITS:
                return _bad_count(raw)
            count = int(raw)
            if count > MAX_COUNT:
                return _bad_count(raw)
            name = command[2].decode("utf-8", "replace") if argc == 3 else DEFAULT_NAME
        else:
            return _wrong_args("GETSEQ")
        first = self._take(count, name)
        if isinstance(first, int):
            return INTEGER % first
        if isinstance(first, Future):
            return Wait(first, command)
        return first

    def _take(self, count: int, name: str) -> int | Future[None] | bytes:
        """The first of ``count`` values of ``name``, the future of the reservation they wait
        for, or the error reply (nothing consumed, or the values taken became a gap).

        Take, then check: the values come from the sequences the gate lent last time, and
        the gate is asked once, after the take, whether that term is still live (a value
        handed out once a successor issues could come after its values: unique, but out of
        order). When it is not, the values taken become a gap and the take starts again from
        the gate, which then lends the current term's sequences or refuses.
        """
        gate = self.gate
        sequences = self._lent
        lent = sequences is not None
        if sequences is None:
            sequences = gate.serving()
            if sequences is None:
                return gate.refusal()
        try:
            first: int | Future[None] | bytes = sequences.try_take(count, name)
        except InvalidArgument as exc:
            first = encode_error(f"ERR {exc}")
        except StoreUnavailable as exc:
            first = encode_error(f"ERR reservation failed, not issuing: {exc}")
        if gate.serving() is not sequences:
            self._lent = None
            return self._take(count, name) if lent else gate.refusal()
        self._lent = sequences
        return first

    def _current(self, state: ConnectionState, command: Command) -> bytes:
        if len(command) > 2:
            return _wrong_args("CURRENT")
        name = command[1].decode("utf-8", "replace") if len(command) == 2 else DEFAULT_NAME
        sequences = self.gate.serving()
        if sequences is None:
            return self.gate.refusal()
        try:
            value = sequences.current(name)
        except InvalidArgument as exc:
            return encode_error(f"ERR {exc}")
        if value > MAX_VALUE:  # exhausted: 2^63 is no signed 64-bit integer (redis-py rejects it)
            return encode_error(
                f"ERR sequence {name!r} is exhausted: every value up to {MAX_VALUE} was handed out"
            )
        return encode_integer(value)

    def _ping(self, state: ConnectionState, command: Command) -> bytes:
        if len(command) == 1:
            return PONG
        if len(command) == 2:
            return encode_bulk(command[1])
        return _wrong_args("PING")

    def _auth(self, state: ConnectionState, command: Command) -> bytes:
        if len(command) == 2:
            user, given = b"default", command[1]
        elif len(command) == 3:
            user, given = command[1], command[2]
        else:
            return _wrong_args("AUTH")
        if self.password is None:
            return encode_error(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        if user == b"default" and hmac.compare_digest(given, self.password):
            state.authenticated = True
            return OK
        self.auth_failures += 1
        state.auth_failures += 1
        if state.auth_failures >= MAX_AUTH_FAILURES:
            state.closing = True
            state.close_reason = "auth_failures"
        return WRONGPASS

    def _info_command(self, state: ConnectionState, command: Command) -> bytes:
        asked = {arg.decode("utf-8", "replace").lower() for arg in command[1:]}
        if not asked or asked & {"all", "everything", "default"}:
            asked = set(INFO_SECTIONS)
        sequences = self.gate.serving()
        stats = sequences.stats if sequences is not None else SequenceStats()
        sections: dict[str, dict[str, object]] = {
            name: {} for name in INFO_SECTIONS if name in asked
        }
        extra = self._info() if self._info is not None else {}
        if "server" in sections:
            sections["server"] = {
                "server": "chronoid-sequencer",
                "chronoid_version": package_version(),
                **extra.get("server", {}),
            }
        if "clients" in sections:
            sections["clients"] = dict(extra.get("clients", {}))
        if "stats" in sections:
            sections["stats"] = {
                **extra.get("stats", {}),
                "values_issued": stats.values_issued,
                "reservations": stats.reservations,
                "synchronous_reservations": stats.synchronous_reservations,
                "reservation_errors": stats.reservation_errors,
                "reservation_seconds_total": f"{stats.reservation_seconds:.6f}",
                "error_replies": self.errors,
            }
        if "replication" in sections:
            replication = self.gate.info()
            if replication is not None:
                sections["replication"] = replication
            else:
                del sections["replication"]
        if "sequences" in sections and sequences is not None:
            for name in sequences.names():
                try:
                    next_value = str(sequences.current(name))
                except InvalidArgument:  # exhausted: never print a value past the range
                    next_value = "exhausted"
                sections["sequences"][f"seq_{name}"] = (
                    f"next={next_value},block={sequences.block(name)}"
                )
        lines: list[str] = []
        for name, fields in sections.items():
            if lines:
                lines.append("")
            lines.append(f"# {name.capitalize()}")
            lines += [f"{key}:{value}" for key, value in fields.items()]
        return encode_bulk("\r\n".join(lines) + "\r\n" if lines else "")

    def _quit(self, state: ConnectionState, command: Command) -> bytes:
        state.closing = True
        return OK

    def _client(self, state: ConnectionState, command: Command) -> bytes:
        sub = command[1].upper() if len(command) > 1 else b""
        if sub in (b"SETINFO", b"SETNAME"):
            return OK
        return encode_error("ERR CLIENT supports only SETINFO and SETNAME here")

    def _command(self, state: ConnectionState, command: Command) -> bytes:
        return EMPTY_ARRAY

    def _config(self, state: ConnectionState, command: Command) -> bytes:
        if len(command) == 3 and command[1].upper() == b"GET":
            return encode_array([encode_bulk(command[2]), encode_bulk(b"")])
        return encode_error("ERR CONFIG supports only CONFIG GET <key> (answered empty) here")

    def _hello(self, state: ConnectionState, command: Command) -> bytes:
        argc = len(command)
        version = command[1] if argc > 1 else b"2"
        if version not in (b"2", b"3"):
            return encode_error("NOPROTO unsupported protocol version")
        i = 2
        while i < argc:
            option = command[i].upper()
            if option == b"AUTH" and i + 2 < argc:
                reply = self._auth(state, [b"AUTH", command[i + 1], command[i + 2]])
                if reply != OK:
                    return reply
                i += 3
            elif option == b"SETNAME" and i + 1 < argc:
                i += 2
            else:
                return encode_error(
                    f"ERR Syntax error in HELLO option '{option.decode(errors='replace')}'"
                )
        if not state.authenticated:
            return NOAUTH
        issuing = self.gate.serving() is not None
        facts = [
            (b"server", encode_bulk(b"chronoid-sequencer")),
            (b"version", encode_bulk(package_version())),
            (b"proto", encode_integer(int(version))),
            (b"id", encode_integer(1)),
            (b"mode", encode_bulk(b"standalone")),
            (b"role", encode_bulk(b"master" if issuing else b"replica")),
            (b"modules", EMPTY_ARRAY),
        ]
        return encode_map(facts, resp3=version == b"3")

    def _select(self, state: ConnectionState, command: Command) -> bytes:
        if len(command) == 2 and command[1] == b"0":
            return OK
        return encode_error("ERR DB index is out of range")


_HANDLERS: dict[bytes, Callable[[Dispatcher, ConnectionState, Command], bytes | Wait]] = {
    b"GETSEQ": Dispatcher._getseq,
    b"CURRENT": Dispatcher._current,
    b"PING": Dispatcher._ping,
    b"AUTH": Dispatcher._auth,
    b"INFO": Dispatcher._info_command,
    b"QUIT": Dispatcher._quit,
    b"CLIENT": Dispatcher._client,
    b"COMMAND": Dispatcher._command,
    b"CONFIG": Dispatcher._config,
    b"SELECT": Dispatcher._select,
    b"HELLO": Dispatcher._hello,
}
_KNOWN = frozenset(SUPPORTED)
_BEFORE_AUTH = frozenset({b"AUTH", b"QUIT", b"HELLO"})


_COUNT_DIGITS = len(str(MAX_COUNT))


def _bad_count(raw: bytes) -> bytes:
    return encode_error(
        f"ERR count must be an integer in 1..{MAX_COUNT} (digits, no sign or leading zero), "
        f"got '{shown(raw, 32)}'"
    )


def _wrong_args(name: str) -> bytes:
    return encode_error(f"ERR wrong number of arguments for '{name.lower()}' command")
