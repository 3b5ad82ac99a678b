"""A TCP relay on loopback that the nemesis (or a test) can cut: a network partition without
root.

A client is pointed at the relay's port instead of the server's; the relay forwards bytes both
ways. :meth:`Relay.cut` partitions it one of two ways, as the fault under test asks:

``silent`` (the default) a black hole: established connections stop moving bytes (nothing is
           closed, so the client sees silence, as behind a dropped link, until its own
           timeout); new connections are accepted and then ignored.
``refuse`` an unreachable store: every relayed connection is closed at once (the client reads
           EOF or ECONNRESET), and new connections are accepted and closed at once.

:meth:`Relay.heal` closes what was cut and forwards again. One thread with a selector serves
every connection; ``cut`` and ``heal`` return once that thread has applied them, so a byte
sent after ``cut()`` returns is never forwarded and a connection made after ``heal()`` returns
is relayed.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Literal, get_args

from chronoid.errors import InvalidArgument, TortureError

__all__ = ["CutMode", "Relay"]

CutMode = Literal["silent", "refuse"]
"""How a cut relay fails its clients: ``silent`` (a black hole) or ``refuse`` (closed)."""

_CHUNK = 65_536
_APPLY_TIMEOUT_S = 5.0  # a forward blocks the thread at most 1 s (its send timeout)


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
        self._cut: CutMode | None = None  # owned by the thread; read by is_cut
        self._pending: list[tuple[CutMode | None, threading.Event]] = []
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._serve, name="torture-relay", daemon=True)
        self._thread.start()

    @property
    def is_cut(self) -> bool:
        """True while the relay is cut (either mode)."""
        return self._cut is not None

    def cut(self, mode: CutMode = "silent") -> None:
        """Partition the relay: ``silent`` stops moving bytes on every connection, old and
        new; ``refuse`` closes every relayed connection and closes new ones once accepted.
        A cut in force may be changed to the other mode by cutting again."""
        if mode not in get_args(CutMode):
            raise InvalidArgument(f"relay cut mode must be 'silent' or 'refuse', got {mode!r}")
        self._apply(mode)

    def heal(self) -> None:
        """Close the connections that were cut, then forward again."""
        self._apply(None)

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

    def _apply(self, mode: CutMode | None) -> None:
        """Hand ``mode`` to the thread, which owns every socket, and wait until it is in force
        (a closed relay has nothing left to cut or heal: a heal on a timer may come late)."""
        applied = threading.Event()
        with self._lock:
            if self._closed:
                return
            self._pending.append((mode, applied))
        self._wake()
        if not applied.wait(_APPLY_TIMEOUT_S) and not self._closed:
            what = "heal" if mode is None else f"{mode} cut"
            raise TortureError(
                f"relay to {self.target_host}:{self.target_port}: its thread did not apply "
                f"the {what} within {_APPLY_TIMEOUT_S:g} s"
            )

    # -- the thread ------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _serve(self) -> None:
        while not self._closed:
            with self._lock:
                pending, self._pending = self._pending, []
            for mode, applied in pending:
                self._enter(mode)
                applied.set()
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
                elif self._cut is None:
                    self._forward(ready)
            if self._cut is not None:
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

    def _enter(self, mode: CutMode | None) -> None:
        """Put ``mode`` in force: a heal or a refusing cut closes every connection (relayed
        or held); a silent cut closes none."""
        self._cut = mode
        if mode == "silent":
            return
        for sock in list(self._peers):
            self._drop(sock)
        for sock in self._held:
            with contextlib.suppress(OSError):
                sock.close()
        self._held = []

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        if self._cut == "refuse":
            client.close()  # the client's connect succeeds, its first read sees EOF
            return
        if self._cut == "silent":
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
