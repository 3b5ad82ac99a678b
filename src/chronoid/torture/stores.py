"""The stores a run starts itself, so the nemesis may stop, pause and restart them: etcd and
PostgreSQL (the ``--ha`` stores and the Mode C registries) and Redis (a Mode C registry).

Each runs as a child of the run's supervisor on spare loopback ports, with its data in the
run's scratch directory, and dies with the run. :meth:`Store.url` names it for a client,
optionally through a relay's port (a partition). etcd and PostgreSQL keep their data across a
kill -9 (``keeps_data``); the Redis registry runs without persistence, so a restart loses
every lease (issue 14's "registry that lost its data").
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from chronoid.errors import TortureError
from chronoid.torture.etcd_cluster import member_argv
from chronoid.torture.history import now_ns
from chronoid.torture.processes import Child, Owned, children_of, free_port, wait_for_port
from chronoid.torture.run import Run

__all__ = ["STORE_KINDS", "EtcdStore", "PostgresStore", "RedisStore", "Store", "start_store"]

STORE_KINDS = ("redis", "etcd", "postgresql")
"""Stores the tool can start itself."""

_PG_USER = "postgres"


class Store(Owned):
    """One store process the run owns: started, killed, paused and restarted by the nemesis."""

    kind = ""
    keeps_data = True
    """False when a restart loses every key (the Redis registry)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.port = free_port()
        self.child: Child | None = None
        self.starts = 0

    def url(self, port: int | None = None, query: str = "") -> str:
        """The URL of the store, reached on ``port`` (a relay's) if given."""
        raise NotImplementedError

    def argv(self) -> list[str]:
        raise NotImplementedError

    def user(self) -> str | None:
        return None

    def restart(self, attempts: int = 5) -> str:
        """Start it again after a kill, retrying each second; returns the outcome (each
        failed attempt is recorded as a ``restart-failed`` fault)."""
        for attempt in range(1, attempts + 1):
            try:
                self.start()
            except TortureError as exc:
                self.run.faults.fault("restart-failed", self.kind, now_ns(), None, str(exc))
                self.kill()
                time.sleep(1)
                continue
            return "restarted" if attempt == 1 else f"restarted after {attempt} attempts"
        return f"not restarted after {attempts} attempts"

    def start(self) -> None:
        """Start it (again) and wait until it listens.

        Raises:
            TortureError: it did not listen within 30 s (the message has its last log line).
        """
        self.starts += 1
        self.child = self.run.supervisor.spawn(
            f"{self.kind}.{self.starts}", self.argv(), user=self.user()
        )
        if not wait_for_port(self.port, self.child, 30.0):
            raise TortureError(f"{self.kind} did not start: {self.child.log_tail()}")


def _binary(name: str, package: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        raise TortureError(f"{name} is not on PATH (apt-get install {package})")
    return binary


class RedisStore(Store):
    """``redis-server`` without persistence."""

    kind = "redis"
    keeps_data = False

    def __init__(self, run: Run) -> None:
        self.binary = _binary("redis-server", "redis-server")
        super().__init__(run)

    def url(self, port: int | None = None, query: str = "") -> str:
        return f"redis://127.0.0.1:{port or self.port}/0{query}"

    def argv(self) -> list[str]:
        return [
            *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.run.supervisor.scratch)),
        ]


class EtcdStore(Store):
    """A one-member etcd on its data directory in the scratch."""

    kind = "etcd"

    def __init__(self, run: Run) -> None:
        self.binary = _binary("etcd", "etcd-server")
        super().__init__(run)
        self.peer_port = free_port()
        self.data_dir = run.supervisor.scratch / "etcd"

    def url(self, port: int | None = None, query: str = "") -> str:
        return f"etcd://127.0.0.1:{port or self.port}{query}"

    def argv(self) -> list[str]:
        peers = f"torture=http://127.0.0.1:{self.peer_port}"
        return [
            *member_argv(self.binary, "torture", self.data_dir, self.port, self.peer_port, peers),
            *("--log-level", "error"),
        ]


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` that has ``initdb`` (Debian's layout).

    Raises:
        TortureError: none is installed.
    """
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise TortureError(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql)"
        )
    return found[-1]


class PostgresStore(Store):
    """A PostgreSQL cluster of the run's own (``initdb``), run as the ``postgres`` OS user
    when the tool is root (PostgreSQL refuses to run as root)."""

    kind = "postgresql"

    def __init__(self, run: Run) -> None:
        self.bin = postgres_bin()
        super().__init__(run)
        self.root = run.supervisor.scratch / "pg"
        self.root.mkdir()
        self._user = _PG_USER if os.geteuid() == 0 else None
        if self._user is not None:
            os.chmod(run.supervisor.scratch, 0o711)  # postgres must reach its directory
            shutil.chown(self.root, self._user, self._user)
        self.root.chmod(0o700)
        self.data_dir = self.root / "data"
        init = subprocess.run(
            [
                *(["runuser", "-u", self._user, "--"] if self._user else []),
                *(str(self.bin / "initdb"), "-D", str(self.data_dir)),
                *("-U", "postgres", "-A", "trust", "-N", "--no-instructions"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if init.returncode != 0:
            tail = " | ".join(init.stderr.strip().splitlines()[-2:])
            raise TortureError(f"initdb failed: {tail}")

    def url(self, port: int | None = None, query: str = "") -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/postgres{query}"

    def signal(self, sig: int) -> None:
        """``sig`` to the postmaster and to every backend (each in a session of its own)."""
        if self.child is None or not self.child.alive():
            return
        backends = children_of(self.child.pid)
        self.child.signal(sig)
        for pid in backends:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend, and wait until they are gone (a backend
        left alive keeps the shared memory, and the restart refuses to start)."""
        if self.child is None:
            return
        backends = children_of(self.child.pid) if self.child.alive() else []
        self.signal(signal.SIGKILL)
        self.child.kill()
        deadline_s = time.monotonic() + 10
        while time.monotonic() < deadline_s and any(_exists(pid) for pid in backends):
            time.sleep(0.02)

    def user(self) -> str | None:
        return self._user

    def argv(self) -> list[str]:
        return [
            *(str(self.bin / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)),
            *("-c", "listen_addresses=127.0.0.1", "-k", str(self.root)),
            *("-c", "shared_buffers=16MB", "-c", "max_connections=40", "-c", "fsync=on"),
        ]


def _exists(pid: int) -> bool:
    """True while ``pid`` is a process that is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_store(run: Run, kind: str) -> Store:
    """Start a store of ``kind`` (one of :data:`STORE_KINDS`)."""
    store: Store
    if kind == "redis":
        store = RedisStore(run)
    elif kind == "etcd":
        store = EtcdStore(run)
    elif kind == "postgresql":
        store = PostgresStore(run)
    else:
        raise TortureError(f"unknown store {kind!r}; known: {', '.join(STORE_KINDS)}")
    run.cleanups.append(store.kill)  # PostgreSQL's backends are outside its process group
    store.start()
    return store
