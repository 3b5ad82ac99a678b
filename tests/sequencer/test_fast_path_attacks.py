"""The fused plain-``GETSEQ`` reader and the general path behind it, attacked with many
connections at once and across crashes. Real servers, real sockets."""

from __future__ import annotations

import contextlib
import itertools
import socket
import time

import pytest

from chronoid.sequencer.protocol import RESP_GETSEQ as PLAIN
from chronoid.torture.pipelines import pipeline_all_at_once
from tests.sequencer.conftest import StartServer
from tests.support import rss_kib


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_deep_pipelines_of_complete_commands_are_answered_not_closed(
    start_server: StartServer, loop: str
) -> None:
    # 200 clients each send 15,000 plain GETSEQs at once (270 KB, complete commands) and
    # read every reply. One read takes up to 256 KiB, one turn answers 1,024 of it: the rest,
    # complete commands waiting for the next turn, was counted as *unfinished* bytes, and
    # past the 16 MiB budget 199 of the 200 were closed with "-ERR server busy: too many
    # bytes of unfinished commands held". docs/sequencer.md promises such a pipeline nothing
    # but waiting its turn. Memory stays bounded: each connection is read no further until
    # its turn has come (one read, at most 256 KiB, held per connection).
    srv = start_server("--event-loop", loop)
    before_kib = rss_kib(srv.process.pid)
    clients, depth = 200, 15_000
    result = pipeline_all_at_once(srv.port, PLAIN, clients, depth)
    got, errors = result.values, result.errors
    assert result.unfinished == 0, f"{result.unfinished} clients not answered within 60 s"
    assert errors == {}
    assert len(got) == clients * depth and len(set(got)) == len(got)
    grown_kib = rss_kib(srv.process.pid) - before_kib
    assert grown_kib < 96 * 1024, f"RSS grew by {grown_kib} KiB"


def test_clients_that_never_read_their_replies_cost_bounded_memory(
    start_server: StartServer,
) -> None:
    # The other side of the test above: 400 connections each pipeline 60,000 INFO (6 bytes
    # in, over a KiB out) and never read. The server stops reading each one once its replies
    # back up (measured: about 110 KiB held per connection, most of it the unsent replies), so
    # its memory stays bounded and a polite client is still served.
    srv = start_server()
    before_kib = rss_kib(srv.process.pid)
    abusers = []
    for _ in range(400):
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.send(b"INFO\r\n" * 60_000)
        abusers.append(sock)
    time.sleep(2.0)
    grown_kib = rss_kib(srv.process.pid) - before_kib
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as polite:
        polite.sendall(b"GETSEQ\r\n")
        assert polite.recv(100).startswith(b":")
    for sock in abusers:
        sock.close()
    assert grown_kib < 96 * 1024, f"RSS grew by {grown_kib} KiB"


def test_an_unfinished_command_parked_behind_reservations_counts_against_the_budget(
    start_server: StartServer,
) -> None:
    # docs/sequencer.md: only *complete* commands a deep pipeline left for its next turn are
    # exempt from the 16 MiB server-wide budget of unfinished bytes. Each connection sends
    # 40 "GETSEQ 1000000" (each needs a reservation of its own: a million is more than a
    # block) and then 250 KiB of a command it never finishes. While a reservation is awaited
    # the whole buffer counts as 0, the unfinished command too, and the 40 reservations
    # queue behind everyone else's in the one writer thread: minutes. Before b520329: 916-925
    # of 990 closed within 8 s, RSS +72-76 MiB at the peak; after it: 0 closed, +141-146 MiB
    # held for as long as the reservations last (uvloop and asyncio alike).
    srv = start_server("--max-connections", "1000")
    before_kib = rss_kib(srv.process.pid)
    bulk = b"$65536\r\n" + b"x" * 65536 + b"\r\n"
    unfinished = (b"*5\r\n$4\r\nPING\r\n" + bulk * 4)[: 250 * 1024]
    clients = []
    for _ in range(990):
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.send(b"GETSEQ 1000000\r\n" * 40 + unfinished)
        clients.append(sock)
    replies = dict.fromkeys(clients, b"")
    peak_kib = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        for sock in clients:
            with contextlib.suppress(BlockingIOError, ConnectionError):
                replies[sock] += sock.recv(1 << 16)
        peak_kib = max(peak_kib, rss_kib(srv.process.pid))
        time.sleep(0.05)
    firsts: list[int] = []
    closed = 0
    for sock, data in replies.items():
        mine = [int(line[1:]) for line in data.split(b"\r\n") if line[:1] == b":"]
        assert mine == sorted(mine)
        firsts.extend(mine)
        closed += b"server busy" in data
        sock.close()
    firsts.sort()
    assert all(b - a >= 1_000_000 for a, b in itertools.pairwise(firsts))  # disjoint ranges
    grown_kib = peak_kib - before_kib
    assert closed >= len(clients) // 2 and grown_kib < 96 * 1024, (closed, grown_kib)


def test_clients_that_never_read_cannot_grow_their_replies_through_reservations(
    start_server: StartServer,
) -> None:
    # Each connection pipelines, in one read of 250 KiB, groups of one "GETSEQ 1000000" (a
    # reservation of its own) and 60 INFO (6 bytes in, over a KiB out), and never reads. The
    # write side pauses reading, but each finished reservation ran the commands behind it
    # whether or not the client read: one turn (up to 64 KiB of replies) per reservation, so
    # 20 such connections grew the server by +231 MiB in 12 s, still growing at 20 MiB/s
    # (before and after b520329): about 40 MiB of replies per 250 KiB read.
    srv = start_server()
    before_kib = rss_kib(srv.process.pid)
    group = b"GETSEQ 1000000\r\n" + b"INFO\r\n" * 60
    payload = group * (250 * 1024 // len(group))
    abusers = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.send(payload)
        abusers.append(sock)
    peak_kib = 0
    for _ in range(16):
        time.sleep(0.5)
        peak_kib = max(peak_kib, rss_kib(srv.process.pid))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as polite:
        polite.sendall(b"GETSEQ\r\n")
        assert polite.recv(100).startswith(b":")
    for sock in abusers:
        sock.close()
    grown_kib = peak_kib - before_kib
    assert grown_kib < 48 * 1024, f"RSS grew by {grown_kib} KiB"


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_client_that_stops_reading_behind_reservations_gets_every_reply_once_it_reads(
    start_server: StartServer, loop: str
) -> None:
    # The other side of the test above: the commands held back while the client did not
    # read run once it reads again, every one answered, the values in order (and the
    # connection is not taken for a slow sender meanwhile: they are whole commands).
    srv = start_server("--event-loop", loop)
    group = b"GETSEQ 1000000\r\n" + b"INFO\r\n" * 60
    groups = 40
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(group * groups + b"PING\r\n")
        time.sleep(1.5)  # not reading
        data = b""
        while not data.endswith(b"+PONG\r\n"):
            chunk = sock.recv(1 << 20)
            assert chunk, data[-100:]  # closed (at first: "request not completed within 10 s")
            data += chunk
    values = [int(line[1:]) for line in data.split(b"\r\n") if line[:1] == b":"]
    assert len(values) == groups
    assert all(b - a >= 1_000_000 for a, b in itertools.pairwise(values))
    assert data.count(b"# Server") == 60 * groups
    assert data.count(b"\r\n-") == 0
