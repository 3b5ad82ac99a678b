"""Attacks on the PostgreSQL election store with real ``chronoid serve --ha`` members: parts
of the store lost while a leader runs or under a leader told its term is gone. Each gave 3 of
3 values of a named sequence twice before its fix.

Each test runs on a database of its own (created and dropped here): dropping or emptying a
table never touches another test's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chronoid.torture.failover import make_members, wait_for_leader
from tests.support import scratch_database, sql

TTL = 1.0


@pytest.fixture
def own_db(pg_dsn: str) -> Iterator[str]:
    with scratch_database(pg_dsn, "chronoid_pgadv") as dsn:
        yield dsn


def take(reply: bytes) -> int:
    assert reply.startswith(b":"), reply
    return int(reply[1:])


def _lose_watermarks_mid_term(dsn: str, tmp_path: Path, lose: Callable[[], None]) -> None:
    """The leader hands out foo's values; ``lose`` loses the watermarks under its live
    term; its next reservation (of the default sequence) lands; it crashes; the standby,
    which saw a watermark (evidence), wins. No foo value may come twice."""
    first, second = make_members(dsn, "c", tmp_path, 2, TTL)
    try:
        first.start()
        assert wait_for_leader([first], 10) is first
        second.start()
        named = [take(first.raw(b"GETSEQ 1 foo")) for _ in range(3)]
        take(first.raw(b"GETSEQ"))
        time.sleep(0.5)  # a few standby polls: the standby sees a watermark
        lose()
        first.raw(b"GETSEQ 1000000")  # beyond the block: a reservation of the default
        after = first.raw(b"GETSEQ 1 foo")
        first.kill()
        deadline = time.monotonic() + 10
        while second.info()["ha_term"] == "0":
            assert time.monotonic() < deadline, second.log()[-2000:]
            time.sleep(0.05)
        again = [second.raw(b"GETSEQ 1 foo") for _ in range(3)]
    finally:
        for member in (first, second):
            member.kill_if_running()
    repeated = {take(r) for r in again if r.startswith(b":")} & set(named)
    assert not repeated, (named, again, second.log()[-1500:])
    assert b"store lost its data" in after, after  # the leader saw it: it stopped at once


def test_watermark_rows_deleted_under_a_running_leader_repeat_no_value(
    own_db: str, tmp_path: Path
) -> None:
    _lose_watermarks_mid_term(
        own_db, tmp_path, lambda: sql(own_db, "DELETE FROM chronoid_seq_watermark")
    )


def test_a_watermark_table_re_created_by_the_leaders_reconnect_repeats_no_value(
    own_db: str, tmp_path: Path
) -> None:
    def lose() -> None:
        sql(own_db, "DROP TABLE chronoid_seq_watermark")
        # The leader's lease session drops (a blip): its reconnect makes both tables again.
        renewing = (
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'UPDATE \"chronoid_seq_leader\"%%'"
        )
        pids = sql(own_db, renewing)
        assert len(pids) == 1, pids
        sql(own_db, "SELECT pg_terminate_backend(%s)", pids[0][0])
        deadline = time.monotonic() + 5
        while not sql(own_db, "SELECT to_regclass('chronoid_seq_watermark') IS NOT NULL")[0][0]:
            assert time.monotonic() < deadline, "the lease session never reconnected"
            time.sleep(0.02)

    _lose_watermarks_mid_term(own_db, tmp_path, lose)


def test_a_vouched_leader_resumes_above_what_it_loaded_not_only_what_it_stored(
    own_db: str, tmp_path: Path
) -> None:
    # Values of `foo` handed out by another member's term; this member loads foo's watermark
    # at its term's start but never writes it (nobody asks for foo). The store then loses
    # the cluster's rows under it: its renewal is refused before its deadline, so it resumes
    # "above its own watermarks" in the emptied store. Its own must include what it loaded.
    first, second = make_members(own_db, "c", tmp_path, 2, TTL)
    try:
        first.start()
        assert wait_for_leader([first], 10) is first
        named = [take(first.raw(b"GETSEQ 1 foo")) for _ in range(3)]
        second.start()
        time.sleep(0.3)
        first.stop()  # a clean hand-over: the second leads, first's foo watermark stored
        assert wait_for_leader([second], 10) is second
        take(second.raw(b"GETSEQ"))
        sql(own_db, "DELETE FROM chronoid_seq_leader")
        sql(own_db, "DELETE FROM chronoid_seq_watermark")
        deadline = time.monotonic() + 10
        while second.info()["role"] != "leader" or second.info()["ha_terms_won"] != "2":
            assert time.monotonic() < deadline, second.log()[-2000:]
            time.sleep(0.05)
        again = [take(second.raw(b"GETSEQ 1 foo")) for _ in range(3)]
    finally:
        for member in (first, second):
            member.kill_if_running()
    assert not set(named) & set(again), (named, again, second.log()[-1500:])
