"""Attacks found after the hardening of issue 13 (each failed on the code before its fix).

Same rules as ``test_abuse.py``: a real server process, raw sockets, generous orderings (no
timings): the abuser's effect on memory and on a well-behaved client, and what it gets back.
"""

from __future__ import annotations

import contextlib
import socket
import time

from tests.sequencer.conftest import ServerProcess, StartServer, exchange
from tests.sequencer.test_abuse import WellBehaved
from tests.support import rss_kib


def test_small_commands_with_large_replies_never_read_cost_no_memory(
    server: ServerProcess,
) -> None:
    # "INFO\n" is 5 bytes and its reply over a KiB: one 256 KiB read of them used to build a
    # 50 MiB reply in one go (every other client waiting meanwhile), for a client that never
    # reads it. Now each turn produces at most 64 KiB and waits for the client to read.
    before = rss_kib(server.process.pid)
    abusers = []
    with WellBehaved(server.port) as probe:
        start = time.monotonic()
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setblocking(False)
            sent = 0
            payload = b"INFO\n" * 60_000
            while sent < len(payload):
                try:
                    sent += sock.send(payload[sent:])
                except BlockingIOError:
                    break  # the server stopped reading: as intended
            abusers.append(sock)
        time.sleep(1.5)
        grown_kib = rss_kib(server.process.pid) - before
        assert probe.served_between(start + 0.5, time.monotonic()) > 0
    assert grown_kib < 16 * 1024, f"RSS grew by {grown_kib} KiB"
    # The abuser still gets its replies, in order, once it reads.
    sock = abusers[0]
    sock.setblocking(True)
    sock.settimeout(10)
    head = sock.recv(64)
    assert head.startswith(b"$"), head
    for sock in abusers:
        sock.close()


def test_current_of_an_exhausted_sequence_is_an_error_not_2_to_the_63(
    start_server: StartServer,
) -> None:
    # CURRENT used to reply :9223372036854775808 once the last value was handed out, which
    # redis-cli, redis-py and hiredis reject as a bad integer.
    server = start_server("--initial", str(2**63 - 2))
    replies = exchange(server.port, b"GETSEQ\r\nGETSEQ\r\nGETSEQ\r\nCURRENT\r\nPING\r\nQUIT\r\n")
    lines = replies.split(b"\r\n")
    assert lines[:2] == [b":%d" % (2**63 - 2), b":%d" % (2**63 - 1)]
    assert lines[2].startswith(b"-ERR") and lines[3].startswith(b"-ERR"), lines
    assert b"exhausted" in lines[3] and str(2**63).encode() not in lines[3]
    assert lines[4] == b"+PONG"


def test_many_connections_holding_unfinished_commands_share_one_memory_budget(
    server: ServerProcess,
) -> None:
    # Each connection may hold up to 256 KiB unfinished; 200 of them just under it used to
    # cost 100+ MiB (1,000 connections: 256 MiB). Past a server-wide budget, a connection with
    # a large unfinished command is closed and told why; the others keep being served.
    element = b"$65536\r\n" + b"a" * 65536 + b"\r\n"
    unfinished = b"*4\r\n" + element * 3 + b"$65500\r\n" + b"a" * 60000
    before = rss_kib(server.process.pid)
    abusers = []
    with WellBehaved(server.port) as probe:
        start = time.monotonic()
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(unfinished)
            abusers.append(sock)
        time.sleep(0.5)
        grown_kib = rss_kib(server.process.pid) - before
        assert probe.served_between(start, time.monotonic()) > 0
    assert grown_kib < 64 * 1024, f"RSS grew by {grown_kib} KiB"
    told = 0
    for sock in abusers:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # still held: within the budget
            told += sock.recv(200).startswith(b"-ERR server busy")
        sock.close()
    assert 100 < told < 200
