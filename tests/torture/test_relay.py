"""The partition relay: forwards; when cut, goes silent or refuses (closes every connection);
forwards again when healed. Real sockets to a real echo server."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from chronoid.endpoints import parse_etcd_endpoints
from chronoid.errors import InvalidArgument
from chronoid.torture.processes import Supervisor
from chronoid.torture.relay import Relay
from chronoid.torture.run import Run, RunOptions
from chronoid.torture.serve import relayed_url
from tests.support import tcp_server


def _echo(conn: socket.socket) -> None:
    while data := conn.recv(1024):
        conn.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    with tcp_server(_echo) as port:
        yield port


def roundtrip(port: int, data: bytes, timeout_s: float = 1.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        return sock.recv(1024)


class _Upstream:
    """An echo server that counts the connections it holds open: whether a cut reached the
    server's side too (a refusing cut does; a silent one does not)."""

    def __init__(self) -> None:
        self.open = 0
        self._lock = threading.Lock()

    def __call__(self, conn: socket.socket) -> None:
        with self._lock:
            self.open += 1
        try:
            _echo(conn)
        finally:
            with self._lock:
                self.open -= 1


def _closed_at_once(sock: socket.socket) -> float:
    """Seconds until ``sock`` reads EOF or ECONNRESET (fails the test on a timeout)."""
    started = time.monotonic()
    sock.settimeout(1.0)
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(1024) == b""
    return time.monotonic() - started


def test_cut_is_silence_and_heal_forwards_again() -> None:
    upstream = _Upstream()
    with tcp_server(upstream) as echo_port, Relay(echo_port) as relay:
        assert roundtrip(relay.port, b"one") == b"one"
        established = socket.create_connection(("127.0.0.1", relay.port), timeout=0.3)
        established.sendall(b"before")
        assert established.recv(1024) == b"before"
        relay.cut()
        assert relay.is_cut
        established.sendall(b"lost")
        with pytest.raises(TimeoutError):
            established.recv(1024)  # nothing comes back: no reply, no reset
        with pytest.raises(TimeoutError):
            roundtrip(relay.port, b"new", timeout_s=0.3)  # accepted, never answered
        assert upstream.open == 1  # the server's side of the cut link stays open too
        relay.heal()
        assert not relay.is_cut
        with pytest.raises(OSError):  # what was cut is closed, not resumed
            established.settimeout(1.0)
            if established.recv(1024) == b"":
                raise ConnectionResetError
        established.close()
        assert roundtrip(relay.port, b"two") == b"two"  # at once: heal() returns when in force


def test_a_refusing_cut_closes_every_connection_at_once_and_heal_forwards_again() -> None:
    upstream = _Upstream()
    with tcp_server(upstream) as echo_port, Relay(echo_port) as relay:
        established = socket.create_connection(("127.0.0.1", relay.port), timeout=1.0)
        established.sendall(b"before")
        assert established.recv(1024) == b"before"
        relay.cut(mode="refuse")
        assert relay.is_cut
        assert _closed_at_once(established) < 0.2  # not a timeout: the link is gone
        established.close()
        for _ in range(3):  # every new connection is accepted, then closed at once
            with socket.create_connection(("127.0.0.1", relay.port), timeout=1.0) as new:
                assert _closed_at_once(new) < 0.2
        deadline = time.monotonic() + 2.0
        while upstream.open and time.monotonic() < deadline:
            time.sleep(0.01)
        assert upstream.open == 0  # the server's side was closed too, and nothing reached it
        relay.heal()
        assert not relay.is_cut
        assert roundtrip(relay.port, b"after") == b"after"


def test_a_silent_cut_becomes_a_refusing_one_when_cut_again(echo_port: int) -> None:
    with Relay(echo_port) as relay:
        established = socket.create_connection(("127.0.0.1", relay.port), timeout=1.0)
        assert roundtrip(relay.port, b"one") == b"one"
        relay.cut()
        held = socket.create_connection(("127.0.0.1", relay.port), timeout=1.0)
        relay.cut(mode="refuse")  # what the silent cut held open is closed now
        assert _closed_at_once(established) < 0.2
        assert _closed_at_once(held) < 0.2
        established.close()
        held.close()
        relay.heal()
        assert roundtrip(relay.port, b"two") == b"two"


def test_an_unknown_cut_mode_is_refused_and_cuts_nothing(echo_port: int) -> None:
    with Relay(echo_port) as relay:
        with pytest.raises(InvalidArgument, match="'silent' or 'refuse', got 'drop'"):
            relay.cut(mode="drop")  # type: ignore[arg-type]
        assert not relay.is_cut
        assert roundtrip(relay.port, b"one") == b"one"


def test_a_heal_after_close_is_a_no_op(echo_port: int) -> None:
    # A heal on a timer (a cut of 0.5 s) may fire after the test closed the relay.
    relay = Relay(echo_port)
    relay.close()
    started = time.monotonic()
    relay.heal()
    relay.cut(mode="refuse")
    assert time.monotonic() - started < 0.1


def test_the_client_network_falls_back_to_relays_and_says_why(
    echo_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chronoid.torture import network

    with Supervisor("test", tmp_path) as supervisor:

        def refuse() -> str:
            raise OSError("ip netns add: Operation not permitted")

        monkeypatch.setattr(supervisor, "netns", refuse)
        monkeypatch.setattr(network, "is_root", lambda: True)
        made = network.client_network(supervisor, lambda: [Relay(echo_port)], prefer_netns=True)
        assert made[1] == "relay (ip netns failed: ip netns add: Operation not permitted)"
        monkeypatch.setattr(network, "is_root", lambda: False)
        relayed, why = network.client_network(
            supervisor, lambda: [Relay(echo_port)], prefer_netns=True
        )
        assert why == "relay (not root)"
        assert isinstance(relayed, network.RelayNetwork)
        port = relayed.client_port(echo_port)
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"ping")
            assert conn.recv(4) == b"ping"
        for one in (made[0], relayed):
            assert isinstance(one, network.RelayNetwork)
            for relay in one.relays.values():
                relay.close()


def test_a_netns_partition_is_silence_and_its_heal_lets_the_connection_carry_on(
    tmp_path: Path,
) -> None:
    # As root: a client in the run's namespace, a server on the host end of the veth.
    from chronoid.torture.network import NetnsNetwork

    with Supervisor("test", tmp_path) as supervisor:
        net = NetnsNetwork(supervisor)
        server = socket.create_server((net.server_host, 0))
        port = server.getsockname()[1]
        client = subprocess.Popen(
            net.wrap(
                [
                    sys.executable,
                    "-c",
                    "import socket,sys,time\n"
                    f"s=socket.create_connection(('{net.client_host}',{port}),timeout=5)\n"
                    "s.sendall(b'a'); time.sleep(0.5); s.sendall(b'b')\n"
                    "s.settimeout(10); print(s.recv(1).decode(), flush=True)\n",
                ]
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        conn, _ = server.accept()
        assert conn.recv(1) == b"a"
        net.cut()
        conn.settimeout(1.0)
        with pytest.raises(TimeoutError):
            conn.recv(1)  # 'b' was sent during the cut: it does not arrive
        net.heal()
        conn.settimeout(10)
        assert conn.recv(1) == b"b"  # TCP retransmits it after the heal
        conn.sendall(b"c")
        out, _ = client.communicate(timeout=15)
        assert out.strip() == "c"
        conn.close()
        server.close()
        net.close()
        name = net.name
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert name not in listed


def test_an_etcd_url_of_several_endpoints_is_relayed_and_cut_endpoint_by_endpoint(
    tmp_path: Path,
) -> None:
    """``--ha etcd://a,b,c``: every endpoint gets a relay, and a member cut off from the store
    reaches none of them (the URL parser once saw one port "a,b,c" and raised ValueError)."""
    options = RunOptions(time_s=1, ops=0, seed=1, scenario=None, out_dir=tmp_path / "out")
    with (
        tcp_server(_echo) as first,
        tcp_server(_echo) as second,
        Run.open("serve", options) as run,
    ):
        relays, url = relayed_url(run, f"etcd://127.0.0.1:{first},127.0.0.1:{second}?prefix=/x/")
        parts = urlsplit(url)
        assert parts.query == "prefix=/x/"
        ports = [port for _, port in parse_etcd_endpoints(parts.netloc)]
        assert len(ports) == 2 and {first, second}.isdisjoint(ports)
        assert [roundtrip(port, b"up") for port in ports] == [b"up", b"up"]
        relays.cut()
        for port in ports:
            with pytest.raises(TimeoutError):
                roundtrip(port, b"cut", timeout_s=0.3)
        relays.heal()
        assert [roundtrip(port, b"healed") for port in ports] == [b"healed", b"healed"]
