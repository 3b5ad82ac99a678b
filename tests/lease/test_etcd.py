"""The etcd lease, written once (:class:`EtcdLease`), attacked: a stale holder, an etcd that lost
its data, and processes of the version before it on the same keys (a rolling upgrade).

Every test talks to a real etcd: the shared one (``etcd_url``) under a key prefix of its own,
or one it starts itself (``own_etcd``) when it must wipe it.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest

from chronoid.clock import SYSTEM_CLOCK, boottime_ns
from chronoid.errors import (
    ClockMovedBackwards,
    LeadershipLost,
    LeaseLost,
    LeaseStoreUnavailable,
    NodeSpaceExhausted,
)
from chronoid.lease.etcd import (
    EtcdCoordinator,
    EtcdLease,
    EtcdRegistry,
    EtcdTransport,
    NotHeld,
    b64,
    put_op,
    range_op,
)
from chronoid.modes import LeaseGenerator
from tests.support import OwnServer, wait_until

# The last commit with the two separate etcd leases: the "old version" of a rolling upgrade.
BEFORE = "24d82af"
ROOT = Path(__file__).resolve().parents[2]


def _endpoint(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    assert parsed.hostname and parsed.port, url
    return parsed.hostname, parsed.port


@pytest.fixture
def etcd(etcd_url: str) -> Iterator[tuple[EtcdTransport, str]]:
    """A transport to the shared etcd and a fresh key prefix, deleted after the test."""
    transport = EtcdTransport([_endpoint(etcd_url)], timeout_s=2.0)
    prefix = f"/chronoid-test/lease-{uuid.uuid4().hex[:12]}/"
    yield transport, prefix
    transport.post("/kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix[:-1] + "0")})
    transport.close()


def _fenced_put(etcd: EtcdTransport, claim: EtcdLease, key: str, value: str) -> bool:
    """A write under ``claim`` (as the sequencer's watermark writes are): whether it landed."""
    return bool(etcd.txn(claim.fences(), [put_op(key, value)]).get("succeeded"))


def _read(etcd: EtcdTransport, key: str) -> list[dict[str, Any]]:
    kvs: list[dict[str, Any]] = etcd.post("/kv/range", {"key": b64(key)}).get("kvs", [])
    return kvs


def _assert_refused(etcd: EtcdTransport, stale: EtcdLease, holder: EtcdLease, mark: str) -> None:
    """``stale`` can neither renew, write, nor release; ``holder`` keeps the key through it."""
    with pytest.raises(NotHeld):
        stale.renew(etcd)
    with pytest.raises(NotHeld):
        stale.renew(etcd, [put_op(mark, "stale renewal")])
    assert not _fenced_put(etcd, stale, mark, "stale write")
    assert not stale.release(etcd, [put_op(mark, "stale release")])
    assert _read(etcd, mark) == []
    assert holder.holds(_read(etcd, holder.key))
    holder.renew(etcd)
    assert _fenced_put(etcd, holder, mark, "holder's write")
    etcd.post("/kv/deleterange", {"key": b64(mark)})


def test_a_holder_whose_key_expired_and_was_made_again_with_its_value_is_refused(
    etcd: tuple[EtcdTransport, str],
) -> None:
    """The attacker re-creates the key with the stale holder's own value (a member's leader
    value is the same in every term it wins); only the identity check tells them apart."""
    transport, prefix = etcd
    key, value = f"{prefix}slot", '{"address": "a:1", "member": "a"}'
    stale, _ = EtcdLease.claim(transport, key, value, transport.grant(1_000))
    assert stale is not None
    wait_until(lambda: _read(transport, key) == [], "the lease to expire", timeout_s=10)
    holder, _ = EtcdLease.claim(transport, key, value, transport.grant(30_000))
    assert holder is not None and holder.create_revision > stale.create_revision
    # Every way a holder may know itself: the whole identity, Mode C's (lease, value), and a
    # term another object won (create revision only).
    for known in (
        stale,
        EtcdLease(key, stale.lease_id, value=value),
        EtcdLease(key, create_revision=stale.create_revision),
    ):
        _assert_refused(transport, known, holder, f"{prefix}mark")
    assert holder.release(transport)
    assert _read(transport, key) == []


def test_a_claim_lost_in_flight_is_found_on_the_retry_and_a_rival_is_not_ours(
    etcd: tuple[EtcdTransport, str],
) -> None:
    transport, prefix = etcd
    key, lease_id = f"{prefix}slot", transport.grant(30_000)
    first, _ = EtcdLease.claim(transport, key, "v", lease_id)
    again, _ = EtcdLease.claim(transport, key, "v", lease_id)  # its answer was lost: retried
    assert first is not None and again == first
    rival, _ = EtcdLease.claim(transport, key, "v", transport.grant(30_000))
    assert rival is None


class _Ahead:
    """The system clock ``offset_ns`` ahead (a host whose wall clock runs fast)."""

    def __init__(self, offset_ns: int) -> None:
        self.offset_ns = offset_ns

    def now_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    def steady_ns(self) -> int:
        return boottime_ns()

    def sleep_ns(self, duration_ns: int) -> None:
        SYSTEM_CLOCK.sleep_ns(duration_ns)


def test_a_renewal_held_on_the_way_makes_no_holder_repeat_another_ones_ids(
    etcd: tuple[EtcdTransport, str], etcd_url: str
) -> None:
    """End to end, two generators on one node: the first (its wall clock 5 s ahead) has one
    renewal held on the way while its retries fail, then one succeeds, the held one arrives,
    and the first is cut off; it issues to its deadline, the second takes the node after.
    With the record lowered by the held renewal, the second started inside the first's ticks
    (65,440 IDs twice in a run with a 1 s TTL)."""
    _, prefix = etcd
    ttl_ms = 4_000  # margin 1 s, renewal every 1.333 s, retried every 333 ms
    registry = EtcdRegistry([_endpoint(etcd_url)], prefix=prefix, node_range=(9, 9))
    send = registry._etcd.post
    send("/kv/put", {"key": b64(f"{prefix}history/born"), "value": b64("1")})  # an old history
    records = (b64(f"{prefix}last/9"),)
    plan: list[str] = []
    done: list[str] = []
    held: list[dict[str, Any]] = []
    cut = threading.Event()

    def renewal(path: str, body: dict[str, Any]) -> bool:
        ops = body.get("success", []) if path == "/kv/txn" else []
        return any(
            "request_txn" in op or op.get("request_put", {}).get("key") in records for op in ops
        )

    def network(path: str, body: dict[str, Any], **options: Any) -> Any:
        if cut.is_set():
            raise LeaseStoreUnavailable("cut off")
        if done[-1:] == ["pass"] and path == "/lease/keepalive":
            answer = send(path, body, **options)
            cut.set()  # right after its last renewal
            return answer
        if not (plan and renewal(path, body)):
            return send(path, body, **options)
        step = plan.pop(0)
        done.append(step)
        if step == "hold":
            held.append(body)
        if step != "pass":
            raise LeaseStoreUnavailable(f"{step}: no answer")
        answer = send(path, body, **options)
        send("/kv/txn", held[0])  # the held renewal arrives
        return answer

    registry._etcd.post = network  # type: ignore[method-assign]
    first = LeaseGenerator("chrono64ms", registry, clock=_Ahead(5_000_000_000), ttl_ms=ttl_ms)
    first_ids: list[int] = []
    while first.renewals < 2:
        first_ids.extend(first.next_ids(100))
    plan.extend(["hold", "drop", "drop", "drop", "pass"])
    with pytest.raises(LeaseLost):
        while True:
            first_ids.extend(first.next_ids(100))
    assert done == ["hold", "drop", "drop", "drop", "pass"], "the renewals went otherwise"
    last_tick = first.layout.unpack(first_ids[-1]).timestamp
    second_registry = EtcdRegistry([_endpoint(etcd_url)], prefix=prefix, node_range=(9, 9))
    second_ids: list[int] = []
    deadline = time.monotonic() + 40
    second = None
    while time.monotonic() < deadline:
        try:
            second = second or LeaseGenerator(
                "chrono64ms", second_registry, ttl_ms=ttl_ms, max_wait_ms=15_000
            )
            second_ids.extend(second.next_ids(100))
        except (NodeSpaceExhausted, LeaseLost):
            time.sleep(0.02)
            continue
        if first.layout.unpack(second_ids[-1]).timestamp > last_tick:
            break
    assert second is not None and second_ids, "the second generator never issued"
    second.close()
    first.close()
    assert len(set(first_ids) & set(second_ids)) == 0


def test_etcd_losing_its_data_under_a_cut_off_holder_whose_clock_runs_ahead_repeats_nothing(
    own_etcd: tuple[OwnServer, str], tmp_path: Path
) -> None:
    """A holder (wall clock 3 s ahead) is cut off right after a renewal and keeps issuing to
    its deadline; etcd meanwhile loses its data. A newcomer that waited out one TTL from the
    new marker issued in the ticks the holder used (558,228 repeats): it now also waits
    ``max_clock_skew_ms``, the bound the fleet declares for its wall clocks."""
    server, url = own_etcd
    endpoint = _endpoint(url)
    ttl_ms = 1_000
    holder, holder_ids = _cut_off_through_a_loss(server, endpoint, tmp_path, 3_000, ttl_ms)
    newcomer = LeaseGenerator(
        "chrono64ms",
        EtcdRegistry([endpoint], prefix="/p/", node_range=(9, 9)),
        ttl_ms=ttl_ms,
        max_wait_ms=10_000,
        max_clock_skew_ms=3_000,
    )
    assert newcomer.lock_delay_ms >= ttl_ms + 3_000
    newcomer_ids = _issue_past(newcomer, holder_ids[-1], time.monotonic() + 20)
    newcomer.close()
    holder.close()
    assert len(set(holder_ids) & set(newcomer_ids)) == 0


def _cut_off_through_a_loss(
    server: OwnServer, endpoint: str, tmp_path: Path, ahead_ms: int, ttl_ms: int, **options: Any
) -> tuple[LeaseGenerator, list[int]]:
    """A holder of node 9 whose wall clock runs ``ahead_ms`` ahead is cut off from etcd right
    after a renewal; etcd then loses its data (an old history before it), and the holder
    issues to its deadline. The holder (its lease lost) and every ID it handed out."""
    registry = EtcdRegistry([endpoint], prefix="/p/", node_range=(9, 9))
    send = registry._etcd.post
    send("/kv/put", {"key": b64("/p/history/born"), "value": b64("1")})  # an old history
    cut = threading.Event()

    def network(path: str, body: dict[str, Any], **kwargs: Any) -> Any:
        if cut.is_set():
            raise LeaseStoreUnavailable("cut off")
        answer = send(path, body, **kwargs)
        if path == "/lease/keepalive" and holder.renewals >= 1:
            cut.set()  # right after a renewal
        return answer

    holder = LeaseGenerator(
        "chrono64ms", registry, clock=_Ahead(ahead_ms * 1_000_000), ttl_ms=ttl_ms, **options
    )
    registry._etcd.post = network  # type: ignore[method-assign]
    holder_ids: list[int] = []
    while not cut.is_set():
        holder_ids.extend(holder.next_ids(100))
    _wipe(server, tmp_path / "etcd-data")
    with pytest.raises(LeaseLost):
        while True:
            holder_ids.extend(holder.next_ids(100))
    return holder, holder_ids


def _issue_past(generator: LeaseGenerator, last: int, deadline: float) -> list[int]:
    """IDs from ``generator`` (waiting out its lock-delay) until one lies in a tick past the
    tick of ID ``last``, or ``deadline`` (monotonic) passes."""
    unpack = generator.layout.unpack
    last_tick = unpack(last).timestamp
    ids: list[int] = []
    while time.monotonic() < deadline:
        try:
            ids.extend(generator.next_ids(100))
        except LeaseLost:  # its lock-delay
            time.sleep(0.01)
            continue
        if unpack(ids[-1]).timestamp > last_tick:
            break
    return ids


def test_a_fleet_whose_prefix_lies_under_another_fleets_last_records_breaks_neither(
    etcd: tuple[EtcdTransport, str], etcd_url: str
) -> None:
    """Prefixes nest (``/fleet/`` and ``/fleet/last/``): the outer fleet's range read of its
    records also returns the inner fleet's keys, whose tokens are no numbers."""
    _, prefix = etcd
    inner = EtcdRegistry([_endpoint(etcd_url)], prefix=f"{prefix}last/")
    outer = EtcdRegistry([_endpoint(etcd_url)], prefix=prefix)
    inner_lease = inner.acquire(1023, 30_000, time.time_ns())
    outer_lease = outer.acquire(1023, 30_000, time.time_ns())
    assert outer.renew(outer_lease, time.time_ns()) and inner.renew(inner_lease, time.time_ns())
    outer.release(outer_lease, 0)
    inner.release(inner_lease, 0)
    for registry in (inner, outer):
        registry.close()


def _wipe(server: OwnServer, data: Path) -> None:
    server.stop()
    shutil.rmtree(data)
    server.start()


def _advance_to(etcd: EtcdTransport, revision: int, scratch: str) -> None:
    """Write ``scratch`` until etcd's revision is ``revision``."""
    current = int(etcd.post("/kv/range", {"key": b64(scratch)})["header"]["revision"])
    assert current <= revision, (current, revision)
    for _ in range(revision - current):
        etcd.txn([], [put_op(scratch, "x")])


def test_after_etcd_lost_its_data_a_paused_holder_does_not_match_the_same_numbered_claim(
    own_etcd: tuple[OwnServer, str], tmp_path: Path
) -> None:
    """Revisions restart at 1 in a wiped etcd: the successor's key gets the paused holder's
    create revision and value; the etcd lease in the identity still tells them apart."""
    server, url = own_etcd
    transport = EtcdTransport([_endpoint(url)], timeout_s=2.0)
    key, value, scratch = "/p/slot", '{"address": "a:1", "member": "a"}', "/p/scratch"
    _advance_to(transport, 20, scratch)
    paused, _ = EtcdLease.claim(transport, key, value, transport.grant(30_000))
    assert paused is not None
    _wipe(server, tmp_path / "etcd-data")
    _advance_to(transport, paused.create_revision - 1, scratch)
    successor, _ = EtcdLease.claim(transport, key, value, transport.grant(30_000))
    assert successor is not None
    assert successor.create_revision == paused.create_revision  # the attack's precondition
    assert successor.lease_id != paused.lease_id
    for known in (paused, EtcdLease(key, paused.lease_id, value=value)):
        _assert_refused(transport, known, successor, "/p/mark")
    transport.close()


def test_after_etcd_lost_its_data_a_paused_leader_cannot_write_in_the_new_term(
    own_etcd: tuple[OwnServer, str], tmp_path: Path
) -> None:
    server, url = own_etcd
    old = EtcdCoordinator([_endpoint(url)], "blue", prefix="/p/")
    scratch = EtcdTransport([_endpoint(url)], timeout_s=2.0)
    _advance_to(scratch, 30, "/scratch")
    token = old.campaign("a", "a:1", 30_000)
    assert token is not None
    old.reserve(token, "ids", 100)
    _wipe(server, tmp_path / "etcd-data")
    _advance_to(scratch, token - 1, "/scratch")
    new = EtcdCoordinator([_endpoint(url)], "blue", prefix="/p/")
    assert new.campaign("a", "a:1", 30_000) == token  # same number, same value
    with pytest.raises(LeadershipLost, match="etcd lost its data"):
        old.reserve(token, "ids", 999)
    with pytest.raises(LeadershipLost, match="etcd lost its data"):
        old.renew(token, 30_000)
    old.resign(token)
    assert new.leader() == "a:1"
    assert new.load(token) == {}
    for closing in (old, new, scratch):
        closing.close()


def test_a_renewal_delivered_after_the_next_one_does_not_lower_the_record(
    etcd: tuple[EtcdTransport, str], etcd_url: str
) -> None:
    """A renewal's request held up on the way (its client timed out; a slow path, a proxy)
    reaches etcd after the holder's next renewal landed: the very bytes it sent, replayed
    late. The record it carries is lower; written, the next holder would start inside ticks
    the previous one may still issue whenever that one's wall clock runs ahead."""
    transport, prefix = etcd
    registry = EtcdRegistry([_endpoint(etcd_url)], prefix=prefix, node_range=(5, 5))
    now_ns = time.time_ns()
    lease = registry.acquire(1023, 1_000, now_ns)
    earlier, later = now_ns + 10_000_000_000, now_ns + 20_000_000_000
    held: list[dict[str, Any]] = []
    send = registry._etcd.post

    def hold_the_renewal(path: str, body: dict[str, Any], **options: Any) -> Any:
        if path == "/kv/txn":
            held.append(body)
            raise LeaseStoreUnavailable("held up on the way: no answer within 2 s")
        return send(path, body, **options)

    registry._etcd.post = hold_the_renewal  # type: ignore[method-assign]
    with pytest.raises(LeaseStoreUnavailable):
        registry.renew(lease, earlier)
    registry._etcd.post = send  # type: ignore[method-assign]
    assert registry.renew(lease, later)
    transport.post("/kv/txn", held[0])  # the held request arrives
    last = _read(transport, f"{prefix}last/5")
    assert int(base64.b64decode(last[0]["value"])) == later
    registry.release(lease, later)
    registry.close()


# -- a rolling upgrade: the version before and this one on the same keys -----------------------


@pytest.fixture(scope="module")
def before() -> ModuleType:
    """``chronoid.lease.etcd`` as it was at :data:`BEFORE`, imported beside today's."""
    try:
        source = subprocess.run(
            ["git", "show", f"{BEFORE}:src/chronoid/lease/etcd.py"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"the old version needs a git checkout with commit {BEFORE}: {exc}")
    spec = importlib.util.spec_from_loader("chronoid_lease_etcd_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    exec(compile(source, f"{BEFORE}:etcd.py", "exec"), module.__dict__)
    return module


def test_node_leases_of_the_old_and_new_version_exclude_each_other(
    etcd: tuple[EtcdTransport, str], etcd_url: str, before: ModuleType
) -> None:
    _, prefix = etcd
    endpoints, now = [_endpoint(etcd_url)], time.time_ns()
    old = before.EtcdRegistry(endpoints, prefix=prefix, node_range=(0, 1))
    new = EtcdRegistry(endpoints, prefix=prefix, node_range=(0, 1))
    old_leases = [old.acquire(1, 30_000, now), old.acquire(1, 30_000, now)]
    with pytest.raises(NodeSpaceExhausted):
        new.acquire(1, 30_000, now)
    assert all(old.renew(lease, now + 1) for lease in old_leases)
    old.release(old_leases[0], now + 5)
    taken = new.acquire(1, 30_000, now)  # the old holder's record, read by the new code
    assert (taken.node, taken.not_before_ns) == (old_leases[0].node, now + 5)
    assert not old.renew(old_leases[0], now + 6)
    with pytest.raises(NodeSpaceExhausted):
        old.acquire(1, 30_000, now)
    assert new.renew(taken, now + 7)
    new.release(taken, now + 8)
    back = old.acquire(1, 30_000, now)  # and the new holder's record, read by the old code
    assert (back.node, back.not_before_ns) == (taken.node, now + 8)
    assert not new.renew(taken, now + 9)
    old.close()
    new.close()


def test_leader_leases_of_the_old_and_new_version_exclude_each_other(
    etcd_url: str, before: ModuleType
) -> None:
    cluster, endpoints = f"t-{uuid.uuid4().hex[:12]}", [_endpoint(etcd_url)]
    prefix = "/chronoid-test/upgrade/"
    old = before.EtcdCoordinator(endpoints, cluster, prefix=prefix)
    new = EtcdCoordinator(endpoints, cluster, prefix=prefix)
    try:
        first = old.campaign("old", "old:1", 30_000)
        assert first is not None
        assert new.campaign("new", "new:1", 30_000) is None
        assert new.leader() == "old:1"
        old.reserve(first, "ids", 100)
        old.resign(first)
        second = new.campaign("new", "new:1", 30_000)
        assert second is not None and second > first
        assert old.campaign("old", "old:1", 30_000) is None
        assert old.leader() == "new:1"
        assert new.load(second) == {"ids": 100}  # the old leader's watermark
        new.reserve(second, "ids", 200)
        with pytest.raises(LeadershipLost):
            old.reserve(first, "ids", 999)
        with pytest.raises(LeadershipLost):
            old.renew(first, 30_000)
        old.resign(first)  # a late resignation of the old term ends nothing
        assert old.leader() == "new:1"
        new.renew(second, 30_000)
        new.resign(second)
        assert old.leader() is None
    finally:
        new._etcd.post(
            "/kv/deleterange",
            {"key": b64(f"{prefix}{cluster}/"), "range_end": b64(f"{prefix}{cluster}0")},
        )
        old.close()
        new.close()


def test_a_mode_c_key_written_as_the_old_version_writes_it_is_read_and_fenced(
    etcd: tuple[EtcdTransport, str], etcd_url: str
) -> None:
    """The format by hand, independent of any version's code: ``node/<n>`` = the token on an
    etcd lease, ``last/<n>`` = ns as a decimal string, ``history/born`` = "1"."""
    transport, prefix = etcd
    lease_id = transport.grant(30_000)
    transport.txn(
        [],
        [
            put_op(f"{prefix}history/born", "1"),
            put_op(f"{prefix}node/0", "f" * 32, lease_id),
            put_op(f"{prefix}last/1", "123456789"),
        ],
    )
    registry = EtcdRegistry([_endpoint(etcd_url)], prefix=prefix, node_range=(0, 1))
    lease = registry.acquire(1, 30_000, 0)
    assert (lease.node, lease.not_before_ns, lease.settle_ms) == (1, 123456789, 0)
    with pytest.raises(NodeSpaceExhausted):
        registry.acquire(1, 30_000, 0)
    assert transport.txn([], [range_op(f"{prefix}node/1")])["responses"][0]["response_range"][
        "kvs"
    ][0]["value"] == b64(lease.token)
    registry.close()


def test_a_leader_key_written_as_the_old_version_writes_it_is_read_and_fenced(
    etcd: tuple[EtcdTransport, str], etcd_url: str
) -> None:
    """By hand again: ``<cluster>/leader`` = sorted JSON {member, address} on an etcd lease (its
    create revision the term), ``<cluster>/wm/<name>`` = a decimal string."""
    transport, prefix = etcd
    lease_id = transport.grant(30_000)
    leader = json.dumps({"member": "old", "address": "old:1"}, sort_keys=True)
    result = transport.txn(
        [],
        [put_op(f"{prefix}blue/leader", leader, lease_id), put_op(f"{prefix}blue/wm/ids", "100")],
    )
    old_term = int(result["header"]["revision"])  # one transaction, one revision
    coordinator = EtcdCoordinator([_endpoint(etcd_url)], "blue", prefix=prefix)
    assert coordinator.leader() == "old:1"
    assert coordinator.campaign("new", "new:1", 30_000) is None
    assert coordinator.load(old_term) == {"ids": 100}  # a term another object won
    transport.revoke(lease_id)  # the old leader's lease ends
    token = coordinator.campaign("new", "new:1", 30_000)
    assert token is not None and token > old_term
    assert coordinator.load(token) == {"ids": 100}
    with pytest.raises(LeadershipLost, match=f"holds term {token}"):
        coordinator.reserve(old_term, "ids", 999)
    stored = _read(transport, f"{prefix}blue/leader")[0]
    assert base64.b64decode(stored["value"]).decode() == json.dumps(
        {"member": "new", "address": "new:1"}, sort_keys=True
    )
    assert int(stored["create_revision"]) == token
    coordinator.resign(token)
    coordinator.close()


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call at once (one thread each, released together): their results."""
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except NodeSpaceExhausted:
            results[index] = None

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_old_and_new_versions_racing_for_one_slot_make_one_holder_per_round(
    etcd: tuple[EtcdTransport, str], etcd_url: str, before: ModuleType
) -> None:
    _, prefix = etcd
    endpoints = [_endpoint(etcd_url)]
    kinds = [before, sys.modules["chronoid.lease.etcd"]] * 3
    coordinators = [kind.EtcdCoordinator(endpoints, "race", prefix=prefix) for kind in kinds]
    registries = [kind.EtcdRegistry(endpoints, prefix=prefix, node_range=(5, 5)) for kind in kinds]
    for _ in range(5):
        tokens = _race(
            [
                lambda c=c, i=i: c.campaign(f"m{i}", f"m{i}:1", 30_000)
                for i, c in enumerate(coordinators)
            ]
        )
        won = [(c, t) for c, t in zip(coordinators, tokens, strict=True) if t is not None]
        assert len(won) == 1, tokens
        won[0][0].resign(won[0][1])
        leases = _race([lambda r=r: r.acquire(5, 30_000, 0) for r in registries])
        held = [(r, lease) for r, lease in zip(registries, leases, strict=True) if lease]
        assert len(held) == 1, leases
        held[0][0].release(held[0][1], 0)
    for closing in [*coordinators, *registries]:
        closing.close()


def test_a_member_that_wins_many_terms_remembers_only_the_last_few(
    etcd: tuple[EtcdTransport, str], etcd_url: str
) -> None:
    """Every term won used to be kept for the object's life (a term a minute for a year: half
    a million). The newest terms are kept, and the current one still renews, fences and
    resigns by its own etcd lease."""
    _, prefix = etcd
    coordinator = EtcdCoordinator([_endpoint(etcd_url)], "blue", prefix=prefix)
    for _ in range(20):
        token = coordinator.campaign("a", "a:1", 30_000)
        assert token is not None
        coordinator.renew(token, 30_000)
        coordinator.reserve(token, "ids", token)
        coordinator.resign(token)
    assert len(coordinator._terms) <= 8
    coordinator.close()


def test_etcd_a_newcomer_dying_in_its_skew_wait_does_not_hand_the_skew_to_the_next_holder(
    own_etcd: tuple[OwnServer, str], tmp_path: Path
) -> None:
    """As the test above, within the stated bound (holder 4.5 s ahead < margin 0.25 s +
    max_clock_skew_ms 5 s), except that the newcomer is cut off (a crash) right after its
    acquisition, inside its lock-delay. Its record says only "now + TTL"; once its lease
    expires the history is no longer young, so a third holder gets no lock-delay and starts
    at that record: below the ticks the cut-off holder used."""
    server, url = own_etcd
    endpoint = _endpoint(url)
    ttl_ms, skew_ms = 1_000, 5_000
    holder, holder_ids = _cut_off_through_a_loss(
        server, endpoint, tmp_path, 4_500, ttl_ms, max_clock_skew_ms=skew_ms
    )

    # The newcomer: acquires (and records "now + TTL"), then is cut off: a crash.
    doomed = EtcdRegistry([endpoint], prefix="/p/", node_range=(9, 9))
    doomed_send = doomed._etcd.post
    doomed_cut = threading.Event()

    def doomed_network(path: str, body: dict[str, Any], **options: Any) -> Any:
        if doomed_cut.is_set():
            raise LeaseStoreUnavailable("crashed")
        answer = doomed_send(path, body, **options)
        if path == "/lease/keepalive":
            doomed_cut.set()  # the acquisition's own renewal landed, then nothing
        return answer

    doomed._etcd.post = doomed_network  # type: ignore[method-assign]
    outcome: list[object] = []

    def newcomer() -> None:
        try:
            outcome.append(
                LeaseGenerator(
                    "chrono64ms",
                    doomed,
                    ttl_ms=ttl_ms,
                    max_wait_ms=20_000,
                    max_clock_skew_ms=skew_ms,
                )
            )
        except Exception as exc:  # its lease is lost in its lock-delay
            outcome.append(exc)

    thread = threading.Thread(target=newcomer, daemon=True)
    thread.start()
    assert doomed_cut.wait(10)

    # The third holder: as soon as the newcomer's etcd lease has expired.
    third: LeaseGenerator | None = None
    deadline = time.monotonic() + 20
    while third is None and time.monotonic() < deadline:
        try:
            third = LeaseGenerator(
                "chrono64ms",
                EtcdRegistry([endpoint], prefix="/p/", node_range=(9, 9)),
                ttl_ms=ttl_ms,
                max_wait_ms=20_000,
                max_clock_skew_ms=skew_ms,
            )
        except (NodeSpaceExhausted, LeaseLost, ClockMovedBackwards):
            # Still leased, or (the newcomer's floor recorded) its wait for that floor
            # outlasted its own lease or max_wait_ms: try again.
            time.sleep(0.02)
    assert third is not None
    third_ids = _issue_past(third, holder_ids[-1], deadline)
    lock_delay_ms = third.lock_delay_ms
    third.close()
    holder.close()
    thread.join(30)
    repeats = len(set(holder_ids) & set(third_ids))
    assert repeats == 0, (repeats, lock_delay_ms)


def test_after_etcd_lost_its_data_a_forgotten_term_cannot_write_in_the_same_numbered_new_one(
    own_etcd: tuple[OwnServer, str], tmp_path: Path
) -> None:
    """As test_after_etcd_lost_its_data_a_paused_leader_cannot_write_in_the_new_term, except
    that the old object has won 8 more terms since: it no longer knows the first term's etcd
    lease. Not reachable through the Elector (it names only its current term and one
    unresigned one, which is resigned at the first standby poll), but the coordinator's
    fencing no longer holds for every token it handed out."""
    server, url = own_etcd
    old = EtcdCoordinator([_endpoint(url)], "blue", prefix="/p/")
    scratch = EtcdTransport([_endpoint(url)], timeout_s=2.0)
    _advance_to(scratch, 30, "/scratch")
    token = old.campaign("a", "a:1", 30_000)
    assert token is not None
    old.reserve(token, "ids", 100)
    old.resign(token)
    for _ in range(8):
        later = old.campaign("a", "a:1", 30_000)
        assert later is not None
        old.resign(later)
    _wipe(server, tmp_path / "etcd-data")
    _advance_to(scratch, token - 1, "/scratch")
    new = EtcdCoordinator([_endpoint(url)], "blue", prefix="/p/")
    assert new.campaign("a", "a:1", 30_000) == token  # same number, same value
    new.reserve(token, "ids", 1_000)
    try:
        with pytest.raises(LeadershipLost):
            old.reserve(token, "ids", 5)  # a deposed term's write, below the new term's mark
    finally:
        marks = new.load(token)
        for closing in (old, new, scratch):
            closing.close()
    assert marks == {"ids": 1_000}
