"""Command dispatch without a network: exact reply bytes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from chronoid.errors import InvalidArgument
from chronoid.sequencer.commands import SUPPORTED, ConnectionState, Dispatcher, Standalone, Wait
from chronoid.sequencer.protocol import RESP_GETSEQ, Parser
from chronoid.sequencer.sequences import Sequences
from chronoid.sequencer.store import FileStore
from tests.sequencer.test_sequences import FullDiskStore, StallingStore, stored


@pytest.fixture
def dispatcher(tmp_path: Path) -> Dispatcher:
    return Dispatcher(Standalone(Sequences(FileStore(tmp_path))))


def run(d: Dispatcher, *lines: str) -> bytes:
    """The replies to ``lines``, waiting (as the server does) for reservations."""
    state = d.new_state()
    replies = []
    for line in lines:
        reply = d.execute(state, line.encode().split())
        while isinstance(reply, Wait):
            reply.future.result(5)
            reply = d.resume(state, reply)
        replies.append(reply)
    return b"".join(replies)


class _Link:
    """The connection a fused reader serves, reduced to what it touches: the replies it
    writes and the reads it hands to the general path are collected."""

    def __init__(self) -> None:
        self.waiting: Wait | None = None
        self.last_active = 0.0
        self.now = 1.0  # the server's cached clock
        self.transport = self
        self.written: list[bytes] = []
        self.handed: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def plain(d: Dispatcher, state: ConnectionState, times: int) -> bytes | None:
    """What the fused reader answers to ``times`` plain GETSEQ in one read (None: it handed
    the read to the general path)."""
    link = _Link()
    read = d.plain_reader(state, Parser(), link, link, link.handed.append, 1024)
    read(RESP_GETSEQ * times)
    assert link.last_active == 1.0
    assert len(link.written) + len(link.handed) == 1
    return link.written[0] if link.written else None


def test_spec_commands(dispatcher: Dispatcher) -> None:
    assert run(dispatcher, "GETSEQ", "GETSEQ", "GETSEQ", "CURRENT", "CURRENT", "GETSEQ") == (
        b":1\r\n:2\r\n:3\r\n:4\r\n:4\r\n:4\r\n"
    )
    assert run(dispatcher, "getseq") == b":5\r\n"  # names are case-insensitive, as in Redis


def test_unknown_command_lists_everything(dispatcher: Dispatcher) -> None:
    assert run(dispatcher, "FOOBAR") == (
        b"-ERR Unknown command 'FOOBAR'. Supported: " + ", ".join(SUPPORTED).encode() + b"\r\n"
    )
    assert run(dispatcher, "PING a b") == b"-ERR wrong number of arguments for 'ping' command\r\n"


def test_connect_handshakes(dispatcher: Dispatcher) -> None:
    assert run(dispatcher, "CLIENT SETINFO lib-name redis-py") == b"+OK\r\n"
    assert run(dispatcher, "COMMAND DOCS") == b"*0\r\n"
    assert run(dispatcher, "SELECT 0") == b"+OK\r\n"
    assert run(dispatcher, "SELECT 1") == b"-ERR DB index is out of range\r\n"
    assert run(dispatcher, "CONFIG GET save") == b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
    hello3 = run(dispatcher, "HELLO 3")
    assert hello3.startswith(b"%7\r\n$6\r\nserver\r\n") and b"$5\r\nproto\r\n:3\r\n" in hello3
    assert run(dispatcher, "HELLO 2").startswith(b"*14\r\n")
    assert run(dispatcher, "HELLO 4") == b"-NOPROTO unsupported protocol version\r\n"
    assert run(dispatcher, "PING") == b"+PONG\r\n"
    assert run(dispatcher, "PING hi") == b"$2\r\nhi\r\n"
    assert run(dispatcher, "QUIT") == b"+OK\r\n"
    info = run(dispatcher, "INFO")
    assert info.startswith(b"$") and b"seq_default:next=1" in info


def test_auth(tmp_path: Path) -> None:
    d = Dispatcher(Standalone(Sequences(FileStore(tmp_path))), password="pw")
    state = d.new_state()
    assert d.execute(state, [b"GETSEQ"]) == b"-NOAUTH Authentication required.\r\n"
    assert plain(d, state, 5) is None  # the fast path refuses too
    assert d.execute(state, [b"HELLO", b"3"]) == b"-NOAUTH Authentication required.\r\n"
    assert d.execute(state, [b"AUTH", b"bad"]) == (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    )
    assert d.execute(state, [b"AUTH", b"someone", b"pw"]).startswith(b"-WRONGPASS")
    assert d.execute(state, [b"HELLO", b"3", b"AUTH", b"default", b"pw"]).startswith(b"%7")
    assert d.execute(state, [b"GETSEQ"]) == b":1\r\n"  # nothing was consumed before AUTH
    with pytest.raises(InvalidArgument, match="password"):
        Dispatcher(d.gate, password="")


def test_fast_path_gives_the_general_path_values(dispatcher: Dispatcher) -> None:
    state = dispatcher.new_state()
    assert plain(dispatcher, state, 3) == b":1\r\n:2\r\n:3\r\n"
    assert dispatcher.execute(state, [b"GETSEQ"]) == b":4\r\n"
    assert dispatcher.requests["GETSEQ"] == 4


def test_the_fused_reader_stops_at_the_durable_watermark(tmp_path: Path) -> None:
    # Blocks of 8: the fused reader's prefetches keep it going; then the disk fills up and it
    # answers exactly up to the watermark made durable, then hands every read to the general
    # path (which answers -ERR, consuming nothing).
    store = FullDiskStore(tmp_path)
    sequences = Sequences(store, block_min=8, block_max=8)
    d = Dispatcher(Standalone(sequences))
    state = d.new_state()
    link = _Link()
    read = d.plain_reader(state, Parser(), link, link, link.handed.append, 1024)
    answered: list[int] = []
    record = sequences.fast_take_parts()[0]
    while len(answered) < 100 or (record.future is not None and not record.future.done()):
        read(RESP_GETSEQ)
        if link.handed:  # headroom used up before the prefetch landed: wait for it
            assert record.future is not None
            record.future.result(5)
            link.handed.clear()
            continue
        answered.append(int(link.written.pop()[1:-2]))
    store.full = True
    while not link.handed:
        read(RESP_GETSEQ)
        if link.written:
            answered.append(int(link.written.pop()[1:-2]))
    assert answered == list(range(1, len(answered) + 1))
    assert answered[-1] == stored(tmp_path)["default"] - 1  # never above it
    assert sequences.stats.values_issued == len(answered)
    assert d.requests["GETSEQ"] == len(answered)
    reply = d.execute(state, [b"GETSEQ"])
    while isinstance(reply, Wait):
        reply.future.result(5)
        reply = d.resume(state, reply)
    assert reply.startswith(b"-ERR reservation failed")
    assert sequences.current() == answered[-1] + 1  # the refusal consumed nothing


def test_counts_and_names(dispatcher: Dispatcher) -> None:
    assert run(dispatcher, "GETSEQ 10", "GETSEQ 3 tx", "CURRENT tx", "CURRENT") == (
        b":1\r\n:1\r\n:4\r\n:11\r\n"
    )
    for bad in ("0", "-1", "abc", "1000001", "99999999999", "1.5"):
        reply = run(dispatcher, f"GETSEQ {bad}")
        assert reply.startswith(b"-ERR count must be an integer in 1..1000000"), bad
    assert run(dispatcher, "GETSEQ 1 bad/name").startswith(b"-ERR sequence name")
    assert run(dispatcher, "GETSEQ 1 a b").startswith(b"-ERR wrong number of arguments")
    assert run(dispatcher, "CURRENT") == b":11\r\n"  # errors consumed nothing


class _Terms:
    """A failover gate reduced to its state: the sequences of the live term, or None."""

    def __init__(self, sequences: Sequences | None) -> None:
        self.live = sequences
        self.asked = 0

    def serving(self) -> Sequences | None:
        self.asked += 1
        return self.live

    def refusal(self) -> bytes:
        return b"-TRYAGAIN no sequencer leader available: test\r\n"

    def info(self) -> None:
        return None


def test_take_then_check_across_terms(tmp_path: Path) -> None:
    first = Sequences(FileStore(tmp_path / "a"))
    second = Sequences(FileStore(tmp_path / "b"), initial=1000)
    gate = _Terms(first)
    d = Dispatcher(gate)
    state = d.new_state()
    assert d.execute(state, [b"GETSEQ"]) == b":1\r\n"  # gate asked before and after
    asked = gate.asked
    assert plain(d, state, 2) == b":2\r\n:3\r\n"
    assert d.execute(state, [b"GETSEQ"]) == b":4\r\n"
    assert gate.asked - asked == 2  # then once per take, after it
    gate.live = None  # the term is over
    assert plain(d, state, 3) is None  # taken, then found over: a gap, not served
    assert d.execute(state, [b"GETSEQ"]) == gate.refusal()
    assert first.current() == 8  # the fast path's 3 values are a gap; the refusal took none
    assert d.execute(state, [b"GETSEQ"]) == gate.refusal()
    assert first.current() == 8  # a standby takes nothing: the gate is asked first again
    gate.live = second  # a new term: its values, never the old term's
    assert d.execute(state, [b"GETSEQ"]) == b":1000\r\n"
    assert plain(d, state, 1) == b":1001\r\n"
    gate.live = first  # lent last: second; the check after the take sees the change
    assert d.execute(state, [b"GETSEQ"]) == b":8\r\n"
    assert second.current() == 1003  # one value of second became a gap


def test_a_take_after_the_term_ended_cannot_break_the_clean_stop(tmp_path: Path) -> None:
    # Elector.close() ends the term, then (an executor thread) stores each sequence's exact
    # next value and resigns, while the event loop may still resume a GETSEQ whose creation
    # was in flight (Sequences.close() waits for it first). Take-then-check takes before
    # asking the gate, so that take runs on the sequences being closed: it must be refused
    # and leave close() whole.
    store = StallingStore(tmp_path)
    sequences = Sequences(store)
    gate = _Terms(sequences)
    d = Dispatcher(gate)
    state = d.new_state()
    assert d.execute(state, [b"GETSEQ"]) == b":1\r\n"  # lent: sequences
    wait = d.execute(state, [b"GETSEQ", b"1", b"fresh"])
    assert isinstance(wait, Wait)
    wait.future.result(5)  # durable, not yet promoted: the connection resumes it next
    gate.live = None  # the term is over ...
    store.gate.clear()
    failures: list[BaseException] = []

    def close() -> None:
        try:
            sequences.close()
        except BaseException as exc:  # the thread would only print it
            failures.append(exc)

    closer = threading.Thread(target=close)
    closer.start()  # ... and close() is storing the default's exact next value
    assert store.stalled.wait(5)
    assert d.resume(state, wait) == gate.refusal()  # taken, then refused: a gap
    store.gate.set()
    closer.join(5)
    store.inner.close()
    assert failures == []
    assert stored(tmp_path)["default"] == 2  # the exact next value: no gap
