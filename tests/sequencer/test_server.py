"""``chronoid serve`` against real clients: raw sockets, nc, redis-cli, redis-py, TLS."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from chronoid.errors import InvalidArgument, SequencerReplyError
from chronoid.sequencer.client import AsyncSequencerClient, RangeCache, SequencerClient
from chronoid.sequencer.commands import SUPPORTED
from tests.sequencer.conftest import ServerProcess, StartServer, exchange
from tests.support import free_port, self_signed_certificate

REDIS_CLI = "/usr/bin/redis-cli"


def cli(port: int, *args: str, extra: tuple[str, ...] = ()) -> str:
    done = subprocess.run(
        [REDIS_CLI, "-p", str(port), *extra, *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return done.stdout.strip()


def test_spec_telnet_session_byte_for_byte(server: ServerProcess) -> None:
    session = b"GETSEQ\r\nGETSEQ\r\nGETSEQ\r\nCURRENT\r\nCURRENT\r\nGETSEQ\r\n"
    expected = b":1\r\n:2\r\n:3\r\n:4\r\n:4\r\n:4\r\n"
    assert exchange(server.port, session, expect=len(expected)) == expected


def test_unknown_command_lists_every_supported_command(server: ServerProcess) -> None:
    expected = b"-ERR Unknown command 'FOOBAR'. Supported: " + ", ".join(SUPPORTED).encode()
    assert exchange(server.port, b"FOOBAR\r\n", expect=len(expected) + 2) == expected + b"\r\n"
    assert b"GETSEQ, CURRENT" in expected


def test_nc_inline_with_bare_newline(server: ServerProcess) -> None:
    def nc(text: str) -> bytes:
        done = subprocess.run(
            f"printf '{text}' | nc -q1 127.0.0.1 {server.port}",
            shell=True,
            capture_output=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    assert nc("CURRENT\\n") == b":1\r\n"
    assert nc("GETSEQ\\nGETSEQ 10\\nCURRENT\\n") == b":1\r\n:2\r\n:12\r\n"


def test_batch_errors_consume_nothing(server: ServerProcess) -> None:
    request = (
        b"GETSEQ 100\r\nGETSEQ\r\nGETSEQ 5 tx\r\nGETSEQ 1 events\r\nCURRENT tx\r\n"
        b"GETSEQ 0\r\nGETSEQ -3\r\nGETSEQ abc\r\nGETSEQ 99999999999\r\nCURRENT\r\nQUIT\r\n"
    )
    lines = exchange(server.port, request).split(b"\r\n")
    assert lines[:5] == [b":1", b":101", b":1", b":1", b":6"]
    assert all(
        line.startswith(b"-ERR count must be an integer in 1..1000000") for line in lines[5:9]
    )
    assert lines[9:] == [b":102", b"+OK", b""]


def test_redis_cli(server: ServerProcess) -> None:
    assert cli(server.port, "GETSEQ") == "1"
    assert cli(server.port, "GETSEQ", "10", "tx") == "1"
    assert cli(server.port, "CURRENT", "tx") == "11"
    assert cli(server.port, "PING") == "PONG"
    assert "values_issued:11" in cli(server.port, "INFO")
    assert cli(server.port, "FOOBAR").startswith("ERR Unknown command 'FOOBAR'")


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_commands_pipelines_and_errors(server: ServerProcess, protocol: int) -> None:
    r = redis.Redis(port=server.port, protocol=protocol, client_name="t")
    assert r.execute_command("GETSEQ") == 1
    pipe = r.pipeline(transaction=False)
    for _ in range(100):
        pipe.execute_command("GETSEQ")
    assert pipe.execute() == list(range(2, 102))
    assert r.execute_command("GETSEQ", 1000) == 102
    assert r.execute_command("CURRENT") == 1102
    assert r.ping() is True
    with pytest.raises(redis.ResponseError, match="count must be"):
        r.execute_command("GETSEQ", 0)
    r.close()


def test_python_client_and_range_cache(server: ServerProcess) -> None:
    with SequencerClient(port=server.port) as client:
        assert client.getseq() == 1
        assert client.getseq(10, "orders") == 1
        assert client.current("orders") == 11
        assert client.ping()
    cache = RangeCache(SequencerClient(port=server.port), block=50)
    values = [cache.next() for _ in range(1000)]
    assert values == sorted(set(values)) and values[0] == 2
    cache.close()


def test_connection_limit_replies_like_redis(start_server: StartServer) -> None:
    srv = start_server("--max-connections", "2")
    held: list[socket.socket] = []
    try:
        # The readiness probe's closed connection may still count for a moment: retry.
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", srv.port))
            sock.sendall(b"PING\r\n")
            if sock.recv(100) == b"+PONG\r\n":
                held.append(sock)
                if len(held) == 2:
                    break
            else:
                sock.close()
        assert len(held) == 2
        assert exchange(srv.port, b"") == b"-ERR max number of clients reached\r\n"
        with pytest.raises(redis.ConnectionError, match="max number of clients reached"):
            redis.Redis(port=srv.port, protocol=2).ping()
    finally:
        for sock in held:
            sock.close()


def test_oversize_line_closes_only_that_connection(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as other:
        got = exchange(server.port, b"A" * (70 * 1024))
        assert got == b"-ERR Protocol error: too big inline request\r\n"
        bulk = exchange(server.port, b"GETSEQ\r\n*1\r\n$999999\r\n")
        assert bulk == b":1\r\n-ERR Protocol error: invalid bulk length\r\n"
        other.sendall(b"GETSEQ\r\n")
        assert other.recv(100) == b":2\r\n"


def test_idle_connection_is_closed(start_server: StartServer) -> None:
    srv = start_server("--idle-timeout", "1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"
        assert sock.recv(100) == b""  # closed by the server, not by the 10 s timeout


def test_password_from_file(start_server: StartServer, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    srv = start_server("--password-file", str(secret))
    got = exchange(
        srv.port,
        b"GETSEQ\r\nCURRENT\r\nAUTH nope\r\nAUTH s3cret\r\nCURRENT\r\nGETSEQ\r\nQUIT\r\n",
    )
    assert got == (
        b"-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n"
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        b"+OK\r\n:1\r\n:1\r\n+OK\r\n"
    )
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=srv.port, password="bad").ping()
    assert redis.Redis(port=srv.port, password="s3cret").execute_command("GETSEQ") == 2
    assert redis.Redis(port=srv.port, password="s3cret", protocol=2).ping()
    assert cli(srv.port, "GETSEQ", extra=("-a", "s3cret", "--no-auth-warning")) == "3"
    with SequencerClient(port=srv.port, password="s3cret") as client:
        assert client.getseq() == 4


def test_password_from_environment(start_server: StartServer) -> None:
    srv = start_server(env={"CHRONOID_PASSWORD": "envpw"})
    assert exchange(srv.port, b"PING\r\n", expect=5).startswith(b"-NOAUTH")
    assert exchange(srv.port, b"AUTH default envpw\r\nGETSEQ\r\n", expect=9) == b"+OK\r\n:1\r\n"


def test_tls(start_server: StartServer, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    srv = start_server("--tls-cert", str(cert), "--tls-key", str(key))
    context = ssl.create_default_context(cafile=str(cert))
    with SequencerClient("127.0.0.1", srv.port, ssl_context=context) as client:
        assert client.getseq() == 1
    r = redis.Redis(port=srv.port, ssl=True, ssl_ca_certs=str(cert))
    assert r.execute_command("GETSEQ") == 2
    assert cli(srv.port, "GETSEQ", extra=("--tls", "--cacert", str(cert))) == "3"
    # A plain-text client gets nothing it could mistake for a value.
    assert not exchange(srv.port, b"GETSEQ\r\n").startswith(b":")


def test_metrics_endpoint(start_server: StartServer) -> None:
    metrics_port = free_port()
    srv = start_server("--metrics-port", str(metrics_port))
    exchange(srv.port, b"GETSEQ 5\r\nFOO\r\nQUIT\r\n")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    assert "chronoid_sequencer_values_issued_total 5.0" in text
    assert 'chronoid_sequencer_requests_total{command="GETSEQ"} 1.0' in text
    assert "chronoid_sequencer_error_replies_total 1.0" in text
    assert "chronoid_sequencer_reservations_total" in text


def test_help_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chronoid", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for flag in ("--initial", "--port", "--host", "--max-connections", "--data-dir",
                 "--force-initial", "--password-file", "--tls-cert", "--metrics-port",
                 "--idle-timeout"):  # fmt: skip
        assert flag in done.stdout


def test_sigterm_stops_cleanly_without_gap(start_server: StartServer) -> None:
    srv = start_server()
    assert exchange(srv.port, b"GETSEQ 41\r\nQUIT\r\n") == b":1\r\n+OK\r\n"
    assert srv.stop(signal.SIGTERM) == 0
    state = json.loads((srv.data_dir / "sequencer.json").read_text())
    assert state["sequences"]["default"] == 42
    again = start_server(data_dir=srv.data_dir)
    assert exchange(again.port, b"GETSEQ\r\nQUIT\r\n") == b":42\r\n+OK\r\n"
    assert again.stop(signal.SIGINT) == 0


def test_bad_arguments_exit_non_zero(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chronoid", "serve", "--data-dir", str(tmp_path),
         "--port", str(free_port()), "--tls-cert", str(tmp_path / "c.pem")],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert "--tls-cert and --tls-key go together" in done.stderr


def test_plain_asyncio_event_loop(start_server: StartServer) -> None:
    srv = start_server("--event-loop", "asyncio")
    pipelined = b"*1\r\n$6\r\nGETSEQ\r\n" * 50 + b"GETSEQ 5\r\nCURRENT\r\nQUIT\r\n"
    expected = b"".join(b":%d\r\n" % v for v in range(1, 51)) + b":51\r\n:56\r\n+OK\r\n"
    assert exchange(srv.port, pipelined) == expected


def test_asyncio_client(server: ServerProcess) -> None:
    async def main() -> list[int]:
        async with AsyncSequencerClient(port=server.port) as client:
            firsts = await asyncio.gather(*(client.getseq(10) for _ in range(20)))
            assert await client.current() == 201
            assert await client.getseq(1, "async") == 1
            with pytest.raises(SequencerReplyError, match="Unknown command"):
                await client.call(b"NOPE")
            return list(firsts)

    firsts = asyncio.run(main())
    assert sorted(firsts) == list(range(1, 201, 10))


def test_clients_reconnect_after_the_server_closed_an_idle_connection(
    start_server: StartServer,
) -> None:
    srv = start_server("--idle-timeout", "1")

    async def main() -> tuple[int, int]:
        async with AsyncSequencerClient(port=srv.port) as client:
            first = await client.getseq()
            await asyncio.sleep(1.5)  # the server closes the idle connection meanwhile
            return first, await client.getseq()

    assert asyncio.run(main()) == (1, 2)
    with SequencerClient(port=srv.port) as client:
        first = client.getseq()
        time.sleep(1.5)
        assert client.getseq() == first + 1


def test_a_timed_out_command_never_answers_the_next_one(start_server: StartServer) -> None:
    """A reply that arrives after the client gave up must not be read as the answer to the
    client's next command: the client drops that connection."""
    srv = start_server()

    async def main() -> None:
        async with AsyncSequencerClient(port=srv.port, timeout=0.3) as client:
            first = await client.getseq()
            srv.process.send_signal(signal.SIGSTOP)
            try:
                with pytest.raises(TimeoutError):
                    await client.getseq()  # the server takes first + 1 once resumed
            finally:
                srv.process.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.2)  # the late reply has arrived on the old connection
            assert await client.current() == first + 2

    asyncio.run(main())
    with SequencerClient(port=srv.port, timeout=0.3) as client:
        first = client.getseq()
        srv.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError):
                client.getseq()
        finally:
            srv.process.send_signal(signal.SIGCONT)
        time.sleep(0.2)
        assert client.current() == first + 2


def test_clients_check_their_arguments() -> None:
    for make in (SequencerClient, AsyncSequencerClient):
        with pytest.raises(InvalidArgument, match="port"):
            make(port=0)
        with pytest.raises(InvalidArgument, match="timeout"):
            make(timeout=0)
        with pytest.raises(InvalidArgument, match="not one string"):
            make(servers="127.0.0.1:1")
        with pytest.raises(InvalidArgument, match="host:port"):
            make(servers=["nowhere"])
        with pytest.raises(InvalidArgument, match="failover_timeout"):
            make(failover_timeout=-1)


def test_initial_on_existing_state_never_moves_backwards_unless_forced(
    start_server: StartServer,
) -> None:
    first = start_server("--initial=1000")
    assert exchange(first.port, b"GETSEQ\r\nQUIT\r\n") == b":1000\r\n+OK\r\n"
    assert first.stop() == 0
    lower = start_server("--initial=5", data_dir=first.data_dir)
    assert exchange(lower.port, b"CURRENT\r\nQUIT\r\n") == b":1001\r\n+OK\r\n"
    assert lower.stop() == 0
    forced = start_server("--initial=5", "--force-initial", data_dir=first.data_dir)
    assert exchange(forced.port, b"GETSEQ\r\nQUIT\r\n") == b":5\r\n+OK\r\n"


def _resp(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def mixed_session(
    rng: random.Random, nexts: dict[bytes, int], password: bytes | None
) -> tuple[bytes, list[bytes]]:
    """A random mix of every GETSEQ form, CURRENT, PING, AUTH and a final QUIT or not, and
    the replies it must get from a server this client alone uses (``nexts`` is updated)."""
    requests: list[bytes] = []
    expected: list[bytes] = []
    authenticated = password is None
    for _ in range(rng.randint(1, 40)):
        pick = rng.random()
        if not authenticated and password is not None and pick < 0.3:
            requests.append(rng.choice([_resp(b"AUTH", password), b"AUTH " + password + b"\r\n"]))
            expected.append(b"+OK")
            authenticated = True
            continue
        if pick < 0.03:
            requests.append(rng.choice([b"QUIT\r\n", _resp(b"QUIT")]))
            expected.append(b"+OK")
            break
        form = rng.randrange(8)
        count, name = 1, b"default"
        if form < 4:
            requests.append([b"GETSEQ\r\n", b"GETSEQ\n", _resp(b"GETSEQ"), b"getseq\r\n"][form])
        elif form == 4:
            count = rng.randint(1, 5)
            requests.append(rng.choice([b"GETSEQ %d\r\n" % count, _resp(b"GETSEQ", b"%d" % count)]))
        elif form == 5:
            count, name = rng.randint(1, 3), b"x"
            requests.append(_resp(b"GETSEQ", b"%d" % count, name))
        elif form == 6:
            name = rng.choice([b"default", b"x"])
            requests.append(_resp(b"CURRENT", name))
        else:
            requests.append(b"PING\r\n")
        if not authenticated:
            expected.append(b"-NOAUTH Authentication required.")
        elif form == 7:
            expected.append(b"+PONG")
        else:
            expected.append(b":%d" % nexts[name])
            if form != 6:
                nexts[name] += count
    return b"".join(requests), expected


def send_split(
    port: int, request: bytes, split: str, rng: random.Random, replies: int
) -> list[bytes]:
    """Send ``request`` on a new connection whole, one byte per send or in random chunks;
    the first ``replies`` reply lines (fewer if the server closes first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if split == "whole":
            sock.sendall(request)
        else:
            i = 0
            while i < len(request):
                step = 1 if split == "bytes" else rng.randint(1, 40)
                sock.sendall(request[i : i + step])
                i += step
                if rng.random() < 0.05:
                    time.sleep(0.001)  # let the server read what it has so far
        received = b""
        while received.count(b"\r\n") < replies:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received.split(b"\r\n")[:-1]


@pytest.mark.parametrize("password", [None, b"s3cret"])
def test_every_getseq_form_mixed_in_one_read_or_split_byte_by_byte_keeps_order_and_values(
    start_server: StartServer, tmp_path: Path, password: bytes | None
) -> None:
    # The plain-GETSEQ fast path answers a read made of nothing but plain GETSEQs; any other
    # read takes the general path. Mixed reads, the same bytes split anywhere (one byte per
    # send: every read is the fast path's candidate), AUTH before or never, QUIT: every reply
    # in request order, the values the one client alone must get, nothing consumed by errors.
    args: tuple[str, ...] = ()
    if password is not None:
        (tmp_path / "secret").write_bytes(password)
        args = ("--password-file", str(tmp_path / "secret"))
    srv = start_server(*args)
    rng = random.Random(7)
    nexts = {b"default": 1, b"x": 1}
    for _ in range(45):
        request, expected = mixed_session(rng, nexts, password)
        split = rng.choice(["whole", "bytes", "chunks"])
        assert send_split(srv.port, request, split, rng, len(expected)) == expected, (
            split,
            request[:200],
        )
