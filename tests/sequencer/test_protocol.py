"""The sans-I/O parser and encoder: exact forms, limits, and fuzzing three ways."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoid.errors import (
    InvalidArgument,
    ProtocolError,
    SequencerMoved,
    SequencerNoAuth,
    SequencerReplyError,
    SequencerTryAgain,
    SequencerWrongPass,
)
from chronoid.sequencer.protocol import (
    NEED_DATA,
    REPLY_ERRORS,
    RESP_GETSEQ,
    UNAUTHENTICATED_MAX_ARGS,
    UNAUTHENTICATED_MAX_BULK,
    Parser,
    ReplyParser,
    encode_array,
    encode_bulk,
    encode_error,
    encode_integer,
    encode_simple,
    plain_getseqs,
)


def resp(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def test_inline_crlf_and_bare_lf_and_pipelining() -> None:
    parser = Parser()
    assert parser.feed(b"GETSEQ\r\nCURRENT\nGETSEQ 10 tx\r\n\r\n  \n") == [
        [b"GETSEQ"],
        [b"CURRENT"],
        [b"GETSEQ", b"10", b"tx"],
    ]
    assert parser.buffered == 0


def test_resp_arrays_mixed_with_inline_and_split() -> None:
    parser = Parser()
    data = resp(b"GETSEQ", b"5") + b"PING\r\n" + resp(b"CLIENT", b"SETINFO", b"lib-name", b"x y")
    assert parser.feed(data[:7]) == []
    assert parser.feed(data[7:]) == [
        [b"GETSEQ", b"5"],
        [b"PING"],
        [b"CLIENT", b"SETINFO", b"lib-name", b"x y"],
    ]


def test_bulk_may_hold_crlf_and_empty_arrays_are_ignored() -> None:
    assert Parser().feed(b"*0\r\n*-1\r\n" + resp(b"PING", b"a\r\nb")) == [[b"PING", b"a\r\nb"]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*1\r\n:5\r\n", "expected '$', got ':'"),
        (b"*x\r\n", "invalid multibulk length"),
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$2\r\nabcd\r\n", "not ended by CRLF"),
        (b"*2000\r\n", "invalid multibulk length"),
        (b"*1\r\n$999999\r\n", "invalid bulk length"),
    ],
)
def test_malformed_input_is_a_protocol_error(data: bytes, message: str) -> None:
    parser = Parser(max_bulk=1024)
    with pytest.raises(ProtocolError, match=re.escape(message)):
        parser.feed(data)
    with pytest.raises(ProtocolError):  # the stream cannot be resynchronised
        parser.feed(b"PING\r\n")


def test_commands_before_the_fault_are_kept() -> None:
    parser = Parser()
    assert parser.feed(b"GETSEQ\r\nPING\r\n*1\r\n:1\r\n") == [[b"GETSEQ"], [b"PING"]]
    with pytest.raises(ProtocolError, match="expected '\\$', got ':'"):
        parser.feed(b"")  # the fault comes once the commands before it are out


def test_oversize_inline_line_with_and_without_newline() -> None:
    with pytest.raises(ProtocolError, match="too big inline request"):
        Parser(max_line=16).feed(b"A" * 17 + b"\r\n")
    parser = Parser(max_line=16)
    parser.feed(b"A" * 16)
    with pytest.raises(ProtocolError, match="too big inline request"):
        parser.feed(b"A")


def test_limits_are_validated() -> None:
    with pytest.raises(InvalidArgument, match="max_line"):
        Parser(max_line=0)


def test_encoders() -> None:
    assert encode_integer(42) == b":42\r\n"
    assert encode_simple("OK") == b"+OK\r\n"
    assert encode_error("ERR a\r\nb") == b"-ERR a  b\r\n"
    assert encode_bulk("hé") == b"$3\r\nh\xc3\xa9\r\n"
    assert encode_array([encode_integer(1), encode_bulk(b"")]) == b"*2\r\n:1\r\n$0\r\n\r\n"


words = st.binary(min_size=1, max_size=20)
inline_words = st.binary(min_size=1, max_size=10).filter(
    lambda w: not any(c in w for c in b" \t\r\n\x0b\x0c") and not w.startswith(b"*")
)
commands = st.one_of(
    st.lists(words, min_size=1, max_size=5).map(lambda ws: ("resp", ws)),
    st.lists(inline_words, min_size=1, max_size=5).map(lambda ws: ("inline", ws)),
)


def encode_command(kind: str, ws: list[bytes]) -> bytes:
    return resp(*ws) if kind == "resp" else b" ".join(ws) + b"\r\n"


def feed_all(parser: Parser, chunks: list[bytes]) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    # feed returns the commands before a fault and raises it on the next call: make that
    # call, or a fault behind a command in the last chunk would go unseen.
    return out + parser.feed(b"")


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=8), st.data())
def test_fuzz_same_commands_whole_chunked_and_bytewise(
    cmds: list[tuple[str, list[bytes]]], data: st.DataObject
) -> None:
    stream = b"".join(encode_command(k, ws) for k, ws in cmds)
    expected = [ws for _, ws in cmds]
    assert Parser().feed(stream) == expected
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_all(Parser(), chunks) == expected
    assert feed_all(Parser(), [stream[i : i + 1] for i in range(len(stream))]) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.data())
def test_fuzz_arbitrary_bytes_raise_only_protocol_error(raw: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    results = []
    for pieces in ([raw], chunks, [raw[i : i + 1] for i in range(len(raw))]):
        parser = Parser(max_line=64, max_bulk=64, max_args=8)
        try:
            got = feed_all(parser, pieces)
            failed = False
        except ProtocolError:
            failed = True
            got = []
        for command in got:
            assert command and all(isinstance(w, bytes) for w in command)
        results.append((failed, got))
    # Splitting never changes the verdict or, without a fault, the commands.
    assert results[0][0] == results[1][0] == results[2][0]
    if not results[0][0]:
        assert results[0][1] == results[1][1] == results[2][1]


# -- limits that protect the server ----------------------------------------------------------


_PLAIN_PARTS = [RESP_GETSEQ, b"GETSEQ\r\n", b"GETSEQ\n", b"getseq\r\n", b"GETSEQ 1\r\n", b"\r\n"]


@given(st.lists(st.sampled_from(_PLAIN_PARTS), max_size=12), st.binary(max_size=4))
def test_plain_getseqs_counts_only_what_the_parser_reads_as_that_many_plain_getseqs(
    parts: list[bytes], noise: bytes
) -> None:
    # The fused reader answers plain_getseqs(data) values without the parser: the count must
    # be exactly the commands the parser finds, each a bare GETSEQ, and 0 for anything else.
    for data in (b"".join(parts), b"".join(parts) + noise, noise + b"".join(parts)):
        times = plain_getseqs(data, 1024)
        if times:
            assert _commands_or_fault(data) == [[b"GETSEQ"]] * times
            assert data in (RESP_GETSEQ * times, b"GETSEQ\r\n" * times, b"GETSEQ\n" * times)
            assert plain_getseqs(data, times - 1) == 0  # more than allowed: none


@given(
    st.lists(st.sampled_from([*_PLAIN_PARTS, RESP_GETSEQ * 7, b"PING\r\n"]), max_size=40),
    st.lists(st.integers(1, 64), min_size=1, max_size=8),
    st.integers(1, 9),
)
def test_plain_runs_taken_at_once_are_the_commands_the_parser_reads(
    parts: list[bytes], cuts: list[int], most: int
) -> None:
    # The server's general path takes runs of RESP plain GETSEQs at once (plain_run, then
    # skip_plain) and parses everything else: fed in any split, that must yield exactly the
    # commands next_command alone yields, in order.
    data = b"".join(parts)
    expected = _commands_or_fault(data)
    if expected is None:
        return
    parser, got, at, step = Parser(), [], 0, 0
    while at < len(data):
        size = cuts[step % len(cuts)]
        parser.receive(data[at : at + size])
        at, step = at + size, step + 1
        while True:
            times = parser.plain_run(most)
            if times:
                assert 1 <= times <= most
                assert times == most or parser.plain_run(times + 1) == times  # the whole run
                parser.skip_plain(times)
                got.extend([[b"GETSEQ"]] * times)
                continue
            command = parser.next_command()
            if command is None:
                break
            got.append(command)
    assert got == expected and parser.buffered == 0


def _commands_or_fault(data: bytes) -> list[list[bytes]] | None:
    parser = Parser()
    try:
        commands = parser.feed(data)
    except ProtocolError:
        return None
    return commands if not parser.buffered else None


def test_plain_getseqs_exact_forms() -> None:
    assert plain_getseqs(RESP_GETSEQ, 1024) == 1
    assert plain_getseqs(RESP_GETSEQ * 1024, 1024) == 1024
    assert plain_getseqs(RESP_GETSEQ * 1025, 1024) == 0  # more than one turn: general path
    assert plain_getseqs(b"GETSEQ\n" * 3, 1024) == 3
    for other in (b"", b"getseq\r\n", b"GETSEQ \r\n", RESP_GETSEQ[:-1], b"GETSEQ\r\nGETSEQ\n"):
        assert plain_getseqs(other, 1024) == 0, other


def test_a_command_over_max_request_bytes_is_refused_however_it_is_split() -> None:
    command = resp(b"PING", b"x" * 700, b"y" * 700)
    for pieces in ([command], [command[i : i + 1] for i in range(len(command))]):
        parser = Parser(max_request_bytes=1024)
        with pytest.raises(ProtocolError, match="request larger than 1024 bytes"):
            for piece in pieces:
                parser.feed(piece)
    assert Parser(max_request_bytes=2048).feed(command) == [[b"PING", b"x" * 700, b"y" * 700]]


def test_an_endless_array_holds_at_most_max_request_bytes() -> None:
    parser = Parser(max_request_bytes=4096)
    parser.receive(b"*1000\r\n")
    with pytest.raises(ProtocolError):
        for _ in range(1000):
            parser.receive(b"$10\r\n0123456789\r\n")
            assert parser.next_command() is None
            assert parser.buffered <= 4096 + 16


def test_limits_may_change_between_commands() -> None:
    parser = Parser(max_args=UNAUTHENTICATED_MAX_ARGS, max_bulk=UNAUTHENTICATED_MAX_BULK)
    parser.receive(resp(b"AUTH", b"pw") + resp(*[b"a"] * 11))
    assert parser.next_command() == [b"AUTH", b"pw"]
    parser.max_args = 1024  # what the server does once AUTH succeeded
    assert parser.next_command() == [b"a"] * 11
    locked = Parser(max_args=UNAUTHENTICATED_MAX_ARGS)
    with pytest.raises(ProtocolError, match="invalid multibulk length"):
        locked.feed(resp(*[b"a"] * 11))


# -- the clients' reply parser ---------------------------------------------------------------


REPLIES = (
    b":42\r\n+OK\r\n$5\r\nhe\r\nl\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n%1\r\n+k\r\n:2\r\n_\r\n"
    b"-MOVED 0 10.0.0.2:10001\r\n-TRYAGAIN no leader\r\n-NOAUTH Authentication required.\r\n"
    b"-WRONGPASS invalid\r\n-ERR other\r\n"
)


def replies_of(pieces: list[bytes]) -> list[object]:
    parser = ReplyParser()
    out: list[object] = []
    for piece in pieces:
        parser.receive(piece)
        while (reply := parser.next_reply()) is not NEED_DATA:
            out.append(reply)
    return out


def test_reply_parser_whole_and_bytewise_with_typed_errors() -> None:
    for pieces in ([REPLIES], [REPLIES[i : i + 1] for i in range(len(REPLIES))]):
        got = replies_of(pieces)
        assert got[:6] == [42, b"OK", b"he\r\nl", None, [1, b""], [b"k", 2]]
        assert got[6] is None
        moved, again, noauth, wrongpass, other = got[7:]
        assert isinstance(moved, SequencerMoved) and moved.address == ("10.0.0.2", 10001)
        assert type(again) is SequencerTryAgain and str(again) == "TRYAGAIN no leader"
        assert type(noauth) is SequencerNoAuth
        assert type(wrongpass) is SequencerWrongPass
        assert type(other) is SequencerReplyError and str(other) == "ERR other"
    assert set(REPLY_ERRORS) == {"MOVED", "TRYAGAIN", "NOAUTH", "WRONGPASS"}
    with pytest.raises(ProtocolError):
        replies_of([b"?what\r\n"])


@given(st.lists(st.sampled_from([*_PLAIN_PARTS, b"PING\r\n", b"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n"])))
def test_unfinished_is_the_tail_the_parser_is_left_holding(parts: list[bytes]) -> None:
    # Asked while commands wait behind a reservation: the bytes of the unfinished command at
    # the end, without consuming anything, for every cut of the input.
    data = b"".join(parts)
    for cut in range(len(data) + 1):
        parser = Parser()
        parser.receive(data[:cut])
        asked = parser.unfinished()
        assert parser.buffered == cut  # nothing consumed
        try:
            parser.feed(b"")
        except ProtocolError:
            continue
        assert asked == parser.buffered
        assert parser.unfinished() == parser.buffered  # kept for the read: the same tail
