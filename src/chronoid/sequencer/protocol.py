"""The sequencer's wire protocol, sans-I/O: bytes in, commands out; values in, reply bytes out.

Two request forms are accepted, as Redis does:

* **inline**: one line of words separated by spaces or tabs, ended by ``\\r\\n`` or a bare
  ``\\n`` (what ``telnet``, ``nc`` and ``echo CURRENT | nc`` send);
* **RESP arrays of bulk strings**: ``*2\\r\\n$6\\r\\nGETSEQ\\r\\n$2\\r\\n10\\r\\n`` (what
  redis-cli, redis-benchmark and redis-py send).

Any number of commands may arrive in one read (pipelining) and a command may be split over
any number of reads. Nothing here touches a socket or an event loop, so the parser is tested
and fuzzed without a network. The request :class:`Parser` hands out one command at a time
(:meth:`Parser.next_command`), so the server runs each command before it parses the next:
limits that depend on the connection's state (authenticated or not) apply from the very next
command, and a connection that waits (for a reservation, or after ``QUIT``) parses nothing
more. Its work is linear in the bytes received: a partial command is never scanned again from
its start, however many reads it arrives in.

Size limits protect the server: an inline line or a bulk string longer than the limit, an
array with too many elements, or a command larger than ``max_request_bytes`` (found as soon
as that much of it is buffered, finished or not) is a :class:`ProtocolError` after which the
connection must be closed (the parser refuses further input).

:class:`ReplyParser` is the client side: reply bytes in, values out, with each error reply
turned into the :class:`~chronoid.errors.SequencerReplyError` subclass its prefix names
(:data:`REPLY_ERRORS`, one table, as redis-py keeps it).
"""

from __future__ import annotations

from collections.abc import Iterable

from chronoid.endpoints import parse_endpoint
from chronoid.errors import (
    InvalidArgument,
    ProtocolError,
    SequencerMoved,
    SequencerNoAuth,
    SequencerReplyError,
    SequencerTryAgain,
    SequencerWrongPass,
)

__all__ = [
    "DEFAULT_MAX_ARGS",
    "DEFAULT_MAX_BULK",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_REQUEST_BYTES",
    "EMPTY_ARRAY",
    "INTEGER",
    "NEED_DATA",
    "NOAUTH",
    "OK",
    "PONG",
    "REPLY_ERRORS",
    "RESP_GETSEQ",
    "UNAUTHENTICATED_MAX_ARGS",
    "UNAUTHENTICATED_MAX_BULK",
    "WRONGPASS",
    "Command",
    "Parser",
    "Reply",
    "ReplyParser",
    "encode_array",
    "encode_bulk",
    "encode_command",
    "encode_error",
    "encode_integer",
    "encode_integers",
    "encode_map",
    "encode_simple",
    "parse_address",
    "plain_getseqs",
    "reply_error",
    "shown",
]

Command = list[bytes]
"""One request: its words, the command name first (case as sent)."""

DEFAULT_MAX_LINE = 64 * 1024
"""Longest inline line or RESP header line accepted (bytes); Redis uses 64 KiB too."""
DEFAULT_MAX_BULK = 64 * 1024
"""Longest RESP bulk string accepted (bytes); no sequencer argument needs more."""
DEFAULT_MAX_ARGS = 1024
"""Most elements accepted in one RESP array."""
DEFAULT_MAX_REQUEST_BYTES = 256 * 1024
"""Most bytes one connection may hold for a command it has not finished sending; the longest
real sequencer command is about a hundred bytes."""
UNAUTHENTICATED_MAX_ARGS = 10
"""Most elements in one RESP array before ``AUTH`` when a password is set (Redis 7's rule)."""
UNAUTHENTICATED_MAX_BULK = 16 * 1024
"""Longest bulk string before ``AUTH`` when a password is set (bytes; Redis 7's rule)."""

_HEADER_MAX = 24  # "*" or "$", up to 20 digits and a sign, CRLF
RESP_GETSEQ = b"*1\r\n$6\r\nGETSEQ\r\n"
"""A plain ``GETSEQ`` as redis-benchmark and redis-py send it: the one read the server's fused
reader compares whole before anything else."""
_PLAIN_GETSEQ = (RESP_GETSEQ, b"GETSEQ\r\n", b"GETSEQ\n")

OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
EMPTY_ARRAY = b"*0\r\n"
NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


class Parser:
    """Incremental request parser for one connection.

    :meth:`receive` every chunk read from the socket, then call :meth:`next_command` until
    it returns None (the rest is an unfinished command, kept for the next chunk). :meth:`feed`
    does both and returns every command completed. A malformed or oversize request raises
    :class:`ProtocolError`; the parser then stays broken (every later call raises again)
    because the stream cannot be resynchronised.

    ``max_args`` and ``max_bulk`` may be changed between commands (the server lowers them to
    Redis 7's unauthenticated limits until ``AUTH`` succeeds).

    ``_buffer`` is empty exactly when nothing is buffered (it is compacted at every command
    boundary, and emptied when the parser breaks): the dispatcher's fused plain-``GETSEQ``
    reader tests it directly, as one attribute read instead of a call to :attr:`buffered`.
    """

    __slots__ = (
        "_broken",
        "_buffer",
        "_bulk",
        "_count",
        "_items",
        "_pos",
        "_received",
        "_scan",
        "_tail",
        "max_args",
        "max_bulk",
        "max_line",
        "max_request_bytes",
    )

    def __init__(
        self,
        max_line: int = DEFAULT_MAX_LINE,
        max_bulk: int = DEFAULT_MAX_BULK,
        max_args: int = DEFAULT_MAX_ARGS,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        for name, value in (
            ("max_line", max_line),
            ("max_bulk", max_bulk),
            ("max_args", max_args),
            ("max_request_bytes", max_request_bytes),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgument(
                    f"{name} must be a positive int (bytes/elements), got {value!r}"
                )
        self.max_line = max_line
        self.max_bulk = max_bulk
        self.max_args = max_args
        self.max_request_bytes = max_request_bytes
        self._buffer = bytearray()
        self._pos = 0  # start of the command being parsed
        self._scan = 0  # where parsing resumes (past the elements or line already scanned)
        self._count = -1  # elements of the RESP array being parsed; -1: none
        self._bulk = -1  # length of the bulk string whose header was read; -1: none
        self._items: Command = []
        self._broken: str | None = None
        self._received = 0  # bytes received in all
        self._tail = (-1, 0)  # unfinished(): (self._received when found, the answer)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a command handed out."""
        return len(self._buffer) - self._pos

    def receive(self, data: bytes) -> None:
        """Add bytes read from the socket (any split); nothing is parsed yet."""
        if self._broken is not None:
            raise ProtocolError(self._broken)
        self._buffer += data
        self._received += len(data)

    def feed(self, data: bytes) -> list[Command]:
        """Add ``data`` and return every command it completes, in order.

        A fault raises :class:`ProtocolError` once every command complete before it has been
        returned: when ``data`` completes some, they are returned and the parser is left
        broken, so the next call raises.
        """
        self.receive(data)
        commands: list[Command] = []
        try:
            while (command := self.next_command()) is not None:
                commands.append(command)
        except ProtocolError:
            if not commands:
                raise
        return commands

    def next_command(self) -> Command | None:
        """The next complete command, or None while the rest of the input is unfinished."""
        if self._broken is not None:
            raise ProtocolError(self._broken)
        try:
            while True:
                if self._count < 0:
                    buf = self._buffer
                    pos = self._pos
                    if pos >= len(buf):
                        self._compact()
                        return None
                    if buf[pos] != 42:  # not b"*": an inline line
                        words = self._inline()
                        if words is None:
                            self._compact()
                            return None
                        if words:
                            return words
                        continue
                    count = self._header(pos, "multibulk")
                    if count is None:
                        self._compact()
                        return None
                    if count > self.max_args:
                        raise ProtocolError("Protocol error: invalid multibulk length")
                    if count <= 0:  # Redis ignores empty and null arrays
                        self._pos = self._scan
                        continue
                    self._count = count
                    self._items = []
                command = self._elements()
                if command is None:
                    self._check_unfinished()
                    self._compact()
                    return None
                return command
        except ProtocolError as exc:
            self._broken = str(exc)
            self._buffer = bytearray()
            self._pos = self._scan = 0
            raise

    # -- internals -------------------------------------------------------------------------

    def _inline(self) -> Command | None:
        buf = self._buffer
        pos = self._pos
        newline = buf.find(b"\n", max(self._scan, pos))
        if newline < 0:
            if len(buf) - pos > self.max_line:
                raise ProtocolError("Protocol error: too big inline request")
            self._scan = len(buf)  # the next read is searched from here on, not from pos
            return None
        if newline - pos > self.max_line:
            raise ProtocolError("Protocol error: too big inline request")
        words = bytes(buf[pos:newline]).split()
        self._pos = self._scan = newline + 1
        return words

    def _elements(self) -> Command | None:
        """Bulk strings of the array being parsed, from where the last call stopped."""
        buf = self._buffer
        end = len(buf)
        items = self._items
        scan = self._scan
        while len(items) < self._count:
            if self._bulk < 0:
                if scan >= end:
                    return None
                if buf[scan] != 36:  # b"$"
                    raise ProtocolError(f"Protocol error: expected '$', got '{_char(buf[scan])}'")
                length = self._header(scan, "bulk")
                if length is None:
                    return None
                if length < 0 or length > self.max_bulk:
                    raise ProtocolError("Protocol error: invalid bulk length")
                self._bulk = length
                scan = self._scan
            stop = scan + self._bulk
            if stop + 2 > end:
                return None
            if buf[stop : stop + 2] != b"\r\n":
                raise ProtocolError("Protocol error: bulk string not ended by CRLF")
            items.append(bytes(buf[scan:stop]))
            scan = self._scan = stop + 2
            self._bulk = -1
        if scan - self._pos > self.max_request_bytes:  # the same verdict however it was split
            raise ProtocolError(self._too_large())
        self._pos = scan
        self._count = -1
        self._items = []
        return items

    def _header(self, pos: int, what: str) -> int | None:
        """Read ``*N\\r\\n`` or ``$N\\r\\n`` at ``pos``: N (and ``_scan`` past it), None if cut."""
        buf = self._buffer
        crlf = buf.find(b"\r\n", pos, pos + _HEADER_MAX)
        if crlf < 0:
            if len(buf) - pos >= _HEADER_MAX:  # no CRLF within 24 bytes: not a number header
                raise ProtocolError(f"Protocol error: invalid {what} length")
            return None
        digits = bytes(buf[pos + 1 : crlf])
        if not digits or not (digits.isdigit() or (digits[:1] == b"-" and digits[1:].isdigit())):
            raise ProtocolError(f"Protocol error: invalid {what} length")
        self._scan = crlf + 2
        return int(digits)

    def plain_run(self, most: int) -> int:
        """How many :data:`RESP_GETSEQ` (at most ``most``) the unparsed input starts with, in
        a row (nothing is consumed; :meth:`skip_plain` does that).

        The general path answers such a run of a deep pipeline with one take, as the fused
        reader answers a read of them; each is one command to :meth:`next_command` too."""
        if self._count >= 0 or self._broken is not None or self._scan > self._pos:
            return 0
        buf = self._buffer
        pos = self._pos
        if not buf.startswith(RESP_GETSEQ, pos):
            return 0
        size = len(RESP_GETSEQ)
        times = min(most, (len(buf) - pos) // size)
        # k slots hold k non-overlapping copies only if they are nothing else: the longest
        # such prefix, in a few C-speed counts.
        if buf.count(RESP_GETSEQ, pos, pos + times * size) == times:
            return times
        good, bad = 1, times
        while bad - good > 1:
            middle = (good + bad) // 2
            if buf.count(RESP_GETSEQ, pos, pos + middle * size) == middle:
                good = middle
            else:
                bad = middle
        return good

    def unfinished(self) -> int:
        """Bytes of the unfinished command at the end of the unparsed input: what is left once
        every complete command in it is read, found on a copy (the commands are neither kept
        nor consumed; all of it when the copy breaks the protocol, since it will be refused).

        The server asks this of a connection whose commands wait behind a reservation, whose
        buffer may be complete commands (a deep pipeline: nothing to count) or an abuser's
        unfinished one (counted against the budget). Found once per read: the unfinished tail
        stays the same while the commands before it are handed out (40 waits behind one read
        would otherwise parse it 40 times on the event loop)."""
        received, tail = self._tail
        if received == self._received:
            return min(tail, self.buffered)
        rest = bytes(self._buffer[self._pos :])
        size = len(RESP_GETSEQ)
        whole = len(rest) // size
        if whole and rest.count(RESP_GETSEQ, 0, whole * size) == whole:
            rest = rest[whole * size :]  # a run of plain GETSEQs: only its tail to parse
        scratch = Parser(
            max_line=self.max_line,
            max_bulk=self.max_bulk,
            max_args=self.max_args,
            max_request_bytes=self.max_request_bytes,
        )
        scratch.receive(rest)
        try:
            while scratch.next_command() is not None:
                pass
            tail = scratch.buffered
        except ProtocolError:
            tail = len(rest)
        self._tail = (self._received, tail)
        return tail

    def skip_plain(self, times: int) -> None:
        """Consume ``times`` :data:`RESP_GETSEQ` counted by :meth:`plain_run`."""
        self._pos = self._scan = self._pos + times * len(RESP_GETSEQ)

    def _check_unfinished(self) -> None:
        # Everything from _pos on belongs to the command being received.
        if len(self._buffer) - self._pos > self.max_request_bytes:
            raise ProtocolError(self._too_large())

    def _too_large(self) -> str:
        return f"Protocol error: request larger than {self.max_request_bytes} bytes"

    def _compact(self) -> None:
        # Drop what was handed out, once per command boundary: the partial command left (at
        # most max_request_bytes) moves to the front and is not moved again while it grows.
        if self._pos:
            del self._buffer[: self._pos]
            self._scan -= self._pos
            self._pos = 0


def plain_getseqs(data: bytes, most: int) -> int:
    """How many plain ``GETSEQ`` (no argument; RESP as :data:`RESP_GETSEQ`, or inline ended
    by CRLF or LF) ``data`` is made of, when that is all it holds and they are at most
    ``most``; else 0.

    Only these exact byte forms count (``getseq``, extra spaces or ``GETSEQ 1`` do not): the
    server's fused reader answers such a read at once, when nothing is buffered before it,
    and hands any other read to :class:`Parser`, which stays the one home of the RESP rules
    (each of these forms is one command to it too). The fused reader compares a read with
    :data:`RESP_GETSEQ` itself first (the most common read) and calls this for the rest."""
    size = len(data)
    for pattern in _PLAIN_GETSEQ:
        times = data.count(pattern)
        if times and times * len(pattern) == size:
            return times if times <= most else 0
    return 0


def _char(byte: int) -> str:
    return chr(byte) if 32 < byte < 127 else f"\\x{byte:02x}"


def shown(raw: bytes, limit: int = 128) -> str:
    """``raw`` as printable text for an error reply or a log line: bytes outside printable
    ASCII as ``\\xNN``, at most ``limit`` bytes shown, so a client cannot inject control
    bytes (NUL, escape sequences, CR/LF) into what a terminal or a log displays."""
    part = raw[:limit]
    text = "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02x}" for b in part)
    return text + ("..." if len(raw) > limit else "")


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()
"""What :meth:`ReplyParser.next_reply` returns while the next reply is incomplete."""

Reply = int | bytes | None | list["Reply"] | SequencerReplyError
"""A decoded reply: an integer, a simple or bulk string, None (null), an array, or the
error a ``-`` reply stands for (returned, not raised: the client decides)."""

REPLY_ERRORS: dict[str, type[SequencerReplyError]] = {
    "MOVED": SequencerMoved,
    "TRYAGAIN": SequencerTryAgain,
    "NOAUTH": SequencerNoAuth,
    "WRONGPASS": SequencerWrongPass,
}
"""Error reply prefix → the exception class a client raises for it (others:
:class:`~chronoid.errors.SequencerReplyError`)."""


def reply_error(text: str) -> SequencerReplyError:
    """The exception for the error reply ``text`` (without its ``-``), by its prefix."""
    prefix = text.split(" ", 1)[0]
    kind = REPLY_ERRORS.get(prefix, SequencerReplyError)
    if kind is SequencerMoved:
        parts = text.split()
        try:
            address = parse_address(parts[2]) if len(parts) == 3 else None
        except InvalidArgument:
            address = None
        if address is None:
            return SequencerReplyError(text)
        return SequencerMoved(text, address)
    return kind(text)


class ReplyParser:
    """Incremental RESP2/RESP3 reply parser for one client connection (sans-I/O).

    :meth:`receive` the bytes read, then :meth:`next_reply` until it returns
    :data:`NEED_DATA`. A reply that is not RESP raises :class:`ProtocolError` (the connection
    is out of step and must be closed). Both sequencer clients use it.
    """

    __slots__ = ("_buffer", "_pos")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pos = 0

    def receive(self, data: bytes) -> None:
        """Add bytes read from the socket."""
        if self._pos and self._pos >= len(self._buffer):
            self._buffer.clear()
            self._pos = 0
        self._buffer += data

    def next_reply(self) -> Reply | _NeedData:
        """The next complete reply, or :data:`NEED_DATA`."""
        parsed = self._parse(self._pos, 0)
        if parsed is None:
            return NEED_DATA
        reply, self._pos = parsed
        return reply

    def _parse(self, pos: int, depth: int) -> tuple[Reply, int] | None:
        buf = self._buffer
        crlf = buf.find(b"\r\n", pos)
        if crlf < 0:
            return None
        kind = buf[pos]
        rest = bytes(buf[pos + 1 : crlf])
        after = crlf + 2
        try:
            if kind == 58:  # ":"
                return int(rest), after
            if kind == 43:  # "+"
                return rest, after
            if kind == 45:  # "-"
                return reply_error(rest.decode("utf-8", "replace")), after
            if kind in (36, 61):  # "$" bulk, "=" verbatim
                length = int(rest)
                if length < 0:
                    return None, after
                if after + length + 2 > len(buf):
                    return None
                return bytes(buf[after : after + length]), after + length + 2
            if kind == 95:  # "_" RESP3 null
                return None, after
            if kind in (42, 37, 126):  # "*" array, "%" map (flattened), "~" set
                count = int(rest) * (2 if kind == 37 else 1)
                if count < 0:
                    return None, after
                if depth > 8:
                    raise ProtocolError("reply nested deeper than 8 levels")
                items: list[Reply] = []
                for _ in range(count):
                    parsed = self._parse(after, depth + 1)
                    if parsed is None:
                        return None
                    item, after = parsed
                    items.append(item)
                return items, after
        except ValueError:
            raise ProtocolError(f"bad reply header {bytes(buf[pos:crlf])[:64]!r}") from None
        raise ProtocolError(f"unexpected reply {bytes(buf[pos:crlf])[:64]!r}")


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``[::1]:10001``) as ``(host, port)``; InvalidArgument if not:
    the one endpoint rule (:func:`chronoid.endpoints.parse_endpoint`) for a server address."""
    return parse_endpoint(text.strip(), default_port=None, what="server address")


def encode_command(*args: bytes) -> bytes:
    """One request as a RESP array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


INTEGER = b":%d\r\n"
"""The integer reply's format: ``INTEGER % value`` is ``:value\\r\\n``. The ``GETSEQ`` fast
path formats with it in place: the ``%`` operator costs about half of what calling
``b":%d\\r\\n".__mod__`` (a method wrapper) costs, formatting included."""

encode_integer = INTEGER.__mod__
"""``encode_integer(value)`` is ``:value\\r\\n``."""


def encode_integers(first: int, count: int) -> bytes:
    """The replies ``:first``, ``:first+1`` ... ``count`` of them, in one buffer."""
    return b":%d\r\n" * count % tuple(range(first, first + count))


def encode_simple(text: str) -> bytes:
    """``+text\\r\\n`` (CR and LF in ``text`` are replaced so the reply stays one line)."""
    return b"+" + _one_line(text) + b"\r\n"


def encode_error(text: str) -> bytes:
    """``-text\\r\\n``; ``text`` starts with a Redis prefix (``ERR``, ``NOAUTH``, ...)."""
    return b"-" + _one_line(text) + b"\r\n"


def encode_bulk(data: bytes | str) -> bytes:
    """``$len\\r\\ndata\\r\\n``."""
    raw = data.encode() if isinstance(data, str) else data
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


def encode_array(items: Iterable[bytes]) -> bytes:
    """An array of already encoded replies."""
    parts = list(items)
    return b"*%d\r\n" % len(parts) + b"".join(parts)


def encode_map(pairs: Iterable[tuple[bytes, bytes]], resp3: bool) -> bytes:
    """Bulk-string keys with already encoded values: a RESP3 map (``%N``), or for RESP2 the
    flat array of keys and values (``*2N``), as Redis answers ``HELLO``."""
    parts = [encode_bulk(key) + value for key, value in pairs]
    head = b"%%%d\r\n" % len(parts) if resp3 else b"*%d\r\n" % (2 * len(parts))
    return head + b"".join(parts)


def _one_line(text: str) -> bytes:
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
