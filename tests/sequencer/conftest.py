"""Fixtures for the sequencer tests: a real ``python -m chronoid serve`` subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port


@dataclass
class ServerProcess:
    """A running ``chronoid serve`` on ``port`` with its state in ``data_dir``."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=10)


def wait_for_port(port: int, process: subprocess.Popen[bytes], deadline_s: float = 10.0) -> None:
    """Block until ``port`` accepts connections (fails the test if the process exits)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"chronoid serve exited with {process.returncode}: {err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    pytest.fail(f"chronoid serve did not listen on {port} within {deadline_s} s")


def launch_server(
    *args: str,
    port: int,
    data_dir: Path,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> ServerProcess:
    """Start ``python -m chronoid serve`` on ``port`` (without the caller's CHRONOID_PASSWORD)
    and, with ``wait``, block until it listens; the caller stops it."""
    full_env = {k: v for k, v in os.environ.items() if k != "CHRONOID_PASSWORD"}
    full_env.update(env or {})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chronoid",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "WARNING",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=full_env,
    )
    server = ServerProcess(process, port, data_dir)
    if wait:
        try:
            wait_for_port(port, process)
        except BaseException:
            kill_server(server)
            raise
    return server


def kill_server(server: ServerProcess) -> None:
    """SIGKILL ``server`` if it still runs, reap it and close its stderr pipe."""
    if server.process.poll() is None:
        server.process.kill()
    server.process.wait(timeout=10)
    if server.process.stderr:
        server.process.stderr.close()


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Factory: ``start_server(*args, data_dir=..., env=...)`` starts one and waits for it."""
    started: list[ServerProcess] = []

    def start(
        *args: str,
        data_dir: Path | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> ServerProcess:
        server = launch_server(
            *args, port=port or free_port(), data_dir=data_dir or tmp_path / "data", env=env,
            wait=False,
        )  # fmt: skip
        started.append(server)
        if wait:
            wait_for_port(server.port, server.process)
        return server

    yield start
    for server in started:
        kill_server(server)


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    """One server with default options."""
    return start_server()


def exchange(port: int, data: bytes, *, expect: int | None = None, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; read until ``expect`` bytes or the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while expect is None or len(received) < expect:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        return received
