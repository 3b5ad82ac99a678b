"""Helpers shared by the tests (import as ``from tests.support import ...``)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

# One home for the spare-port helper and the process launcher: the torture tool's, which the
# tests and benchmarks share.
from chronoid.torture.processes import Child, free_port

__all__ = [
    "OwnServer",
    "etcd_ready",
    "free_port",
    "nats_delete_stream",
    "nats_ready",
    "nats_stored",
    "redis_ready",
    "rss_kib",
    "self_signed_certificate",
    "tcp_server",
    "tiny_tmpfs",
    "wait_until",
]


def wait_until(
    check: Callable[[], object], what: str = "the condition", timeout_s: float = 15.0
) -> None:
    """Poll ``check()`` every 50 ms until it is true; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


class OwnServer:
    """A server process this test started; ``stop()`` kills it, ``start()`` starts it again.

    Launched by the one launcher, :meth:`chronoid.torture.processes.Child.start` (its own
    process group, dead with the test run, output appended to ``log``).
    """

    def __init__(self, argv: list[str], ready: Callable[[], bool], log: Path) -> None:
        self.argv = argv
        self.ready = ready
        self.log = log
        self.child: Child | None = None

    def start(self) -> None:
        # A test may restart it from a timer thread, whose end must not kill it.
        from_main = threading.current_thread() is threading.main_thread()
        self.child = Child.start(
            Path(self.argv[0]).name, self.argv, log_path=self.log, die_with_parent=from_main
        )
        self.child.wait_ready(self.ready, 15.0, "ready")

    def stop(self) -> None:
        if self.child is not None:
            self.child.kill()
        self.child = None


def redis_ready(port: int) -> Callable[[], bool]:
    """True once a Redis server answers PING on ``port``."""
    import redis

    def ready() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False

    return ready


def etcd_ready(port: int) -> Callable[[], bool]:
    """True once etcd on ``port`` reports itself healthy."""
    import requests

    def ready() -> bool:
        try:
            reply = requests.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
            return '"health":"true"' in reply.text
        except requests.RequestException:
            return False

    return ready


def nats_ready(port: int) -> Callable[[], bool]:
    """True once a NATS server on ``port`` greets a new connection with INFO."""

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                return sock.recv(4).startswith(b"INFO")
        except OSError:
            return False

    return ready


async def nats_stored(url: str, stream: str) -> list[Any]:
    """Every message a JetStream stream holds, oldest first (read with nats-py)."""
    import nats

    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        return [
            await js.get_msg(stream, seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await client.close()


async def nats_delete_stream(url: str, stream: str) -> None:
    """Delete a JetStream stream a test made."""
    import nats

    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


def rss_kib(pid: int) -> int:
    """The resident set of process ``pid`` (KiB), from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 and its key, made by ``openssl`` in
    ``folder``: (cert.pem, key.pem)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``"64k"``) mounted at ``path``: a disk that really fills up.

    Needs root (skips otherwise); unmounted lazily at the end.
    """
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def tcp_server(handle: Callable[[socket.socket], object]) -> Iterator[int]:
    """A TCP server on a spare loopback port (yields the port) that runs ``handle(conn)`` for
    every connection, each in a thread of its own, and closes the connection after it (a
    client that went away meanwhile is no error); it stops accepting when the block ends.

    The one accept loop of the tests' stand-in servers (an echo, a scripted RESP server).
    """
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            handle(conn)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it
        server.close()


@contextlib.contextmanager
def scratch_database(pg_dsn: str, prefix: str, password: str = "") -> Iterator[str]:
    """A database of the caller's own on the server of ``pg_dsn`` (dropped after), so tests
    that drop or empty lease tables never touch another's; ``password`` is put in the DSN
    returned (trust authentication ignores it) for tests that check no message shows it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    base = pg_dsn.rsplit("/", 1)[0]
    if password:
        base = base.replace("postgres@", f"postgres:{password}@", 1)
        assert password in base, "the test DSN must name user postgres"
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sql(dsn: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    """The rows of one statement, on a connection of its own (autocommit)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params or None)
        return cursor.fetchall() if cursor.description is not None else []
