"""Mode C attacked again after the take-then-check and lock-delay fixes: schedules built to give
two holders one node at once. Each test here gave duplicates (or the protocol step that leads
to them) on commit 5db92bb."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
import redis

from chronoid.clock import ManualClock
from chronoid.errors import ClockMovedBackwards, LeaseLost, RegistryUnavailable
from chronoid.lease.base import NodeRegistry
from chronoid.lease.memory import MemoryRegistry
from chronoid.lease.redis import RedisRegistry
from chronoid.modes import LeaseGenerator, parse_registry_url
from chronoid.variants import get_layout
from tests.modes.conftest import OwnServer, age_history, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(params=("redis", "etcd", "postgres"))
def young_registry(request: pytest.FixtureRequest) -> Iterator[NodeRegistry]:
    """A client of a brand-new namespace (no history: what a registry that lost its data
    looks like), cleaned up after."""
    tag = uuid.uuid4().hex[:12]
    if request.param == "redis":
        base = request.getfixturevalue("redis_url")
        prefix = f"chronoid-test-young-{tag}:"
        registry = parse_registry_url(f"{base}?prefix={prefix}", node_range=(3, 3))
        yield registry
        registry.close()
        client = redis.Redis.from_url(base)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    elif request.param == "etcd":
        parsed = urlparse(request.getfixturevalue("etcd_url"))
        prefix = f"/chronoid-test-young/{tag}/"
        url = f"etcd://{parsed.hostname}:{parsed.port}?prefix={prefix}"
        registry = parse_registry_url(url, node_range=(3, 3))
        yield registry
        registry.close()
        from etcd3gw.client import Etcd3Client

        etcd = Etcd3Client(str(parsed.hostname), int(parsed.port or 2379), api_path="/v3/")
        etcd.delete_prefix(prefix)
    else:
        dsn = request.getfixturevalue("pg_dsn")
        table = f"chronoid_test_young_{tag}"
        registry = parse_registry_url(f"{dsn}?table={table}", node_range=(3, 3))
        yield registry
        registry.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_a_release_inside_a_young_history_does_not_vouch_for_the_node(
    young_registry: NodeRegistry,
) -> None:
    # The lock-delay's premise: in the first TTL of a history (a new namespace, or a registry
    # that lost its data) a holder from before the loss may still be issuing on any node. A
    # record made inside that TTL (the first acquisition writes one; a release during the
    # lock-delay keeps it) proves nothing about that holder, so the next acquisition of the
    # node must still wait. At 5db92bb the second acquisition got settle_ms 0.
    ttl_ms = 5000
    first = young_registry.acquire(1023, ttl_ms, time.time_ns())
    assert first.node == 3 and first.settle_ms > 0
    young_registry.release(first, 0)  # e.g. close() while the lock-delay runs
    second = young_registry.acquire(1023, ttl_ms, time.time_ns())
    assert second.node == 3
    assert second.settle_ms > 0, "a record made in the young history vouched for node 3"
    young_registry.release(second, 0)


def test_a_release_after_data_loss_lets_no_newcomer_share_the_node(
    own_redis: tuple[OwnServer, str],
) -> None:
    # End to end: a holder keeps issuing on node 0 while Redis (no persistence) is kill -9'd
    # and restarted; someone acquires node 0 on the empty Redis and releases it at once (a
    # generator closed in its lock-delay); a newcomer then leases node 0. It must wait out
    # the lock-delay: the old holder is still issuing until its next renewal.
    server, url = own_redis
    age_history(RedisRegistry(url, prefix="relost:")).close()
    registry = RedisRegistry(url, prefix="relost:", node_range=(0, 0), timeout_s=0.3)
    holder = LeaseGenerator("chrono64ms", registry, ttl_ms=1500, renew_ms=1000)
    mine: list[int] = []
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            try:
                mine.extend(holder.next_ids(50))
            except LeaseLost:
                time.sleep(0.005)

    worker = threading.Thread(target=produce)
    worker.start()
    theirs: list[int] = []
    try:
        wait_until(lambda: holder.renewals >= 1, "a first renewal")
        server.stop()
        server.start()  # every key is gone, the marker too
        passer = RedisRegistry(url, prefix="relost:", node_range=(0, 0))
        passer.release(passer.acquire(1023, 1500, time.time_ns()), 0)
        passer.close()
        newcomer = LeaseGenerator(
            "chrono64ms", RedisRegistry(url, prefix="relost:", node_range=(0, 0)), ttl_ms=1500
        )
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            theirs += newcomer.next_ids(50)
        newcomer.close()
    finally:
        stop.set()
        worker.join(timeout=30)
        holder.close()
    shared = set(mine) & set(theirs)
    assert not shared, f"{len(shared)} IDs issued by both holders of node 0"


def test_a_clock_step_back_after_the_handover_does_not_repeat_the_previous_holder() -> None:
    # The handover waits until the clock passes the previous holder's last_ns; a clock that
    # then steps back (NTP) must not take the new holder below it: the previous holder's
    # last tick is a floor for the new holder's generator, as its own last tick is.
    clock = ManualClock(1_767_225_600_500_000_000)  # half-way through a chrono64s tick
    registry = MemoryRegistry(node_range=(5, 5), now_ns=clock.now_ns)
    kwargs: dict[str, Any] = {"clock": clock, "ttl_ms": 10_000, "lease_clock_ns": clock.now_ns}
    old = LeaseGenerator("chrono64s", registry, **kwargs)
    old_ids = old.next_ids(1000)
    old.close()  # records the end of its tick
    new = LeaseGenerator("chrono64s", registry, **kwargs)  # waits 0.5 s for last_ns
    clock.jump_ns(-600_000_000)  # then the clock steps back into the old holder's tick
    new_ids: list[int] = []
    for _ in range(3):
        try:
            new_ids += new.next_ids(1000)
        except Exception:  # waiting past max_wait_ms (ClockMovedBackwards) is fine too
            break
    new.close()
    shared = set(old_ids) & set(new_ids)
    assert not shared, f"{len(shared)} IDs issued by both holders of node 5"
    assert not new_ids or min(new_ids) > max(old_ids)


class _Offset:
    """A wall clock ``offset_ns`` ahead of ``base`` (another host's clock); waits pass on the
    base, so both clocks and the lease clock move together."""

    def __init__(self, base: ManualClock, offset_ns: int) -> None:
        self.base, self.offset_ns = base, offset_ns

    def now_ns(self) -> int:
        return self.base.now_ns() + self.offset_ns

    def sleep_ns(self, duration_ns: int) -> None:
        self.base.sleep_ns(duration_ns)


def test_a_holder_cut_off_after_its_renewal_leaves_no_unrecorded_ticks() -> None:
    # At 5db92bb the handover (last_ns) recorded the ticks used by the last renewal. A holder
    # cut off from the registry after a renewal kept issuing until its deadline (ttl - margin
    # later) on ticks it never recorded, and a newcomer whose wall clock is behind the old
    # holder's by more than the margin (here 1.5 s against 1 s) started at a tick the old
    # holder had used. Now renewals record ahead: the newcomer waits for the record.
    base = ManualClock()
    registry = MemoryRegistry(node_range=(5, 5), now_ns=base.now_ns)
    timing: dict[str, Any] = {"ttl_ms": 10_000, "renew_ms": 8_000, "lease_clock_ns": base.now_ns}
    old = LeaseGenerator("chrono64ms", registry, clock=_Offset(base, 1_500_000_000), **timing)
    old.next_ids(10)
    base.advance_ms(1_000)
    old._renew_once()  # its last successful renewal records last_ns; then it is cut off
    old_ids: list[int] = []
    for _ in range(89):  # issuing until just before its deadline (renewal + 9 s)
        base.advance_ms(100)
        old_ids += old.next_ids(10)
    base.advance_ms(1_100)  # the registry's lease (renewal + 10 s) has expired
    new = LeaseGenerator(
        "chrono64ms", registry, clock=_Offset(base, 0), max_wait_ms=3_000, **timing
    )
    new_ids: list[int] = []
    for _ in range(10):
        new_ids += new.next_ids(10)
        base.advance_ms(100)
    new._stop.set()
    old._stop.set()
    shared = set(old_ids) & set(new_ids)
    assert not shared, f"{len(shared)} IDs issued by both holders of node 5"


def test_a_forward_step_then_a_crash_leaves_no_ids_in_the_successors_future() -> None:
    # A holder's wall clock steps 1 h forward; it issues at once (at 5db92bb, nothing recorded
    # those ticks until its next renewal) and is killed before any renewal. A successor with a
    # good clock reaches that hour on the node later and must not repeat them. Now the holder
    # refuses ticks past its last record until a renewal records the new time.
    hour_ns = 3_600_000_000_000
    base = ManualClock()  # the wall clocks (and the old holder's lease clock)
    frozen = ManualClock()  # the registry's and the successor's: no renewals over the hour
    registry = MemoryRegistry(node_range=(5, 5), now_ns=frozen.now_ns)
    timing: dict[str, Any] = {"ttl_ms": 10_000, "renew_ms": 8_000}
    old = LeaseGenerator(
        "chrono64ms", registry, clock=_Offset(base, 0), lease_clock_ns=base.now_ns, **timing
    )
    old.next_ids(10)
    jumped = _Offset(base, hour_ns)
    old._clock = jumped  # the host's clock steps (the generator reads it through this)
    old._generator._now = jumped.now_ns
    old_ids: list[int] = []
    for _ in range(5):
        with contextlib.suppress(LeaseLost):
            old_ids += old.next_ids(10)
        base.advance_ms(1)
    old._stop.set()  # kill -9: no release, no renewal
    base.advance_ms(11_000)
    frozen.advance_ms(11_000)  # the registry's lease has expired
    new = LeaseGenerator(
        "chrono64ms", registry, clock=_Offset(base, 0), lease_clock_ns=frozen.now_ns, **timing
    )
    base.advance_ns(hour_ns - 11_005_000_000)  # an hour later, on the same ticks
    new._renew_once()  # its renewals kept the lease (and its record) up to date
    new_ids: list[int] = []
    for _ in range(10):
        new_ids += new.next_ids(10)
        base.advance_ms(1)
    new._stop.set()
    shared = set(old_ids) & set(new_ids)
    assert not shared, f"{len(shared)} IDs issued by both holders of node 5"


@pytest.mark.parametrize("call", ["next_id", "next_ids"])
def test_a_pause_between_making_an_id_and_checking_it_discards_the_id(call: str) -> None:
    # Take, then check: a pause (SIGSTOP, GC, suspend) that falls after the ID was made and
    # before its check is seen by the check. Injected on the lease clock: the first reading
    # after the ID was made jumps past the deadline. A check-before design hands the ID out.
    lease, wall = ManualClock(), ManualClock()
    registry = MemoryRegistry(now_ns=lease.now_ns)
    pause = [False]

    def lease_now() -> int:
        if pause[0] and threading.current_thread() is threading.main_thread():
            pause[0] = False
            lease.advance_ms(2_000)
        return lease.now_ns()

    gen = LeaseGenerator(
        "chrono64s", registry, clock=wall, ttl_ms=1000, renew_ms=300, lease_clock_ns=lease_now
    )
    issue = gen.next_id if call == "next_id" else lambda: gen.next_ids(10)
    issue()
    pause[0] = True
    with pytest.raises(LeaseLost):
        issue()
    gen._stop.set()


@pytest.mark.parametrize("call", ["next_id", "next_ids"])
def test_a_lease_withdrawn_between_making_an_id_and_checking_it_discards_the_id(
    call: str,
) -> None:
    # The other half of the check: between the making of an ID and its check the renewal
    # thread learns that the registry gave the node to someone else, withdraws the lease and
    # leases another node. The old deadline still lies ahead, so only the re-read of the
    # lease keeps that ID in. Injected on the first lease-clock reading after the ID was
    # made: it waits there until the renewal has withdrawn the lease (a batch holds the
    # generator's lock, so the move to the new node waits for the batch's end).
    lease, wall = ManualClock(), ManualClock()
    registry = MemoryRegistry(node_range=(5, 6), now_ns=lease.now_ns)
    timing: dict[str, Any] = {"ttl_ms": 10_000, "renew_ms": 8_000}  # the test renews
    max_node = get_layout("chrono64s").max_node
    other = registry.acquire(max_node, 10_000, wall.now_ns())  # the node the holder moves to
    withdraw = [False]
    renewal = threading.Thread(target=lambda: gen._renew_once())

    def lease_now() -> int:
        if withdraw[0] and threading.current_thread() is threading.main_thread():
            withdraw[0] = False
            taken = gen.lease
            assert taken is not None
            registry.release(taken, 0)
            registry.acquire(max_node, 10_000, wall.now_ns())  # the intruder: the old node
            registry.release(other, 0)  # frees the node the generator moves to
            renewal.start()  # token unknown: withdraw, then lease again
            wait_until(lambda: gen.lease is not taken, "the lease withdrawn")
        return lease.now_ns()

    gen = LeaseGenerator("chrono64s", registry, clock=wall, lease_clock_ns=lease_now, **timing)

    def issue() -> list[int]:
        return [gen.next_id()] if call == "next_id" else gen.next_ids(10)

    issue()
    old_node = gen.node
    withdraw[0] = True
    try:
        got = issue()  # an ID of the new node, or none at all (a batch is refused whole)
    except LeaseLost:
        got = []
    renewal.join(timeout=10)
    assert not withdraw[0] and gen.node == other.node != old_node
    assert [value for value in got if gen.node_of(value) == old_node] == []
    gen._stop.set()


_RAW_FORK_LEASE = """
import ctypes, json, os, sys, time
from chronoid.modes import LeaseGenerator
from chronoid.lease.redis import RedisRegistry
url, prefix, out = sys.argv[1:4]
registry = RedisRegistry(url, prefix=prefix, node_range=(0, 1))
registry._client.set(prefix + "registry", 0)  # a history older than any TTL
gen = LeaseGenerator("chrono64ms", registry, ttl_ms=1000, on_fork="lease")
gen.next_ids(10)
pid = ctypes.PyDLL(None).fork()  # a C-level fork: no at-fork hook runs
ids, errors = [], []
end = time.monotonic() + 0.3
while time.monotonic() < end:
    try:
        ids += gen.next_ids(20)
    except Exception as exc:
        errors.append(type(exc).__name__)
report = {"child": pid == 0, "node": gen.node, "ids": ids, "errors": errors}
with open(os.path.join(out, "child" if pid == 0 else "parent"), "w") as f:
    json.dump(report, f)
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
gen.close()
"""


def test_a_raw_fork_with_on_fork_lease_gives_the_child_a_node_of_its_own(
    redis_url: str, tmp_path: Path
) -> None:
    # next_ids reads the process ID on entry: a child made by a raw C fork() (no at-fork
    # hook) leases a node of its own before its first batch, and no ID is shared.
    prefix = f"chronoid-test-rawfork-{uuid.uuid4().hex[:12]}:"
    run = subprocess.run(
        [sys.executable, "-c", _RAW_FORK_LEASE, redis_url, prefix, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()
    assert run.returncode == 0, run.stderr
    parent, child = (json.loads((tmp_path / name).read_text()) for name in ("parent", "child"))
    assert parent["ids"] and child["ids"], (parent["errors"][:3], child["errors"][:3])
    assert parent["node"] != child["node"]
    assert not set(parent["ids"]) & set(child["ids"])


def test_close_racing_next_id_hands_nothing_to_the_next_holder() -> None:
    # Four threads call next_id while close() releases the node; a newcomer leases it at
    # once. Every ID a thread got back was made under the lease and below what the release
    # recorded; the calls that lost the race raise LeaseLost.
    registry = MemoryRegistry(node_range=(0, 0))
    gen = LeaseGenerator("chrono64ms", registry, ttl_ms=5000)
    got: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(5)

    def issue(out: list[int]) -> None:
        start.wait()
        with contextlib.suppress(LeaseLost):
            while True:
                out.append(gen.next_id())

    workers = [threading.Thread(target=issue, args=(out,)) for out in got]
    for worker in workers:
        worker.start()
    start.wait()
    time.sleep(0.05)
    gen.close()
    newcomer = LeaseGenerator("chrono64ms", registry, ttl_ms=5000)
    theirs = newcomer.next_ids(20_000)
    for worker in workers:
        worker.join(timeout=10)
    newcomer.close()
    mine = [value for out in got for value in out]
    assert mine and len(set(mine)) == len(mine)
    assert not set(mine) & set(theirs)


class _CommitsThenTimesOut(MemoryRegistry):
    """A registry whose renewals reach it and commit, then lose the answer:
    what a timeout after the commit looks like from the holder."""

    lose = False

    def renew(self, lease: Any, last_ns: int) -> bool:
        done = super().renew(lease, last_ns)
        if self.lose:
            raise RegistryUnavailable("registry: no answer within 0.5 s")
        return done


def _frozen_renewals(registry: MemoryRegistry, clock: ManualClock) -> LeaseGenerator:
    # The renewal thread waits 60 s of real time: only the test renews (gen._renew_once()).
    return LeaseGenerator(
        "chrono64s",
        registry,
        clock=clock,
        ttl_ms=100_000,
        renew_ms=60_000,
        skew_margin_ms=1_000,
        lease_clock_ns=clock.now_ns,
    )


def test_a_renewal_that_committed_but_lost_its_answer_extends_nothing() -> None:
    # The registry extended the lease; the holder never heard it, so its deadline stays where
    # the last confirmed send put it: a lost answer may shorten a lease, never lengthen it.
    clock = ManualClock()
    registry = _CommitsThenTimesOut(node_range=(5, 5), now_ns=clock.now_ns)
    gen = _frozen_renewals(registry, clock)
    try:
        clock.advance_ms(50_000)
        registry.lose = True
        with pytest.raises(RegistryUnavailable):
            gen._renew_once()
        clock.advance_ms(99_000 - 50_000 - 1)
        gen.next_id()
        clock.advance_ms(1)
        with pytest.raises(LeaseLost, match="past its deadline"):
            gen.next_id()
    finally:
        gen._stop.set()


def test_a_release_the_registry_never_heard_still_keeps_the_successor_off_its_ids() -> None:
    # close() whose release never reaches the registry: the lease expires there by itself,
    # with no record of where the holder stopped but the one its renewals made ahead. A
    # successor whose wall clock reads what the old holder's did waits for that record (here
    # longer than max_wait_ms, so it refuses) instead of repeating the old holder's IDs.
    store, wall = ManualClock(), ManualClock()
    registry = MemoryRegistry(node_range=(5, 5), now_ns=store.now_ns)
    kwargs: dict[str, Any] = {"clock": wall, "ttl_ms": 10_000, "lease_clock_ns": store.now_ns}
    old = LeaseGenerator("chrono64s", registry, **kwargs)
    old.next_ids(1000)
    old._stop.set()  # frozen, then gone without a word: no renewal, no release
    store.advance_ms(10_000)
    with pytest.raises(ClockMovedBackwards, match="previous holder"):
        LeaseGenerator("chrono64s", registry, **kwargs)
