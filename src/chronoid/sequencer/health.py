"""Health endpoints on the metrics port: ``/healthz``, ``/readyz`` and ``/metrics``.

* ``/healthz``: 200 while the process runs and its HTTP thread answers (liveness: restart it
  when this fails).
* ``/readyz``: 200 when this member can issue values now: standalone, when its last watermark
  write succeeded; with ``--ha``, only the leader inside its lease. 503 otherwise, with the
  reason (``standby``, the leader's address, a failing store, shutting down). Route client
  traffic by this one.
* ``/metrics``: the Prometheus text format (needs prometheus-client, the ``server`` extra).

Any other path is 404, any method but GET and HEAD 405. Bodies are one JSON object, so a
person with curl and a probe script read the same thing. :func:`probe` is the container
health check (``chronoid probe``), needing nothing but the standard library.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from chronoid.errors import InvalidArgument, ServerStartError
from chronoid.sequencer.logs import event
from chronoid.version import package_version

if TYPE_CHECKING:
    from chronoid.sequencer.server import SequencerServer

__all__ = ["HealthServer", "probe", "readiness"]

log = logging.getLogger("chronoid.sequencer")


def readiness(server: SequencerServer | None) -> tuple[bool, dict[str, object]]:
    """Whether ``server`` can issue now, and the facts behind the answer (None: the server
    is still starting: loading its state, reserving its first block)."""
    facts: dict[str, object] = {"version": package_version()}
    if server is None:
        return False, {**facts, "role": "starting", "reason": "starting up"}
    if server.closing:
        return False, {**facts, "role": "stopping", "reason": "shutting down"}
    elector = server.elector
    if elector is not None:
        term = elector.term
        if elector.serving() is not None:
            return True, {**facts, "role": "leader", "term": term, "member": elector.member}
        return False, {
            **facts,
            "role": "standby",
            "member": elector.member,
            "leader": elector.leader_address,
            "reason": elector.reason,
        }
    sequences = server.sequences
    assert sequences is not None
    failure = sequences.failure()
    if failure is not None:
        return False, {**facts, "role": "standalone", "reason": f"store failing: {failure}"}
    return True, {**facts, "role": "standalone"}


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "chronoid"
    sys_version = ""
    timeout = 10  # s per request: an idle or trickling client must not hold a thread forever

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _not_allowed(self) -> None:
        self._send(405, {"error": f"method {self.command} not allowed"}, body=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _answer(self, *, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        sequencer = self.server.sequencer
        if path == "/healthz":
            self._send(200, {"status": "alive", "version": package_version()}, body=body)
        elif path == "/readyz":
            ready, facts = readiness(sequencer)
            self._send(200 if ready else 503, {"ready": ready, **facts}, body=body)
        elif path == "/metrics":
            registry = self.server.registry()
            if registry is None and self.server.sequencer is None:
                self._send(503, {"error": "starting up"}, body=body)
                return
            if registry is None:
                self._send(
                    501,
                    {"error": "metrics need prometheus-client (pip install 'chronoid[server]')"},
                    body=body,
                )
                return
            from chronoid.sequencer.metrics import render

            payload, content_type = render(registry)
            self._send_bytes(200, payload, content_type, body=body)
        else:
            self._send(
                404, {"error": f"no such path {path!r}; try /healthz /readyz /metrics"}, body=body
            )

    def _send(self, status: int, document: dict[str, object], *, body: bool) -> None:
        payload = (json.dumps(document, default=str) + "\n").encode()
        self._send_bytes(status, payload, "application/json", body=body)

    def _send_bytes(self, status: int, payload: bytes, content_type: str, *, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would drown the log


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.sequencer: SequencerServer | None = None
        self._registry: Any = None
        self._registry_lock = threading.Lock()
        self._metrics_missing = False

    def registry(self) -> Any:
        """The Prometheus registry, made at the first scrape; None without prometheus-client."""
        with self._registry_lock:
            if self.sequencer is None:
                return None
            if self._registry is None and not self._metrics_missing:
                try:
                    from chronoid.sequencer.metrics import make_registry

                    self._registry = make_registry(self.sequencer)
                except ImportError:
                    self._metrics_missing = True
                    log.warning(
                        "/metrics needs prometheus-client; only /healthz and /readyz answer",
                        extra=event("metrics_unavailable"),
                    )
            return self._registry


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port``, answered from a daemon
    thread (a scrape never runs on the event loop).

    It binds at construction, before the server loads its state, so a port in use stops the
    start before anything else is touched; until :meth:`attach` gives it the server it
    answers ``/healthz`` 200 and ``/readyz`` 503 ``starting``.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidArgument(f"metrics port must be an int in 0..65535, got {port!r}")
        try:
            self._http = _HTTPServer((host, port))
        except OSError as exc:
            raise ServerStartError(
                f"cannot listen on {host}:{port} for metrics (--metrics-port): "
                f"{exc.strerror or exc}"
            ) from None
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="chronoid-health", daemon=True
        )

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        port: int = self._http.server_address[1]
        return port

    def start(self) -> None:
        """Answer requests in the background."""
        self._thread.start()

    def attach(self, sequencer: SequencerServer) -> None:
        """Answer for ``sequencer`` from now on (once it listens)."""
        self._http.sequencer = sequencer

    def close(self) -> None:
        """Stop answering and release the port."""
        self._http.shutdown()
        self._http.server_close()


def probe(url: str, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Ask a health endpoint: (answered 200, one line saying what it said).

    Used by ``chronoid probe`` in container health checks, where curl may be absent.

    Raises:
        InvalidArgument: ``timeout_s`` outside (0, 300] seconds.
    """
    if not 0 < timeout_s <= 300:
        raise InvalidArgument(f"timeout_s must be in (0, 300] seconds, got {timeout_s}")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return True, _summary(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return False, _summary(exc.code, exc.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url}: {reason}"


def _summary(status: int, payload: bytes) -> str:
    try:
        document = json.loads(payload)
    except ValueError:
        return f"{status}"
    if not isinstance(document, dict):
        return f"{status}"
    parts = [f"{k}={v}" for k, v in document.items() if v is not None and k != "version"]
    return f"{status} " + " ".join(parts)
