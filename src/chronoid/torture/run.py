"""What every torture run shares: the output directory, the chronoid under test, the workers,
the nemesis loop, and the verdict at the end.

The target is always a real process tree started from *the chronoid under test*: by default the
one this interpreter imports; with ``--chronoid-src DIR`` the checkout whose ``src`` (or the
package directory's parent) is put first on the children's ``PYTHONPATH``, so one torture tool
can judge an older or newer chronoid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Protocol

from chronoid.errors import InvalidArgument, TortureError
from chronoid.torture.checker import Verdict, check, render
from chronoid.torture.history import HistoryWriter, now_ns, parse_lines
from chronoid.torture.nemesis import Step
from chronoid.torture.processes import Child, Supervisor, sweep_stale
from chronoid.torture.relay import Relay

__all__ = ["Run", "RunOptions", "RunResult", "Target", "for_a_while", "pause"]

WORKER = Path(__file__).with_name("worker.py")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the user asked for (the flags common to every target)."""

    time_s: float
    ops: int
    seed: int
    scenario: str | None
    out_dir: Path
    chronoid_src: Path | None = None
    faults: tuple[str, ...] | None = None
    """Fault kinds the random schedule may use (None: every kind of the target)."""
    pace_ms: float = 2.0
    plot: bool = True

    def validate(self) -> None:
        """Raise InvalidArgument for values no run can use."""
        if not 1 <= self.time_s <= 86_400:
            raise InvalidArgument(f"time_s must be in 1..86400 seconds, got {self.time_s:g}")
        if self.ops < 0:
            raise InvalidArgument(f"ops must be >= 0 (0: no limit), got {self.ops}")
        if self.pace_ms < 0:
            raise InvalidArgument(f"pace_ms must be >= 0, got {self.pace_ms:g}")


@dataclass(frozen=True, slots=True)
class Target:
    """How to start the chronoid under test: the interpreter and the environment."""

    python: str
    env: dict[str, str]
    source: str
    """Where its ``chronoid`` package comes from (for the report)."""

    @classmethod
    def resolve(cls, chronoid_src: Path | None) -> Target:
        """The installed chronoid, or the checkout at ``chronoid_src``.

        Raises:
            InvalidArgument: ``chronoid_src`` holds no ``chronoid`` package.
        """
        env = {k: v for k, v in os.environ.items() if k != "CHRONOID_PASSWORD"}
        if chronoid_src is None:
            import chronoid

            return cls(sys.executable, env, str(Path(chronoid.__file__).parent))
        root = chronoid_src.resolve()
        for candidate in (root / "src", root):
            if (candidate / "chronoid" / "__init__.py").is_file():
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (str(candidate), env.get("PYTHONPATH", "")) if p
                )
                env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the judged checkout as it was
                return cls(sys.executable, env, str(candidate / "chronoid"))
        raise InvalidArgument(
            f"--chronoid-src {chronoid_src}: no chronoid package in it or in its src/ directory"
        )

    def chronoid(self, *args: str) -> list[str]:
        """``python -m chronoid ARGS`` with the chronoid under test."""
        return [self.python, "-m", "chronoid", *args]

    def worker(self, *args: str) -> list[str]:
        """``python -P worker.py ARGS`` (``-P``: the worker's own directory stays off sys.path)."""
        return [self.python, "-P", str(WORKER), *args]


@dataclass(frozen=True, slots=True)
class RunResult:
    """Where a run left its files, and its verdict."""

    history_path: Path
    verdict_path: Path
    plot_path: Path | None
    verdict: Verdict
    report: str
    interrupted: bool
    workers_failed: tuple[str, ...] = ()
    """Workers that died of an error (not a signal): each may have lost a value it received,
    so the run fails whatever the checks say."""

    @property
    def ok(self) -> bool:
        """True only when every check passed and every worker ended cleanly."""
        return self.verdict.ok and not self.workers_failed


@dataclass
class Run:
    """One run in progress: its output directory, children, fault log and stop file."""

    target_name: str
    options: RunOptions
    target: Target
    supervisor: Supervisor
    started_ns: int = field(default_factory=now_ns)
    interrupted: bool = False

    def __post_init__(self) -> None:
        self.parts_dir = self.options.out_dir / "parts"
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.parts_dir.glob("*.jsonl"):
            stale.unlink()
        self.stop_file = self.supervisor.scratch / "stop"
        self.faults = HistoryWriter(self.parts_dir / "nemesis.jsonl")
        self._numbers: dict[str, int] = {}
        self._relays: list[Relay] = []
        self.notes: list[str] = []
        """Lines for the verdict's header (how the run was set up: the client network)."""
        self.cleanups: list[Callable[[], None]] = []
        """Called when the run ends, before the supervisor removes its processes."""
        self._workers: list[Child] = []

    @classmethod
    @contextlib.contextmanager
    def open(cls, target_name: str, options: RunOptions) -> Iterator[Run]:
        """A run whose children and scratch directory are gone when the block ends."""
        options.validate()
        target = Target.resolve(options.chronoid_src)
        options.out_dir.mkdir(parents=True, exist_ok=True)
        with _out_dir_lock(options.out_dir):
            yield from cls._open(target_name, options, target)

    @classmethod
    def _open(cls, target_name: str, options: RunOptions, target: Target) -> Iterator[Run]:
        logs = options.out_dir / "logs"
        logs.mkdir(exist_ok=True)
        for stale in logs.glob("*.log"):
            stale.unlink()
        sweep_stale()
        run_id = f"{target_name}-{uuid.uuid4().hex[:12]}"
        # SIGTERM and SIGINT both end the run as a stop (even when started with SIGINT
        # ignored, as a background job of a script is).
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, _interrupt)
        try:
            with Supervisor(run_id, logs) as supervisor:
                run = cls(target_name, options, target, supervisor)
                try:
                    yield run
                finally:
                    run.faults.close()
                    for relay in run._relays:
                        relay.close()
                    for cleanup in reversed(run.cleanups):
                        with contextlib.suppress(Exception):
                            cleanup()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def number(self, name: str) -> int:
        """1, 2, 3, ... per ``name``: names a run's repeated processes (``intruder2``)."""
        self._numbers[name] = self._numbers.get(name, 0) + 1
        return self._numbers[name]

    def relay(self, target_port: int, target_host: str = "127.0.0.1") -> Relay:
        """A relay to ``target_host:target_port`` the nemesis can cut; closed when the run
        ends."""
        relay = Relay(target_port, target_host)
        self._relays.append(relay)
        return relay

    # -- children --------------------------------------------------------------------------

    def worker(
        self,
        kind: str,
        process: str,
        *args: str,
        stop_file: Path | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
        env: dict[str, str] | None = None,
    ) -> Child:
        """Start a worker process recording into ``parts/<process>.jsonl`` (``wrap``: its
        command line run in a network namespace)."""
        argv = self.target.worker(
            kind,
            "--process",
            process,
            "--history",
            str(self.parts_dir / f"{process}.jsonl"),
            "--stop-file",
            str(stop_file or self.stop_file),
            "--pace-ms",
            str(self.options.pace_ms),
            *args,
        )
        child = self.supervisor.spawn(
            process, wrap(argv) if wrap else argv, env=env or self.target.env
        )
        self._workers.append(child)
        return child

    def first_record(self, process: str, child: Child, timeout_s: float = 15.0) -> bool:
        """Wait until ``process`` has written its first operation (False: it exited or the
        time ran out)."""
        path = self.parts_dir / f"{process}.jsonl"
        end_s = time.monotonic() + timeout_s
        try:
            while time.monotonic() < end_s and not self.interrupted:
                if path.exists() and path.stat().st_size > 0:
                    return True
                if not child.alive():
                    return False
                time.sleep(0.02)
        except KeyboardInterrupt:
            self.interrupted = True  # Ctrl-C while the workers start: stop, and still check
        return False

    def fault(self, kind: str, target: str, start_ns: int, detail: str = "") -> None:
        """Record a fault that ended now."""
        end_ns = now_ns()
        self.faults.fault(
            kind, target, start_ns, end_ns if end_ns - start_ns > 1_000_000 else None, detail
        )

    # -- the nemesis -----------------------------------------------------------------------

    def execute(
        self,
        steps: list[Step],
        apply: Callable[[Step], None],
        *,
        duration_s: float,
        workers: Callable[[], list[Child]],
    ) -> None:
        """Carry out ``steps`` on time until ``duration_s`` has passed or every worker is done
        (their ``--ops`` spent). Ctrl-C or SIGTERM ends the run early, as a stop."""
        start_s = time.monotonic()
        pending = list(steps)
        try:
            while not self.interrupted:
                elapsed_s = time.monotonic() - start_s
                if elapsed_s >= duration_s or not workers():
                    break
                if pending and pending[0].at_s <= elapsed_s:
                    apply(pending.pop(0))
                    self.supervisor.reap()  # a long run restarts hundreds of processes
                    continue
                time.sleep(0.02)
        except KeyboardInterrupt:
            self.interrupted = True

    def stop_workers(self, children: list[Child], timeout_s: float = 10.0) -> None:
        """Ask every worker to stop after its current operation; kill those that do not."""
        self.stop_file.touch()
        end_s = time.monotonic() + timeout_s
        for child in children:
            child.signal(signal.SIGCONT)
        for child in children:
            remaining_s = max(0.1, end_s - time.monotonic())
            try:
                child.process.wait(timeout=remaining_s)
            except Exception:
                child.kill()

    # -- the verdict -----------------------------------------------------------------------

    def finish(
        self, checks: dict[str, list[str]], *, gap_per_restart: int = 0, **extra: object
    ) -> RunResult:
        """Merge every part into ``history.jsonl``, check it, write the verdict and the plot."""
        out = self.options.out_dir
        history_path = out / "history.jsonl"
        records: list[tuple[int, str]] = []
        for part in sorted(self.parts_dir.glob("*.jsonl")):
            with part.open(encoding="utf-8", errors="replace") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.endswith("\n"):
                        # The half-written last line of a killed process: the value it held
                        # is unknown, so the verdict says so (only the last line may be).
                        self.notes.append(
                            f"{part.name}: a half-written last line (line {number}) was "
                            "left out: its process was killed while it wrote it"
                        )
                        continue
                    try:
                        record = json.loads(line)
                        if not isinstance(record, dict):
                            raise ValueError("a record must be a JSON object")
                    except ValueError as exc:
                        # A complete line that is not a record may have held any value:
                        # dropping it could hide a duplicate, so the run is not judged.
                        raise TortureError(f"{part}: line {number}: {exc}") from None
                    records.append((record.get("invoke_ns") or record.get("start_ns") or 0, line))
        records.sort(key=lambda item: item[0])  # stable: each process keeps its own order
        history_path.write_text("")
        with HistoryWriter(history_path) as writer:
            writer.meta(
                self.target_name,
                checks,
                gap_per_restart=gap_per_restart,
                seed=self.options.seed,
                scenario=self.options.scenario,
                started_ns=self.started_ns,
                chronoid=self.target.source,
                interrupted=self.interrupted,
                **extra,
            )
        with history_path.open("a", encoding="utf-8") as handle:
            handle.writelines(line for _, line in records)
        with history_path.open(encoding="utf-8") as handle:
            try:
                history = parse_lines(handle)
            except ValueError as exc:
                raise TortureError(f"{history_path}: {exc}") from None
        verdict = check(history)
        report = render(verdict, history)
        # A worker that died of an error (a traceback: status > 0; the nemesis and the stop
        # kill with signals) may have done so after a reply came and before its line was
        # written: the checks cannot see that value, so they cannot pass the run.
        failed = tuple(
            f"{child.name} exited with status {child.process.returncode}: {child.log_tail()}"
            for child in self._workers
            if child.process.poll() is not None and child.process.returncode > 0
        )
        if failed:
            verdict_line = (
                f"verdict: FAIL ({len(failed)} worker(s) died of an error; a value one had "
                "received may be missing from the history)"
            )
            if verdict.ok:
                report = report.removesuffix("verdict: PASS") + verdict_line
            else:
                report += "\n" + verdict_line
            report += "".join(f"\n    {line}" for line in failed)
        plot_path: Path | None = None
        if self.options.plot:
            from chronoid.torture.plot import timeline

            plot_path = timeline(
                history, verdict, out / "timeline.png", passed=verdict.ok and not failed
            )
        header = (
            f"chronoid torture {self.target_name}: {self.target.source}"
            + (" (interrupted)" if self.interrupted else "")
            + f"\nhistory: {history_path}"
            + (f"\nplot: {plot_path}" if plot_path else "")
            + "".join(f"\n{note}" for note in self.notes)
        )
        report = f"{header}\n{report}"
        verdict_path = out / "verdict.txt"
        verdict_path.write_text(report + "\n")
        return RunResult(
            history_path, verdict_path, plot_path, verdict, report, self.interrupted, failed
        )


@contextlib.contextmanager
def _out_dir_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir`` for one run: a second run there would delete the first's history
    parts, and the first would then judge the second's history (the kernel releases the lock
    of a tool killed with SIGKILL)."""
    import fcntl

    fd = os.open(out_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TortureError(f"--out {out_dir} is in use by another run") from None
        yield
    finally:
        os.close(fd)


def for_a_while(duration_s: float, begin: Callable[[], None], end: Callable[[], None]) -> None:
    """``begin`` (SIGSTOP, a cut), ``duration_s`` seconds, then ``end`` (also when Ctrl-C
    interrupts the wait: a run never leaves a process stopped or a link cut)."""
    begin()
    try:
        time.sleep(duration_s)
    finally:
        end()


class _Signalled(Protocol):
    def signal(self, sig: int) -> None: ...


def pause(process: _Signalled, duration_s: float) -> None:
    """SIGSTOP ``process`` (a child, a server, a store) for ``duration_s``, then SIGCONT."""
    for_a_while(
        duration_s, lambda: process.signal(signal.SIGSTOP), lambda: process.signal(signal.SIGCONT)
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
