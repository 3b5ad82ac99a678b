"""The partition relay: forwards, goes silent when cut, forwards again when healed."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronoid.torture.processes import Supervisor
from chronoid.torture.relay import Relay
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


def test_cut_is_silence_and_heal_forwards_again(echo_port: int) -> None:
    with Relay(echo_port) as relay:
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
        relay.heal()
        with pytest.raises(OSError):  # what was cut is closed, not resumed
            established.settimeout(1.0)
            if established.recv(1024) == b"":
                raise ConnectionResetError
        established.close()
        assert roundtrip(relay.port, b"two") == b"two"


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
