"""``chronoid torture serve``: a standalone ``chronoid serve`` under clients and a nemesis.

The set-up: one server (the chronoid under test) on a spare port with a scratch data
directory, ``clients`` redis-py worker processes cycling through the four client kinds
(single, pipelined, batched, named sequences), and the nemesis carrying out the schedule
(:mod:`chronoid.torture.nemesis`). Checks: every sequence unique, per-client increasing,
real-time ordered (fetch-and-increment linearizability), and gaps within the documented two
reservation blocks per crash.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time
from pathlib import Path

from chronoid.errors import TortureError
from chronoid.torture.history import now_ns
from chronoid.torture.nemesis import SERVE_FAULTS, Step, get_scenario, random_schedule
from chronoid.torture.processes import Child, free_port, wait_for_port
from chronoid.torture.run import Run, RunOptions, RunResult

__all__ = ["CLIENT_MODES", "GAP_PER_CRASH", "run_serve"]

CLIENT_MODES = ("single", "pipelined", "batched", "named")
"""The client kinds, given out round-robin to the client processes."""

GAP_PER_CRASH = 2 * 65_536
"""Values one crash may skip: two reservation blocks of the largest size (docs/sequencer.md)."""

STATE_FILE = "sequencer.json"
"""The standalone server's state file in its data directory."""

_START_TIMEOUT_S = 15.0


class _Server:
    """The server under test: started, killed and restarted by the nemesis."""

    def __init__(self, run: Run, data_dir: Path, port: int, name: str = "server") -> None:
        self.run = run
        self.data_dir = data_dir
        self.port = port
        self.name = name
        self.child: Child | None = None
        self.starts = 0

    def start(self) -> str | None:
        """Start it and wait until it listens; returns None, or why it did not start."""
        self.starts += 1
        self.child = self.run.supervisor.spawn(
            f"{self.name}.{self.starts}",
            self.run.target.chronoid(
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "WARNING",
            ),
            env=self.run.target.env,
        )
        if wait_for_port(self.port, self.child, _START_TIMEOUT_S):
            return None
        if self.child.alive():
            self.child.kill()
            return f"did not listen within {_START_TIMEOUT_S:g} s: {self.child.log_tail()}"
        return f"exited with status {self.child.process.returncode}: {self.child.log_tail()}"

    def restart(self, deadline: float) -> str:
        """Start it again, retrying each second until ``deadline`` (monotonic s)."""
        attempts = 0
        while True:
            attempts += 1
            why = self.start()
            if why is None:
                return "restarted" if attempts == 1 else f"restarted after {attempts} attempts"
            self.run.faults.fault("restart-failed", self.name, now_ns(), None, why)
            if time.monotonic() + 1 >= deadline:
                return f"not restarted: {why}"
            time.sleep(1)

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()

    def signal(self, sig: int) -> None:
        if self.child is not None:
            self.child.signal(sig)


def run_serve(options: RunOptions, *, clients: int = 4) -> RunResult:
    """Run the sequencer torture and return the verdict (see the module docstring).

    Raises:
        InvalidArgument: bad options. TortureError: the server under test did not start.
    """
    duration_s = options.time_s
    steps: list[Step]
    if options.scenario is not None:
        scenario = get_scenario(options.scenario, "serve")
        steps = list(scenario.steps)
        duration_s = scenario.duration_s
        clients = scenario.options.get("clients", clients)
    else:
        kinds = options.faults if options.faults is not None else SERVE_FAULTS
        steps = random_schedule(options.seed, duration_s, {kind: ("server",) for kind in kinds})
    with Run.open("serve", options) as run:
        data_dir = run.supervisor.scratch / "data"
        server = _Server(run, data_dir, free_port())
        why = server.start()
        if why is not None:
            raise TortureError(f"the server under test did not start: {why}")
        per_client_ops = -(-options.ops // clients) if options.ops else 0
        workers = [
            run.worker(
                "sequencer",
                f"c{i}",
                "--port",
                str(server.port),
                "--mode",
                CLIENT_MODES[i % len(CLIENT_MODES)],
                "--seed",
                str(options.seed * 1000 + i),
                "--ops",
                str(per_client_ops),
            )
            for i in range(clients)
        ]
        rng = random.Random(options.seed)
        run_end = time.monotonic() + duration_s + _START_TIMEOUT_S

        def apply(step: Step) -> None:
            started = now_ns()
            if step.kind == "kill9":
                server.kill()
                time.sleep(rng.uniform(0.05, 0.5))
                run.fault("kill9", server.name, started, server.restart(run_end))
            elif step.kind == "sigterm":
                assert server.child is not None
                status = server.child.stop()
                run.fault(
                    "sigterm", server.name, started, f"exit {status}; " + server.restart(run_end)
                )
            elif step.kind == "pause":
                server.signal(signal.SIGSTOP)
                try:
                    time.sleep(step.duration_s)
                finally:
                    server.signal(signal.SIGCONT)
                run.fault("pause", server.name, started, f"SIGSTOP {step.duration_s:g} s")
            elif step.kind == "intruder":
                _intruder(run, server, step, started, run_end)
            elif step.kind == "delete-state":
                state = data_dir / STATE_FILE
                existed = state.exists()
                with contextlib.suppress(FileNotFoundError):
                    state.unlink()
                time.sleep(step.duration_s)
                back = state.exists()
                server.kill()
                outcome = server.restart(run_end)
                run.fault(
                    "delete-state",
                    server.name,
                    started,
                    f"{STATE_FILE} {'deleted' if existed else 'was missing'}; "
                    f"{'written again' if back else 'still missing'} after "
                    f"{step.duration_s:g} s; kill -9; " + outcome,
                )
            else:
                raise TortureError(f"unknown serve fault {step.kind!r}")

        run.execute(
            steps,
            apply,
            duration_s=duration_s,
            workers=lambda: [w for w in workers if w.alive()],
        )
        run.stop_workers(workers)
        if server.child is not None and server.child.alive():
            server.child.stop()
        return run.finish(
            {"*": ["unique", "increasing", "realtime", "gaps"]},
            gap_per_restart=GAP_PER_CRASH,
            clients=clients,
            steps=len(steps),
        )


def _intruder(run: Run, server: _Server, step: Step, started: int, run_end: float) -> None:
    """A second server on the first one's data directory; if it starts, drive it."""
    intruder = _Server(run, server.data_dir, free_port(), name="intruder")
    why = intruder.start()
    if why is not None:
        run.fault("intruder", intruder.name, started, f"refused to start: {why}")
        return
    stop_file = run.supervisor.scratch / f"stop-intruder-{started}"
    driver = run.worker(
        "sequencer",
        f"intruder{run.number('intruder')}",
        "--port",
        str(intruder.port),
        "--mode",
        "single",
        stop_file=stop_file,
    )
    try:
        time.sleep(step.duration_s)
    finally:
        stop_file.touch()
        with contextlib.suppress(Exception):
            driver.process.wait(timeout=5)
        driver.kill()
        intruder.kill()
    run.fault(
        "intruder",
        intruder.name,
        started,
        f"a second server started on the same data directory and served {step.duration_s:g} s",
    )
    kill_started = now_ns()
    server.kill()
    run.fault("kill9", server.name, kill_started, "after the intruder; " + server.restart(run_end))
