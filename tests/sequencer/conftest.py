"""Fixtures for the sequencer tests: a real ``python -m chronoid serve`` subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from chronoid.errors import TortureError
from chronoid.torture.processes import Child
from tests.support import free_port

SERVE = (sys.executable, "-m", "chronoid", "serve")
"""The command every test server runs, before its flags."""


@dataclass
class ServerProcess:
    """A running ``chronoid serve`` on ``port`` with its state in ``data_dir``; its output
    (stderr: the log) goes to ``child.log_path``."""

    child: Child
    port: int
    data_dir: Path

    @classmethod
    def start(
        cls,
        args: Sequence[str],
        *,
        port: int,
        data_dir: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> ServerProcess:
        """Start ``python -m chronoid serve *args`` through the one launcher (:meth:`Child.start`)
        with ``env`` as its whole environment (default: ours without CHRONOID_PASSWORD); with
        ``wait``, block until it listens on ``port`` (killed and the test failed if not)."""
        if env is None:
            env = {k: v for k, v in os.environ.items() if k != "CHRONOID_PASSWORD"}
        child = Child.start("chronoid serve", [*SERVE, *args], log_path=log_path, env=env)
        server = cls(child, port, data_dir)
        if wait:
            try:
                wait_for_port(port, child)
            except BaseException:
                server.kill()
                raise
        return server

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.child.process

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit status."""
        self.child.signal(sig)
        return self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL it if it still runs and reap it."""
        self.child.kill()

    def log(self) -> str:
        """Everything it wrote so far (its log lines; complete once it has exited)."""
        return self.child.log_text()


def wait_for_port(port: int, child: Child, deadline_s: float = 10.0) -> None:
    """Block until ``port`` accepts connections (fails the test, with the log's last lines,
    if ``child`` exits first or the deadline passes)."""
    try:
        child.wait_listening(port, deadline_s)
    except TortureError as exc:
        pytest.fail(str(exc))


def launch_server(
    *args: str,
    port: int,
    data_dir: Path,
    env: dict[str, str] | None = None,
    wait: bool = True,
    log_path: Path | None = None,
) -> ServerProcess:
    """Start ``python -m chronoid serve`` on ``port`` (without the caller's CHRONOID_PASSWORD)
    and, with ``wait``, block until it listens; the caller stops it. It logs to ``log_path``
    (default: ``serve-<port>.log`` beside ``data_dir``)."""
    full_env = {k: v for k, v in os.environ.items() if k != "CHRONOID_PASSWORD"}
    full_env.update(env or {})
    return ServerProcess.start(
        [
            *("--port", str(port), "--data-dir", str(data_dir)),
            *("--log-level", "WARNING", *args),
        ],
        port=port,
        data_dir=data_dir,
        log_path=log_path or data_dir.parent / f"serve-{port}.log",
        env=full_env,
        wait=wait,
    )


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
            wait=False, log_path=tmp_path / f"serve-{len(started)}.log",
        )  # fmt: skip
        started.append(server)
        if wait:
            wait_for_port(server.port, server.child)
        return server

    yield start
    for server in started:
        server.kill()


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
