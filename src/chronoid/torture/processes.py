"""Every process and directory a torture run makes, and their removal, whatever happens.

A run starts servers, registries and workers, each in its own process group (so a
signal meant for one reaches its whole tree, and Ctrl-C in the terminal reaches only the
tool, which then stops the others in order). Three layers make sure nothing outlives the run:

1. :meth:`Supervisor.close` (called from ``finally``, so after Ctrl-C or any exception too)
   kills every group it started with SIGKILL, reaps them and removes its scratch directory.
2. Each child asks the kernel for SIGKILL when the tool dies (``PR_SET_PDEATHSIG``), so a
   kill -9 of the tool itself takes its children with it.
3. The scratch directory, and the network namespace of a run that made one, are named after
   the tool's PID; a later run (or :func:`sweep_stale` called by hand) unmounts what is still
   mounted under the scratch directory of a run whose tool is gone, deletes its namespace and
   removes the directory.

Mounts (a small tmpfs for a full disk) and network namespaces are made with the ``mount`` and
``ip`` commands as root, registered with the supervisor, and undone by :meth:`Supervisor.close`
before the scratch directory is removed.

Every child's environment carries ``CHRONOID_TORTURE_RUN=<run id>``, which is how the tests
look for leftovers.

:meth:`Child.start` is also the one launcher of the test suite and the benchmarks (servers,
registries, etcd members on spare ports): the same process group, the same parent-death
signal, the same log file, and :meth:`Child.wait_ready` for "wait until it is ready, or say
why it is not" (its log's last lines).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from chronoid.errors import TortureError

__all__ = [
    "NETNS_PREFIX",
    "RUN_ENV",
    "Child",
    "Owned",
    "Supervisor",
    "children_of",
    "free_port",
    "is_root",
    "mounts_under",
    "sweep_stale",
    "wait_for",
    "wait_for_port",
]

RUN_ENV = "CHRONOID_TORTURE_RUN"
"""Environment variable naming the run in every child it starts."""

_PREFIX = "chronoid-torture-"
NETNS_PREFIX = "chtorture-"
"""Prefix of a run's network namespace: ``chtorture-<tool pid>-<n>``."""
_PR_SET_PDEATHSIG = 1


def is_root() -> bool:
    """True when the tool may mount a tmpfs and make network namespaces."""
    return os.geteuid() == 0


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root`` (deepest first), from /proc/self/mounts."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = str(root.resolve())
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        point = fields[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _quiet(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)


def unmount(point: Path) -> None:
    """Unmount ``point`` (lazily, so a process still inside cannot keep it)."""
    _quiet("umount", "-l", str(point))


def delete_netns(name: str) -> None:
    """Delete the network namespace ``name`` (its veth pair goes with it)."""
    _quiet("ip", "netns", "delete", name)


def netns_names() -> list[str]:
    """Every named network namespace of a torture run (``ip netns list``)."""
    try:
        listed = _quiet("ip", "netns", "list").stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split()[0] for line in listed.splitlines() if line.startswith(NETNS_PREFIX)]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Child:
    """One process group: started by :meth:`start` (the supervisor's, a test's, a benchmark's)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None
    started_ns: int = field(default_factory=time.monotonic_ns)

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path | None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        die_with_parent: bool = True,
    ) -> Child:
        """Start ``argv`` in a new process group; stdout and stderr are appended to
        ``log_path`` (discarded if None), stdin is /dev/null.

        ``env``: the whole environment (default: ours). ``user``: run as this OS user
        (PostgreSQL refuses to run as root); the parent-death signal is set after the
        switch, so it still holds. ``die_with_parent``: the kernel SIGKILLs the child when
        the *thread* that started it ends (even by a kill -9 of us); pass False from a
        thread that ends before the child should (a timer restarting a server).
        """
        out: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            out = log_path.open("ab")
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
                user=user,
                group=None if user is None else _primary_group(user),
            )
        finally:
            if not isinstance(out, int):
                out.close()
        return cls(name, process, log_path)

    @property
    def pid(self) -> int:
        """The child's PID (also its process group ID)."""
        return self.process.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (nothing if it is gone).

        A child already reaped is skipped: its PID, and so its group ID, may belong to an
        unrelated process by now. One that exited but is not reaped yet keeps its PID.
        """
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> int:
        """SIGKILL the group and reap the child; returns its exit status."""
        self.signal(signal.SIGKILL)
        return self.process.wait()

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return self.kill()

    def log_text(self) -> str:
        """Everything the child wrote so far ("" without a log or before it wrote)."""
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the child's log (its stderr), for error messages."""
        return " | ".join(line for line in self.log_text().strip().splitlines()[-lines:])

    def wait_ready(
        self, ready: Callable[[], bool], timeout_s: float, what: str = "ready", log_lines: int = 20
    ) -> None:
        """Block until ``ready()`` is true.

        Raises:
            TortureError: the child exited first, or ``timeout_s`` passed; the message has
                its exit status or ``what``, and the last ``log_lines`` lines of its log.
        """
        if wait_for(ready, self, timeout_s):
            return
        tail = self.log_tail(log_lines)
        if not self.alive():
            raise TortureError(f"{self.name} exited with status {self.process.returncode}: {tail}")
        raise TortureError(f"{self.name} not {what} within {timeout_s:g} s: {tail}")

    def wait_listening(self, port: int, timeout_s: float, host: str = "127.0.0.1") -> None:
        """Block until ``host:port`` accepts connections; TortureError as :meth:`wait_ready`."""
        self.wait_ready(lambda: _accepts(host, port), timeout_s, f"listening on {host}:{port}")


class Owned:
    """A process the run starts and restarts (a server, a store): its current child."""

    child: Child | None = None

    def kill(self) -> None:
        """SIGKILL the current child's group (nothing if there is none)."""
        if self.child is not None:
            self.child.kill()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the current child's group."""
        if self.child is not None:
            self.child.signal(sig)


class Supervisor:
    """Starts children and scratch directories for one run and removes all of them at the end.

    Use it as a context manager; ``close`` is idempotent.
    """

    def __init__(self, run_id: str, log_dir: Path) -> None:
        self.run_id = run_id
        self.log_dir = log_dir
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        self._children: list[Child] = []
        self._mounts: list[Path] = []
        self._netns: list[str] = []
        self._closed = False

    def mount_tmpfs(self, name: str, size_bytes: int) -> Path:
        """A tmpfs of ``size_bytes`` at ``scratch/name`` (root only); unmounted at close.

        Raises:
            OSError: ``mount`` failed (the message is its stderr).
        """
        point = self.scratch / name
        point.mkdir()
        done = _quiet(
            "mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(point)
        )
        if done.returncode != 0:
            raise OSError(f"mount -t tmpfs {point}: {done.stderr.strip() or done.returncode}")
        self._mounts.append(point)
        return point

    def netns(self) -> str:
        """A new network namespace's name (``ip netns add``; root only); deleted at close.

        Raises:
            OSError: ``ip netns add`` failed.
        """
        name = f"{NETNS_PREFIX}{os.getpid()}-{len(self._netns)}"
        done = _quiet("ip", "netns", "add", name)
        if done.returncode != 0:
            raise OSError(f"ip netns add {name}: {done.stderr.strip() or done.returncode}")
        self._netns.append(name)
        return name

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        log: bool = True,
        user: str | None = None,
    ) -> Child:
        """Start ``argv`` in a new process group; stderr and stdout go to ``<name>.log``.

        ``user``: run as this OS user (PostgreSQL refuses to run as root); the kernel's
        parent-death signal is set after the switch, so it still holds.
        """
        if self._closed:
            raise RuntimeError("the supervisor is closed")
        full_env = dict(os.environ if env is None else env)
        full_env[RUN_ENV] = self.run_id
        log_path = self.log_dir / f"{name}.log" if log else None
        child = Child.start(name, argv, log_path=log_path, env=full_env, user=user)
        self._children.append(child)
        return child

    def reap(self) -> None:
        """Forget children that have exited (keeps the list short in long runs)."""
        self._children = [c for c in self._children if c.process.poll() is None]

    def children(self) -> list[Child]:
        """The children still running."""
        return [c for c in self._children if c.alive()]

    def close(self) -> None:
        """SIGKILL every group started, reap it, remove the scratch directory."""
        if self._closed:
            return
        self._closed = True
        for child in self._children:
            child.signal(signal.SIGKILL)
        for child in self._children:
            with contextlib.suppress(Exception):
                child.process.wait(timeout=10)
        for name in self._netns:
            delete_netns(name)
        for point in [*reversed(self._mounts), *mounts_under(self.scratch)]:
            unmount(point)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc): PostgreSQL's backends, which each start a
    session of their own, so a signal to the postmaster's group misses them."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Undo what earlier runs whose tool process is gone left behind: their network
    namespaces, mounts and scratch directories; returns the directories removed."""
    root = Path(root or tempfile.gettempdir())
    if is_root():
        for name in netns_names():
            pid_text = name[len(NETNS_PREFIX) :].split("-", 1)[0]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                delete_netns(name)
    removed = []
    for path in root.glob(f"{_PREFIX}*"):
        pid_text = path.name[len(_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        if _alive(int(pid_text)):
            continue
        for point in mounts_under(path):
            unmount(point)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def wait_for(check: Callable[[], bool], child: Child, timeout_s: float) -> bool:
    """True once ``check()`` is (polled every 20 ms); False if ``child`` exits or time runs
    out."""
    end_s = time.monotonic() + timeout_s
    while time.monotonic() < end_s:
        if not child.alive():
            return False
        if check():
            return True
        time.sleep(0.02)
    return False


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(port: int, child: Child, timeout_s: float, host: str = "127.0.0.1") -> bool:
    """True once ``host:port`` accepts connections; False if ``child`` exits or time runs
    out."""
    return wait_for(lambda: _accepts(host, port), child, timeout_s)
