"""Durability against a real server process: kill -9 loops and a really full disk."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import socket
import threading
from pathlib import Path

import pytest

from chronoid.sequencer.sequences import BLOCK_MAX
from tests.sequencer.conftest import StartServer
from tests.support import free_port, tiny_tmpfs

RESTARTS = 20
PIPELINE = 16


def issue_until_dropped(port: int, values: list[int]) -> None:
    """GETSEQ in a loop (16 pipelined) until the server dies; every reply is recorded."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        buffer = b""
        while True:
            try:
                sock.sendall(b"GETSEQ\r\n" * PIPELINE)
                pending = PIPELINE
                while pending:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\r\n")
                    for line in lines:
                        assert line.startswith(b":"), line
                        values.append(int(line[1:]))
                        pending -= 1
            except (ConnectionResetError, BrokenPipeError):
                return


def test_kill_9_restarts_never_repeat_and_gap_is_bounded(
    start_server: StartServer, tmp_path: Path
) -> None:
    rng = random.Random(5)
    port = free_port()
    values: list[int] = []
    boundaries: list[int] = []  # index of the first value after each restart
    for _ in range(RESTARTS):
        srv = start_server(port=port, data_dir=tmp_path / "data")
        boundaries.append(len(values))
        killer = threading.Timer(
            rng.uniform(0.05, 0.25), lambda p=srv.process: p.send_signal(signal.SIGKILL)
        )
        killer.start()
        issue_until_dropped(port, values)
        killer.join()
        srv.process.wait(timeout=10)
        assert srv.process.returncode == -signal.SIGKILL
    assert len(values) > RESTARTS
    assert all(b > a for a, b in itertools.pairwise(values)), "a repeat or reorder"
    gaps = [values[i] - values[i - 1] - 1 for i in boundaries[1:] if 0 < i < len(values)]
    assert gaps, "no restart happened between two received values"
    # Within one run values are consecutive; across a crash the gap is below two blocks.
    print(f"restarts: {len(gaps)}, largest gap {max(gaps)} values, values {len(values)}")
    assert max(gaps) <= 2 * BLOCK_MAX
    inner = [
        values[i] - values[i - 1] - 1 for i in range(1, len(values)) if i not in set(boundaries)
    ]
    assert max(inner, default=0) == 0


def test_real_full_disk_stops_issuing_then_recovers(
    start_server: StartServer, tmp_path: Path
) -> None:
    with tiny_tmpfs(tmp_path / "disk", "64k") as disk:
        srv = start_server(data_dir=disk)
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 512)
        finally:
            os.close(fd)
        received: list[int] = []
        error = b""
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            for _ in range(100_000):
                sock.sendall(b"GETSEQ\r\n")
                line = reader.readline()
                if line.startswith(b"-"):
                    error = line
                    break
                received.append(int(line[1:]))
            assert error.startswith(b"-ERR reservation failed"), error
            assert b"No space left on device" in error
            # The failed write left no (zero-byte) temporary file behind.
            assert not list(disk.glob("sequencer.json.tmp*"))
            state = json.loads((disk / "sequencer.json").read_text())["sequences"]
            assert received and received[-1] < state["default"]
            sock.sendall(b"CURRENT\r\n")
            assert reader.readline() == b":%d\r\n" % (received[-1] + 1)  # nothing consumed
            os.unlink(disk / "filler")
            # The server retries the store once a second; poll until it issues again.
            for _ in range(200):
                sock.sendall(b"GETSEQ\r\n")
                line = reader.readline()
                if line.startswith(b":"):
                    assert int(line[1:]) == received[-1] + 1
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail("the server did not recover after space was freed")
        assert srv.stop() == 0
        assert json.loads((disk / "sequencer.json").read_text())["sequences"]["default"] == (
            received[-1] + 2
        )
