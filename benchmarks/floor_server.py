"""The latency floor of any Python server here: uvloop, one ``Protocol`` per connection, and a
fixed ``:1`` reply per request, with nothing else (no parsing, no counter, no threads).

``bench_sequencer.py`` runs it under the same ``redis-benchmark`` as ``chronoid serve`` and
Redis, so the goal "p99 within 1.2× of Redis" can be judged against what Python with uvloop
reaches at all on this machine. Run ``python benchmarks/floor_server.py PORT``.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys

import uvloop


class _Reply(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        # One reply per RESP array: right for the plain one-word commands the bench sends.
        self.transport.write(b":1\r\n" * data.count(b"*"))


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(_Reply, "127.0.0.1", port)
    gc.freeze()  # as chronoid serve does
    await asyncio.Event().wait()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: floor_server.py PORT", file=sys.stderr)
        return 2
    uvloop.install()
    asyncio.run(_serve(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
