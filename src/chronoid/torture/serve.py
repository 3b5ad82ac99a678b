"""``chronoid torture serve``: ``chronoid serve`` under clients and a nemesis.

The set-up: one standalone server (the chronoid under test) on a spare port with a scratch
data directory, or with ``ha`` a failover group of ``members`` servers on one store (an etcd
the tool starts itself, or a PostgreSQL or etcd URL it is pointed at, under a cluster name of
its own); ``clients`` redis-py worker processes cycling through the four client kinds (single,
pipelined, batched, named sequences) and following ``-MOVED``; and the nemesis carrying out
the schedule (:mod:`chronoid.torture.nemesis`). Checks: every sequence unique, per-client
increasing, real-time ordered (fetch-and-increment linearizability), and gaps within the
documented two reservation blocks per crash or leader change.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import time
from pathlib import Path

from chronoid.errors import InvalidArgument, TortureError
from chronoid.extras import require_extra
from chronoid.torture.checker import CRASH_FAULTS
from chronoid.torture.history import now_ns
from chronoid.torture.nemesis import (
    HA_FAULTS,
    SERVE_FAULTS,
    STORE_FAULTS,
    Step,
    get_scenario,
    random_schedule,
)
from chronoid.torture.processes import Child, free_port, wait_for_port
from chronoid.torture.relay import Relay
from chronoid.torture.run import Run, RunOptions, RunResult

__all__ = ["CLIENT_MODES", "GAP_PER_CRASH", "HaSetup", "run_serve"]

CLIENT_MODES = ("single", "pipelined", "batched", "named")
"""The client kinds, given out round-robin to the client processes."""

GAP_PER_CRASH = 2 * 65_536
"""Values one crash may skip: two reservation blocks of the largest size (docs/sequencer.md)."""

STATE_FILE = "sequencer.json"
"""The standalone server's state file in its data directory."""

_START_TIMEOUT_S = 15.0


class _Server:
    """One server under test: started, killed and restarted by the nemesis."""

    def __init__(self, run: Run, name: str, port: int, args: list[str]) -> None:
        self.run = run
        self.name = name
        self.port = port
        self.args = args
        self.child: Child | None = None
        self.starts = 0

    def start(self) -> str | None:
        """Start it and wait until it listens; returns None, or why it did not start."""
        self.starts += 1
        self.child = self.run.supervisor.spawn(
            f"{self.name}.{self.starts}",
            self.run.target.chronoid(
                "serve", "--port", str(self.port), "--log-level", "WARNING", *self.args
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

    def role(self) -> str:
        """``leader``, ``standby`` or ``down`` (from INFO, 0.5 s at most)."""
        import redis

        try:
            client = redis.Redis(port=self.port, socket_timeout=0.5, protocol=2)
            info = client.execute_command("INFO")  # type: ignore[no-untyped-call]
        except Exception:
            return "down"
        if isinstance(info, dict):  # redis-py parses INFO into a dict
            return "leader" if info.get("role") == "leader" else "standby"
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "leader" if "role:leader" in text else "standby"


class _Etcd:
    """A one-member etcd the tool starts for ``--ha etcd``, so it can stop and pause it."""

    def __init__(self, run: Run) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise TortureError("etcd is not on PATH (apt-get install etcd-server)")
        self.run = run
        self.binary = binary
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = run.supervisor.scratch / "etcd"
        self.child: Child | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"etcd://127.0.0.1:{self.client_port}"

    def start(self) -> None:
        self.starts += 1
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://127.0.0.1:{self.client_port}"
        self.child = self.run.supervisor.spawn(
            f"etcd.{self.starts}",
            [
                self.binary,
                "--name",
                "torture",
                "--data-dir",
                str(self.data_dir),
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"torture={peer}",
                "--log-level",
                "error",
            ],
        )
        if not wait_for_port(self.client_port, self.child, 15.0):
            raise TortureError(f"etcd did not start: {self.child.log_tail()}")


class HaSetup:
    """``--ha STORE --members N --lease-ttl S``: a failover group instead of one server."""

    def __init__(self, store: str, members: int = 2, lease_ttl_s: float = 2.0) -> None:
        if not (store == "etcd" or store.startswith(("etcd://", "postgresql://", "postgres://"))):
            raise InvalidArgument(
                f"--ha must be 'etcd' (the tool starts one) or a postgresql:// or etcd:// URL, "
                f"got {store!r}"
            )
        if not 2 <= members <= 5:
            raise InvalidArgument(f"members must be in 2..5, got {members}")
        if not 1.0 <= lease_ttl_s <= 30.0:
            raise InvalidArgument(f"lease_ttl_s must be in 1..30 s, got {lease_ttl_s:g}")
        self.store = store
        self.members = members
        self.lease_ttl_s = lease_ttl_s

    @property
    def own_store(self) -> bool:
        """True when the tool starts (and may stop) the store itself."""
        return self.store == "etcd"


def run_serve(options: RunOptions, *, clients: int = 4, ha: HaSetup | None = None) -> RunResult:
    """Run the sequencer torture and return the verdict (see the module docstring).

    Raises:
        InvalidArgument: bad options. TortureError: the servers under test did not start.
    """
    if not 1 <= clients <= 64:
        raise InvalidArgument(f"clients must be in 1..64, got {clients}")
    require_extra(
        "redis", "chronoid torture serve (its clients and registry use redis-py)", "redis"
    )
    duration_s = options.time_s
    steps: list[Step]
    if options.scenario is not None:
        scenario = get_scenario(options.scenario, "serve")
        if ha is not None:
            raise InvalidArgument(f"--scenario {scenario.name} runs a standalone server; drop --ha")
        steps = list(scenario.steps)
        duration_s = scenario.duration_s
        clients = scenario.options.get("clients", clients)
    else:
        allowed = SERVE_FAULTS if ha is None else HA_FAULTS + (STORE_FAULTS if ha.own_store else ())
        kinds = options.faults if options.faults is not None else allowed
        refused = [kind for kind in kinds if kind not in allowed]
        if refused:
            raise InvalidArgument(
                f"--faults {','.join(refused)} cannot be used "
                + ("without --ha" if ha is None else f"with --ha {ha.store}")
                + f"; allowed: {', '.join(allowed)}"
            )
        target = "server" if ha is None else "leader"
        pause_s = (0.5, 3.0) if ha is None else (0.5 * ha.lease_ttl_s, 2.5 * ha.lease_ttl_s)
        steps = random_schedule(
            options.seed,
            duration_s,
            {kind: ("store",) if kind in STORE_FAULTS else (target,) for kind in kinds},
            pause_s=pause_s,
        )
    with Run.open("serve", options) as run:
        store: _Etcd | None = None
        relays: dict[str, Relay] = {}
        data_dir = run.supervisor.scratch / "data"
        if ha is None:
            servers = [_Server(run, "server", free_port(), ["--data-dir", str(data_dir)])]
        else:
            if ha.own_store:
                store = _Etcd(run)
                store.start()
            cluster = f"torture-{run.supervisor.run_id}"
            # Each member reaches an etcd of ours through a relay of its own, so the leader
            # alone can be cut off from the store.
            if store is not None:
                relays = {f"m{i}": run.relay(store.client_port) for i in range(ha.members)}
                urls = {name: f"etcd://127.0.0.1:{r.port}" for name, r in relays.items()}
            else:
                urls = {f"m{i}": ha.store for i in range(ha.members)}
            servers = [
                _Server(
                    run,
                    f"m{i}",
                    free_port(),
                    [
                        *("--ha", urls[f"m{i}"], "--cluster", cluster),
                        *("--lease-ttl", f"{ha.lease_ttl_s:g}", "--member", f"m{i}"),
                    ],
                )
                for i in range(ha.members)
            ]
        for server in servers:
            why = server.start()
            if why is not None:
                raise TortureError(f"the server under test ({server.name}) did not start: {why}")
        if ha is not None and _leader(servers, 30.0) is None:
            raise TortureError("no member of the failover group became leader within 30 s")
        per_client_ops = -(-options.ops // clients) if options.ops else 0
        ports = ",".join(str(s.port) for s in servers)
        workers = [
            run.worker(
                "sequencer",
                f"c{i}",
                "--ports",
                ports,
                "--mode",
                CLIENT_MODES[i % len(CLIENT_MODES)],
                "--seed",
                str(options.seed * 1000 + i),
                "--ops",
                str(per_client_ops),
            )
            for i in range(clients)
        ]
        # The schedule's clock starts once every client is at work (a fault at 1 s must not
        # land before the clients have had a value).
        for i, worker in enumerate(workers):
            run.first_record(f"c{i}", worker)
        rng = random.Random(options.seed)
        run_end = time.monotonic() + duration_s + _START_TIMEOUT_S

        def pick(step: Step) -> _Server:
            if step.target == "leader":
                return _leader(servers, 0.0) or rng.choice(servers)
            return next(s for s in servers if s.name == step.target)

        def apply(step: Step) -> None:
            started = now_ns()
            if step.kind == "store-partition":
                member = pick(Step(0, "", "leader"))
                relays[member.name].cut()
                try:
                    time.sleep(step.duration_s)
                finally:
                    relays[member.name].heal()
                run.fault(
                    "store-partition",
                    member.name,
                    started,
                    f"cut off from etcd {step.duration_s:g} s (lease TTL {ha.lease_ttl_s:g} s)"
                    if ha is not None
                    else "",
                )
                return
            if step.kind in STORE_FAULTS:
                assert store is not None and store.child is not None
                if step.kind == "store-pause":
                    store.child.signal(signal.SIGSTOP)
                    try:
                        time.sleep(step.duration_s)
                    finally:
                        store.child.signal(signal.SIGCONT)
                    run.fault("store-pause", "etcd", started, f"SIGSTOP {step.duration_s:g} s")
                else:
                    store.child.kill()
                    time.sleep(rng.uniform(0.2, 1.0))
                    store.start()
                    run.fault("store-kill9", "etcd", started, "restarted on its data directory")
                return
            server = pick(step)
            if step.kind == "kill9":
                server.kill()
                time.sleep(rng.uniform(0.05, 0.5))
                run.fault("kill9", server.name, started, server.restart(run_end))
            elif step.kind == "sigterm":
                assert server.child is not None
                status = server.child.stop()
                outcome = f"exit {status}; " + server.restart(run_end)
                run.fault("sigterm", server.name, started, outcome)
            elif step.kind == "pause":
                server.signal(signal.SIGSTOP)
                try:
                    time.sleep(step.duration_s)
                finally:
                    server.signal(signal.SIGCONT)
                run.fault("pause", server.name, started, f"SIGSTOP {step.duration_s:g} s")
            elif step.kind == "intruder":
                _intruder(run, server, data_dir, step, started, run_end)
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
        for server in servers:
            if server.child is not None and server.child.alive():
                server.child.stop()
        # With failover, a leader change (after a kill, a pause past the lease or a store
        # fault) skips what the old leader had reserved, as a crash does.
        gap_faults = sorted(CRASH_FAULTS | ({"pause", *STORE_FAULTS} if ha is not None else set()))
        return run.finish(
            {"*": ["unique", "increasing", "realtime", "gaps"]},
            gap_per_restart=GAP_PER_CRASH,
            gap_faults=gap_faults,
            clients=clients,
            steps=len(steps),
            ha=None if ha is None else ha.store,
            members=1 if ha is None else ha.members,
        )


def _leader(servers: list[_Server], timeout_s: float) -> _Server | None:
    """The member that says it leads (waiting up to ``timeout_s``), or None."""
    end = time.monotonic() + timeout_s
    while True:
        for server in servers:
            if server.child is not None and server.child.alive() and server.role() == "leader":
                return server
        if time.monotonic() >= end:
            return None
        time.sleep(0.1)


def _intruder(
    run: Run, server: _Server, data_dir: Path, step: Step, started: int, run_end: float
) -> None:
    """A second server on the first one's data directory; if it starts, drive it."""
    intruder = _Server(run, "intruder", free_port(), ["--data-dir", str(data_dir)])
    why = intruder.start()
    if why is not None:
        run.fault("intruder", intruder.name, started, f"refused to start: {why}")
        return
    stop_file = run.supervisor.scratch / f"stop-intruder-{started}"
    driver = run.worker(
        "sequencer",
        f"intruder{run.number('intruder')}",
        "--ports",
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
