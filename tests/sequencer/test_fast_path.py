"""The fused plain-``GETSEQ`` reader (``Dispatcher.plain_reader``) attacked through a real
server on real sockets: it answers a read made of nothing but plain ``GETSEQ`` at once, and
every guarantee of the general path must hold across it (values and reply order with any
split, QUIT, AUTH, the top of the range, the limits, the metrics, a leader's lease).
"""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from chronoid.lease.keeper import margin_ms
from chronoid.sequencer.protocol import RESP_GETSEQ as PLAIN
from chronoid.sequencer.sequences import MAX_VALUE
from chronoid.torture.etcd_cluster import EtcdCluster
from chronoid.torture.failover import make_members, wait_for_leader
from tests.sequencer.conftest import ServerProcess, StartServer, exchange
from tests.support import free_port

EXHAUSTED = (
    b"-ERR sequence 'default' is exhausted: its last value %d has been handed out" % MAX_VALUE
)


class Line:
    """One client connection kept open: :meth:`send` bytes (each send a read of its own for
    the server when the client waits for its replies in between), :meth:`replies` reads reply
    lines in order."""

    def __init__(self, port: int, timeout_s: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.received = b""

    def __enter__(self) -> Line:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def replies(self, count: int) -> list[bytes]:
        """The next ``count`` reply lines (fewer if the server closes first)."""
        while self.received.count(b"\r\n") < count:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            self.received += chunk
        lines = self.received.split(b"\r\n")
        taken = lines[:count] if len(lines) > count else lines[:-1]
        self.received = b"\r\n".join(lines[len(taken) :])
        return taken

    def ask(self, data: bytes, count: int) -> list[bytes]:
        """Send ``data`` and wait for its ``count`` replies."""
        self.send(data)
        return self.replies(count)

    def closed(self) -> bool:
        """True once the server closes, with nothing more sent (reads up to the timeout)."""
        try:
            rest = self.sock.recv(65536)
        except ConnectionResetError:
            rest = b""
        return self.received == b"" and rest == b""


def values(first: int, count: int) -> list[bytes]:
    return [b":%d" % v for v in range(first, first + count)]


def current(port: int) -> bytes:
    return exchange(port, b"CURRENT\r\nQUIT\r\n").split(b"\r\n")[0]


def metrics(port: int) -> dict[str, float]:
    """The server's metrics page as ``name{labels}`` -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        text: str = page.read().decode()
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


def test_a_pipeline_split_at_every_byte_boundary_keeps_values_and_order(
    server: ServerProcess,
) -> None:
    # Every cut of a pipeline of the three plain forms: the first read may be whole plain
    # GETSEQs (the fused reader answers them), the second then starts mid-command or the
    # first ends mid-command (the general path holds it, the fused reader must not answer
    # the rest ahead of it).
    pipeline = PLAIN * 3 + b"GETSEQ\r\n" * 2 + b"GETSEQ\n" + PLAIN
    commands = 7
    nxt = 1
    for cut in range(1, len(pipeline)):
        with Line(server.port) as line:
            line.send(pipeline[:cut])
            time.sleep(0.005)  # the server reads the first part on its own
            line.send(pipeline[cut:])
            assert line.replies(commands) == values(nxt, commands), cut
        nxt += commands
    # Cuts between whole commands: both reads are the fused reader's.
    for cut in range(len(PLAIN), 4 * len(PLAIN), len(PLAIN)):
        with Line(server.port) as line:
            line.send((PLAIN * 4)[:cut])
            assert line.replies(cut // len(PLAIN)) == values(nxt, cut // len(PLAIN))
            nxt += cut // len(PLAIN)
            line.send((PLAIN * 4)[cut:])
            assert line.replies(4 - cut // len(PLAIN)) == values(nxt, 4 - cut // len(PLAIN))
            nxt += 4 - cut // len(PLAIN)
    assert current(server.port) == b":%d" % nxt


def test_plain_reads_between_other_commands_keep_order_and_values(
    start_server: StartServer,
) -> None:
    metrics_port = free_port()
    srv = start_server("--metrics-port", str(metrics_port))
    with Line(srv.port) as line:
        assert line.ask(PLAIN, 1) == [b":1"]
        assert line.ask(PLAIN * 3, 3) == values(2, 3)
        assert line.ask(b"CURRENT\r\n" + PLAIN, 2) == [b":5", b":5"]
        assert line.ask(PLAIN + b"PING\r\n", 2) == [b":6", b"+PONG"]
        assert line.ask(b"GETSEQ 10\r\n", 1) == [b":7"]
        assert line.ask(b"GETSEQ\r\n" * 2, 2) == values(17, 2)
        assert line.ask(b"GETSEQ\n", 1) == [b":19"]
        assert line.ask(b"getseq\r\n", 1) == [b":20"]  # not an exact form: the general path
        assert line.ask(b"GETSEQ 1 other\r\n", 1) == [b":1"]
        assert line.ask(b"GETSEQ\r\n" + PLAIN, 2) == values(21, 2)  # two forms: general path
        assert line.ask(b"GETSEQ 0\r\n" + PLAIN, 2)[1] == b":23"  # an error consumed nothing
        # A GETSEQ beyond the reserved headroom waits for its reservation: plain reads sent
        # behind it, as reads of their own, are answered after it, in order.
        line.send(b"GETSEQ 1000000\r\n")
        for _ in range(3):
            time.sleep(0.001)
            line.send(PLAIN * 2)
        assert line.replies(7) == [b":24", *values(1_000_024, 6)]
        # More plain GETSEQs in one read than one event-loop turn answers (1,024): the
        # general path spreads them over turns, in order.
        assert line.ask(PLAIN * 3000, 3000) == values(1_000_030, 3000)
        assert line.ask(PLAIN, 1) == [b":1003030"]
    assert current(srv.port) == b":1003031"
    counted = metrics(metrics_port)
    # Every GETSEQ counted once, however it was answered (the CURRENTs: one each).
    getseqs = 1 + 3 + 1 + 1 + 1 + 2 + 1 + 1 + 1 + 2 + 2 + 1 + 6 + 3000 + 1
    assert counted['chronoid_sequencer_requests_total{command="GETSEQ"}'] == getseqs
    assert counted["chronoid_sequencer_values_issued_total"] == 1_003_031  # with other's 1
    assert counted["chronoid_sequencer_error_replies_total"] == 1


def test_quit_stops_plain_reads_too(server: ServerProcess) -> None:
    with Line(server.port) as line:
        assert line.ask(PLAIN + b"QUIT\r\n" + PLAIN, 2) == [b":1", b"+OK"]
        assert line.closed()
    quit = b"*1\r\n$4\r\nQUIT\r\n"
    with Line(server.port) as line:
        assert line.ask(PLAIN * 2, 2) == values(2, 2)
        line.send(PLAIN * 2 + quit[:5])  # QUIT cut in two: the rest of the read waits for it
        time.sleep(0.005)
        line.send(quit[5:] + PLAIN * 3)
        assert line.replies(3) == [*values(4, 2), b"+OK"]
        assert line.closed()
    assert current(server.port) == b":6"


def test_plain_reads_before_auth_consume_nothing(start_server: StartServer) -> None:
    srv = start_server(env={"CHRONOID_PASSWORD": "right"})
    noauth = b"-NOAUTH Authentication required."
    with Line(srv.port) as line:
        assert line.ask(PLAIN, 1) == [noauth]
        assert line.ask(PLAIN * 3, 3) == [noauth] * 3
        assert line.ask(b"GETSEQ\r\n" * 2, 2) == [noauth] * 2
        assert line.ask(b"AUTH wrong\r\n", 1)[0].startswith(b"-WRONGPASS")
        assert line.ask(PLAIN, 1) == [noauth]
        assert line.ask(b"AUTH right\r\n", 1) == [b"+OK"]
        assert line.ask(PLAIN, 1) == [b":1"]
        assert line.ask(PLAIN * 2, 2) == values(2, 2)
    with Line(srv.port) as other:  # authentication belongs to the connection
        assert other.ask(PLAIN * 2, 2) == [noauth] * 2
        assert other.ask(b"AUTH right\r\n" + PLAIN, 2) == [b"+OK", b":4"]
        assert other.ask(PLAIN, 1) == [b":5"]
    with Line(srv.port) as guesser:  # closed at the third wrong password, before any value
        assert guesser.ask(b"AUTH a\r\nAUTH b\r\nAUTH c\r\n" + PLAIN, 3)[2].startswith(b"-WRONG")
        assert guesser.closed()
    assert exchange(srv.port, b"AUTH right\r\nCURRENT\r\nQUIT\r\n") == b"+OK\r\n:6\r\n+OK\r\n"


def test_plain_reads_at_the_top_of_the_range(start_server: StartServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "top"
    srv = start_server("--initial", str(MAX_VALUE - 3), data_dir=data_dir)
    with Line(srv.port) as line:
        assert line.ask(PLAIN * 2, 2) == values(MAX_VALUE - 3, 2)
        assert line.ask(PLAIN, 1) == [b":%d" % (MAX_VALUE - 1)]
        assert line.ask(PLAIN * 3, 3) == [b":%d" % MAX_VALUE, EXHAUSTED, EXHAUSTED]
        assert line.ask(PLAIN, 1) == [EXHAUSTED]
        assert line.ask(b"GETSEQ\n" * 2, 2) == [EXHAUSTED] * 2
        assert line.ask(b"CURRENT\r\n", 1)[0].startswith(b"-ERR sequence 'default' is exhausted")
    assert srv.stop() == 0
    again = start_server(data_dir=data_dir)  # it starts on the state it wrote, and refuses
    with Line(again.port) as line:
        assert line.ask(PLAIN, 1) == [EXHAUSTED]


def test_limits_hold_around_plain_reads(start_server: StartServer) -> None:
    srv = start_server("--request-timeout", "1", "--idle-timeout", "2")
    with Line(srv.port) as line:
        assert line.ask(PLAIN, 1) == [b":1"]
        line.send(PLAIN[:9])  # an unfinished command: held, timed from here
        time.sleep(0.5)
        line.send(PLAIN[9:] + PLAIN[:5])  # finished, and another begun behind it
        assert line.replies(1) == [b":2"]
        assert line.replies(1) == [b"-ERR request not completed within 1 s: closing the connection"]
        assert line.closed()
    with Line(srv.port) as line:  # a read of plain GETSEQs is activity: never idle
        for _ in range(6):
            assert line.ask(PLAIN, 1)[0].startswith(b":")
            time.sleep(0.5)
        assert line.ask(PLAIN, 1) == [b":9"]
        started = time.monotonic()
        assert line.closed()  # then idle for 2 s
        assert 1.0 < time.monotonic() - started < 4.5
    with Line(srv.port) as line:  # an oversize bulk behind plain reads: closed, nothing more
        assert line.ask(PLAIN * 2, 2) == values(10, 2)
        assert line.ask(b"*2\r\n$6\r\nGETSEQ\r\n$99999999\r\n" + PLAIN, 1) == [
            b"-ERR Protocol error: invalid bulk length"
        ]
        assert line.closed()
    assert current(srv.port) == b":12"


def test_the_asyncio_event_loop_serves_plain_reads_the_same(start_server: StartServer) -> None:
    srv = start_server("--event-loop", "asyncio")
    with Line(srv.port) as line:
        assert line.ask(PLAIN, 1) == [b":1"]
        assert line.ask(PLAIN * 5, 5) == values(2, 5)
        line.send(PLAIN[:3])
        time.sleep(0.005)
        assert line.ask(PLAIN[3:] + PLAIN, 2) == values(7, 2)
        assert line.ask(PLAIN + b"QUIT\r\n" + PLAIN, 2) == [b":9", b"+OK"]
        assert line.closed()


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path) as cluster:
        yield cluster


def test_a_leader_that_loses_its_lease_between_plain_reads_stops_by_its_deadline(
    etcd_cluster: EtcdCluster, tmp_path: Path
) -> None:
    # One connection keeps sending plain GETSEQs (one, two or three per read: every read is
    # the fused reader's) while every etcd member is SIGSTOPped for 3 s: the leader may not
    # confirm its lease, so each read's take-then-check must refuse from the lease's deadline
    # on. No value after it, none twice, values increasing, issuing again after the pause.
    url = "etcd://" + ",".join(f"{h}:{p}" for h, p in etcd_cluster.endpoints)
    (member,) = make_members(url, "plain", tmp_path, 1, 1.5)
    trusted_s = 1.5 - margin_ms(1500) / 1000
    children = [child for child in etcd_cluster.children if child is not None]
    got: list[tuple[float, bytes]] = []
    try:
        member.start()
        wait_for_leader([member], 15)
        with Line(member.port) as line:

            def run_for(seconds: float) -> None:
                until = time.monotonic() + seconds
                times = 1
                while time.monotonic() < until:
                    replies = line.ask(PLAIN * times, times)
                    arrived = time.monotonic()
                    assert len(replies) == times, replies
                    got.extend((arrived, reply) for reply in replies)
                    times = times % 3 + 1
                    time.sleep(0.01)

            run_for(0.5)
            paused = time.monotonic()
            for child in children:
                child.signal(signal.SIGSTOP)
            run_for(3.0)
            for child in children:
                child.signal(signal.SIGCONT)
            resumed = time.monotonic()
            deadline = resumed + 20
            while not got[-1][1].startswith(b":"):
                assert time.monotonic() < deadline, got[-1]
                run_for(0.2)
    finally:
        for child in children:
            child.signal(signal.SIGCONT)
        member.kill_if_running()
    issued = [int(reply[1:]) for _, reply in got if reply.startswith(b":")]
    assert issued == sorted(set(issued)), "a value twice or out of order"
    refusals = [reply for _, reply in got if not reply.startswith(b":")]
    assert refusals and all(
        r.startswith(b"-TRYAGAIN no sequencer leader available") for r in refusals
    )
    during = [when - paused for when, reply in got if paused < when < resumed and reply[:1] == b":"]
    # 0.1 s for the reply's way back (the value was made before it arrived).
    assert during and max(during) < trusted_s + 0.1, (max(during), trusted_s)
    assert any(when > resumed and reply[:1] == b":" for when, reply in got)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_runs_of_plain_getseqs_in_deep_pipelines_keep_values_order_auth_and_the_top(
    start_server: StartServer, tmp_path: Path, loop: str
) -> None:
    # A read of more plain GETSEQs than one turn answers goes to the general path, which takes
    # each run of them at once (up to 1,024 per turn). Runs split across reads, a run behind a
    # reservation, runs before AUTH and a run across the top of the range must all get what
    # one-by-one answering gives.
    srv = start_server("--event-loop", loop, env={"CHRONOID_PASSWORD": "pw"})
    noauth = b"-NOAUTH Authentication required."
    with Line(srv.port) as line:
        assert line.ask(PLAIN * 2000, 2000) == [noauth] * 2000  # nothing consumed
        assert line.ask(b"AUTH pw\r\n" + PLAIN * 2500, 2501) == [b"+OK", *values(1, 2500)]
        # Runs cut mid-command at odd sizes, other commands between them.
        pipeline = PLAIN * 1500 + b"PING\r\n" + PLAIN * 1100 + b"GETSEQ 5\r\n" + PLAIN * 1300
        for start in range(0, len(pipeline), 7001):
            line.send(pipeline[start : start + 7001])
        nxt = 2501
        expected = [*values(nxt, 1500), b"+PONG", *values(nxt + 1500, 1100)]
        nxt += 2600
        expected += [b":%d" % nxt, *values(nxt + 5, 1300)]
        nxt += 5 + 1300
        assert line.replies(len(expected)) == expected
        # A run behind a GETSEQ that waits for its reservation: answered after it, in order.
        assert line.ask(b"GETSEQ 1000000\r\n" + PLAIN * 3000, 3001) == [
            b":%d" % nxt,
            *values(nxt + 1_000_000, 3000),
        ]
    assert exchange(srv.port, b"AUTH pw\r\nCURRENT\r\nQUIT\r\n").split(b"\r\n")[1] == (
        b":%d" % (nxt + 1_003_000)
    )
    top = start_server("--initial", str(MAX_VALUE - 1999), data_dir=tmp_path / "top")
    with Line(top.port) as line:  # a run crossing the end: values, then one error each
        got = line.ask(PLAIN * 3000, 3000)
        assert got == [*values(MAX_VALUE - 1999, 2000), *[EXHAUSTED] * 1000]
