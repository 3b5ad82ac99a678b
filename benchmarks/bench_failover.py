"""Sequencer failover time: kill -9 the leader under load, time until a client gets a value.

Two ``chronoid serve --ha`` members per store (PostgreSQL on 127.0.0.1:5432, as
``scripts/services.sh`` starts it, and a 3-member etcd cluster this script starts on loopback
with etcd's default raft timings) with the default lease TTL; one client (``SequencerClient``
with both servers, 0.5 s socket timeout) calls ``GETSEQ`` in a loop. Each round kills the
leader with SIGKILL and records the time from the kill to the client's first value from the
new leader, then restarts the killed member as a standby; a last round stops the leader
cleanly (SIGTERM: it resigns) and times its exit to the next value.

A second part kills etcd members instead, in turn a raft follower and the raft leader, and
records the longest time the client went without a value and how often the sequencer leader
stepped down. Every value is checked unique and increasing. Writes
``benchmarks/results/failover.md``.

    .venv/bin/python benchmarks/bench_failover.py            # 10 kills per store, 5 per etcd member
    .venv/bin/python benchmarks/bench_failover.py --quick    # 3 and 2
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from chronoid.sequencer.election import DEFAULT_TTL
from chronoid.torture.etcd_cluster import EtcdCluster
from chronoid.torture.failover import Load, Member, make_members, wait_for_leader
from environment import markdown_table, measured_line

RESULTS = Path(__file__).with_name("results") / "failover.md"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
ETCD_DEFAULT_TIMINGS = {"heartbeat_ms": 100, "election_timeout_ms": 1000}  # etcd's own defaults


def _etcd_url(cluster: EtcdCluster) -> str:
    return "etcd://" + ",".join(f"{h}:{p}" for h, p in cluster.endpoints)


def _check(load: Load, what: str) -> list[int]:
    values = [v for _, v in load.values]
    if len(set(values)) != len(values) or values != sorted(values):
        raise SystemExit(f"{what}: a value repeated or went backwards: the run is invalid")
    return values


def _stop_all(members: list[Member]) -> None:
    for member in members:
        member.kill_if_running()


def measure(url: str, kills: int, ttl: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        members = make_members(url, "bench-" + uuid.uuid4().hex[:8], Path(tmp), 2, ttl)
        for member in members:
            member.start()
        load = Load(members).start()
        kill_s: list[float] = []
        try:
            for _ in range(kills):
                leader = wait_for_leader(members, 30)
                load.first_after(time.monotonic(), 30)
                leader.kill()
                killed = time.monotonic()
                kill_s.append(load.first_after(killed, 4 * ttl + 10) - killed)
                leader.start()
            leader = wait_for_leader(members, 30)
            load.first_after(time.monotonic(), 30)
            leader.stop()  # SIGTERM: exact next values stored, term resigned, exit
            exited = time.monotonic()
            clean_s = load.first_after(exited, 4 * ttl + 10) - exited
        finally:
            load.stop()
            _stop_all(members)
    values = _check(load, url)
    return {
        "kills": kill_s,
        "clean": clean_s,
        "values": len(values),
        "max_gap": max(b - a for a, b in itertools.pairwise(values)),
    }


def measure_etcd_member_loss(
    cluster: EtcdCluster, rounds: int, ttl: float
) -> dict[str, list[tuple[float, int]]]:
    """Kill a raft follower, then the raft leader, ``rounds`` times each, under load.

    For each kill: the longest time the client went without a value during ``2 × ttl`` after
    it, and how many times a sequencer member stepped down in that time.
    """
    results: dict[str, list[tuple[float, int]]] = {"a raft follower": [], "the raft leader": []}
    with tempfile.TemporaryDirectory() as tmp:
        members = make_members(
            _etcd_url(cluster), "bench-m-" + uuid.uuid4().hex[:8], Path(tmp), 2, ttl
        )
        for member in members:
            member.start()
        load = Load(members).start()
        try:
            for _ in range(rounds):
                for kind in results:
                    wait_for_leader(members, 30)
                    load.first_after(time.monotonic(), 30)
                    raft_leader = cluster.raft_leader()
                    victim = (
                        raft_leader
                        if kind == "the raft leader"
                        else next(i for i in range(3) if i != raft_leader)
                    )
                    downs = sum(int(m.info()["ha_step_downs"]) for m in members)
                    cluster.stop(victim)
                    stopped = time.monotonic()
                    time.sleep(2 * ttl)
                    load.first_after(stopped, 30)
                    pause = load.longest_pause(stopped, time.monotonic())
                    downs = sum(int(m.info()["ha_step_downs"]) for m in members) - downs
                    results[kind].append((pause, downs))
                    print(
                        f"  etcd member down ({kind}): pause {pause:.2f} s, step-downs {downs}",
                        flush=True,
                    )
                    cluster.start(victim)
        finally:
            load.stop()
            _stop_all(members)
    _check(load, "etcd member loss")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="kill -9 rounds per store")
    parser.add_argument(
        "--member-kills", type=int, default=5, help="rounds of killing an etcd member"
    )
    parser.add_argument("--quick", action="store_true", help="3 and 2 rounds")
    parser.add_argument("--ttl", type=float, default=DEFAULT_TTL, help="lease TTL (s)")
    args = parser.parse_args()
    kills = 3 if args.quick else args.kills
    member_kills = 2 if args.quick else args.member_kills
    rows = []
    member_rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EtcdCluster(Path(tmp), **ETCD_DEFAULT_TIMINGS) as etcd,
    ):
        for store, url in (("PostgreSQL", POSTGRES), ("etcd (3 members)", _etcd_url(etcd))):
            rows.append(_kill_row(store, url, kills, args.ttl))
        print(f"etcd: {member_kills} rounds of killing a member ...", flush=True)
        for kind, runs in measure_etcd_member_loss(etcd, member_kills, args.ttl).items():
            pauses = [pause for pause, _ in runs]
            member_rows.append(
                (
                    kind,
                    str(len(runs)),
                    f"{statistics.median(pauses):.2f}",
                    f"{max(pauses):.2f}",
                    str(sum(downs for _, downs in runs)),
                )
            )
    text = "\n".join(
        [
            measured_line(
                "bench_failover.py",
                ["--quick"] if args.quick else [],
                f"two members per store, lease TTL {args.ttl:g} s, {kills} kill -9 rounds "
                "each, one client in a loop.",
            ),
            "",
            *markdown_table(
                "store | kill -9 → next value, p50 s | max s | SIGTERM exit → next value s "
                "| values checked | largest gap | goal ≤ TTL + 1 s",
                rows,
                align="lrrrrrl",
            ),
            "",
            "No value was issued twice and the client never saw one go backwards. TiDB PD's "
            "failover is 4–8 s by its own account (not measured here). etcd ran as a 3-member "
            "cluster on loopback with its default raft timings (heartbeat 100 ms, election "
            "timeout 1 s).",
            "",
            f"Killing an etcd member under load ({member_kills} rounds each; longest time the "
            f"client went without a value in the {2 * args.ttl:g} s after the kill, and how "
            "often a sequencer member stepped down):",
            "",
            *markdown_table(
                "etcd member killed | rounds | longest pause p50 s | max s | sequencer step-downs",
                member_rows,
            ),
            "",
        ]
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(text)


def _kill_row(store: str, url: str, kills: int, ttl: float) -> tuple[str, ...]:
    print(f"{store}: {kills} kills, lease TTL {ttl:g} s ...", flush=True)
    result = measure(url, kills, ttl)
    times = result["kills"]
    assert isinstance(times, list)
    p50, worst = statistics.median(times), max(times)
    met = "met" if worst <= ttl + 1 else "not met"
    row = (
        *(store, f"{p50:.2f}", f"{worst:.2f}", f"{result['clean']:.2f}"),
        *(f"{result['values']:,}", f"{result['max_gap']:,}", met),
    )
    print(" | ".join(row), flush=True)
    return row


if __name__ == "__main__":
    main()
