"""Failover through PostgreSQL: lease, fencing, redirects, kill -9, SIGSTOP, a sick store.

Real ``chronoid serve --ha postgresql://...`` processes against the machine's PostgreSQL;
each test uses its own cluster name, so tests never see each other's lease.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from chronoid.errors import (
    InvalidArgument,
    LeadershipLost,
    SequencerReplyError,
    StoreUnavailable,
)
from chronoid.lease.keeper import margin_ms
from chronoid.lease.postgres import PostgresCoordinator
from chronoid.sequencer.client import AsyncSequencerClient, SequencerClient
from chronoid.sequencer.election import Elector
from chronoid.sequencer.sequences import BLOCK_MAX, MAX_VALUE, Sequences
from chronoid.sequencer.sites import site_range
from chronoid.torture.failover import (
    Load,
    Member,
    make_members,
    wait_for_leader,
    wait_for_term,
)
from chronoid.torture.relay import Relay
from tests.support import free_port, wait_until

TTL = 1.0


@pytest.fixture
def cluster() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def members(pg_dsn: str, cluster: str, tmp_path: Path) -> Iterator[list[Member]]:
    group = make_members(pg_dsn, cluster, tmp_path, 2, TTL)
    yield group
    for member in group:
        member.kill_if_running()


# -- the coordinator itself ------------------------------------------------------------------


def test_one_campaign_wins_and_tokens_grow(pg_dsn: str, cluster: str) -> None:
    a = PostgresCoordinator(pg_dsn, cluster)
    b = PostgresCoordinator(pg_dsn, cluster)
    try:
        first = a.campaign("a", "127.0.0.1:1", 2_000)
        assert first is not None
        assert b.campaign("b", "127.0.0.1:2", 2_000) is None
        assert b.leader() == "127.0.0.1:1"
        a.renew(first, 2_000)
        assert not b.holds_watermarks()
        a.reserve(first, "default", 100)
        assert b.load(first) == {"default": 100}
        assert b.holds_watermarks()  # the standby's evidence (read without a token)
        a.resign(first)  # a clean hand-over: the standby wins at once
        second = b.campaign("b", "127.0.0.1:2", 2_000)
        assert second is not None and second > first
        # The old term is fenced: its renewal and its writes are refused; nothing changes.
        with pytest.raises(LeadershipLost, match="expired or a newer term"):
            a.renew(first, 2_000)
        with pytest.raises(LeadershipLost, match="fenced"):
            a.reserve(first, "default", 999)
        assert a.load(second) == {"default": 100}
    finally:
        a.close()
        b.close()


def test_an_expired_lease_is_taken_over_and_cannot_write(pg_dsn: str, cluster: str) -> None:
    a = PostgresCoordinator(pg_dsn, cluster)
    b = PostgresCoordinator(pg_dsn, cluster)
    try:
        token = a.campaign("a", "127.0.0.1:1", 1_000)
        assert token is not None
        time.sleep(1.1)
        # Expired, nobody took over yet: still no write (the store's clock decides).
        with pytest.raises(LeadershipLost):
            a.reserve(token, "default", 5)
        successor = b.campaign("b", "127.0.0.1:2", 1_000)
        assert successor is not None and successor > token
    finally:
        a.close()
        b.close()


def test_coordinator_arguments_and_unreachable_store() -> None:
    with pytest.raises(InvalidArgument, match="cluster name"):
        PostgresCoordinator("postgresql://postgres@127.0.0.1/test", "bad name")
    with pytest.raises(InvalidArgument, match="timeout"):
        PostgresCoordinator("postgresql://postgres@127.0.0.1/test", timeout_s=0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        PostgresCoordinator(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    assert time.monotonic() - started < 5


# -- members ---------------------------------------------------------------------------------


def test_one_leader_and_the_standby_redirects(members: list[Member]) -> None:
    for member in members:
        member.start()
    leader = wait_for_leader(members, 10)
    standby = next(m for m in members if m is not leader)
    deadline = time.monotonic() + 5
    while standby.info()["ha_leader"] != leader.address:  # its first poll of the store
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert standby.role() == "standby"
    assert standby.raw(b"GETSEQ") == f"-MOVED 0 {leader.address}\r\n".encode()
    assert standby.raw(b"CURRENT").startswith(b"-MOVED 0 ")
    # redis-py parses the redirect into MovedError naming the leader ...
    r = redis.Redis(port=standby.port)
    with pytest.raises(redis.exceptions.MovedError) as moved:
        r.execute_command("GETSEQ")
    assert (moved.value.host, moved.value.port) == ("127.0.0.1", leader.port)
    r.close()
    # ... and our clients follow it.
    with SequencerClient("127.0.0.1", standby.port) as client:
        first = client.getseq()
        assert client.getseq() == first + 1
        assert client.port == leader.port

    async def follow() -> tuple[int, int]:
        async with AsyncSequencerClient("127.0.0.1", standby.port) as client:
            return await client.getseq(), client.port

    assert asyncio.run(follow()) == (first + 2, leader.port)
    info = standby.info()
    assert info["ha_leader"] == leader.address and info["role"] == "standby"


FAILOVER_TTL = 2.5
"""Long enough that standbys name the dead leader for several client retries (a95c2b7's
client counted those redirects across retries and raised), short enough for a quick test."""


def test_kill_9_the_leader_ten_times_under_load(pg_dsn: str, cluster: str, tmp_path: Path) -> None:
    members = make_members(pg_dsn, cluster, tmp_path, 2, FAILOVER_TTL)
    try:
        _kill_the_leader_ten_times(members, FAILOVER_TTL)
    finally:
        for member in members:
            member.kill_if_running()


def _kill_the_leader_ten_times(members: list[Member], ttl: float) -> None:
    for member in members:
        member.start()
    load = Load(members).start()
    async_load = Load(members, asynchronous=True).start()
    failovers = []
    try:
        for _ in range(10):
            leader = wait_for_leader(members, 10)
            load.first_after(time.monotonic(), 10)  # the leader is serving the load
            async_load.first_after(time.monotonic(), 10)
            leader.kill()
            killed_at = time.monotonic()
            failovers.append(load.first_after(killed_at, 4 * ttl + 5) - killed_at)
            async_load.first_after(killed_at, 4 * ttl + 5)
            leader.start()  # back as a standby
    finally:
        load.stop()
        async_load.stop()
    # Within failover_timeout a failover costs the callers nothing: no exception at all.
    assert load.errors == [] and async_load.errors == [], (load.errors, async_load.errors)
    both = [v for _, v in load.values] + [v for _, v in async_load.values]
    assert len(both) == len(set(both)), "a value was issued twice"
    assert [v for _, v in async_load.values] == sorted(v for _, v in async_load.values)
    values = [v for _, v in load.values]
    assert len(values) == len(set(values)), "a value was issued twice"
    assert values == sorted(values), "one client saw values go backwards"
    gaps = [b - a for a, b in itertools.pairwise(values)]
    assert max(gaps) <= 2 * BLOCK_MAX  # a crash loses at most 1.5 blocks
    assert max(failovers) <= 2 * ttl + 0.5, failovers  # issue: within 2 x lease TTL
    print(
        f"failover after kill -9 (ttl {ttl} s): p50 {statistics.median(failovers):.2f} s, "
        f"max {max(failovers):.2f} s; {len(values)} values, max gap {max(gaps)}"
    )


def test_a_paused_leader_issues_nothing_after_its_successor_starts(
    members: list[Member],
) -> None:
    for member in members:
        member.start()
    old = wait_for_leader(members, 10)
    load = Load(members).start()
    try:
        load.first_after(time.monotonic(), 10)
        old.signal(signal.SIGSTOP)
        new = next(m for m in members if m is not old)
        wait_for_leader([new], 4 * TTL + 5)
        load.first_after(time.monotonic(), 5)  # the clients found the new leader
        time.sleep(TTL)
        old.signal(signal.SIGCONT)
        # The very first thing the resumed old leader answers is a refusal, not a value.
        reply = old.raw(b"GETSEQ")
        assert reply.startswith((b"-MOVED", b"-TRYAGAIN")), reply
        time.sleep(0.5)
    finally:
        load.stop()
        old.signal(signal.SIGCONT)
    assert old.raw(b"GETSEQ") == f"-MOVED 0 {new.address}\r\n".encode()
    values = [v for _, v in load.values]
    assert len(values) == len(set(values)) and values == sorted(values)
    assert "stepping down" in old.log() and "lease lost" in old.log()


def test_a_clean_stop_hands_over_at_once_without_a_gap(members: list[Member]) -> None:
    for member in members:
        member.start()
    leader = wait_for_leader(members, 10)
    with SequencerClient("127.0.0.1", leader.port) as client:
        last = client.getseq(5000)
    assert leader.stop() == 0
    stopped = time.monotonic()
    standby = next(m for m in members if m is not leader)
    with SequencerClient(
        "127.0.0.1", standby.port, servers=[leader.address], timeout=1, failover_timeout=5
    ) as client:
        value = client.getseq()
    assert value == last + 5000  # the exact next value: no gap on a planned hand-over
    assert time.monotonic() - stopped < TTL  # resigned: no waiting for the lease to expire

    async def from_the_dead_one() -> int:  # the async client rotates through servers too
        async with AsyncSequencerClient(
            "127.0.0.1", leader.port, servers=[standby.address], timeout=1, failover_timeout=5
        ) as client:
            return await client.getseq()

    assert asyncio.run(from_the_dead_one()) == value + 1
    assert "resigned term" in leader.log()


def test_a_leader_whose_watermark_write_hangs_steps_down(
    members: list[Member], pg_dsn: str, cluster: str
) -> None:
    for member in members:
        member.start()
    leader = wait_for_leader(members, 10)
    with SequencerClient("127.0.0.1", leader.port) as client:
        client.getseq()
    # A "sick store": hold the watermark row locked, so the next write cannot finish.
    with psycopg.connect(pg_dsn) as blocker:
        blocker.execute(
            "SELECT * FROM chronoid_seq_watermark WHERE cluster = %s FOR UPDATE", (cluster,)
        )
        started = time.monotonic()
        with (
            SequencerClient("127.0.0.1", leader.port, timeout=5) as client,
            # The request waits for the write off the event loop; once it fails the answer is
            # the error, or (the term already ended) the refusal a failover client follows.
            pytest.raises(SequencerReplyError, match="reservation failed|TRYAGAIN|MOVED"),
        ):
            client.getseq(500_000)  # needs a write now
        while leader.role() == "leader":
            assert time.monotonic() - started < TTL, "the leader held on with a stuck write"
            time.sleep(0.02)
        assert time.monotonic() - started < TTL
        blocker.rollback()
    # Issuing stops the moment the write fails; the elector thread logs why just after.
    while "stepping down" not in leader.log():
        assert time.monotonic() - started < 2 * TTL, leader.log()
        time.sleep(0.02)
    assert re.search(r"stepping down from term \d+: watermark write", leader.log())
    wait_for_leader(members, 10)  # once the store is healthy, the cluster serves again


def test_failover_command_line_is_checked(pg_dsn: str, tmp_path: Path) -> None:
    def serve(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "chronoid", "serve", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode != 0
        return result.stderr

    assert "exclude each other" in serve("--ha", pg_dsn, "--data-dir", str(tmp_path))
    assert "--force-initial cannot be used with --ha" in serve("--ha", pg_dsn, "--force-initial")
    assert "--advertise HOST:PORT is required" in serve("--ha", pg_dsn, "--host", "0.0.0.0")
    assert "--lease-ttl must be 1 to 86400 seconds" in serve("--ha", pg_dsn, "--lease-ttl", "0.5")
    assert "--lease-ttl must be 1 to 86400 seconds" in serve("--ha", pg_dsn, "--lease-ttl", "inf")
    assert "postgresql://... or etcd://" in serve("--ha", "mysql://x")
    assert "host:port" in serve("--ha", pg_dsn, "--advertise", "nohost")
    assert "--site must be in 0..1" in serve("--sites", "2", "--site", "2")


# -- multi-site ------------------------------------------------------------------------------


def test_sites_draw_from_disjoint_ranges() -> None:
    ranges = [site_range(i, 3) for i in range(3)]
    assert ranges[0][0] == 1 and ranges[-1][1] <= MAX_VALUE
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert start == end + 1
    assert site_range(0, 1) == (1, MAX_VALUE)
    with pytest.raises(InvalidArgument, match=r"^sites must be in 1\.\.1024, got 0$"):
        site_range(0, 0)


def test_two_sites_issue_independently_and_never_overlap(
    pg_dsn: str, tmp_path: Path, cluster: str
) -> None:
    # Each site is its own failover cluster in its own store: here one database, two
    # cluster names. Cut off from each other, both keep issuing from their own range.
    sites = [
        Member(
            pg_dsn,
            f"{cluster}-{i}",
            free_port(),
            tmp_path / f"s{i}.log",
            TTL,
            ("--sites", "2", "--site", str(i)),
        )
        for i in range(2)
    ]
    try:
        for site in sites:
            site.start()
        got = []
        for site in sites:
            wait_for_leader([site], 10)
            with SequencerClient("127.0.0.1", site.port) as client:
                got.append([client.getseq(1000) for _ in range(3)])
        (lo0, hi0), (lo1, _) = site_range(0, 2), site_range(1, 2)
        assert got[0] == [lo0, lo0 + 1000, lo0 + 2000]
        assert got[1] == [lo1, lo1 + 1000, lo1 + 2000]
        assert hi0 < lo1
    finally:
        for site in sites:
            site.kill_if_running()


def test_the_lease_rows_lost_a_paused_leader_cannot_take_the_new_term(
    pg_dsn: str, cluster: str, tmp_path: Path
) -> None:
    # The store loses the cluster's data (its rows deleted underneath, as a restore of an
    # empty table or a re-created database would): the new first term gets epoch 1 again,
    # the token of the lost store's first term. A leader paused (SIGSTOP) across the loss
    # must not mistake the successor's term for its own when it resumes.
    first, second = make_members(pg_dsn, cluster, tmp_path, 2, TTL)
    first.start()
    try:
        assert wait_for_leader([first], 10) is first
        second.start()
        old_term = first.info()["ha_term"]
        assert first.raw(b"GETSEQ").startswith(b":")
        first.signal(signal.SIGSTOP)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM chronoid_seq_leader WHERE cluster = %s", (cluster,))
            conn.execute("DELETE FROM chronoid_seq_watermark WHERE cluster = %s", (cluster,))
        # The second saw the first's watermark: it holds the term and refuses to issue.
        new_term = wait_for_term(second, 10)["ha_term"]
        first.signal(signal.SIGCONT)
        time.sleep(3 * TTL)  # several renewals of the resumed member
        terms = (first.info()["ha_term"], second.info()["ha_term"])
        reply = first.raw(b"GETSEQ")
    finally:
        for member in (first, second):
            member.kill_if_running()
    assert terms == ("0", new_term), (
        f"two terms at once (terms {old_term} and {new_term}): {first.log()[-1500:]}"
    )
    assert not reply.startswith(b":"), f"the deposed leader handed out {reply!r}"


def test_a_first_leader_killed_before_any_request_its_successor_serves_at_once(
    members: list[Member],
) -> None:
    # A new cluster must not take itself for one that lost its data: the first term stores
    # its starting watermark before it serves, so the successor finds it.
    first, second = members
    first.start()
    assert wait_for_leader([first], 10) is first
    second.start()
    time.sleep(0.5)  # a few standby polls
    first.kill()
    assert wait_for_leader([second], 10) is second
    assert second.raw(b"GETSEQ").startswith(b":"), second.log()[-1500:]
    assert "store_data_lost" not in second.log()


def test_the_rows_lost_a_standby_that_never_led_refuses_until_restarted_above(
    pg_dsn: str, cluster: str, tmp_path: Path
) -> None:
    # The cluster's rows deleted underneath while the leader is paused: the standby wins the
    # empty table's first term. It saw the leader's watermark, so it refuses; the operator's
    # way out is restarting every member with --initial above the last value handed out.
    first, second = make_members(pg_dsn, cluster, tmp_path, 2, TTL)
    again: list[Member] = []
    first.start()
    try:
        assert wait_for_leader([first], 10) is first
        second.start()
        before = [int(first.raw(b"GETSEQ")[1:]) for _ in range(3)]
        time.sleep(0.5)  # a few standby polls of the second member
        first.signal(signal.SIGSTOP)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM chronoid_seq_leader WHERE cluster = %s", (cluster,))
            conn.execute("DELETE FROM chronoid_seq_watermark WHERE cluster = %s", (cluster,))
        wait_for_term(second, 10)
        first.signal(signal.SIGCONT)
        time.sleep(3 * TTL)  # the resumed member stands by; the refusing term renews
        replies = [member.raw(b"GETSEQ") for member in (second, second, first)]
        info = second.info()
        for member in (first, second):
            member.stop()
        restart = str(max(before) + 1000)
        again = make_members(pg_dsn, cluster, tmp_path / "again", 2, TTL, "--initial", restart)
        (tmp_path / "again").mkdir()
        for member in again:
            member.start()
        after = int(wait_for_leader(again, 10).raw(b"GETSEQ")[1:])
    finally:
        for member in (first, second, *again):
            member.kill_if_running()
    for reply in replies[:2]:
        assert reply.startswith(b"-TRYAGAIN") and b"store lost its data" in reply, reply
    assert replies[2].startswith(b"-MOVED"), replies[2]  # the resumed one redirects to it
    assert info["ha_store_data_lost"] == "1", info
    assert second.log().count("store_data_lost") == 1
    assert after == int(restart)


def test_a_store_that_goes_silent_past_the_ttl_ends_issuing_by_the_deadline(
    pg_dsn: str, cluster: str, tmp_path: Path
) -> None:
    # A black hole, not a refusal: every member's PostgreSQL connection stops moving bytes
    # (a stopped server, a dropped link) for twice the TTL. The leader's renewal hangs until
    # its timeout and is retried; it must stop issuing by the deadline of its last confirmed
    # renewal (sent before the cut: cut + ttl - margin at the latest), serve again once the
    # store answers, and never hand out a value twice. The load is paced (100 calls/s) so
    # the term's first block lasts through the cut: only the lease deadline can stop it.
    url = urllib.parse.urlsplit(pg_dsn)
    relay = Relay(url.port or 5432, url.hostname or "127.0.0.1")
    netloc = f"{url.username}@127.0.0.1:{relay.port}" if url.username else f"127.0.0.1:{relay.port}"
    group = make_members(
        urllib.parse.urlunsplit(url._replace(netloc=netloc)), cluster, tmp_path, 2, 1.5
    )
    trusted_s = 1.5 - margin_ms(1500) / 1000
    load = Load(group, interval_s=0.01)
    try:
        for member in group:
            member.start()
        wait_for_leader(group, 10)
        load.start().first_after(time.monotonic(), 10)
        cut = time.monotonic()
        relay.cut()
        time.sleep(3.0)
        healed = time.monotonic()
        relay.heal()
        during = [when - cut for when, _ in load.values if cut < when < healed]
        load.first_after(healed, 15)  # a leader serves again
    finally:
        load.stop()
        for member in group:
            member.kill_if_running()
        relay.close()
    # 0.1 s for the reply's way back to the client (the value was made before it arrived).
    assert during and max(during) < trusted_s + 0.1, (max(during, default=0), trusted_s)
    values = [v for _, v in load.values]
    assert len(values) == len(set(values)) and values == sorted(values)


def _relayed_elector(pg_dsn: str, cluster: str, ttl_s: float) -> tuple[Elector, Relay]:
    """A started elector whose PostgreSQL connections go through a relay the test cuts (a
    cut refuses: the store is unreachable, not slow), once it serves."""
    url = urllib.parse.urlsplit(pg_dsn)
    relay = Relay(url.port or 5432, url.hostname or "127.0.0.1")
    netloc = f"{url.username}@127.0.0.1:{relay.port}" if url.username else f"127.0.0.1:{relay.port}"
    relayed = urllib.parse.urlunsplit(url._replace(netloc=netloc))
    elector = Elector(
        PostgresCoordinator(relayed, cluster, timeout_s=0.5),
        member="a",
        address="127.0.0.1:1",
        make_sequences=lambda store: Sequences(store, block_min=16, block_max=16),
        ttl_s=ttl_s,
    )
    elector.start()
    wait_until(lambda: elector.serving() is not None, "a first term", timeout_s=10)
    sequences = elector.serving()
    assert sequences is not None
    sequences.take()
    return elector, relay


def test_a_clean_stop_resigns_through_a_moment_without_the_store(
    pg_dsn: str, cluster: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The store is unreachable for 0.5 s as the leader stops, well inside its 3 s term: the
    # resignation is sent again until the store hears it, so the standby takes over at once
    # (sent once, it was lost and the standby waited out the whole lease).
    caplog.set_level(logging.INFO, logger="chronoid.sequencer")
    elector, relay = _relayed_elector(pg_dsn, cluster, 3.0)
    standby = PostgresCoordinator(pg_dsn, cluster)
    try:
        token = elector.term
        relay.cut(mode="refuse")
        threading.Timer(0.5, relay.heal).start()
        started = time.monotonic()
        elector.close()
        took = time.monotonic() - started
        successor = standby.campaign("b", "127.0.0.1:2", 3_000)
    finally:
        standby.close()
        relay.close()
    assert successor is not None and token is not None and successor > token, caplog.text
    assert f"resigned term {token}" in caplog.text
    assert 0.4 < took < 3.0 - margin_ms(3_000) / 1000


def test_a_clean_stop_without_the_store_gives_up_resigning_within_the_lease(
    pg_dsn: str, cluster: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The store never comes back: close() keeps trying only while the term could still be
    # live, so it never blocks longer than the lease would have lasted anyway.
    elector, relay = _relayed_elector(pg_dsn, cluster, 3.0)
    try:
        token = elector.term
        relay.cut(mode="refuse")
        started = time.monotonic()
        elector.close()
        took = time.monotonic() - started
    finally:
        relay.close()
    assert took < 3.0, took
    assert f"could not resign term {token} (it expires by itself)" in caplog.text
