"""Mode C under attack: a pause past the lease, a partition mid-batch, a registry that loses its
data, a suspend, a fork. Real registries on spare ports, real SIGSTOP, a TCP relay we cut."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chronoid.clock import ManualClock
from chronoid.errors import GeneratorForked, LeaseLost, NodeSpaceExhausted
from chronoid.lease.memory import MemoryRegistry
from chronoid.lease.redis import RedisRegistry
from chronoid.modes import LeaseGenerator
from chronoid.torture.relay import Relay
from tests.modes.conftest import OwnServer, age_history, wait_until

pytestmark = pytest.mark.integration


def _newcomer(url: str, prefix: str, node: int, layout: str, ttl_ms: int) -> LeaseGenerator:
    """Lease ``node`` as soon as the registry lets it go (its old lease expired there)."""
    deadline = time.monotonic() + 10
    while True:
        registry = RedisRegistry(url, prefix=prefix, node_range=(node, node), timeout_s=0.5)
        try:
            return LeaseGenerator(layout, registry, ttl_ms=ttl_ms)
        except NodeSpaceExhausted:
            registry.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


_SATURATE = """
import json, sys, time
from chronoid.errors import LeaseLost
from chronoid.modes import LeaseGenerator
from chronoid.lease.redis import RedisRegistry
url, out, ready = sys.argv[1:4]
registry = RedisRegistry(url, prefix="zombie:", node_range=(0, 0), timeout_s=0.3)
gen = LeaseGenerator("chrono64s", registry, ttl_ms=1000)
ids, lost = [], 0
open(ready, "w").write("1")
end = time.monotonic() + 4.5
while time.monotonic() < end:
    try:
        ids.append(gen.next_id())
    except LeaseLost:
        lost += 1
        time.sleep(0.01)
json.dump({"ids": ids, "lost": lost}, open(out, "w"))
"""


def test_a_process_paused_past_its_lease_issues_nothing_after_it_resumes(
    own_redis: tuple[OwnServer, str], tmp_path: Path
) -> None:
    # 14.1: a saturating caller spends most of each second in the overflow wait; SIGSTOP it
    # there past the TTL, let a newcomer lease the node, SIGCONT: not one more ID.
    _, url = own_redis
    age_history(RedisRegistry(url, prefix="zombie:")).close()
    out, ready = tmp_path / "ids.json", tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _SATURATE, url, str(out), str(ready)])
    try:
        wait_until(ready.exists, "the paused process's lease")
        time.sleep(0.5)
        os.kill(child.pid, signal.SIGSTOP)
        time.sleep(1.6)  # past the 1 s TTL: the registry lets the node go
        newcomer = _newcomer(url, "zombie:", 0, "chrono64s", 1000)
        theirs = newcomer.next_ids(2000)
        os.kill(child.pid, signal.SIGCONT)
        time.sleep(0.3)
        theirs += newcomer.next_ids(2000)
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
    result = json.loads(out.read_text())
    assert result["ids"], "the paused process issued nothing at all"
    assert result["lost"] > 0  # after SIGCONT it refused
    shared = set(result["ids"]) & set(theirs)
    assert not shared, f"{len(shared)} IDs issued by both holders of node 0"
    newcomer.close()


def test_a_batch_cut_off_from_its_registry_is_refused_whole(
    own_redis: tuple[OwnServer, str],
) -> None:
    # 14.1: a next_ids(3_000_000) (about 3 s of chrono64ms ticks) loses its registry after
    # 0.1 s; a newcomer takes the node once it expires; the batch must not be handed out.
    _, url = own_redis
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    age_history(RedisRegistry(url, prefix="cut:")).close()
    relay = Relay(port)
    registry = RedisRegistry(
        f"redis://127.0.0.1:{relay.port}/0", prefix="cut:", node_range=(0, 0), timeout_s=0.2
    )
    gen = LeaseGenerator("chrono64ms", registry, ttl_ms=1000)
    result: dict[str, Any] = {}

    def batch() -> None:
        try:
            result["ids"] = gen.next_ids(3_000_000)
        except LeaseLost as exc:
            result["lost"] = exc

    worker = threading.Thread(target=batch)
    worker.start()
    time.sleep(0.1)
    relay.cut(mode="refuse")
    newcomer = _newcomer(url, "cut:", 0, "chrono64ms", 1000)
    theirs = newcomer.next_ids(100_000)
    worker.join(timeout=60)
    newcomer.close()
    gen.close()
    relay.close()
    ids = result.get("ids", [])
    shared = set(ids) & set(theirs)
    assert not shared, f"{len(shared)} IDs issued by both holders of node 0"
    assert "lost" in result, "the batch was handed out after its lease ended"


def test_a_registry_that_lost_its_data_makes_the_newcomer_wait_one_ttl(
    own_redis: tuple[OwnServer, str],
) -> None:
    # 14.2: Redis without persistence is kill -9'd and restarted while a generator holds a
    # node; a newcomer leases the same node: no ID may be issued by both.
    server, url = own_redis
    age_history(RedisRegistry(url, prefix="lost:")).close()
    registry = RedisRegistry(url, prefix="lost:", node_range=(0, 0), timeout_s=0.3)
    holder = LeaseGenerator("chrono64ms", registry, ttl_ms=3000, renew_ms=1000)
    mine: list[int] = []
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            try:
                mine.extend(holder.next_ids(100))
            except LeaseLost:
                time.sleep(0.005)

    worker = threading.Thread(target=produce)
    worker.start()
    try:
        wait_until(lambda: holder.renewals >= 1, "a first renewal")
        server.stop()
        server.start()  # every key is gone, the marker too
        newcomer = _newcomer(url, "lost:", 0, "chrono64ms", 3000)
        theirs: list[int] = []
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            theirs += newcomer.next_ids(100)
    finally:
        stop.set()
        worker.join(timeout=30)
    shared = set(mine) & set(theirs)
    assert not shared, f"{len(shared)} IDs issued by both holders of node 0"
    assert newcomer.lock_delay_ms > 0  # the registry could not vouch for node 0
    newcomer.close()
    holder.close()


def test_a_node_from_a_registry_with_its_history_is_issued_from_at_once(
    own_redis: tuple[OwnServer, str],
) -> None:
    # 14.2: the lock-delay costs nothing in the common case: once the history is one TTL old,
    # a released node or a never-used node waits 0 ms.
    _, url = own_redis
    first = LeaseGenerator("chrono64s", RedisRegistry(url, prefix="fresh:"), ttl_ms=200)
    assert first.lock_delay_ms > 0  # a brand-new namespace: nothing vouches for it yet
    first.close()
    again = LeaseGenerator(
        "chrono64s",
        RedisRegistry(url, prefix="fresh:", node_range=(first.node, first.node)),
        ttl_ms=200,
    )
    assert again.lock_delay_ms == 0  # the history is one TTL old now (first waited it out)
    again.close()
    time.sleep(0.25)  # the history is now older than the 200 ms TTL
    other = (first.node + 1) % 1024
    unused = LeaseGenerator(
        "chrono64s", RedisRegistry(url, prefix="fresh:", node_range=(other, other)), ttl_ms=200
    )
    assert unused.lock_delay_ms == 0
    unused.close()


def _relayed_holder(url: str, prefix: str, ttl_ms: int) -> tuple[LeaseGenerator, Relay, int]:
    """A holder of node 0 whose registry connection goes through a relay the test cuts (a cut
    refuses: the registry is unreachable, not slow), and the last tick it issued in."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    age_history(RedisRegistry(url, prefix=prefix)).close()
    relay = Relay(port)
    registry = RedisRegistry(
        f"redis://127.0.0.1:{relay.port}/0", prefix=prefix, node_range=(0, 0), timeout_s=0.2
    )
    gen = LeaseGenerator("chrono64ms", registry, ttl_ms=ttl_ms)
    ids = gen.next_ids(1000)
    return gen, relay, gen.layout.unpack(ids[-1]).timestamp


def test_a_release_the_registry_misses_for_a_moment_is_sent_again_within_the_lease(
    own_redis: tuple[OwnServer, str],
) -> None:
    # The registry is unreachable for 0.5 s as the holder closes, well inside its 3 s lease:
    # the release is sent again until the registry hears it, so the node is free at once,
    # with the holder's true last tick recorded (sent once, it was lost and the node stayed
    # held until its lease expired).
    _, url = own_redis
    gen, relay, last_tick = _relayed_holder(url, "bye:", 3000)
    try:
        relay.cut(mode="refuse")
        threading.Timer(0.5, relay.heal).start()
        started = time.monotonic()
        gen.close()
        took = time.monotonic() - started
        newcomer = LeaseGenerator(
            "chrono64ms", RedisRegistry(url, prefix="bye:", node_range=(0, 0)), ttl_ms=3000
        )
    finally:
        relay.close()
    assert newcomer.lease is not None
    assert newcomer.lease.not_before_ns == gen.layout.tick_start_ns(last_tick + 1)
    newcomer.close()
    assert 0.4 < took < 3.0 - 0.75, took


def test_a_close_cut_off_from_its_registry_waits_no_longer_than_the_lease(
    own_redis: tuple[OwnServer, str],
) -> None:
    # The registry never comes back: close() keeps trying only while the lease could still
    # be live, then leaves the node to expire and says why.
    _, url = own_redis
    gen, relay, _ = _relayed_holder(url, "gone:", 2000)
    try:
        relay.cut(mode="refuse")
        started = time.monotonic()
        gen.close()
        took = time.monotonic() - started
    finally:
        relay.close()
    assert took < 2.0, took
    assert gen.last_error and "Redis registry" in gen.last_error
    with pytest.raises(LeaseLost, match="closed"):
        gen.next_id()


def test_a_wait_never_outlasts_the_lease() -> None:
    # 14.1: TTL 2 s, margin 500 ms, no renewal: the overflow wait (up to 1 s) must not carry
    # the call past the deadline.
    clock = ManualClock()
    registry = MemoryRegistry(now_ns=clock.now_ns)
    gen = LeaseGenerator(
        "chrono64s",
        registry,
        clock=clock,
        ttl_ms=2000,
        renew_ms=1400,
        skew_margin_ms=500,
        lease_clock_ns=clock.now_ns,
    )
    gen._stop.set()  # the renewal thread never renews in this test
    clock.advance_ms(1_200)
    gen.next_ids(32_768 - 1)  # the whole second's sequence space but one
    gen.next_id()
    with pytest.raises(LeaseLost):
        gen.next_id()  # would wait about 0.8 s for the next tick: past the deadline
    assert sum(clock.sleeps) <= 300 * 1_000_000  # it never slept past the deadline


def test_a_suspend_counts_against_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    # 14.3: the lease clock is CLOCK_BOOTTIME, which counts a suspend; CLOCK_MONOTONIC (what
    # a suspended host does not count) must not decide. Simulated: a 5 s suspend, TTL 1 s.
    import chronoid.clock

    wall = ManualClock()
    boot = [1_000_000_000_000]
    monkeypatch.setattr(chronoid.clock, "boottime_ns", lambda: boot[0])
    monkeypatch.setattr(time, "monotonic_ns", lambda: 1_000_000_000_000)  # stops in a suspend
    registry = MemoryRegistry(now_ns=wall.now_ns)
    gen = LeaseGenerator("chrono64s", registry, clock=wall, ttl_ms=1000, renew_ms=300)
    gen._stop.set()  # no renewal: the host is asleep
    gen.next_id()
    wall.advance_ms(5_000)  # the suspend: wall clock and CLOCK_BOOTTIME move on
    boot[0] += 5_000_000_000
    with pytest.raises(LeaseLost):
        gen.next_id()
    assert gen.lease_remaining_ms < 0


def _lease_in_child(gen: LeaseGenerator, out: Any) -> None:
    try:
        ids = gen.next_ids(500)
        out.put((gen.node, ids))
    except Exception as exc:
        out.put((-1, f"{type(exc).__name__}: {exc}"))


def test_on_fork_lease_gives_a_forked_child_a_node_of_its_own(redis_url: str) -> None:
    # 14.4: the gunicorn --preload case, no user code in the child.
    prefix = f"chronoid-test-fork-{time.monotonic_ns()}:"
    registry = age_history(RedisRegistry(redis_url, prefix=prefix, node_range=(0, 1)))
    gen = LeaseGenerator("chrono64s", registry, on_fork="lease")
    mine = gen.next_ids(500)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_lease_in_child, args=(gen, out))
    child.start()
    node, theirs = out.get(timeout=30)
    child.join(timeout=30)
    assert node not in (-1, gen.node), theirs
    mine += gen.next_ids(500)  # the parent keeps its node
    assert not set(mine) & set(theirs)
    gen.close()
    registry._client.delete(*registry._client.keys(f"{prefix}*"))
    registry.close()


def test_on_fork_raise_is_the_default_and_the_policy_is_checked() -> None:
    gen = LeaseGenerator("chrono64s", MemoryRegistry())
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_lease_in_child, args=(gen, out))
    child.start()
    node, message = out.get(timeout=30)
    child.join(timeout=30)
    assert node == -1 and GeneratorForked.__name__ in message
    gen.close()
    with pytest.raises(ValueError, match="on_fork"):
        LeaseGenerator("chrono64s", MemoryRegistry(), on_fork="ignore")
