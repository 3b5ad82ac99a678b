"""A throwaway 3-member etcd cluster on loopback, for the failover tests and benchmark.

Each member is a real ``etcd`` subprocess (Debian's etcd-server package) with its own client
and peer port and a data directory under the test's ``tmp_path``. ``stop(i)`` kills one member
(SIGKILL by default: a crash, not a clean leave), ``start(i)`` brings it back on the same ports
and data directory, so it rejoins as the same member. Raft timings are twice as fast as etcd's
defaults (heartbeat 50 ms, election timeout 500 ms) to keep elections short; etcd's minimum
lease TTL follows from them (1.5 election timeouts, so 1 s here, 2 s with the defaults).

Use it as a context manager::

    with EtcdCluster(tmp_path) as cluster:
        coordinator = EtcdCoordinator(cluster.endpoints)
        cluster.stop(0)
"""

from __future__ import annotations

import json
import shutil
import signal
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from chronoid.errors import InvalidArgument, TortureError
from chronoid.torture.processes import Child, free_port

__all__ = ["ELECTION_TIMEOUT_MS", "HEARTBEAT_MS", "EtcdCluster", "member_argv"]

ETCD = "etcd"
"""The etcd server binary (Debian's etcd-server package puts it on PATH)."""
HEARTBEAT_MS = 50
"""Default raft heartbeat (ms): twice as fast as etcd's 100."""
ELECTION_TIMEOUT_MS = 500
"""Default raft election timeout (ms): twice as fast as etcd's 1000."""


def member_argv(
    binary: str, name: str, data_dir: Path, client_port: int, peer_port: int, initial_cluster: str
) -> list[str]:
    """The command of etcd member ``name`` on 127.0.0.1 (clients on ``client_port``, raft
    peers on ``peer_port``) with its data in ``data_dir``, in the cluster ``initial_cluster``
    (``name=http://127.0.0.1:<peer port>,...``): the cluster's members and the torture
    tool's one-member store are started the same way."""
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return [
        *(binary, "--name", name, "--data-dir", str(data_dir)),
        *("--listen-client-urls", client, "--advertise-client-urls", client),
        *("--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer),
        *("--initial-cluster", initial_cluster),
    ]


class EtcdCluster:
    """``size`` etcd members on 127.0.0.1 with state under ``root``; started by ``__enter__``.

    Args:
        root: a directory of the caller's own (a test's ``tmp_path``): data dirs and logs
            go there.
        size: number of members (3 tolerates one failure).
        ready_s: how long to wait for a member to report healthy (s).
        heartbeat_ms, election_timeout_ms: raft timings (etcd's defaults are 100 and 1000).
    """

    def __init__(
        self,
        root: Path,
        size: int = 3,
        *,
        ready_s: float = 20.0,
        heartbeat_ms: int = HEARTBEAT_MS,
        election_timeout_ms: int = ELECTION_TIMEOUT_MS,
    ) -> None:
        if size < 1:
            raise InvalidArgument(f"size must be >= 1 member, got {size}")
        if not 0 < heartbeat_ms < election_timeout_ms:
            raise InvalidArgument(
                "heartbeat_ms must be > 0 and below election_timeout_ms, got "
                f"{heartbeat_ms} and {election_timeout_ms}"
            )
        if shutil.which(ETCD) is None:
            raise TortureError("etcd is not installed (apt-get install etcd-server)")
        self.root = root
        self.ready_s = ready_s
        self.heartbeat_ms = heartbeat_ms
        self.election_timeout_ms = election_timeout_ms
        self.names = [f"m{i}" for i in range(size)]
        self.client_ports = [free_port() for _ in range(size)]
        self.peer_ports = [free_port() for _ in range(size)]
        self.children: list[Child | None] = [None] * size
        peers = zip(self.names, self.peer_ports, strict=True)
        self._initial_cluster = ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in peers)
        self._token = f"chronoid-{root.name}-{self.client_ports[0]}"

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """The members' client endpoints, in member order."""
        return [("127.0.0.1", port) for port in self.client_ports]

    def log(self, i: int) -> Path:
        """The file that receives member ``i``'s output."""
        return self.root / f"etcd-{self.names[i]}.log"

    def start(self, i: int, *, wait: bool = True) -> None:
        """Start (or restart) member ``i``; with ``wait``, block until it reports healthy."""
        if self.running(i):
            raise TortureError(f"etcd member {i} is already running")
        name, client, peer = self.names[i], self.client_ports[i], self.peer_ports[i]
        data_dir = self.root / f"etcd-{name}"
        self.children[i] = Child.start(
            f"etcd member {i}",
            [
                *member_argv(ETCD, name, data_dir, client, peer, self._initial_cluster),
                "--initial-cluster-state",
                "new",  # ignored once the data dir exists, so a restart rejoins
                *("--initial-cluster-token", self._token),
                *("--heartbeat-interval", str(self.heartbeat_ms)),
                *("--election-timeout", str(self.election_timeout_ms)),
            ],
            log_path=self.log(i),
        )
        if wait:
            self.wait_healthy(i)

    def stop(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Stop member ``i`` with ``sig`` (SIGKILL: a crash) and wait until it has exited."""
        child = self.children[i]
        if child is None or not child.alive():
            return
        child.signal(sig)
        child.process.wait(timeout=10)

    def running(self, i: int) -> bool:
        """Whether member ``i``'s process is alive."""
        child = self.children[i]
        return child is not None and child.alive()

    def healthy(self, i: int) -> bool:
        """Whether member ``i`` answers ``/health`` with true (it sees a leader and a quorum)."""
        url = f"http://127.0.0.1:{self.client_ports[i]}/health"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(json.load(response).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def wait_healthy(self, i: int) -> None:
        """Block until member ``i`` is healthy; TortureError with its log tail if it is not."""
        child = self.children[i]
        if child is None:
            raise TortureError(f"etcd member {i} was never started")
        child.wait_ready(lambda: self.healthy(i), self.ready_s, "healthy")

    def restore(self) -> None:
        """Restart every stopped member and wait until all are healthy."""
        for i in range(len(self.names)):
            if not self.running(i):
                self.start(i, wait=False)
        for i in range(len(self.names)):
            self.wait_healthy(i)

    def raft_leader(self) -> int:
        """The index of the member that is raft leader now (TortureError if none is)."""
        statuses = [
            self._post(i, "maintenance/status", {}) if self.running(i) else {}
            for i in range(len(self.names))
        ]
        ids = [status.get("header", {}).get("member_id") for status in statuses]
        for status in statuses:
            if status.get("leader") in ids:
                return ids.index(status["leader"])
        raise TortureError("no etcd member knows a raft leader")

    def _post(self, i: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.client_ports[i]}/v3/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2.0) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except OSError:
            return {}

    def close(self) -> None:
        """Kill every member that is still running."""
        for i in range(len(self.names)):
            self.stop(i)

    def __enter__(self) -> EtcdCluster:
        try:
            # Members wait for each other's votes: start them all, then wait for each.
            for i in range(len(self.names)):
                self.start(i, wait=False)
            for i in range(len(self.names)):
                self.wait_healthy(i)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
