"""Deep pipelines as a load: many connections each send one long pipeline at once and read
their replies as they come, as ``redis-benchmark -P`` does. The attack tests and
``benchmarks/bench_sequencer.py`` (fairness scenario (e), ``--only deep``) drive the server
with it, against Redis too (any command whose reply is one line)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from dataclasses import dataclass, field

__all__ = ["Pipelined", "pipeline_all_at_once"]


@dataclass
class Pipelined:
    """What the clients got back: every integer reply, every other reply line (its first 70
    bytes) with its count, and how many clients were not answered in full in time."""

    values: list[int] = field(default_factory=list)
    errors: dict[bytes, int] = field(default_factory=dict)
    unfinished: int = 0


def pipeline_all_at_once(
    port: int, command: bytes, clients: int, depth: int, timeout_s: float = 60.0
) -> Pipelined:
    """``clients`` connections to 127.0.0.1:``port`` each send ``command`` ``depth`` times in
    one go and read the ``depth`` reply lines as they come."""
    selector = selectors.DefaultSelector()
    state: dict[socket.socket, list[bytes]] = {}
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        sock.setblocking(False)
        state[sock] = [command * depth, b""]
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    answered = dict.fromkeys(state, 0)
    result = Pipelined()
    deadline = time.monotonic() + timeout_s
    while state and time.monotonic() < deadline:
        for key, events in selector.select(0.5):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            if conn not in state:
                continue
            pending = state[conn]
            if events & selectors.EVENT_WRITE and pending[0]:
                with contextlib.suppress(BlockingIOError, ConnectionError):
                    pending[0] = pending[0][conn.send(pending[0]) :]
                if not pending[0]:
                    selector.modify(conn, selectors.EVENT_READ)
            if events & selectors.EVENT_READ:
                try:
                    chunk = conn.recv(1 << 20)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    chunk = b""
                *lines, pending[1] = (pending[1] + chunk).split(b"\r\n")
                for line in lines:
                    answered[conn] += 1
                    if line[:1] == b":":
                        result.values.append(int(line[1:]))
                    else:
                        result.errors[line[:70]] = result.errors.get(line[:70], 0) + 1
                if not chunk or answered[conn] == depth:
                    selector.unregister(conn)
                    del state[conn]
                    conn.close()
    result.unfinished = len(state)
    for sock in state:
        sock.close()
    selector.close()
    return result
