"""A hostile or careless client against a real ``chronoid serve``: real sockets, real TLS.

Each test sends what an abuser would send and asserts both what the abuser gets back and
that the other clients are still served (a well-behaved client keeps getting values while
the abuser runs), that no value is handed out twice, and where it matters the server's
memory. Latency figures belong in ``benchmarks/bench_sequencer.py``; here the assertions are
generous orderings, never timings.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import resource
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chronoid.sequencer.client import SequencerClient
from chronoid.torture.processes import Child
from tests.sequencer.conftest import ServerProcess, StartServer, exchange, wait_for_port
from tests.sequencer.test_durability import tiny_tmpfs
from tests.support import free_port, rss_kib, self_signed_certificate, wait_until


def read_until_closed(sock: socket.socket, limit_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (fails after limit_s)."""
    sock.settimeout(limit_s)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


@dataclass
class WellBehaved:
    """A client sending one GETSEQ at a time in a thread, recording when each reply came."""

    port: int
    replies: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> WellBehaved:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.replies and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.replies, f"the well-behaved client got nothing: {self.errors}"
        return self

    def _run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            reader = sock.makefile("rb")
            while not self._stop.is_set():
                sock.sendall(b"GETSEQ\r\n")
                line = reader.readline()
                if not line.startswith(b":"):
                    self.errors.append(repr(line))
                    return
                self.replies.append((time.monotonic(), int(line[1:])))
                time.sleep(0.001)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def served_between(self, start: float, end: float) -> int:
        return sum(1 for when, _ in self.replies if start < when < end)


def read_lines(sock: socket.socket, count: int, limit_s: float = 60.0) -> tuple[list[bytes], float]:
    """``count`` reply lines and the time the last one arrived."""
    sock.settimeout(limit_s)
    reader = sock.makefile("rb")
    lines = [reader.readline() for _ in range(count)]
    return lines, time.monotonic()


# -- 5: buffering ----------------------------------------------------------------------------


def test_an_endless_array_is_cut_off_early_and_costs_no_memory(server: ServerProcess) -> None:
    before = rss_kib(server.process.pid)
    with (
        WellBehaved(server.port) as good,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as abuser,
    ):
        start = time.monotonic()
        # 1,024 bulk strings of 64 KiB, inside the per-element limits, never finished.
        abuser.sendall(b"*1024\r\n")
        chunk = b"$65536\r\n" + b"x" * 65536 + b"\r\n"
        sent = 0
        with contextlib.suppress(OSError):
            for _ in range(1023):
                abuser.sendall(chunk)
                sent += len(chunk)
        reply = read_until_closed(abuser)
        time.sleep(0.3)
        assert good.served_between(start, time.monotonic()) >= 1
    assert reply == b"-ERR Protocol error: request larger than 262144 bytes\r\n"
    assert sent < 8 * 1024 * 1024  # cut off long before the 64 MiB it meant to send
    assert rss_kib(server.process.pid) - before < 32 * 1024
    assert not good.errors


def test_byte_by_byte_commands_are_served(server: ServerProcess) -> None:
    request = b"*3\r\n$6\r\nGETSEQ\r\n$1\r\n5\r\n$2\r\ntx\r\n" + b"CURRENT tx\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for byte in request:
            sock.sendall(bytes([byte]))
        sock.settimeout(5)
        reader = sock.makefile("rb")
        assert reader.readline() == b":1\r\n"
        assert reader.readline() == b":6\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "reply"),
    [
        (b"*11\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    ],
)
def test_before_auth_arrays_and_bulks_are_small(
    start_server: StartServer, request_bytes: bytes, reply: bytes
) -> None:
    srv = start_server(env={"CHRONOID_PASSWORD": "s3cret"})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(request_bytes)
        assert read_until_closed(sock) == reply
    # After AUTH the ordinary limits apply, in the same read.
    big = b"*12\r\n$4\r\nPING\r\n" + b"$1\r\nx\r\n" * 11
    answer = exchange(
        srv.port, b"AUTH s3cret\r\n" + big + b"QUIT\r\n", expect=len(b"+OK\r\n") * 2 + 54
    )
    assert answer.startswith(b"+OK\r\n-ERR wrong number of arguments for 'ping'")


# -- 6: TLS handshakes and descriptors -------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def test_silent_tls_connections_count_and_time_out(
    start_server: StartServer, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    srv = start_server(
        "--tls-cert", str(cert), "--tls-key", str(key),
        "--max-connections", "20", "--handshake-timeout", "1",
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(cert))
    time.sleep(0.5)  # the start-up probe's connection is gone from the count
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(20)]
    try:
        time.sleep(0.3)  # let the server accept them all
        # Every slot is held by a handshake in progress: a real TLS client is refused.
        refused = SequencerClient("127.0.0.1", srv.port, ssl_context=context, timeout=3)
        with pytest.raises((ssl.SSLError, OSError)), refused:
            refused.getseq()
        # The silent ones are closed after the handshake timeout...
        for sock in silent:
            assert read_until_closed(sock, 10) == b""
    finally:
        for sock in silent:
            sock.close()
    # ... and real clients are served again (a client that connects in the instant between
    # the close and the server's count going down may be refused once: it tries again).
    served: list[int] = []

    def real_client_served() -> bool:
        try:
            with SequencerClient("127.0.0.1", srv.port, ssl_context=context, timeout=5) as client:
                served.append(client.getseq())
        except (ssl.SSLError, OSError):
            return False
        return True

    wait_until(real_client_served, "a real TLS client served again", timeout_s=5)
    assert served == [1]


def test_the_descriptor_limit_is_raised_or_start_refused(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 3000:
        pytest.skip(f"the hard descriptor limit {hard} is too low for this test")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "chronoid", "serve", "--port", str(port), "--data-dir",
         str(tmp_path / "a"), "--max-connections", "2500"],
        preexec_fn=low_soft_limit, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, Child("chronoid serve", process, None))
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert int(line.split()[3]) >= 2500 + 64
    finally:
        process.kill()
        process.wait(timeout=10)

    def low_hard_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    done = subprocess.run(
        [sys.executable, "-m", "chronoid", "serve", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "b"), "--max-connections", "1000"],
        preexec_fn=low_hard_limit, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0
    assert "needs 1064 file descriptors but the hard limit is 512" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_running_out_of_descriptors_is_logged_and_waited_out(start_server: StartServer) -> None:
    srv = start_server()
    pid = srv.process.pid
    # Lower the running server's limit (as an operator's prlimit would) to a few descriptors
    # more than it holds, so accept() fails with EMFILE long before --max-connections.
    spare = 8
    limit = len(os.listdir(f"/proc/{pid}/fd")) + spare
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
    total = 4 * spare
    clients: list[socket.socket] = []
    try:
        # The kernel completes every handshake (the listen backlog): clients past the limit
        # connect, send, and wait to be accepted.
        for _ in range(total):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            sock.sendall(b"GETSEQ\r\n")
            clients.append(sock)
        values: list[int] = []
        pending = list(clients)
        served = _replies(pending, values, wait_s=1.0)
        assert 0 < len(served) < total, len(served)  # the rest have no descriptor yet
        assert srv.process.poll() is None
        # Descriptors free up as served clients leave: the listener is still there, and
        # every waiting client is served in turn.
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for sock in served:
                sock.close()
            served = _replies(pending, values, wait_s=0.5)
        assert not pending, f"{len(pending)} clients never served"
        assert sorted(values) == list(range(1, total + 1))  # each once, none lost
        for sock in clients:
            sock.close()
        with SequencerClient("127.0.0.1", srv.port, timeout=10) as client:
            assert client.getseq() == total + 1
        info = exchange(srv.port, b"INFO stats\r\nQUIT\r\n")
        assert int(info.split(b"refused_fd_exhausted:")[1].split(b"\r\n")[0]) >= 1
    finally:
        for sock in clients:
            sock.close()
    assert srv.stop() == 0
    log = srv.log()
    assert "cannot accept connections: Too many open files" in log
    assert "Traceback" not in log


def _replies(pending: list[socket.socket], values: list[int], wait_s: float) -> list[socket.socket]:
    """The sockets of ``pending`` answered within ``wait_s`` (removed from it); their values
    are appended to ``values``."""
    answered: list[socket.socket] = []
    end = time.monotonic() + wait_s
    while pending and (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select(pending, [], [], left)
        for sock in ready:
            line = sock.recv(64)
            assert line.startswith(b":") and line.endswith(b"\r\n"), line
            values.append(int(line[1:]))
            pending.remove(sock)
            answered.append(sock)
    return answered


# -- 7: reservations off the event loop ------------------------------------------------------


def test_many_new_names_in_one_pipeline_do_not_stall_others(server: ServerProcess) -> None:
    names = 500
    pipeline = b"".join(b"GETSEQ 1 n%d\r\n" % i for i in range(names))
    with (
        WellBehaved(server.port) as good,
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as abuser,
    ):
        start = time.monotonic()
        abuser.sendall(pipeline)
        lines, end = read_lines(abuser, names)
        served = good.served_between(start, end)
    assert lines == [b":1\r\n"] * names  # each new name, in order, starts at 1
    assert served >= 5, served  # the others were answered while the abuser's names were made
    assert not good.errors


def test_huge_counts_pipelined_do_not_stall_others_and_never_overlap(
    server: ServerProcess,
) -> None:
    times = 200
    with (
        WellBehaved(server.port) as good,
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as abuser,
    ):
        start = time.monotonic()
        abuser.sendall(b"GETSEQ 1000000\r\n" * times)
        lines, end = read_lines(abuser, times)
        served = good.served_between(start, end)
    firsts = [int(line[1:]) for line in lines]
    assert served >= 5, served
    assert all(b - a >= 1_000_000 for a, b in itertools.pairwise(firsts))
    taken = [(first, first + 1_000_000) for first in firsts]
    for _, value in good.replies:  # no value handed out twice
        assert not any(low <= value < high for low, high in taken)


# -- 8: names --------------------------------------------------------------------------------


def test_name_limits_and_allow_list(start_server: StartServer, tmp_path: Path) -> None:
    srv = start_server("--max-sequences", "3", data_dir=tmp_path / "a")
    many = b"".join(b"GETSEQ 1 m%d\r\n" % i for i in range(5))
    assert exchange(srv.port, many + b"QUIT\r\n").split(b"\r\n")[:5] == [
        b":1",
        b":1",
        b"-ERR too many sequences: at most 3; 'm2' would be one more",
        b"-ERR too many sequences: at most 3; 'm3' would be one more",
        b"-ERR too many sequences: at most 3; 'm4' would be one more",
    ]
    listed = start_server("--sequences", "tx,events", data_dir=tmp_path / "b")
    reply = exchange(listed.port, b"GETSEQ 1 tx\r\nGETSEQ 1 other\r\nGETSEQ\r\nQUIT\r\n")
    assert reply == (
        b":1\r\n-ERR sequence 'other' is not among the names this server allows "
        b"(--sequences events,tx)\r\n:1\r\n+OK\r\n"
    )
    locked = start_server(env={"CHRONOID_PASSWORD": "pw"}, data_dir=tmp_path / "c")
    assert exchange(locked.port, b"GETSEQ 1 sneaky\r\nQUIT\r\n") == (
        b"-NOAUTH Authentication required.\r\n+OK\r\n"
    )
    assert b"seq_sneaky" not in exchange(locked.port, b"AUTH pw\r\nINFO\r\nQUIT\r\n")


def test_a_failed_creation_takes_no_slot(start_server: StartServer, tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "disk", "64k") as disk:
        srv = start_server("--max-sequences", "2", data_dir=disk)
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 512)
        finally:
            os.close(fd)
        failed = exchange(srv.port, b"GETSEQ 1 first\r\nQUIT\r\n")
        assert failed.startswith(b"-ERR reservation failed") and b"No space left" in failed
        os.unlink(disk / "filler")
        assert exchange(srv.port, b"GETSEQ 1 second\r\nQUIT\r\n") == b":1\r\n+OK\r\n"
        assert srv.stop() == 0
        stored = json.loads((disk / "sequencer.json").read_text())["sequences"]
        assert sorted(stored) == ["default", "second"]


# -- 9: slow and guessing clients ------------------------------------------------------------


def test_slow_senders_are_closed(start_server: StartServer) -> None:
    srv = start_server("--max-connections", "10", "--idle-timeout", "30", "--request-timeout", "1")
    time.sleep(0.5)  # the start-up probe's connection is gone from the count
    slow = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(10)]
    try:
        for _ in range(5):  # one byte each every 0.5 s: never idle, never done
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(b"G")
            time.sleep(0.5)
        for sock in slow:
            assert read_until_closed(sock) == (
                b"-ERR request not completed within 1 s: closing the connection\r\n"
            )
    finally:
        for sock in slow:
            sock.close()
    assert exchange(srv.port, b"GETSEQ\r\nQUIT\r\n") == b":1\r\n+OK\r\n"


def test_unauthenticated_and_guessing_clients_are_closed(start_server: StartServer) -> None:
    metrics_port = free_port()
    srv = start_server(
        "--auth-timeout", "1", "--metrics-port", str(metrics_port),
        env={"CHRONOID_PASSWORD": "right"},
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as idle:
        assert read_until_closed(idle) == (
            b"-NOAUTH Authentication not completed in time: closing the connection\r\n"
        )
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as guesser:
        guesser.sendall(b"AUTH a\r\nAUTH b\r\nAUTH c\r\nAUTH right\r\nGETSEQ\r\n")
        wrong = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        assert read_until_closed(guesser) == wrong * 3  # closed at the third
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    assert "chronoid_auth_failures_total 3.0" in text
    assert 'chronoid_connections_refused_total{reason="auth_failures"} 1.0' in text
    assert 'chronoid_connections_refused_total{reason="auth_timeout"} 1.0' in text
    assert exchange(srv.port, b"AUTH right\r\nCURRENT\r\nQUIT\r\n") == b"+OK\r\n:1\r\n+OK\r\n"


# -- 10: smaller ones ------------------------------------------------------------------------


def test_quit_stops_the_pipeline(server: ServerProcess) -> None:
    assert exchange(server.port, b"QUIT\r\nGETSEQ\r\nGETSEQ\r\n") == b"+OK\r\n"
    assert exchange(server.port, b"CURRENT\r\nQUIT\r\n") == b":1\r\n+OK\r\n"


def test_unknown_command_bytes_are_escaped(server: ServerProcess) -> None:
    reply = exchange(server.port, b"FOO\x00\x1b[2J\x7f\xff\r\nQUIT\r\n")
    assert reply.startswith(b"-ERR Unknown command 'FOO\\x00\\x1b[2J\\x7f\\xff'. Supported:")
    assert all(32 <= b < 127 for b in reply.replace(b"\r\n", b""))


def test_counts_follow_redis_integer_rule(server: ServerProcess) -> None:
    reply = exchange(
        server.port,
        b"GETSEQ 01\r\nGETSEQ 00000001\r\nGETSEQ 000000001\r\nGETSEQ +1\r\nGETSEQ 1000001\r\n"
        b"GETSEQ 0\r\nGETSEQ 1000000\r\nQUIT\r\n",
    )
    lines = reply.split(b"\r\n")
    assert all(line.startswith(b"-ERR count must be an integer") for line in lines[:6]), lines
    assert lines[6:] == [b":1", b"+OK", b""]


def test_ports_in_use_fail_in_one_line_and_touch_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        for args in (
            ["--port", str(busy)],
            ["--port", str(free_port()), "--metrics-port", str(busy)],
        ):
            data_dir = tmp_path / f"d{len(args)}"
            done = subprocess.run(
                [sys.executable, "-m", "chronoid", "serve", "--data-dir", str(data_dir), *args],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode != 0
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and "Address already in use" in lines[0], done.stderr
            assert not (data_dir / "sequencer.json").exists()


def test_sighup_changes_nothing_and_sigterm_still_stops_cleanly(
    start_server: StartServer,
) -> None:
    srv = start_server()
    assert exchange(srv.port, b"GETSEQ 10\r\nQUIT\r\n") == b":1\r\n+OK\r\n"
    srv.process.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert srv.process.poll() is None
    assert exchange(srv.port, b"GETSEQ\r\nQUIT\r\n") == b":11\r\n+OK\r\n"
    assert srv.stop() == 0
    stored = json.loads((srv.data_dir / "sequencer.json").read_text())["sequences"]
    assert stored["default"] == 12  # the clean stop stored the exact next value
