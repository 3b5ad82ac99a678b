"""Failover through etcd, end to end: ``chronoid serve --ha etcd://...`` members against a
3-member etcd cluster this test starts on loopback (the machine's own etcd is not touched).
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronoid.lease.keeper import margin_ms
from chronoid.torture.etcd_cluster import EtcdCluster
from chronoid.torture.failover import (
    Load,
    Member,
    make_members,
    wait_for_leader,
    wait_for_term,
)
from tests.sequencer.test_server import mixed_session, send_split
from tests.support import wait_until

TTL = 2.0


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture
def members(etcd_cluster: EtcdCluster, tmp_path: Path) -> Iterator[list[Member]]:
    url = "etcd://" + ",".join(f"{h}:{p}" for h, p in etcd_cluster.endpoints)
    group = make_members(url, "e2e", tmp_path, 2, TTL)
    yield group
    for member in group:
        member.kill_if_running()


def _check(load: Load) -> None:
    values = [v for _, v in load.values]
    assert values, load.errors[-3:]
    assert len(values) == len(set(values)), "a value was issued twice"
    assert values == sorted(values), "one client saw values go backwards"


def test_kill_9_the_leader_under_load(members: list[Member]) -> None:
    for member in members:
        member.start()
    load = Load(members).start()
    failovers = []
    try:
        for _ in range(3):
            leader = wait_for_leader(members, 15)
            load.first_after(time.monotonic(), 10)
            leader.kill()
            killed = time.monotonic()
            failovers.append(load.first_after(killed, 4 * TTL + 5) - killed)
            leader.start()
    finally:
        load.stop()
    _check(load)
    assert max(failovers) <= 2 * TTL + 0.5, failovers


def test_one_etcd_member_down_the_service_goes_on_two_down_it_stops_and_says_why(
    members: list[Member], etcd_cluster: EtcdCluster
) -> None:
    for member in members:
        member.start()
    leader = wait_for_leader(members, 15)
    load = Load(members).start()
    try:
        load.first_after(time.monotonic(), 10)
        # A raft follower down (member 0, the first endpoint every member talks to, unless it
        # leads the raft): no etcd election, requests to it are refused and go to the next
        # member at once. The same sequencer leader goes on, without stepping down.
        raft_leader = etcd_cluster.raft_leader()
        follower = next(i for i in range(3) if i != raft_leader)
        etcd_cluster.stop(follower)
        stopped = time.monotonic()
        time.sleep(2 * TTL)
        load.first_after(time.monotonic(), 2 * TTL)  # values keep coming
        assert leader.role() == "leader", leader.log()[-2000:]
        assert leader.info()["ha_step_downs"] == "0", leader.log()[-2000:]
        assert load.longest_pause(stopped) < TTL, "the service paused on a follower's loss"
        etcd_cluster.start(follower)
        # etcd's raft leader down: requests in flight to it are lost and time out while the
        # others elect a new one. With a 2 s lease that can outlast the lease's margin, so the
        # sequencer leader may step down and a member (maybe itself) takes over; the service
        # goes on either way, and nothing is issued twice (checked at the end).
        etcd_cluster.stop(raft_leader)
        stopped = time.monotonic()
        load.first_after(stopped + 0.5, 2 * TTL + 2)
        assert load.longest_pause(stopped) <= 2 * TTL + 1, "no value for too long"
        leader = wait_for_leader(members, 2 * TTL)
        # Two of three down: no quorum, the lease cannot be confirmed, issuing stops.
        etcd_cluster.stop(next(i for i in range(3) if etcd_cluster.running(i)))
        stopped = time.monotonic()
        deadline = stopped + 2 * TTL + 3
        while leader.role() == "leader":
            assert time.monotonic() < deadline, "the leader kept issuing without a quorum"
            time.sleep(0.05)
        refused_after = time.monotonic() - stopped
        time.sleep(0.5)
        count = len(load.values)
        time.sleep(1.0)
        assert len(load.values) == count, "values were issued without a quorum"
        reply = leader.raw(b"GETSEQ")
        assert reply.startswith(b"-TRYAGAIN no sequencer leader available"), reply
        log = leader.log()
        assert "stepping down" in log
        assert "lease can no longer be confirmed" in log or "watermark write" in log
        # Quorum back: the cluster serves again, still without a repeat.
        etcd_cluster.restore()
        wait_for_leader(members, 30)
        load.first_after(time.monotonic(), 15)
    finally:
        load.stop()
    _check(load)
    assert refused_after <= TTL + 3, refused_after


def test_etcd_restarted_without_its_data_the_leader_resumes_above_what_it_handed_out(
    tmp_path: Path,
) -> None:
    # The store loses all of its data (docs/leases.md's condition 2 allows it): a one-member
    # etcd killed with kill -9, its data directory deleted, started again empty. The member
    # that led before wins the new store's first term; it has handed out every value up to
    # its last watermark and must not start again at 1. It may resume above its own
    # watermarks because etcd is back before its lease deadline (a lease long enough for the
    # restart): the store tells it its term is gone while its lease still ran, so no other
    # term can have begun in the lost store. (Back after the deadline, it refuses instead:
    # test_a_leader_paused_past_its_deadline_... in test_election.py.)
    ttl = 20.0  # the kill, the wipe and the restart fit inside it even on a loaded machine
    with EtcdCluster(tmp_path, size=1) as cluster:
        url = f"etcd://127.0.0.1:{cluster.client_ports[0]}"
        (member,) = make_members(url, "lost", tmp_path, 1, ttl)
        member.start()
        try:
            wait_for_leader([member], 15)
            load = Load([member]).start()
            try:
                load.first_after(time.monotonic(), 10)
                time.sleep(0.5)
                cluster.stop(0)
                lost = time.monotonic()
                shutil.rmtree(tmp_path / "etcd-m0")
                cluster.start(0)
                back = time.monotonic()
                wait_until(
                    lambda: (
                        (load.values and load.values[-1][0] > back)
                        or any("the store lost its data" in e for e in load.errors[-50:])
                    ),
                    "a value, or the refusal of a store that lost its data",
                    timeout_s=30,
                )
                time.sleep(0.5)
            finally:
                load.stop()
        finally:
            member.kill()
    before = [v for t, v in load.values if t < lost]
    after = [v for t, v in load.values if t > lost]
    assert before, load.errors[-3:]
    if not after:
        # A watermark write that failed during the outage (not refused: the store was gone)
        # ends the term without that proof, and the member refuses instead: safe, and the
        # resumption itself is pinned down on a fake store in test_election.py.
        assert any("the store lost its data" in e for e in load.errors), load.errors[-3:]
        return
    assert min(after) > max(before), (
        f"after the store lost its data the leader handed out {min(after)} again "
        f"(it had handed out up to {max(before)}): {member.log()[-1500:]}"
    )


def test_etcd_restarted_without_its_data_a_paused_leader_cannot_take_the_new_term(
    tmp_path: Path,
) -> None:
    # Fencing tokens are create revisions, and an etcd that lost its data counts revisions
    # from the start again: the new store's first term has the same token as the lost
    # store's first term. A leader paused (SIGSTOP) across the loss must not mistake the
    # successor's term for its own when it resumes: it must neither serve nor write.
    with EtcdCluster(tmp_path, size=1) as cluster:
        url = f"etcd://127.0.0.1:{cluster.client_ports[0]}"
        first, second = make_members(url, "collide", tmp_path, 2, TTL)
        first.start()
        try:
            assert wait_for_leader([first], 15) is first
            second.start()
            old_term = first.info()["ha_term"]
            assert first.raw(b"GETSEQ").startswith(b":")
            first.signal(signal.SIGSTOP)
            cluster.stop(0)
            shutil.rmtree(tmp_path / "etcd-m0")
            cluster.start(0)
            # The second saw the first's watermark: it holds the term and refuses to issue.
            new_term = wait_for_term(second, 15)["ha_term"]
            first.signal(signal.SIGCONT)
            time.sleep(2 * TTL)  # several renewals of the resumed member
            terms = (first.info()["ha_term"], second.info()["ha_term"])
            reply = first.raw(b"GETSEQ")
        finally:
            for member in (first, second):
                member.kill_if_running()
    assert terms == ("0", new_term), (
        f"two terms at once (terms {old_term} and {new_term}): {first.log()[-1500:]}"
    )
    assert not reply.startswith(b":"), f"the deposed leader handed out {reply!r}"


def test_etcd_restarted_without_its_data_a_member_that_never_led_repeats_nothing(
    tmp_path: Path,
) -> None:
    # The gap a member's own memory of its watermarks leaves: the leader is paused across
    # the loss, so the standby wins the empty store's first term. It saw the leader's
    # watermarks while standing by, so it knows the store lost them: it must not start at 1.
    with EtcdCluster(tmp_path, size=1) as cluster:
        url = f"etcd://127.0.0.1:{cluster.client_ports[0]}"
        first, second = make_members(url, "never", tmp_path, 2, TTL)
        first.start()
        try:
            assert wait_for_leader([first], 15) is first
            second.start()
            before = [int(first.raw(b"GETSEQ")[1:]) for _ in range(3)]
            time.sleep(1.0)  # a few standby polls of the second member
            first.signal(signal.SIGSTOP)
            cluster.stop(0)
            shutil.rmtree(tmp_path / "etcd-m0")
            cluster.start(0)
            info = wait_for_term(second, 15)
            time.sleep(2 * TTL)  # several renewals of the refusing term
            replies = [second.raw(b"GETSEQ") for _ in range(3)]
            log = second.log()
        finally:
            for member in (first, second):
                member.kill_if_running()
    for reply in replies:
        if reply.startswith(b":"):
            assert int(reply[1:]) > max(before), f"{reply!r} handed out again ({before})"
        else:
            assert reply.startswith(b"-TRYAGAIN") and b"store lost its data" in reply, reply
    assert info["ha_store_data_lost"] == "1", info
    assert log.count("store_data_lost") == 1, log[-2000:]  # once per term


def _replies(sock: socket.socket, count: int) -> list[bytes]:
    """The next ``count`` reply lines (fewer if the server closes or stays silent for 20 s)."""
    sock.settimeout(20)
    data = b""
    while data.count(b"\r\n") < count:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[:count]


@pytest.mark.parametrize("paused", ["before_the_pipeline", "mid_pipeline"])
def test_a_leader_paused_past_its_lease_with_10000_getseqs_buffered_hands_out_none_after_it(
    tmp_path: Path, paused: str
) -> None:
    # The GETSEQ fast path takes from the term it lent last and asks the gate only after the
    # take. A leader SIGSTOPped past --lease-ttl 1 with a 10,000-command pipeline in its socket
    # buffer (inline and RESP, one write) wakes up with its successor issuing: whatever it had
    # not answered before the pause must be refused, and nothing it answered may repeat.
    with EtcdCluster(tmp_path, size=1) as cluster:
        url = f"etcd://127.0.0.1:{cluster.client_ports[0]}"
        members = make_members(url, "paused", tmp_path, 2, 1.0)
        for member in members:
            member.start()
        try:
            leader = wait_for_leader(members, 15)
            (other,) = [member for member in members if member is not leader]
            before = [int(leader.raw(b"GETSEQ")[1:]) for _ in range(3)]
            with socket.create_connection(("127.0.0.1", leader.port), timeout=20) as sock:
                pipeline = (b"GETSEQ\r\n" + b"*1\r\n$6\r\nGETSEQ\r\n") * 5000
                sender = threading.Thread(target=sock.sendall, args=(pipeline,))
                if paused == "before_the_pipeline":
                    leader.signal(signal.SIGSTOP)
                    sender.start()
                else:
                    sender.start()
                    time.sleep(0.002)  # some of it read and answered, the rest buffered
                    leader.signal(signal.SIGSTOP)
                assert wait_for_leader([other], 15) is other
                after = [int(other.raw(b"GETSEQ")[1:]) for _ in range(3)]
                leader.signal(signal.SIGCONT)
                sender.join(20)
                replies = _replies(sock, 10_000)
        finally:
            for member in members:
                member.kill_if_running()
    assert len(replies) == 10_000, replies[-3:]
    values = [int(reply[1:]) for reply in replies if reply.startswith(b":")]
    refused = [reply for reply in replies if not reply.startswith(b":")]
    assert all(reply.startswith((b"-MOVED 0 ", b"-TRYAGAIN ")) for reply in refused), refused[:3]
    # Answered before the pause, then refused: never a value after the first refusal.
    assert replies[: len(values)] == [b":%d" % value for value in values]
    if paused == "before_the_pipeline":
        assert values == []
    every = before + values + after
    assert len(every) == len(set(every)), "a value was issued twice"
    assert every == sorted(every), "the successor issued below the paused leader's values"


def test_every_getseq_form_mixed_or_split_byte_by_byte_on_a_leader(tmp_path: Path) -> None:
    # A leader's GETSEQ takes from the term it lent last and asks the gate after the take
    # (a standalone server's fast path skips the gate): the same mixed and split reads as
    # test_server's, on a leader, get the same replies.
    with EtcdCluster(tmp_path, size=1) as cluster:
        url = f"etcd://127.0.0.1:{cluster.client_ports[0]}"
        (member,) = make_members(url, "mixed", tmp_path, 1, 3.0)
        member.start()
        try:
            wait_for_leader([member], 15)
            rng = random.Random(11)
            nexts = {b"default": 1, b"x": 1}
            for _ in range(30):
                request, expected = mixed_session(rng, nexts, None)
                split = rng.choice(["whole", "bytes", "chunks"])
                got = send_split(member.port, request, split, rng, len(expected))
                assert got == expected, (split, request[:200])
        finally:
            member.kill_if_running()


def test_etcd_stopped_past_a_fractional_ttl_the_leader_ends_issuing_by_its_deadline(
    etcd_cluster: EtcdCluster, tmp_path: Path
) -> None:
    # --lease-ttl 1.5: etcd leases are whole seconds (rounded up to 2 s), the local deadline
    # stays send + 1.5 s - margin. Every etcd member is SIGSTOPped for 3 s (a store pause,
    # not a refusal): the leader stops by its deadline (cut + 1.125 s at the latest), serves
    # again once etcd runs, and no value is handed out twice. The load is paced so the
    # term's first block outlasts the pause: only the lease deadline can stop it.
    url = "etcd://" + ",".join(f"{h}:{p}" for h, p in etcd_cluster.endpoints)
    group = make_members(url, "pause", tmp_path, 2, 1.5)
    trusted_s = 1.5 - margin_ms(1500) / 1000
    load = Load(group, interval_s=0.01)
    children = [child for child in etcd_cluster.children if child is not None]
    try:
        for member in group:
            member.start()
        wait_for_leader(group, 15)
        load.start().first_after(time.monotonic(), 10)
        paused = time.monotonic()
        for child in children:
            child.signal(signal.SIGSTOP)
        time.sleep(3.0)
        resumed = time.monotonic()
        for child in children:
            child.signal(signal.SIGCONT)
        during = [when - paused for when, _ in load.values if paused < when < resumed]
        load.first_after(resumed, 20)  # a leader serves again
    finally:
        for child in children:
            child.signal(signal.SIGCONT)
        load.stop()
        for member in group:
            member.kill_if_running()
    # 0.1 s for the reply's way back to the client (the value was made before it arrived).
    assert during and max(during) < trusted_s + 0.1, (max(during, default=0), trusted_s)
    _check(load)
