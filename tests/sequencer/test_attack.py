"""Attacks found after the hardening of issue 13 (each failed on the code before its fix).

Same rules as ``test_abuse.py``: a real server process, raw sockets, generous orderings (no
timings): the abuser's effect on memory and on a well-behaved client, and what it gets back.
"""

from __future__ import annotations

import socket
import time

from tests.sequencer.conftest import ServerProcess
from tests.sequencer.test_abuse import WellBehaved, rss_kib


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
