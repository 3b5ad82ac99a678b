"""``chronoid torture lease``: Mode C generators on a registry, Mode B with state files.

The set-up: a registry the tool starts on spare ports (``registry``: a ``redis-server``
without persistence, so a restart loses its data, as issue 14 describes; or an etcd or a
PostgreSQL cluster of its own, which keep theirs), ``mode_c`` worker processes each running a
saturating ``LeaseGenerator`` (``chrono64s``: 32,768 IDs a second per node, so a caller spends
most of each second in the generator's wait for the next tick) on ``nodes`` nodes, one fewer
than the processes by default so a standby is always waiting to take a lost node; and
``mode_b`` worker processes each running a saturating ``InstanceGenerator`` (``chrono32m``:
8 IDs per minute tick, so it borrows ticks ahead of the clock) on its own state file, on a
clock the tool may step back between two runs of it (``modeb-clock-back``).

Checks: the Mode C IDs of every process together are unique (key ``modec``), each Mode C
process's IDs increase; each Mode B state file's IDs are unique across its restarts (keys
``modeb0``, ...). Mode B IDs are not checked for order: a mixed sequence is not monotonic
(erratum 9).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from chronoid.errors import InvalidArgument, TortureError
from chronoid.extras import require_extra
from chronoid.torture.history import now_ns
from chronoid.torture.nemesis import LEASE_FAULTS, Step, get_scenario, random_schedule
from chronoid.torture.processes import Child
from chronoid.torture.run import Run, RunOptions, RunResult, for_a_while, pause
from chronoid.torture.stores import STORE_KINDS, start_store

__all__ = ["MODE_B_LAYOUT", "MODE_C_LAYOUT", "LeaseSetup", "run_lease"]

MODE_C_LAYOUT = "chrono64s"
"""Layout of the Mode C workers."""

MODE_B_LAYOUT = "chrono32m"
"""Layout of the Mode B workers."""


@dataclass(frozen=True, slots=True)
class LeaseSetup:
    """How many processes of each mode, how many Mode C nodes, and the lease TTL (ms)."""

    mode_c: int = 3
    mode_b: int = 1
    nodes: int | None = None
    """Nodes the Mode C processes share (None: ``mode_c - 1``, at least 1)."""
    ttl_ms: int = 1000
    registry: str = "redis"
    """The Mode C registry the tool starts: ``redis``, ``etcd`` or ``postgresql``."""

    def validate(self) -> None:
        """Raise InvalidArgument for a set-up that cannot run."""
        if not 0 <= self.mode_c <= 32 or not 0 <= self.mode_b <= 32:
            raise InvalidArgument(
                f"--mode-c and --mode-b must be in 0..32, got {self.mode_c} and {self.mode_b}"
            )
        if self.mode_c + self.mode_b == 0:
            raise InvalidArgument("nothing to torture: --mode-c and --mode-b are both 0")
        if self.nodes is not None and not 1 <= self.nodes <= 1024:
            raise InvalidArgument(f"nodes must be in 1..1024, got {self.nodes}")
        if not 300 <= self.ttl_ms <= 60_000:
            raise InvalidArgument(f"ttl_ms must be in 300..60000, got {self.ttl_ms}")
        if self.registry not in STORE_KINDS:
            raise InvalidArgument(
                f"registry must be one of {', '.join(STORE_KINDS)}, got {self.registry!r}"
            )

    @property
    def node_count(self) -> int:
        """The Mode C node range's size."""
        return self.nodes if self.nodes is not None else max(1, self.mode_c - 1)


def run_lease(options: RunOptions, setup: LeaseSetup) -> RunResult:
    """Run the Mode C / Mode B torture and return the verdict (see the module docstring).

    Raises:
        InvalidArgument: bad options. TortureError: the registry did not start.
    """
    if setup.registry == "redis":
        require_extra("redis", "chronoid torture lease --registry redis", "redis")
    duration_s = options.time_s
    if options.scenario is not None:
        scenario = get_scenario(options.scenario, "lease")
        duration_s = scenario.duration_s
        setup = LeaseSetup(
            mode_c=scenario.options.get("mode_c", setup.mode_c),
            mode_b=scenario.options.get("mode_b", setup.mode_b),
            nodes=scenario.options.get("nodes", setup.nodes),
            ttl_ms=setup.ttl_ms,
            registry=setup.registry,
        )
        steps = list(scenario.steps)
    else:
        steps = []
    setup.validate()
    mode_c = [f"mc{i}" for i in range(setup.mode_c)]
    mode_b = [f"mb{i}" for i in range(setup.mode_b)]
    if options.scenario is None:
        kinds = options.faults if options.faults is not None else LEASE_FAULTS
        targets = {
            "pause": tuple(mode_c),
            "kill9": tuple(mode_c),
            "partition": tuple(mode_c),
            "registry-restart": ("registry",) if mode_c else (),
            "registry-pause": ("registry",) if mode_c else (),
            "modeb-kill9": tuple(mode_b),
            "modeb-clock-back": tuple(mode_b),
        }
        ttl_s = setup.ttl_ms / 1000
        steps = random_schedule(
            options.seed,
            duration_s,
            {kind: targets[kind] for kind in kinds if targets[kind]},
            pause_s=(1.5 * ttl_s, 3.0 * ttl_s),
        )
    with Run.open("lease", options) as run:
        registry = start_store(run, setup.registry) if mode_c else None
        per_worker_ops = -(-options.ops // (setup.mode_c + setup.mode_b)) if options.ops else 0
        incarnation: dict[str, int] = {}
        current: dict[str, Child] = {}
        clock_offset_ms: dict[str, float] = {}
        nodes = f"nodes=0-{setup.node_count - 1}"
        if setup.registry == "postgresql":
            query = f"?table=torture_{run.supervisor.run_id.rsplit('-', 1)[-1]}&{nodes}"
        else:
            query = f"?prefix=torture:{run.supervisor.run_id}:&{nodes}"
        # Each Mode C process reaches the registry through a relay of its own, so one
        # process can be cut off from it (a partition) while the others are not.
        relays = {name: run.relay(registry.port) for name in mode_c} if registry else {}

        def start(name: str) -> Child:
            incarnation[name] = incarnation.get(name, 0) + 1
            process = f"{name}.{incarnation[name]}"
            if name.startswith("mc"):
                assert registry is not None
                url = registry.url(relays[name].port, query)
                args = ["--registry", url, "--layout", MODE_C_LAYOUT, "--key", "modec"]
                args += ["--ttl-ms", str(setup.ttl_ms)]
                kind = "lease"
            else:
                state = run.supervisor.scratch / f"{name}.state"
                args = ["--state-file", str(state), "--layout", MODE_B_LAYOUT, "--key", name]
                args += ["--batch", "16"]
                args += ["--clock-offset-ms", f"{clock_offset_ms.get(name, 0.0):g}"]
                kind = "instance"
            child = run.worker(kind, process, *args, "--ops", str(per_worker_ops))
            current[name] = child
            return child

        def wait_started(names: list[str]) -> None:
            for name in names:
                run.first_record(f"{name}.{incarnation[name]}", current[name])

        # mc0 first, until its first operation, so it holds a node before the others ask
        # (a scenario's first fault is aimed at it); then every other process at once.
        first, rest = (mode_c + mode_b)[:1], (mode_c + mode_b)[1:]
        for group in (first, rest):
            for name in group:
                start(name)
            wait_started(group)

        def apply(step: Step) -> None:
            if step.align_s is not None:
                time.sleep((step.align_s - time.time() % 1.0) % 1.0)
            started_ns = now_ns()
            if step.kind == "pause":
                child = current[step.target]
                pause(child, step.duration_s)
                run.fault(
                    "pause",
                    f"{step.target}.{incarnation[step.target]}",
                    started_ns,
                    f"SIGSTOP {step.duration_s:g} s (lease TTL {setup.ttl_ms} ms)",
                )
            elif step.kind == "partition":
                relay = relays[step.target]
                for_a_while(step.duration_s, relay.cut, relay.heal)
                run.fault(
                    "partition",
                    f"{step.target}.{incarnation[step.target]}",
                    started_ns,
                    f"cut off from the registry {step.duration_s:g} s "
                    f"(lease TTL {setup.ttl_ms} ms)",
                )
            elif step.kind in ("kill9", "modeb-kill9"):
                old = f"{step.target}.{incarnation[step.target]}"
                current[step.target].kill()
                start(step.target)
                wait_started([step.target])
                run.fault(
                    step.kind,
                    old,
                    started_ns,
                    f"restarted as {step.target}.{incarnation[step.target]}",
                )
            elif step.kind == "modeb-clock-back":
                old = f"{step.target}.{incarnation[step.target]}"
                current[step.target].kill()
                offset = clock_offset_ms.get(step.target, 0.0) - step.duration_s * 1000
                clock_offset_ms[step.target] = offset
                start(step.target)
                wait_started([step.target])
                run.fault(
                    "modeb-clock-back",
                    old,
                    started_ns,
                    f"kill -9; restarted as {step.target}.{incarnation[step.target]} with its "
                    f"clock stepped back {step.duration_s:g} s (now {offset / 1000:+g} s)",
                )
            elif step.kind == "registry-restart":
                assert registry is not None
                registry.kill()
                outcome = registry.restart()
                lost = "data lost" if not registry.keeps_data else "data kept"
                run.fault(
                    "registry-restart", registry.kind, started_ns, f"kill -9; {lost}; {outcome}"
                )
            elif step.kind == "registry-pause":
                assert registry is not None
                pause(registry, step.duration_s)
                run.fault(
                    "registry-pause",
                    registry.kind,
                    started_ns,
                    f"SIGSTOP {step.duration_s:g} s (lease TTL {setup.ttl_ms} ms)",
                )
            else:
                raise TortureError(f"unknown lease fault {step.kind!r}")

        run.execute(
            steps,
            apply,
            duration_s=duration_s,
            workers=lambda: [c for c in current.values() if c.alive()],
        )
        run.stop_workers(list(current.values()))
        checks: dict[str, list[str]] = {"modec": ["unique", "increasing"]}
        checks.update({name: ["unique"] for name in mode_b})
        return run.finish(
            checks,
            mode_c=setup.mode_c,
            mode_b=setup.mode_b,
            nodes=setup.node_count,
            ttl_ms=setup.ttl_ms,
            registry=setup.registry if mode_c else None,
            steps=len(steps),
        )
