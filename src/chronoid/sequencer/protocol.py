"""The sequencer's wire protocol, sans-I/O: bytes in, commands out; values in, reply bytes out.

Two request forms are accepted, as Redis does:

* **inline**: one line of words separated by spaces or tabs, ended by ``\\r\\n`` or a bare
  ``\\n`` (what ``telnet``, ``nc`` and ``echo CURRENT | nc`` send);
* **RESP arrays of bulk strings**: ``*2\\r\\n$6\\r\\nGETSEQ\\r\\n$2\\r\\n10\\r\\n`` (what
  redis-cli, redis-benchmark and redis-py send).

Any number of commands may arrive in one read (pipelining) and a command may be split over
any number of reads. Nothing here touches a socket or an event loop, so the parser is tested
and fuzzed without a network. Size limits protect the server: an inline line or a bulk
string longer than the limit, or an array with too many elements, is a :class:`ProtocolError`
after which the connection must be closed (the parser refuses further input).
"""

from __future__ import annotations

from collections.abc import Iterable

from chronoid.errors import InvalidArgument, ProtocolError

__all__ = [
    "DEFAULT_MAX_ARGS",
    "DEFAULT_MAX_BULK",
    "DEFAULT_MAX_LINE",
    "Command",
    "Parser",
    "encode_array",
    "encode_bulk",
    "encode_error",
    "encode_integer",
    "encode_simple",
]

Command = list[bytes]
"""One request: its words, the command name first (case as sent)."""

DEFAULT_MAX_LINE = 64 * 1024
"""Longest inline line or RESP header line accepted (bytes); Redis uses 64 KiB too."""
DEFAULT_MAX_BULK = 64 * 1024
"""Longest RESP bulk string accepted (bytes); no sequencer argument needs more."""
DEFAULT_MAX_ARGS = 1024
"""Most elements accepted in one RESP array."""


class Parser:
    """Incremental request parser for one connection.

    Feed it every chunk read from the socket; :meth:`feed` returns the commands completed so
    far. Incomplete input is kept for the next call. A malformed or oversize request raises
    :class:`ProtocolError` carrying the commands completed before it; the parser then stays
    broken (every later :meth:`feed` raises again) because the stream cannot be resynchronised.
    """

    __slots__ = ("_broken", "_buffer", "max_args", "max_bulk", "max_line")

    def __init__(
        self,
        max_line: int = DEFAULT_MAX_LINE,
        max_bulk: int = DEFAULT_MAX_BULK,
        max_args: int = DEFAULT_MAX_ARGS,
    ) -> None:
        for name, value in (("max_line", max_line), ("max_bulk", max_bulk), ("max_args", max_args)):
            if not isinstance(value, int) or value < 1:
                raise InvalidArgument(
                    f"{name} must be a positive int (bytes/elements), got {value!r}"
                )
        self.max_line = max_line
        self.max_bulk = max_bulk
        self.max_args = max_args
        self._buffer = b""
        self._broken: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete command."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Command]:
        """Add ``data`` and return every command it completes, in order."""
        if self._broken is not None:
            raise ProtocolError(self._broken)
        buf = self._buffer + data if self._buffer else data
        commands: list[Command] = []
        pos = 0
        end = len(buf)
        try:
            while pos < end:
                if buf[pos] == 42:  # b"*"
                    parsed = self._parse_array(buf, pos)
                    if parsed is None:
                        break
                    command, pos = parsed
                    if command:
                        commands.append(command)
                    continue
                newline = buf.find(b"\n", pos)
                if newline < 0:
                    if end - pos > self.max_line:
                        raise ProtocolError("Protocol error: too big inline request")
                    break
                if newline - pos > self.max_line:
                    raise ProtocolError("Protocol error: too big inline request")
                words = buf[pos:newline].split()
                pos = newline + 1
                if words:
                    commands.append(words)
        except ProtocolError as exc:
            self._broken = str(exc)
            self._buffer = b""
            exc.commands = commands
            raise
        self._buffer = buf[pos:] if pos < end else b""
        return commands

    def _parse_array(self, buf: bytes, pos: int) -> tuple[Command, int] | None:
        """Parse one RESP array at ``pos``; ``None`` while it is incomplete."""
        count, pos = self._header(buf, pos, "multibulk")
        if count is None:
            return None
        if count > self.max_args:
            raise ProtocolError("Protocol error: invalid multibulk length")
        if count <= 0:  # Redis ignores empty and null arrays
            return [], pos
        command: Command = []
        end = len(buf)
        for _ in range(count):
            if pos >= end:
                return None
            if buf[pos] != 36:  # b"$"
                got = chr(buf[pos]) if 32 < buf[pos] < 127 else f"\\x{buf[pos]:02x}"
                raise ProtocolError(f"Protocol error: expected '$', got '{got}'")
            length, pos = self._header(buf, pos, "bulk")
            if length is None:
                return None
            if length < 0 or length > self.max_bulk:
                raise ProtocolError("Protocol error: invalid bulk length")
            stop = pos + length
            if stop + 2 > end:
                return None
            if buf[stop : stop + 2] != b"\r\n":
                raise ProtocolError("Protocol error: bulk string not ended by CRLF")
            command.append(buf[pos:stop])
            pos = stop + 2
        return command, pos

    def _header(self, buf: bytes, pos: int, what: str) -> tuple[int | None, int]:
        """Read ``*N\\r\\n`` or ``$N\\r\\n`` at ``pos``: (N, position after), N None if cut."""
        crlf = buf.find(b"\r\n", pos, pos + 24)
        if crlf < 0:
            if len(buf) - pos >= 24:  # no CRLF within 24 bytes: not a number header
                raise ProtocolError(f"Protocol error: invalid {what} length")
            return None, pos
        digits = buf[pos + 1 : crlf]
        if not digits or not (digits.isdigit() or (digits[:1] == b"-" and digits[1:].isdigit())):
            raise ProtocolError(f"Protocol error: invalid {what} length")
        return int(digits), crlf + 2


def encode_integer(value: int) -> bytes:
    """``:value\\r\\n``."""
    return b":%d\r\n" % value


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


def _one_line(text: str) -> bytes:
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
