"""The partition relay: forwards, goes silent when cut, forwards again when healed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from chronoid.torture.relay import Relay


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return

            def echo(conn: socket.socket = conn) -> None:
                with conn:
                    while data := conn.recv(1024):
                        conn.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


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
