"""Sequencer failover on etcd: election, fencing, watermarks, and a 3-member cluster losing members.

Single-node tests use the shared etcd (``etcd_url``); cluster tests start their own three
members (``EtcdCluster``). Each test works under its own cluster name, so none sees another's
keys, and removes its keys at the end.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

from chronoid.endpoints import parse_etcd_endpoints
from chronoid.errors import InvalidArgument, LeadershipLost, StoreUnavailable
from chronoid.lease.etcd import EtcdCoordinator
from chronoid.sequencer.election import Elector
from chronoid.sequencer.sequences import Sequences
from chronoid.torture.etcd_cluster import EtcdCluster
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

PREFIX = "/chronoid/test/ha-etcd/"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _raw(endpoint: tuple[str, int], path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One v3 gateway call that bypasses the coordinator (to look at or disturb the keys)."""
    host, port = endpoint
    answer = requests.post(f"http://{host}:{port}/v3/{path}", json=body, timeout=5)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def _leader_kv(endpoint: tuple[str, int], cluster: str) -> dict[str, Any]:
    kvs = _raw(endpoint, "kv/range", {"key": _b64(f"{PREFIX}{cluster}/leader")}).get("kvs", [])
    assert len(kvs) == 1, kvs
    kv: dict[str, Any] = kvs[0]
    return kv


Factory = Callable[..., EtcdCoordinator]


@contextmanager
def _coordinators(
    endpoints: list[tuple[str, int]], cleanup_via: tuple[str, int] | None = None
) -> Iterator[Factory]:
    """Make coordinators under one fresh cluster name; close them and delete its keys after."""
    cluster = f"t-{uuid.uuid4().hex[:12]}"
    made: list[EtcdCoordinator] = []

    def make(**kwargs: Any) -> EtcdCoordinator:
        kwargs.setdefault("timeout_s", 1.0)
        coordinator = EtcdCoordinator(endpoints, cluster, prefix=PREFIX, **kwargs)
        made.append(coordinator)
        return coordinator

    try:
        yield make
    finally:
        for coordinator in made:
            coordinator.close()
        start = _b64(f"{PREFIX}{cluster}/")
        end = _b64(f"{PREFIX}{cluster}0")  # "0" is "/" + 1: the end of the range
        for endpoint in [cleanup_via] if cleanup_via else endpoints:
            try:
                _raw(endpoint, "kv/deleterange", {"key": start, "range_end": end})
                break
            except requests.RequestException:
                continue


@pytest.fixture
def single(etcd_url: str) -> tuple[str, int]:
    parsed = urlparse(etcd_url)
    assert parsed.hostname and parsed.port, etcd_url
    return parsed.hostname, parsed.port


@pytest.fixture
def make(single: tuple[str, int]) -> Iterator[Factory]:
    """Factory of coordinators on the shared etcd, all under one fresh cluster name."""
    with _coordinators([single]) as factory:
        yield factory


# -- election -----------------------------------------------------------------------------------


def test_only_one_campaign_wins_and_leader_is_advertised(make: Factory) -> None:
    a, b = make(), make()
    assert a.leader() is None
    token = a.campaign("a", "10.0.0.1:7379", 5_000)
    assert isinstance(token, int) and token > 0
    assert b.campaign("b", "10.0.0.2:7379", 5_000) is None
    assert a.campaign("a", "10.0.0.1:7379", 5_000) is None  # already leader: no second term
    assert a.leader() == b.leader() == "10.0.0.1:7379"
    a.renew(token, 5_000)
    a.resign(token)


def test_racing_campaigns_elect_exactly_one(make: Factory) -> None:
    shared = [make(), make()]  # four threads per object: the object must be thread-safe
    wins: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def run(i: int) -> None:
        try:
            barrier.wait()
            token = shared[i % 2].campaign(f"m{i}", f"10.0.0.{i}:7379", 5_000)
            if token is not None:
                wins.append(token)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(wins) == 1
    shared[0].resign(wins[0])


def test_resign_hands_over_at_once_with_a_larger_token(make: Factory) -> None:
    a, b = make(), make()
    first = a.campaign("a", "a:1", 30_000)
    assert first is not None
    assert b.campaign("b", "b:1", 30_000) is None
    a.resign(first)
    assert a.leader() is None
    second = b.campaign("b", "b:1", 30_000)
    assert second is not None and second > first
    a.resign(first)  # already over: no error, and b's key stays
    assert a.leader() == "b:1"
    with pytest.raises(LeadershipLost, match=r"member 'b' at 'b:1' holds term"):
        a.renew(first, 30_000)
    b.renew(second, 30_000)
    b.resign(second)
    b.resign(second)
    third = a.campaign("a", "a:1", 30_000)
    assert third is not None and third > second


def test_lease_expiry_hands_over_and_renewal_prevents_it(make: Factory) -> None:
    a, b, c = make(), make(), make()
    token = a.campaign("a", "a:1", 2_000)  # etcd's minimum lease with default timings: 2 s
    assert token is not None
    # Renewed every 0.5 s, the term outlives its TTL.
    end = time.monotonic() + 2.6
    while time.monotonic() < end:
        a.renew(token, 2_000)
        renewed = time.monotonic()
        assert b.campaign("b", "b:1", 2_000) is None
        time.sleep(0.5)
    # Not renewed, the lease expires (etcd checks expiry every 0.5 s).
    second = None
    while second is None and time.monotonic() < renewed + 5:
        time.sleep(0.1)
        second = b.campaign("b", "b:1", 2_000)
    waited = time.monotonic() - renewed
    assert second is not None and second > token
    assert 1.9 < waited < 4.0, waited
    with pytest.raises(LeadershipLost, match="holds term"):
        a.renew(token, 2_000)
    assert c.leader() == "b:1"


def test_renew_reports_an_expired_lease_as_leadership_lost(make: Factory, single: Any) -> None:
    a = make()
    token = a.campaign("a", "a:1", 30_000)
    assert token is not None
    lease = int(_leader_kv(single, a.cluster)["lease"])
    _raw(single, "lease/revoke", {"ID": lease})  # what etcd does when the TTL runs out
    with pytest.raises(LeadershipLost, match="no member is leader now"):
        a.renew(token, 30_000)
    with pytest.raises(LeadershipLost, match="no member is leader now"):
        a.reserve(token, "ids", 10)


# -- fencing and watermarks ---------------------------------------------------------------------


def test_deposed_leader_cannot_write_or_renew(make: Factory, single: Any) -> None:
    a, b = make(), make()
    old = a.campaign("a", "a:1", 30_000)
    assert old is not None
    a.reserve(old, "ids", 100)
    # a's lease ends behind its back (a partition outlasting the TTL); b takes over.
    _raw(single, "lease/revoke", {"ID": int(_leader_kv(single, a.cluster)["lease"])})
    new = b.campaign("b", "b:1", 30_000)
    assert new is not None and new > old
    with pytest.raises(LeadershipLost, match=rf"reservation refused for term {old}: member 'b'"):
        a.reserve(old, "ids", 999)
    with pytest.raises(LeadershipLost, match=rf"holds term {new}"):
        a.renew(old, 30_000)
    with pytest.raises(LeadershipLost):
        a.load(old)
    assert b.load(new) == {"ids": 100}
    b.reserve(new, "ids", 200)
    with pytest.raises(LeadershipLost):
        a.reserve(old, "ids", 999)
    assert b.load(new) == {"ids": 200}


def test_load_reserve_round_trip(make: Factory) -> None:
    a = make()
    token = a.campaign("a", "a:1", 30_000)
    assert token is not None
    assert a.load(token) == {}
    assert not make().holds_watermarks()
    marks = {"default": 1_000, "orders/eu": 2**63 - 1, "ünïcode": -5, "z": 0}
    for name, high in marks.items():
        a.reserve(token, name, high)
    a.reserve(token, "default", 500)  # lowering is allowed (clean stop, --force-initial)
    marks["default"] = 500
    assert a.load(token) == marks
    # Another object with the same token has no revisions cached: its first write re-reads.
    other = make()
    other.reserve(token, "default", 700)
    assert other.load(token) == a.load(token) == {**marks, "default": 700}
    a.reserve(token, "default", 800)  # a's cached revision is stale now: it re-reads too
    assert other.load(token)["default"] == 800
    assert make().holds_watermarks()  # the standby's evidence (read without a token)


def test_a_reservation_that_already_landed_is_not_written_again(make: Factory, single: Any) -> None:
    a = make()
    token = a.campaign("a", "a:1", 30_000)
    assert token is not None
    a.reserve(token, "ids", 100)
    key = _b64(f"{PREFIX}{a.cluster}/wm/ids")
    # An attempt whose answer was lost: the value is there, a does not know its revision.
    _raw(single, "kv/put", {"key": key, "value": _b64("200")})
    landed = int(_raw(single, "kv/range", {"key": key})["kvs"][0]["mod_revision"])
    a.reserve(token, "ids", 200)
    assert int(_raw(single, "kv/range", {"key": key})["kvs"][0]["mod_revision"]) == landed
    a.reserve(token, "ids", 300)
    assert a.load(token) == {"ids": 300}


def test_concurrent_reservations_and_renewals(make: Factory) -> None:
    a = make()
    token = a.campaign("a", "a:1", 30_000)
    assert token is not None
    errors: list[BaseException] = []

    def reserve(name: str) -> None:
        try:
            for high in range(1, 41):
                a.reserve(token, name, high)
        except BaseException as exc:
            errors.append(exc)

    def renew() -> None:
        try:
            for _ in range(40):
                a.renew(token, 30_000)
                assert a.leader() == "a:1"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reserve, args=(f"s{i}",)) for i in range(3)]
    threads.append(threading.Thread(target=renew))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert a.load(token) == {"s0": 40, "s1": 40, "s2": 40}


def test_watermark_that_is_not_an_integer_is_reported(make: Factory, single: Any) -> None:
    a = make()
    token = a.campaign("a", "a:1", 30_000)
    assert token is not None
    _raw(single, "kv/put", {"key": _b64(f"{PREFIX}{a.cluster}/wm/bad"), "value": _b64("x1")})
    with pytest.raises(StoreUnavailable, match=r"watermark of 'bad' is 'x1', not an integer"):
        a.load(token)


def test_foreign_leader_value_is_reported(make: Factory, single: Any) -> None:
    a = make()
    _raw(single, "kv/put", {"key": _b64(f"{PREFIX}{a.cluster}/leader"), "value": _b64("me!")})
    with pytest.raises(StoreUnavailable, match=r"holds 'me!', not the JSON \{member, address\}"):
        a.leader()
    assert a.campaign("a", "a:1", 5_000) is None  # the key exists: nobody else may lead


# -- arguments and endpoints --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("etcd://h1:2379,h2:2380", [("h1", 2379), ("h2", 2380)]),
        ("h1:2379, h2:2380", [("h1", 2379), ("h2", 2380)]),
        ("ETCD://10.0.0.1", [("10.0.0.1", 2379)]),
        ("http://127.0.0.1:2379/,[::1]:2380,[fe80::1]", [
            ("127.0.0.1", 2379), ("::1", 2380), ("fe80::1", 2379)
        ]),
    ],
)  # fmt: skip
def test_parse_etcd_endpoints(text: str, expected: list[tuple[str, int]]) -> None:
    assert parse_etcd_endpoints(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no etcd endpoint in ''"),
        ("etcd://", "no etcd endpoint"),
        ("h1:2379,,h2:2380", "empty etcd endpoint"),
        ("h1:2379,", "empty etcd endpoint"),
        ("h1:port", r"port must be a number in 1..65535, got 'port'"),
        ("h1:0", r"port must be an int in 1..65535, got 0"),
        ("h1:65536", "got 65536"),
        ("h1:-1", "got '-1'"),
        ("https://h1:2379", r"TLS \(https\) is not supported"),
        ("h1:2379/path", "a path or query is not allowed; expected host:port"),
        ("h1:2379?x=1", "a path or query is not allowed"),
        ("[::1:2379", "without ']'"),
        ("[::1]x", r"expected \[address\]:port"),
        ("h1:2379,h1:2379", "listed twice"),
        (":2379", "host must be a host name or IP address, got ''"),
        ("user@h1:2379", "host must be"),
    ],
)
def test_parse_etcd_endpoints_rejects(text: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        parse_etcd_endpoints(text)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([],), {}, "endpoints is empty"),
        (("h1:2379",), {}, "parse a string with parse_etcd_endpoints"),
        (([("h1", "2379")],), {}, r"port must be an int in 1..65535, got '2379'"),
        (([("h1", 2379, 1)],), {}, r"\(host, port\) pair"),
        (([("h1", 2379), ("h1", 2379)],), {}, "listed twice"),
        (([("h1", 2379)], ""), {}, "cluster must be a non-empty str without '/', got ''"),
        (([("h1", 2379)], "a/b"), {}, "got 'a/b'"),
        (([("h1", 2379)],), {"timeout_s": 0}, "timeout must be a number of seconds > 0, got 0"),
        (([("h1", 2379)],), {"timeout_s": float("nan")}, "got nan"),
        (([("h1", 2379)],), {"prefix": ""}, "prefix must be a non-empty str"),
    ],
)
def test_constructor_rejects(args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        EtcdCoordinator(*args, **kwargs)


def test_calls_reject_bad_arguments(make: Factory) -> None:
    a = make()
    with pytest.raises(InvalidArgument, match="member must be a non-empty str, got ''"):
        a.campaign("", "a:1", 5_000)
    with pytest.raises(InvalidArgument, match="address must be a non-empty str, got None"):
        a.campaign("a", None, 5_000)  # type: ignore[arg-type]
    for ttl in (0, -1, 2.5, True):
        with pytest.raises(InvalidArgument, match="ttl_ms must be an int > 0 ms"):
            a.campaign("a", "a:1", ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"token must be a fencing token .* got 0"):
        a.renew(0, 5_000)
    with pytest.raises(InvalidArgument, match="got '7'"):
        a.reserve("7", "ids", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="name must be a non-empty str, got ''"):
        a.reserve(7, "", 1)
    with pytest.raises(InvalidArgument, match=r"high must be an int, got 1.5"):
        a.reserve(7, "ids", 1.5)  # type: ignore[arg-type]
    assert a.leader() is None  # nothing reached etcd


def test_description_names_endpoints_and_cluster() -> None:
    coordinator = EtcdCoordinator([("127.0.0.1", 2379), ("::1", 2380)], "blue")
    assert coordinator.description == "etcd 127.0.0.1:2379,[::1]:2380 cluster 'blue'"
    coordinator.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        coordinator.leader()


def test_refused_endpoint_is_skipped_then_reported(single: tuple[str, int]) -> None:
    dead = ("127.0.0.1", free_port())
    with _coordinators([dead, single]) as factory:
        a = factory()
        token = a.campaign("a", "a:1", 5_000)  # the first endpoint refuses; the second answers
        assert token is not None
        a.reserve(token, "ids", 1)
        a.resign(token)
    alone = EtcdCoordinator([dead], "x", timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=rf"127.0.0.1:{dead[1]}: connection refused"):
        alone.campaign("a", "a:1", 5_000)
    assert time.monotonic() - started < 0.5
    alone.close()


def test_silent_endpoint_times_out(single: tuple[str, int]) -> None:
    # A socket that listens but never answers: the kernel accepts, nobody replies.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        coordinator = EtcdCoordinator([("127.0.0.1", port)], "x", timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"no answer within 0.3 s.*quorum"):
            coordinator.leader()
        assert 0.25 < time.monotonic() - started < 1.0
        # Listed first, the silent endpoint costs one timeout; the next one answers.
        with _coordinators([("127.0.0.1", port), single], cleanup_via=single) as factory:
            b = factory(timeout_s=0.3)
            assert b.leader() is None
            started = time.monotonic()
            assert b.leader() is None  # the endpoint that answered is tried first now
            assert time.monotonic() - started < 0.2
        coordinator.close()


# -- a 3-member cluster losing members ----------------------------------------------------------


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    root: Path = tmp_path_factory.mktemp("etcd-cluster")
    with EtcdCluster(root) as cluster:
        yield cluster


@pytest.fixture
def cluster(etcd_cluster: EtcdCluster) -> Iterator[EtcdCluster]:
    """The module's cluster with all three members up (a test may stop some)."""
    etcd_cluster.restore()
    yield etcd_cluster


@pytest.fixture
def make3(cluster: EtcdCluster) -> Iterator[Factory]:
    with _coordinators(cluster.endpoints) as factory:
        yield factory


def _wait_healthy(cluster: EtcdCluster, members: list[int]) -> None:
    for i in members:
        cluster.wait_healthy(i)


@pytest.mark.parametrize("victim", ["first endpoint", "raft leader"])
def test_cluster_keeps_working_with_one_member_down(
    cluster: EtcdCluster, make3: Factory, victim: str
) -> None:
    a, b = make3(), make3()
    token = a.campaign("a", "a:1", 2_000)
    assert token is not None
    a.reserve(token, "ids", 100)
    down = 0 if victim == "first endpoint" else cluster.raft_leader()
    cluster.stop(down)
    # Keep renewing through the loss, as the elector does (every third of the TTL); a call
    # may fail while the survivors elect a new raft leader, the term must not end.
    unavailable = 0
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        try:
            a.renew(token, 2_000)
        except StoreUnavailable as exc:
            assert not isinstance(exc, LeadershipLost), exc
            unavailable += 1
        time.sleep(0.2)
    assert unavailable <= 2
    _wait_healthy(cluster, [i for i in range(3) if i != down])
    a.renew(token, 2_000)
    a.reserve(token, "ids", 200)
    assert b.load(token) == {"ids": 200}
    assert b.campaign("b", "b:1", 2_000) is None
    a.resign(token)
    second = b.campaign("b", "b:1", 2_000)
    assert second is not None and second > token
    b.reserve(second, "ids", 300)
    with pytest.raises(LeadershipLost):
        a.reserve(token, "ids", 999)
    assert b.load(second) == {"ids": 300}


def test_cluster_without_quorum_is_unavailable_not_lost(
    cluster: EtcdCluster, make3: Factory
) -> None:
    a, b = make3(timeout_s=0.5), make3(timeout_s=0.5)
    token = a.campaign("a", "a:1", 1_000)  # etcd's minimum with these timings: 1 s
    assert token is not None
    a.reserve(token, "ids", 100)
    cluster.stop(0)
    cluster.stop(1)
    for call in (
        lambda: a.renew(token, 1_000),
        lambda: a.reserve(token, "ids", 200),
        lambda: a.load(token),
        lambda: b.campaign("b", "b:1", 1_000),
        lambda: b.leader(),
    ):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            call()
        took = time.monotonic() - started
        assert not isinstance(caught.value, LeadershipLost)
        assert took < 3 * 0.5 + 0.5, took
        message = str(caught.value)
        assert f"127.0.0.1:{cluster.client_ports[0]}: connection refused" in message
        assert f"127.0.0.1:{cluster.client_ports[2]}: " in message
        assert "lost its quorum" in message
    # Without a raft leader nothing expires: leases are renewed when a leader is elected
    # again, so the term outlives a short outage (the elector's own deadline still applies).
    time.sleep(1.5)
    cluster.start(1)
    _wait_healthy(cluster, [1, 2])
    a.renew(token, 1_000)
    # The reservation that raised may still land: a raft leader without quorum keeps it in
    # its log and commits it once a quorum is back. A later reservation must win anyway.
    assert b.load(token)["ids"] in (100, 200)
    a.reserve(token, "ids", 50)
    assert b.load(token) == {"ids": 50}


def test_a_member_that_stepped_down_without_quorum_resigns_once_it_is_back(
    cluster: EtcdCluster, make3: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """When etcd elects a raft leader again it renews every lease, so a term that could not
    resign during the outage would block the cluster for another whole TTL: the elector keeps
    its resignation and delivers it as soon as a quorum answers."""
    caplog.set_level(logging.INFO, logger="chronoid.sequencer")
    ttl = 2.0
    elector = Elector(
        make3(timeout_s=0.5),
        member="m1",
        address="127.0.0.1:1",
        make_sequences=lambda store: Sequences(store, block_min=16, block_max=16),
        ttl_s=ttl,
    )
    elector.start()
    try:
        first = _wait_serving(elector, 10)
        token = int(elector.info()["ha_term"])  # type: ignore[call-overload]
        first.take()
        cluster.stop(0)
        cluster.stop(1)
        wait_until(
            lambda: elector.info()["ha_step_downs"] == 1, "a step-down", timeout_s=2 * ttl + 3
        )
        assert "lease can no longer be confirmed" in str(elector.info()["ha_reason"])
        assert elector.serving() is None
        time.sleep(0.5)
        cluster.start(1)
        _wait_healthy(cluster, [1, 2])
        back = time.monotonic()
        _wait_serving(elector, 3 * ttl)
        assert int(elector.info()["ha_term"]) > token  # type: ignore[call-overload]
        assert f"resigned term {token}" in caplog.text
        assert time.monotonic() - back < 2 * ttl
    finally:
        elector.close()


def _wait_serving(elector: Elector, timeout: float) -> Sequences:
    wait_until(lambda: elector.serving() is not None, "serving", timeout_s=timeout)
    sequences = elector.serving()
    assert sequences is not None
    return sequences
