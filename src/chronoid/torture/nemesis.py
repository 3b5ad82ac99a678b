"""Fault schedules: which fault hits which process when. Pure: no process is touched here.

A schedule is a list of :class:`Step`; the runners (:mod:`chronoid.torture.serve`,
:mod:`chronoid.torture.lease`) carry it out. A random schedule is a function of its seed, so
``--seed`` reproduces a run's faults; a named :class:`Scenario` is a fixed schedule (and the
set-up it needs) that reproduces one finding exactly.

Fault kinds, ``chronoid torture serve``:

``kill9``         SIGKILL the server, restart it on the same port and data directory.
``sigterm``       SIGTERM (clean stop), restart.
``pause``         SIGSTOP the server for ``duration_s``, then SIGCONT.
``intruder``      start a second server on the same data directory (another port); if it
                  starts, a client takes values from it for ``duration_s``; then kill -9 both
                  and restart the first.
``delete-state``  delete the state file under the running server, wait ``duration_s`` (1.5 s
                  in a random schedule: time for a server that watches its file to write it
                  again), kill -9 and restart it.
``disk-full``     (root: the data directory is a small tmpfs) fill it for ``duration_s``,
                  then free it; the server must refuse what it cannot make durable.
``client-partition``  cut every client off from every server (a network namespace's veth
                  set down as root, else the clients' relays) for ``duration_s``, then heal.

With ``--ha``, ``kill9``, ``sigterm`` and ``pause`` hit the member leading at the time (a
pause past the lease makes a standby take over), ``client-partition`` as above, and with
``--ha etcd`` or ``--ha postgresql`` (a store the tool starts) also:

``store-pause``   SIGSTOP the store for ``duration_s``, then SIGCONT.
``store-kill9``   SIGKILL the store, restart it on its data directory.
``store-partition``  cut the leading member off from the store (its relay) for ``duration_s``
                  (the only store fault on a store given by URL).

With ``--attach`` (a deployment the tool does not own), only ``client-partition``.

``chronoid torture lease``:

``pause``             SIGSTOP a Mode C generator process past its lease, then SIGCONT.
``kill9``             SIGKILL a Mode C generator process and start a new one.
``partition``         cut a Mode C process off from the registry (its TCP relay becomes a
                      black hole) for ``duration_s``, then heal.
``registry-restart``  SIGKILL the registry and restart it (Redis, without persistence, loses
                      its data; etcd and PostgreSQL keep theirs).
``registry-pause``    SIGSTOP the registry past the lease TTL, then SIGCONT.
``modeb-kill9``       SIGKILL a Mode B process (state file) and start it again on that file.
``modeb-clock-back``  SIGKILL a Mode B process and start it again on that file with its clock
                      stepped back (``duration_s``: the step, s; 90 s in a random schedule).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from chronoid.errors import InvalidArgument

__all__ = [
    "ATTACH_FAULTS",
    "CLOCK_STEP_S",
    "HA_FAULTS",
    "LEASE_FAULTS",
    "SCENARIOS",
    "SERVE_FAULTS",
    "STORE_FAULTS",
    "Scenario",
    "Step",
    "get_scenario",
    "random_schedule",
]

SERVE_FAULTS = (
    "kill9",
    "sigterm",
    "pause",
    "intruder",
    "delete-state",
    "disk-full",
    "client-partition",
)
"""Fault kinds of ``chronoid torture serve`` (standalone; ``disk-full`` only as root)."""

HA_FAULTS = ("kill9", "sigterm", "pause", "client-partition")
"""Fault kinds of ``chronoid torture serve --ha``, each on the member leading at the time."""

STORE_FAULTS = ("store-pause", "store-kill9", "store-partition")
"""Fault kinds on the store of ``--ha etcd|postgresql`` (a store the tool started)."""

ATTACH_FAULTS = ("client-partition",)
"""Fault kinds of ``chronoid torture serve --attach`` (it owns no process)."""

LEASE_FAULTS = (
    "pause",
    "kill9",
    "partition",
    "registry-restart",
    "registry-pause",
    "modeb-kill9",
    "modeb-clock-back",
)
"""Fault kinds of ``chronoid torture lease``."""

CLOCK_STEP_S = 90.0
"""How far ``modeb-clock-back`` steps a Mode B clock back in a random schedule (s): more
than one ``chrono32m`` tick (a minute)."""

_TIMED = (
    "pause",
    "intruder",
    "store-pause",
    "partition",
    "store-partition",
    "client-partition",
    "disk-full",
    "registry-pause",
)


@dataclass(frozen=True, slots=True)
class Step:
    """One fault: ``kind`` on ``target`` at ``at_s`` (s after the start), for ``duration_s``."""

    at_s: float
    kind: str
    target: str = ""
    duration_s: float = 0.0
    align_s: float | None = None
    """Wait for this fraction of a wall-clock second first (s in 0..1): a saturating
    ``chrono64s`` caller spends the end of each second waiting for the next tick."""


def random_schedule(
    seed: int,
    duration_s: float,
    targets: dict[str, tuple[str, ...]],
    *,
    pause_s: tuple[float, float] = (0.5, 3.0),
    interval_s: tuple[float, float] = (0.5, 2.0),
) -> list[Step]:
    """A seeded random schedule over ``duration_s`` seconds.

    ``targets`` maps each fault kind allowed to the processes it may hit; faults start after
    1 s and end 1 s before the end (so every run has a clean start and a clean tail);
    ``pause_s`` bounds pause and intruder durations, ``interval_s`` the quiet time between
    two faults (s).
    """
    if not targets:
        return []
    rng = random.Random(seed)
    kinds = sorted(targets)
    steps: list[Step] = []
    at_s = 1.0
    while True:
        kind = rng.choice(kinds)
        target = rng.choice(targets[kind])
        step_duration_s = round(rng.uniform(*pause_s), 3) if kind in _TIMED else 0.0
        if kind == "delete-state":
            step_duration_s = 1.5
        lasts_s = step_duration_s
        if kind == "modeb-clock-back":
            step_duration_s, lasts_s = CLOCK_STEP_S, 0.0  # a step back, not a time the fault lasts
        if at_s + lasts_s > duration_s - 1.0:
            break
        steps.append(Step(round(at_s, 3), kind, target, step_duration_s))
        at_s += lasts_s + rng.uniform(*interval_s)
    return steps


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named fixed schedule and the set-up it needs, reproducing one finding."""

    name: str
    target: str
    """``serve`` or ``lease``."""
    description: str
    steps: tuple[Step, ...]
    duration_s: float
    options: dict[str, int] = field(default_factory=dict)
    """Set-up overrides for the runner (``mode_c``, ``mode_b``, ``nodes``, ``clients``)."""


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "shared-data-dir",
            "serve",
            "a second server on the same data directory while the first is serving, then "
            "kill -9 of both and a restart (issue 13 item 1: values handed out by both)",
            (Step(1.0, "intruder", "server", 2.0),),
            4.5,
        ),
        Scenario(
            "state-file-deleted",
            "serve",
            "the state file deleted under a running server, at once kill -9 and restart "
            "(issue 13 item 2: the restart issues 1 again)",
            (Step(1.0, "delete-state", "server", 0.0),),
            5.0,
        ),
        Scenario(
            "zombie-lease",
            "lease",
            "two Mode C generators, one node: the holder is paused (SIGSTOP) past its lease "
            "while it waits for the next tick, the other takes the node, then the holder is "
            "resumed (issue 14 item 1: one more ID from the lost lease)",
            (Step(1.0, "pause", "mc0", 2.0, align_s=0.6),),
            4.0,
            {"mode_c": 2, "mode_b": 0, "nodes": 1},
        ),
        Scenario(
            "lease-partition",
            "lease",
            "two Mode C generators, one node: the holder is cut off from the registry for "
            "2 s; the IDs it made after its last renewal are not in the registry, and the "
            "next holder repeats them (issue 14 items 1 and 2)",
            (Step(1.5, "partition", "mc0", 2.0),),
            5.0,
            {"mode_c": 2, "mode_b": 0, "nodes": 1},
        ),
        Scenario(
            "registry-lost",
            "lease",
            "two Mode C generators, two nodes: the Redis registry (no persistence) is "
            "killed and restarted, so a newcomer can lease a node still in use (issue 14 "
            "item 2)",
            (Step(2.0, "registry-restart", "registry"),),
            7.0,
            {"mode_c": 3, "mode_b": 0, "nodes": 2},
        ),
        Scenario(
            "mode-b-crash",
            "lease",
            "one saturating Mode B generator (chrono32m) with a state file, kill -9 and "
            "restart three times (issue 14 item 6: borrowed ticks forgotten in a crash)",
            tuple(Step(0.5 + 0.5 * i, "modeb-kill9", "mb0") for i in range(3)),
            2.5,
            {"mode_c": 0, "mode_b": 1},
        ),
    )
}
"""Every named scenario, by name."""


def get_scenario(name: str, target: str) -> Scenario:
    """The scenario ``name`` of ``target``.

    Raises:
        InvalidArgument: no such scenario for this target (the message lists them).
    """
    scenario = SCENARIOS.get(name)
    if scenario is None or scenario.target != target:
        names = ", ".join(s.name for s in SCENARIOS.values() if s.target == target)
        raise InvalidArgument(
            f"unknown scenario {name!r} for chronoid torture {target}; known: {names}"
        )
    return scenario
