"""A failover group on loopback: ``chronoid serve --ha`` members as real processes, and a
client load that records what it got.

The harness of the failover tests (``tests/sequencer/test_failover_*.py``) and of
``benchmarks/bench_failover.py``, here so the benchmark needs nothing from ``tests``. Each
member logs to its own file so a caller can read why it stepped down; the load thread records
every value a failover-aware client got, with the time, for uniqueness and failover-time
checks.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from chronoid.errors import SequencerReplyError, TortureError
from chronoid.sequencer.client import AsyncSequencerClient, SequencerClient
from chronoid.torture.processes import Child, free_port

__all__ = ["Load", "Member", "make_members", "wait_for_leader", "wait_for_term"]

_Client = TypeVar("_Client", SequencerClient, AsyncSequencerClient)

START_TIMEOUT_S = 15.0
"""How long a member may take to listen after it started (s)."""


@dataclass
class Member:
    """One ``chronoid serve --ha`` member on 127.0.0.1:``port`` in failover cluster
    ``cluster`` of the store ``ha_url``, with lease TTL ``ttl`` (s) and ``extra`` flags;
    started (and restarted) by :meth:`start` through :meth:`Child.start`."""

    ha_url: str
    cluster: str
    port: int
    log_path: Path
    ttl: float
    extra: tuple[str, ...] = ()
    child: Child | None = None

    @property
    def address(self) -> str:
        """``host:port``, as a client's server list names it."""
        return f"127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The current process (None before the first ``start()``)."""
        return None if self.child is None else self.child.process

    def start(self) -> Member:
        """Start it (again) and wait until it listens.

        Raises:
            TortureError: it exited or did not listen within 15 s (with its log's tail).
        """
        self.child = Child.start(
            f"member on {self.port}",
            [
                *(sys.executable, "-m", "chronoid", "serve", "--ha", self.ha_url),
                *("--cluster", self.cluster, "--port", str(self.port)),
                *("--lease-ttl", str(self.ttl), "--member", f"m{self.port}"),
                *("--log-level", "INFO", *self.extra),
            ],
            log_path=self.log_path,
            env={k: v for k, v in os.environ.items() if k != "CHRONOID_PASSWORD"},
        )
        self.child.wait_listening(self.port, START_TIMEOUT_S)
        return self

    def _started(self) -> Child:
        if self.child is None:
            raise TortureError(f"the member on port {self.port} was never started")
        return self.child

    def alive(self) -> bool:
        """True while the current process runs."""
        return self.child is not None and self.child.alive()

    def signal(self, sig: int) -> None:
        """Send ``sig`` (SIGSTOP: a pause, SIGCONT: the end of one)."""
        self._started().signal(sig)

    def kill(self) -> None:
        """kill -9 it (a crash) and reap it."""
        self._started().kill()

    def kill_if_running(self) -> None:
        """Clean-up after a caller that may have left it paused: kill -9 (SIGCONT first: a
        stopped process cannot die until it runs again); nothing if it never started or
        already exited."""
        if self.alive():
            self.signal(signal.SIGCONT)
            self.kill()

    def stop(self) -> int:
        """SIGTERM (it resigns its term) and its exit status (waits up to 15 s)."""
        child = self._started()
        child.signal(signal.SIGTERM)
        return child.process.wait(timeout=15)

    def log(self) -> str:
        """Everything it logged so far, over all its starts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def raw(self, command: bytes) -> bytes:
        """One inline command on a fresh connection; the first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(command + b"\r\n")
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data

    def info(self) -> dict[str, str]:
        """Its INFO reply as ``field: value`` pairs."""
        with SequencerClient("127.0.0.1", self.port, timeout=2) as client:
            text = client.call(b"INFO")
        if not isinstance(text, bytes):
            raise TortureError(f"INFO of the member on port {self.port} is not text: {text!r}")
        pairs = (line.split(":", 1) for line in text.decode().splitlines() if ":" in line)
        return {k: v for k, v in pairs}

    def role(self) -> str:
        """``leader``, ``standby``, or ``down`` when it does not answer."""
        try:
            return self.info()["role"]
        except (OSError, EOFError, SequencerReplyError):
            return "down"


def make_members(
    ha_url: str, cluster: str, log_dir: Path, n: int, ttl: float, *extra: str
) -> list[Member]:
    """``n`` members (not started) on spare ports, logging to ``log_dir/member<i>.log``."""
    return [
        Member(ha_url, cluster, free_port(), log_dir / f"member{i}.log", ttl, extra)
        for i in range(n)
    ]


def wait_for_leader(members: list[Member], timeout: float) -> Member:
    """The member that is leader within ``timeout`` s; TortureError with every log's tail
    if none is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for member in members:
            if member.alive() and member.role() == "leader":
                return member
        time.sleep(0.05)
    logs = "\n".join(m.log()[-2000:] for m in members)
    raise TortureError(f"no leader within {timeout} s:\n{logs}")


def wait_for_term(member: Member, timeout: float) -> dict[str, str]:
    """INFO of ``member`` once it holds a term (serving or refusing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = member.info()
        if info["ha_term"] != "0":
            return info
        time.sleep(0.05)
    raise TortureError(f"no term within {timeout} s: {member.log()[-2000:]}")


@dataclass
class Load:
    """A thread calling GETSEQ through a failover-aware client (the async one when
    ``asynchronous``), recording (time, value) and every exception the caller saw.
    ``interval_s`` paces it (s between calls, default 0: as fast as it can), so a term's
    first reservation block can outlast a test's store outage."""

    members: list[Member]
    asynchronous: bool = False
    interval_s: float = 0.0
    values: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        """Start the thread; values and errors accumulate until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _client(self, kind: type[_Client]) -> _Client:
        """A failover-aware client of ``kind``: the first member, the others to fail over to
        (0.5 s socket timeout, 30 s to find a leader)."""
        first, *rest = self.members
        servers = [m.address for m in rest]
        return kind("127.0.0.1", first.port, servers=servers, timeout=0.5, failover_timeout=30)

    def _run(self) -> None:
        if self.asynchronous:
            asyncio.run(self._run_async())
            return
        client = self._client(SequencerClient)
        while not self._stop.is_set():
            try:
                value = client.getseq()
            except Exception as exc:  # recorded; the test decides
                self.errors.append(repr(exc))
                time.sleep(0.05)
                continue
            self.values.append((time.monotonic(), value))
            if self.interval_s:
                time.sleep(self.interval_s)
        client.close()

    async def _run_async(self) -> None:
        client = self._client(AsyncSequencerClient)
        while not self._stop.is_set():
            try:
                value = await client.getseq()
            except Exception as exc:  # recorded; the test decides
                self.errors.append(repr(exc))
                await asyncio.sleep(0.05)
                continue
            self.values.append((time.monotonic(), value))
            if self.interval_s:
                await asyncio.sleep(self.interval_s)
        await client.close()

    def stop(self) -> None:
        """Stop the thread (waits up to 40 s for the call in flight)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=40)

    def longest_pause(self, since: float, until: float | None = None) -> float:
        """The longest time without a value after ``since`` (s), up to ``until`` if given."""
        times = [since, *(t for t, _ in self.values if since < t and (until is None or t < until))]
        if until is not None:
            times.append(until)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def first_after(self, moment: float, timeout: float) -> float:
        """When the first value after ``moment`` arrived (waits up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            values = self.values[-20000:]
            if values and values[-1][0] > moment:
                return min(when for when, _ in values if when > moment)
            time.sleep(0.01)
        raise TortureError(f"no value within {timeout} s after the event: {self.errors[-3:]}")
