"""Mode C: leased nodes on every registry backend, outages, handover and exhaustion."""

from __future__ import annotations

import itertools
import multiprocessing
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import pytest

from chronoid.clock import ManualClock
from chronoid.errors import (
    ClockMovedBackwards,
    GeneratorForked,
    InvalidArgument,
    LeaseLost,
    NodeSpaceExhausted,
)
from chronoid.layout import Layout
from chronoid.lease.etcd import EtcdRegistry
from chronoid.lease.memory import MemoryRegistry
from chronoid.lease.redis import RedisRegistry
from chronoid.modes import LeaseGenerator, parse_registry_url
from tests.modes.conftest import OwnServer, RegistryFactory, age_history, wait_until
from tests.support import free_port

FLEET = 64


def _no_duplicates(ids: list[int]) -> None:
    assert len(set(ids)) == len(ids), f"{len(ids) - len(set(ids))} duplicate IDs"


# -- in-memory registry: deterministic lease arithmetic on a manual clock ----------------------


def test_lease_runs_until_expiry_minus_margin_then_lease_lost() -> None:
    clock = ManualClock()
    registry = MemoryRegistry(now_ns=clock.now_ns)
    # The renewal thread waits 60 s of real time: it never runs during this test.
    gen = LeaseGenerator(
        "chrono64s",
        registry,
        clock=clock,
        ttl_ms=100_000,
        renew_ms=60_000,
        skew_margin_ms=1_000,
        lease_clock_ns=clock.now_ns,
    )
    first = gen.next_id()
    assert gen.node_of(first) == gen.node  # plain node: one shift and a mask
    clock.advance_ms(99_000 - 1)
    gen.next_id()  # still inside ttl - margin
    clock.advance_ms(1)
    with pytest.raises(LeaseLost, match="past its deadline"):
        gen.next_id()
    with pytest.raises(LeaseLost):
        gen.next_ids(10)
    gen.close()


def test_lease_remaining_ms_is_the_time_left_and_zero_once_no_lease_is_held() -> None:
    # With no lease held it read the hot path's sentinel deadline: about -1.7e32 ms, a
    # figure that wrecks any graph or alert built on it. Nothing held is nothing left: 0.
    clock = ManualClock()
    gen = LeaseGenerator(
        "chrono64s",
        MemoryRegistry(now_ns=clock.now_ns),
        clock=clock,
        ttl_ms=100_000,
        renew_ms=60_000,
        skew_margin_ms=1_000,
        lease_clock_ns=clock.now_ns,
    )
    assert gen.lease_remaining_ms == 99_000.0
    clock.advance_ms(99_500)
    assert gen.lease_remaining_ms == -500.0  # held, past its deadline: how long ago
    gen.close()
    assert gen.lease is None
    assert gen.lease_remaining_ms == 0.0


def test_handover_waits_for_previous_holders_last_timestamp() -> None:
    clock = ManualClock()
    registry = MemoryRegistry(node_range=(5, 5), now_ns=clock.now_ns)
    kwargs: dict[str, Any] = {"clock": clock, "ttl_ms": 10_000, "lease_clock_ns": clock.now_ns}
    old = LeaseGenerator("chrono64s", registry, **kwargs)
    old_ids = old.next_ids(1000)
    old.close()
    clock.advance_ms(-500)  # the next holder's clock reads half a second earlier
    new = LeaseGenerator("chrono64s", registry, max_wait_ms=2_000, **kwargs)
    assert new.node == 5 and new.lease is not None
    assert new.lease.not_before_ns > clock.now_ns() - 1  # recorded by the old holder
    new_ids = new.next_ids(1000)
    assert min(new_ids) > max(old_ids)
    new.close()
    clock.advance_ms(-5_000)
    with pytest.raises(ClockMovedBackwards, match="previous holder"):
        LeaseGenerator("chrono64s", registry, max_wait_ms=1_000, **kwargs)


def test_a_layout_with_few_node_bits_runs_out_of_nodes() -> None:
    tiny = Layout("tiny", "s", datetime(2020, 1, 1, tzinfo=UTC), 40, 2, 21)
    registry = MemoryRegistry()
    gens = [LeaseGenerator(tiny, registry, ttl_ms=30_000) for _ in range(4)]
    assert sorted(g.node for g in gens) == [0, 1, 2, 3]
    with pytest.raises(NodeSpaceExhausted, match="all 4 nodes 0..3"):
        LeaseGenerator(tiny, registry, ttl_ms=30_000)
    for g in gens:
        g.close()


def test_arguments_are_checked() -> None:
    registry = MemoryRegistry()
    with pytest.raises(InvalidArgument, match="registry must be a NodeRegistry"):
        LeaseGenerator("chrono64s", "redis://nowhere")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="ttl_ms"):
        LeaseGenerator("chrono64s", registry, ttl_ms=10)
    with pytest.raises(InvalidArgument, match="renew_ms"):
        LeaseGenerator("chrono64s", registry, ttl_ms=1000, renew_ms=900, skew_margin_ms=200)
    with pytest.raises(InvalidArgument, match="unknown registry URL"):
        parse_registry_url("zookeeper://x")
    with pytest.raises(InvalidArgument, match="nodes="):
        parse_registry_url("memory://x?nodes=7")
    with pytest.raises(InvalidArgument, match="node_range"):
        MemoryRegistry(node_range=(3, 1))
    with pytest.raises(InvalidArgument, match="only prefix= and nodes= may follow"):
        parse_registry_url("etcd://h1:2379?user=x")
    with pytest.raises(InvalidArgument, match="listed twice"):
        parse_registry_url("etcd://h1:2379,h1")


def test_an_etcd_registry_moves_on_to_the_next_endpoint(etcd_url: str) -> None:
    # One transport with the sequencer's failover: a dead first endpoint costs one refused
    # connection per call, then the call goes to the next one.
    live = urlparse(etcd_url)
    prefix = f"/failover-{uuid.uuid4().hex[:8]}/"
    url = f"etcd://127.0.0.1:{free_port()},{live.hostname}:{live.port}?prefix={prefix}"
    registry = age_history(parse_registry_url(url, node_range=(0, 3)))
    try:
        with LeaseGenerator("chrono64s", registry, ttl_ms=3_000) as gen:
            _no_duplicates(gen.next_ids(1000))
            assert gen.acquisitions == 1
    finally:
        registry.close()


# -- every backend ---------------------------------------------------------------------------


def test_64_generators_in_threads_get_64_distinct_nodes(make_registry: RegistryFactory) -> None:
    registry = make_registry()
    with ThreadPoolExecutor(16) as pool:
        gens = list(pool.map(lambda _: LeaseGenerator("chrono64s", registry), range(FLEET)))
    try:
        assert len({g.node for g in gens}) == FLEET
        ids = [i for g in gens for i in g.next_ids(500)]
        _no_duplicates(ids)
        assert all(gens[k].node_of(ids[k * 500]) == gens[k].node for k in range(FLEET))
    finally:
        for g in gens:
            g.close()


def _hold_a_lease(url: str, results: Any, release: Any) -> None:
    gen = LeaseGenerator("chrono64s", parse_registry_url(url))
    results.put((gen.node, gen.next_ids(200)))
    release.wait(60)
    gen.close()


# An in-memory registry lives in one process: the server backends only.
@pytest.mark.parametrize("backend", ["redis", "etcd", "postgres"])
def test_64_generators_in_processes_get_64_distinct_nodes(registry_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    release = ctx.Event()
    procs = [
        ctx.Process(target=_hold_a_lease, args=(registry_url, results, release))
        for _ in range(FLEET)
    ]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=60) for _ in range(FLEET)]
    finally:
        release.set()
        for p in procs:
            p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    assert len({node for node, _ in got}) == FLEET
    _no_duplicates([i for _, ids in got for i in ids])


def test_exhausting_the_node_range_is_a_clear_error(make_registry: RegistryFactory) -> None:
    registry = make_registry(node_range=(10, 13))
    gens = [LeaseGenerator("chrono64s", registry) for _ in range(4)]
    try:
        assert sorted(g.node for g in gens) == [10, 11, 12, 13]
        with pytest.raises(NodeSpaceExhausted, match=r"all 4 nodes 10\.\.13"):
            LeaseGenerator("chrono64s", registry)
        gens.pop().close()
        again = LeaseGenerator("chrono64s", registry)  # a released node is free again
        gens.append(again)
    finally:
        for g in gens:
            g.close()


def test_release_records_last_timestamp_for_the_next_holder(
    make_registry: RegistryFactory,
) -> None:
    clock = ManualClock()
    registry = make_registry(node_range=(7, 7))
    old = LeaseGenerator("chrono64s", registry, clock=clock)
    old_ids = old.next_ids(100)
    last_tick = old.layout.unpack(old_ids[-1]).timestamp
    old.close()
    clock.advance_ms(-3_000)
    with pytest.raises(ClockMovedBackwards):
        LeaseGenerator("chrono64s", registry, clock=clock, max_wait_ms=1_000)
    new = LeaseGenerator("chrono64s", registry, clock=clock, max_wait_ms=5_000)
    assert new.lease is not None
    assert new.lease.not_before_ns == old.layout.tick_start_ns(last_tick + 1)
    new_ids = new.next_ids(100)
    new.close()
    assert min(new_ids) > max(old_ids)


# -- outages of a registry we started ourselves ----------------------------------------------


def _outage(server: OwnServer, gen: LeaseGenerator, clock: ManualClock) -> list[int]:
    """Stop the server mid-run, keep generating until LeaseLost, restart, recover."""
    ids: list[int] = []

    def produce() -> None:
        # Slower than real time: a wall clock far ahead of the lease clock is refused (the
        # registry's record of the node's last tick runs one TTL of wall time ahead).
        clock.advance_ms(10)
        try:
            ids.extend(gen.next_ids(500))
        except ClockMovedBackwards as exc:
            # A registry without the node's history (fresh, or restarted without its data):
            # issuing starts after the tick an unknown holder may have used, timed by the
            # real lease clock; this manual wall clock stood still meanwhile, so catch it up.
            clock.advance_ns(exc.offset_ns + 1)
            renewals = gen.renewals  # and let a renewal record the caught-up clock ahead
            wait_until(lambda: gen.renewals > renewals, "a renewal after the catch-up")
            ids.extend(gen.next_ids(500))

    produce()
    wait_until(lambda: gen.renewals >= 1, "a first renewal")
    server.stop()
    produce()  # the cached lease is still good: generation continues
    after_stop = len(ids)
    lost = None
    deadline = time.monotonic() + 30
    while lost is None and time.monotonic() < deadline:
        try:
            produce()
        except LeaseLost as exc:
            lost = exc
        time.sleep(0.02)
    assert lost is not None, "generation never stopped while the registry was down"
    assert gen.renewal_failures >= 1 and gen.last_error
    assert after_stop >= 1000
    server.start()

    def recovered() -> bool:
        try:
            produce()
            return True
        except LeaseLost:
            return False

    wait_until(recovered, "recovery after the registry restarted", timeout_s=30)
    produce()
    return ids


def test_redis_outage_continues_on_the_lease_then_stops_then_recovers(
    own_redis: tuple[OwnServer, str],
) -> None:
    server, url = own_redis
    clock = ManualClock()
    registry = RedisRegistry(url, prefix="outage:", timeout_s=0.5)
    gen = LeaseGenerator(
        "chrono64s", registry, clock=clock, ttl_ms=3_000, renew_ms=200, skew_margin_ms=300
    )
    try:
        ids = _outage(server, gen, clock)
    finally:
        gen.close()
        registry.close()
    _no_duplicates(ids)
    assert ids == sorted(ids)
    # Redis ran without persistence, so the old lease was gone: a new one was acquired.
    assert gen.acquisitions == 2


def test_etcd_outage_continues_on_the_lease_then_stops_then_recovers(
    own_etcd: tuple[OwnServer, str],
) -> None:
    server, url = own_etcd
    clock = ManualClock()
    host, port = url.removeprefix("etcd://").split(":")
    registry = EtcdRegistry([(host, int(port))], prefix="/outage/", timeout_s=0.5)
    gen = LeaseGenerator(
        "chrono64s", registry, clock=clock, ttl_ms=4_000, renew_ms=400, skew_margin_ms=500
    )
    try:
        ids = _outage(server, gen, clock)
    finally:
        gen.close()
        registry.close()
    _no_duplicates(ids)
    assert ids == sorted(ids)
    # etcd keeps leases across a restart (with their TTL refreshed): the renewal thread
    # finds the old lease still ours and carries on, or acquires a new node if it expired.
    assert gen.acquisitions in (1, 2)


def test_a_lease_taken_away_stops_generation_at_once_then_a_new_node_is_leased(
    redis_url: str,
) -> None:
    import redis as redis_client

    prefix = f"chronoid-test-taken-{time.monotonic_ns()}:"
    registry = age_history(RedisRegistry(redis_url, prefix=prefix))
    gen = LeaseGenerator("chrono64s", registry, ttl_ms=30_000, renew_ms=100)
    client = redis_client.Redis.from_url(redis_url)
    try:
        before = gen.next_ids(100)
        old_node = gen.node
        # Another holder "takes" the node: the token no longer matches.
        client.set(f"{prefix}node:{old_node}", "someone-else")
        # The count goes up at the registry's grant; the lease is usable once it is in place
        # (recorded ahead): until then a call is refused, as the lost lease demands.
        wait_until(
            lambda: gen.acquisitions == 2 and gen.lease is not None,
            "a new lease after the node was taken",
        )
        after = gen.next_ids(100)
        assert gen.node != old_node
        assert min(after) > max(before)
    finally:
        gen.close()
        registry.close()
        client.delete(*client.keys(f"{prefix}*"))
        client.close()


def _use_inherited(gen: LeaseGenerator, out: Any) -> None:
    try:
        gen.next_id()
        out.put("issued")
    except GeneratorForked as exc:
        out.put(str(exc))


def test_a_forked_child_cannot_use_the_parents_lease() -> None:
    gen = LeaseGenerator("chrono64s", MemoryRegistry())
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_use_inherited, args=(gen, out))
    child.start()
    assert "make a new LeaseGenerator in the child" in out.get(timeout=30)
    child.join(timeout=30)
    gen.next_id()  # the parent keeps its lease
    gen.close()


def test_sequence_overflow_waits_for_the_next_tick_on_the_same_node() -> None:
    clock = ManualClock()
    gen = LeaseGenerator("chrono64s", MemoryRegistry(), clock=clock)
    ids = gen.next_ids(40_000)  # more than 2^15 in one second
    gen.close()
    assert clock.sleeps and sum(clock.sleeps) <= 1_000_000_000  # waited for the next tick
    layout = gen.layout
    assert {layout.node_of(i) for i in ids} == {gen.node}
    assert len({layout.unpack(i).timestamp for i in ids}) == 2
    _no_duplicates(ids)


def test_next_id_through_an_overflow_keeps_increasing_on_the_same_node() -> None:
    # next_id's fused fast path, its slow path at the overflow and the tick entry after it.
    clock = ManualClock()
    gen = LeaseGenerator("chrono64s", MemoryRegistry(), clock=clock)
    ids = [gen.next_id() for _ in range(40_000)]  # more than 2^15 in one second
    gen.close()
    assert clock.sleeps and sum(clock.sleeps) <= 1_000_000_000
    assert {gen.layout.node_of(i) for i in ids} == {gen.node}
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_a_subclass_that_overrides_next_id_keeps_its_override() -> None:
    # The fused next_id is an instance attribute: it must not hide a subclass's method.
    class Counted(LeaseGenerator):
        calls = 0

        def next_id(self) -> int:
            self.calls += 1
            return super().next_id()

    gen = Counted("chrono64s", MemoryRegistry())
    try:
        first, second = gen.next_id(), gen.next_id()
    finally:
        gen.close()
    assert gen.calls == 2 and first < second


def test_postgres_registry_reconnects_after_its_connection_is_killed(pg_dsn: str) -> None:
    import psycopg

    from chronoid.lease.postgres import PostgresRegistry

    table = f"chronoid_test_leases_kill_{time.monotonic_ns()}"
    registry = age_history(PostgresRegistry(pg_dsn, table=table))
    gen = LeaseGenerator("chrono64s", registry, ttl_ms=30_000, renew_ms=100)
    try:
        wait_until(lambda: gen.renewals >= 1, "a first renewal")
        assert registry._session._conn is not None
        pid = registry._session._conn.info.backend_pid
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until(lambda: gen.renewal_failures >= 1, "a failed renewal")
        renewed = gen.renewals
        wait_until(lambda: gen.renewals > renewed, "a renewal on a new connection")
        gen.next_ids(10)
        assert gen.acquisitions == 1  # the same lease carried on
    finally:
        gen.close()
        registry.close()
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f"DROP TABLE IF EXISTS {table}")


def test_a_renewal_landing_after_a_later_one_keeps_the_larger_record(
    make_registry: RegistryFactory,
) -> None:
    """A renewal that timed out may still land after the next one did (held in a slow network
    path, or retried on another etcd endpoint). Each records *ahead* of the ticks its holder may
    use, so the store must keep the larger record: a lower one lets the next holder start
    inside ticks the previous one could still issue, whenever its wall clock runs ahead."""
    registry = make_registry(node_range=(3, 3))
    now_ns = time.time_ns()
    lease = registry.acquire(1023, 1_000, now_ns)
    later, earlier = now_ns + 20_000_000_000, now_ns + 10_000_000_000
    assert registry.renew(lease, later)
    assert registry.renew(lease, earlier)  # the earlier request, landing late
    successor: list[Any] = []

    def taken() -> bool:
        try:
            successor.append(registry.acquire(1023, 1_000, now_ns))
        except NodeSpaceExhausted:
            return False
        return True

    wait_until(taken, "the lease to expire", timeout_s=15)
    assert successor[0].not_before_ns == later
    registry.release(successor[0], 0)
