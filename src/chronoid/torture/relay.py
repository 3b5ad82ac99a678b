"""A TCP relay on loopback that the nemesis can cut: a network partition without root.

A client is pointed at the relay's port instead of the server's; the relay forwards bytes both
ways. :meth:`Relay.cut` makes it a black hole: established connections stop moving bytes
(nothing is closed, so the client sees silence, as behind a dropped link, until its own
timeout), new connections are accepted and then ignored. :meth:`Relay.heal` closes what was
cut and forwards again. One thread with a selector serves every connection.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

__all__ = ["Relay"]

_CHUNK = 65_536


class Relay:
    """Forwards ``127.0.0.1:port`` to ``target_host:target_port`` until closed."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_port = target_port
        self.target_host = target_host
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        self._heal_pending = False
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._serve, name="torture-relay", daemon=True)
        self._thread.start()

    @property
    def is_cut(self) -> bool:
        """True while the relay is a black hole."""
        return self._cut

    def cut(self) -> None:
        """Stop moving bytes, on every connection and on new ones."""
        with self._lock:
            self._cut = True
        self._wake()

    def heal(self) -> None:
        """Close the connections that were cut, then forward again (done by the relay's
        thread, which owns every socket)."""
        with self._lock:
            self._heal_pending = True
        self._wake()

    def close(self) -> None:
        """Stop the relay and close every connection."""
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(timeout=5)
        for sock in list(self._peers) + self._held:
            with contextlib.suppress(OSError):
                sock.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()
        self._selector.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the thread ------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _serve(self) -> None:
        while not self._closed:
            if self._heal_pending:
                with self._lock:
                    self._heal_pending = False
                    self._cut = False
                for sock in list(self._peers):
                    self._drop(sock)
                for sock in self._held:
                    with contextlib.suppress(OSError):
                        sock.close()
                self._held = []
            for key, _ in self._selector.select(timeout=0.5):
                if key.data == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    continue
                ready = key.fileobj
                if not isinstance(ready, socket.socket):
                    continue
                if ready is self._listener:
                    self._accept()
                elif not self._cut:
                    self._forward(ready)
            if self._cut:
                # A cut link moves nothing: stop watching the sockets so the loop idles.
                for sock in list(self._peers):
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(sock)
            else:
                for sock in list(self._peers):
                    try:
                        self._selector.get_key(sock)
                    except KeyError:
                        with contextlib.suppress(ValueError, OSError):
                            self._selector.register(sock, selectors.EVENT_READ, None)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        if self._cut:
            self._held.append(client)  # accepted, never answered
            return
        try:
            upstream = socket.create_connection((self.target_host, self.target_port), timeout=1)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._peers[client] = upstream
        self._peers[upstream] = client
        self._selector.register(client, selectors.EVENT_READ, None)
        self._selector.register(upstream, selectors.EVENT_READ, None)

    def _forward(self, sock: socket.socket) -> None:
        peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            peer.setblocking(True)
            peer.settimeout(1.0)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._peers.pop(one, None)
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(one)
            with contextlib.suppress(OSError):
                one.close()
