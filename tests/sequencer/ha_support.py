"""Failover test helpers: ``chronoid serve --ha`` members as real subprocesses.

Each member logs to its own file so a test can read why it stepped down; a load thread
records every value a failover-aware client got, with the time, for uniqueness and
failover-time checks.
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

from chronoid.errors import SequencerReplyError
from chronoid.sequencer.client import AsyncSequencerClient, SequencerClient
from chronoid.torture.processes import Child
from tests.support import free_port


@dataclass
class Member:
    """One ``chronoid serve --ha`` process (started by :meth:`Child.start`, the one launcher)."""

    ha_url: str
    cluster: str
    port: int
    log_path: Path
    ttl: float
    extra: tuple[str, ...] = ()
    child: Child | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The current process (None before the first ``start()``)."""
        return None if self.child is None else self.child.process

    def start(self) -> Member:
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
        self.child.wait_listening(self.port, 15.0)
        return self

    def alive(self) -> bool:
        """True while the current process runs."""
        return self.child is not None and self.child.alive()

    def signal(self, sig: int) -> None:
        assert self.child is not None
        self.child.signal(sig)

    def kill(self) -> None:
        assert self.child is not None
        self.child.kill()

    def kill_if_running(self) -> None:
        """Clean-up after a test that may have left it paused: kill -9 (SIGCONT first: a
        stopped process cannot die until it runs again); nothing if it never started or
        already exited."""
        if self.alive():
            self.signal(signal.SIGCONT)
            self.kill()

    def stop(self) -> int:
        assert self.child is not None
        self.child.signal(signal.SIGTERM)
        return self.child.process.wait(timeout=15)

    def log(self) -> str:
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
        with SequencerClient("127.0.0.1", self.port, timeout=2) as client:
            text = client.call(b"INFO")
        assert isinstance(text, bytes)
        pairs = (line.split(":", 1) for line in text.decode().splitlines() if ":" in line)
        return {k: v for k, v in pairs}

    def role(self) -> str:
        try:
            return self.info()["role"]
        except (OSError, EOFError, SequencerReplyError):
            return "down"


def make_members(
    ha_url: str, cluster: str, tmp_path: Path, n: int, ttl: float, *extra: str
) -> list[Member]:
    return [
        Member(ha_url, cluster, free_port(), tmp_path / f"member{i}.log", ttl, extra)
        for i in range(n)
    ]


def wait_for_leader(members: list[Member], timeout: float) -> Member:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for member in members:
            if member.alive() and member.role() == "leader":
                return member
        time.sleep(0.05)
    logs = "\n".join(m.log()[-2000:] for m in members)
    raise AssertionError(f"no leader within {timeout} s:\n{logs}")


def wait_for_term(member: Member, timeout: float) -> dict[str, str]:
    """INFO of ``member`` once it holds a term (serving or refusing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = member.info()
        if info["ha_term"] != "0":
            return info
        time.sleep(0.05)
    raise AssertionError(f"no term within {timeout} s: {member.log()[-2000:]}")


@dataclass
class Load:
    """A thread calling GETSEQ through a failover-aware client (the async one when
    ``asynchronous``), recording (time, value) and every exception the caller saw."""

    members: list[Member]
    asynchronous: bool = False
    values: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        if self.asynchronous:
            asyncio.run(self._run_async())
            return
        first, *rest = self.members
        client = SequencerClient(
            "127.0.0.1",
            first.port,
            servers=[m.address for m in rest],
            timeout=0.5,
            failover_timeout=30,
        )
        while not self._stop.is_set():
            try:
                value = client.getseq()
            except Exception as exc:  # recorded; the test decides
                self.errors.append(repr(exc))
                time.sleep(0.05)
                continue
            self.values.append((time.monotonic(), value))
        client.close()

    async def _run_async(self) -> None:
        first, *rest = self.members
        client = AsyncSequencerClient(
            "127.0.0.1",
            first.port,
            servers=[m.address for m in rest],
            timeout=0.5,
            failover_timeout=30,
        )
        while not self._stop.is_set():
            try:
                value = await client.getseq()
            except Exception as exc:  # recorded; the test decides
                self.errors.append(repr(exc))
                await asyncio.sleep(0.05)
                continue
            self.values.append((time.monotonic(), value))
        await client.close()

    def stop(self) -> None:
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
        raise AssertionError(f"no value within {timeout} s after the event: {self.errors[-3:]}")
