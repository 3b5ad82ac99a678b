"""Attacks on the one PostgreSQL lease discipline that Mode C's registry and the sequencer's
election store share: a stale holder, a mixed fleet (processes of the previous release,
main's SQL copied verbatim below, on the same database), a table dropped and re-created
under a paused holder, and a row held locked past the statement timeout.

Everything runs on its own database (created and dropped here), so dropping the tables never
touches another test's, and node tables and cluster names are fresh per test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from chronoid.errors import LeadershipLost, LeaseStoreUnavailable, NodeSpaceExhausted
from chronoid.lease.base import Lease, new_token
from chronoid.lease.postgres import PostgresCoordinator, PostgresRegistry
from tests.support import scratch_database, sql

SECRET = "s3cret-pglease"  # trust authentication accepts it; no message may show it

# -- main's statements at 24d82af, exactly as they were (the old half of a rolling upgrade) --

OLD_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    node integer PRIMARY KEY,
    holder text,
    expires_at timestamptz NOT NULL,
    last_ns numeric(20, 0) NOT NULL DEFAULT 0
)
"""

OLD_CLAIM = """
WITH candidate AS (
    SELECT g.n AS node, COALESCE(t.last_ns, 0) AS last_ns
    FROM generate_series(%(lo)s::integer, %(hi)s::integer) AS g(n)
    LEFT JOIN {table} AS t ON t.node = g.n
    WHERE t.node IS NULL OR t.expires_at <= clock_timestamp()
    ORDER BY COALESCE(t.last_ns, 0) > %(now)s, (g.n - %(lo)s + %(size)s - %(start)s) %% %(size)s
    LIMIT 1
)
INSERT INTO {table} AS t (node, holder, expires_at, last_ns)
SELECT node, %(token)s, clock_timestamp() + %(ttl)s * interval '1 millisecond', last_ns
FROM candidate
ON CONFLICT (node) DO UPDATE
    SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE t.expires_at <= clock_timestamp()
RETURNING node, last_ns,
    EXTRACT(EPOCH FROM clock_timestamp() - (SELECT expires_at FROM {table} WHERE node = -1))
        * 1000 AS history_ms
"""

OLD_RENEW = """
UPDATE {table}
SET expires_at = clock_timestamp() + %(ttl)s * interval '1 millisecond',
    last_ns = GREATEST(last_ns, %(last)s)
WHERE node = %(node)s AND holder = %(token)s
RETURNING node
"""

OLD_RELEASE = """
UPDATE {table}
SET holder = NULL, expires_at = '-infinity', last_ns = %(last)s
WHERE node = %(node)s AND holder = %(token)s
"""

OLD_LEADER_CREATE = [
    """
CREATE TABLE IF NOT EXISTS chronoid_seq_leader (
    cluster text PRIMARY KEY,
    epoch bigint NOT NULL,
    member text NOT NULL,
    address text NOT NULL,
    expires_at timestamptz NOT NULL
)""",
    """
CREATE TABLE IF NOT EXISTS chronoid_seq_watermark (
    cluster text NOT NULL,
    name text NOT NULL,
    high bigint NOT NULL,
    PRIMARY KEY (cluster, name)
)
""",
]

OLD_CAMPAIGN = """
INSERT INTO chronoid_seq_leader AS l (cluster, epoch, member, address, expires_at)
VALUES (%(cluster)s, (extract(epoch from clock_timestamp()) * 1000)::bigint, %(member)s,
        %(address)s, clock_timestamp() + %(ttl)s * interval '1 millisecond')
ON CONFLICT (cluster) DO UPDATE
    SET epoch = greatest(l.epoch + 1, excluded.epoch), member = excluded.member,
        address = excluded.address, expires_at = excluded.expires_at
    WHERE l.expires_at <= clock_timestamp()
RETURNING epoch
"""

OLD_LEADER_RENEW = """
UPDATE chronoid_seq_leader SET expires_at = clock_timestamp() + %(ttl)s * interval '1 millisecond'
WHERE cluster = %(cluster)s AND epoch = %(epoch)s AND expires_at > clock_timestamp()
RETURNING epoch
"""

OLD_RESIGN = """
UPDATE chronoid_seq_leader SET expires_at = clock_timestamp()
WHERE cluster = %(cluster)s AND epoch = %(epoch)s AND expires_at > clock_timestamp()
"""

OLD_RESERVE = """
WITH term AS (
    SELECT 1 FROM chronoid_seq_leader
    WHERE cluster = %(cluster)s AND epoch = %(epoch)s AND expires_at > clock_timestamp()
    FOR SHARE
)
INSERT INTO chronoid_seq_watermark AS w (cluster, name, high)
SELECT %(cluster)s, %(name)s, %(high)s FROM term
ON CONFLICT (cluster, name) DO UPDATE SET high = excluded.high
RETURNING high
"""


class OldNodeClient:
    """A Mode C registry of the previous release: main's statements on its own connection."""

    def __init__(self, dsn: str, table: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.table = table
        self.conn.execute(OLD_CREATE.format(table=table))

    def _run(self, template: str, params: dict[str, object]) -> list[tuple[object, ...]]:
        cursor = self.conn.execute(template.format(table=self.table), params)
        return cursor.fetchall() if cursor.description is not None else []

    def claim(self, node: int, ttl_ms: int) -> str | None:
        token = new_token()
        params = {"lo": node, "hi": node, "size": 1, "start": 0, "now": 0, "token": token}
        return token if self._run(OLD_CLAIM, {**params, "ttl": ttl_ms}) else None

    def renew(self, node: int, token: str, ttl_ms: int) -> bool:
        params = {"ttl": ttl_ms, "last": 0, "node": node, "token": token}
        return bool(self._run(OLD_RENEW, params))

    def release(self, node: int, token: str) -> None:
        self._run(OLD_RELEASE, {"last": 0, "node": node, "token": token})


class OldLeaderClient:
    """An election store of the previous release: main's statements on its own connection."""

    def __init__(self, dsn: str, cluster: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.cluster = cluster
        for statement in OLD_LEADER_CREATE:
            self.conn.execute(statement)

    def _one(self, statement: str, params: dict[str, object]) -> object | None:
        cursor = self.conn.execute(statement, {"cluster": self.cluster, **params})
        row = cursor.fetchone() if cursor.description is not None else None
        return row[0] if row is not None else None

    def campaign(self, member: str, ttl_ms: int) -> int | None:
        epoch = self._one(OLD_CAMPAIGN, {"member": member, "address": member, "ttl": ttl_ms})
        return int(epoch) if isinstance(epoch, int) else None

    def renew(self, epoch: int, ttl_ms: int) -> bool:
        return self._one(OLD_LEADER_RENEW, {"epoch": epoch, "ttl": ttl_ms}) is not None

    def resign(self, epoch: int) -> None:
        self._one(OLD_RESIGN, {"epoch": epoch})

    def reserve(self, epoch: int, high: int) -> bool:
        params = {"epoch": epoch, "name": "default", "high": high}
        return self._one(OLD_RESERVE, params) is not None


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_db(pg_dsn: str) -> Iterator[str]:
    """A database of this module's own, with a password in its DSN (trust ignores it)."""
    with scratch_database(pg_dsn, "chronoid_pglease", SECRET) as dsn:
        yield dsn


@pytest.fixture
def table() -> str:
    return f"leases_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cluster() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def holder_of(dsn: str, table: str, node: int) -> object:
    return sql(dsn, f"SELECT holder FROM {table} WHERE node = %s", node)[0][0]


# -- a stale holder --------------------------------------------------------------------------


def test_a_node_holder_whose_row_expired_and_was_reclaimed_changes_nothing(
    own_db: str, table: str
) -> None:
    a = PostgresRegistry(own_db, table=table, node_range=(3, 3))
    b = PostgresRegistry(own_db, table=table, node_range=(3, 3))
    try:
        stale = a.acquire(1023, 200, 0)
        time.sleep(0.3)
        # Expired and not yet taken: the store refuses it too (a live lease is part of
        # "ours"); the holder must claim again.
        assert a.renew(stale, 10**18) is False
        fresh = b.acquire(1023, 60_000, 0)
        assert fresh.node == stale.node == 3
        assert a.renew(stale, 10**18) is False
        a.release(stale, 10**18)
        assert holder_of(own_db, table, 3) == fresh.token
        last = sql(own_db, f"SELECT last_ns FROM {table} WHERE node = 3")[0][0]
        assert last != 10**18, "the stale holder's renewal or release wrote last_ns"
        with pytest.raises(NodeSpaceExhausted):
            a.acquire(1023, 1_000, 0)
        assert b.renew(fresh, 0) is True
    finally:
        a.close()
        b.close()


def test_a_leader_whose_lease_expired_and_was_taken_cannot_renew_resign_or_write(
    own_db: str, cluster: str
) -> None:
    a = PostgresCoordinator(own_db, cluster)
    b = PostgresCoordinator(own_db, cluster)
    try:
        old = a.campaign("a", "127.0.0.1:1", 200)
        assert old is not None
        a.reserve(old, "default", 10)
        time.sleep(0.3)
        with pytest.raises(LeadershipLost):  # expired, not yet taken: no write either
            a.reserve(old, "default", 11)
        new = b.campaign("b", "127.0.0.1:2", 60_000)
        assert new is not None and new > old
        with pytest.raises(LeadershipLost):
            a.renew(old, 60_000)
        with pytest.raises(LeadershipLost, match="fenced"):
            a.reserve(old, "default", 999)
        a.resign(old)  # a late resignation must not end the successor's term
        assert a.leader() == "127.0.0.1:2"
        b.renew(new, 60_000)
        assert b.load(new) == {"default": 10}
    finally:
        a.close()
        b.close()


# -- a mixed fleet: main's SQL and this code on one database ---------------------------------


def test_old_and_new_node_holders_never_share_a_node(own_db: str, table: str) -> None:
    new = PostgresRegistry(own_db, table=table, node_range=(5, 5))
    old = OldNodeClient(own_db, table)
    try:
        # The old process holds it: the new one cannot take it.
        token = old.claim(5, 60_000)
        assert token is not None
        with pytest.raises(NodeSpaceExhausted):
            new.acquire(1023, 60_000, 0)
        old.release(5, token)
        lease = new.acquire(1023, 1_000, 0)
        # The new one holds it: the old one can neither claim, renew nor release it ...
        assert old.claim(5, 60_000) is None
        assert not old.renew(5, token, 60_000)
        old.release(5, token)
        assert holder_of(own_db, table, 5) == lease.token
        # ... until it expires: then the old claim wins and the new holder is out.
        time.sleep(1.1)
        taken = old.claim(5, 60_000)
        assert taken is not None
        assert new.renew(lease, 0) is False
        new.release(lease, 0)
        assert holder_of(own_db, table, 5) == taken
        assert old.renew(5, taken, 60_000)
    finally:
        new.close()
        old.conn.close()


def _race_rounds(claims: list[Callable[[], bool]], end_the_lease: Callable[[], object]) -> None:
    """Ten rounds in which every claim starts at once: exactly one wins each."""
    for _ in range(10):
        winners: list[int] = []
        start = threading.Barrier(len(claims))

        def run(index: int, start: threading.Barrier, winners: list[int]) -> None:
            start.wait()
            if claims[index]():
                winners.append(index)

        threads = [
            threading.Thread(target=run, args=(i, start, winners)) for i in range(len(claims))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(winners) == 1, winners
        end_the_lease()  # as a crash leaves it; the next round races again


def _new_node_claim(registry: PostgresRegistry) -> Callable[[], bool]:
    def claim() -> bool:
        try:
            registry.acquire(1023, 60_000, 0)
        except NodeSpaceExhausted:
            return False
        return True

    return claim


def test_a_race_of_old_and_new_node_claimants_has_one_winner_per_round(
    own_db: str, table: str
) -> None:
    olds = [OldNodeClient(own_db, table) for _ in range(4)]
    news = [PostgresRegistry(own_db, table=table, node_range=(9, 9)) for _ in range(4)]
    claims = [lambda c=c: c.claim(9, 60_000) is not None for c in olds]
    claims += [_new_node_claim(r) for r in news]
    try:
        _race_rounds(
            claims,
            lambda: sql(
                own_db, f"UPDATE {table} SET expires_at = clock_timestamp() WHERE node = 9"
            ),
        )
    finally:
        for client in olds:
            client.conn.close()
        for registry in news:
            registry.close()


def test_a_race_of_old_and_new_campaigns_has_one_leader_per_round(
    own_db: str, cluster: str
) -> None:
    olds = [OldLeaderClient(own_db, cluster) for _ in range(4)]
    news = [PostgresCoordinator(own_db, cluster) for _ in range(4)]
    claims = [lambda c=c: c.campaign("old", 60_000) is not None for c in olds]
    claims += [lambda c=c: c.campaign("new", "new", 60_000) is not None for c in news]
    end = "UPDATE chronoid_seq_leader SET expires_at = clock_timestamp() WHERE cluster = %s"
    try:
        _race_rounds(claims, lambda: sql(own_db, end, cluster))
    finally:
        for client in olds:
            client.conn.close()
        for coordinator in news:
            coordinator.close()


def test_old_and_new_leaders_never_hold_one_cluster_at_once(own_db: str, cluster: str) -> None:
    new = PostgresCoordinator(own_db, cluster)
    old = OldLeaderClient(own_db, cluster)
    try:
        first = old.campaign("old", 60_000)
        assert first is not None
        assert new.campaign("new", "new", 60_000) is None
        assert new.leader() == "old"
        assert old.reserve(first, 100)
        old.resign(first)
        second = new.campaign("new", "new", 1_000)
        assert second is not None and second > first
        # The old process's term is over: none of its statements touches the new term.
        assert old.campaign("old", 60_000) is None
        assert not old.renew(first, 60_000)
        assert not old.reserve(first, 555)
        old.resign(first)
        assert new.leader() == "new"
        new.reserve(second, "default", 200)
        # The new term expires; an old process takes the next one and fences the new one.
        time.sleep(1.1)
        third = old.campaign("old", 60_000)
        assert third is not None and third > second
        with pytest.raises(LeadershipLost):
            new.renew(second, 60_000)
        with pytest.raises(LeadershipLost):
            new.reserve(second, "default", 777)
        new.resign(second)
        assert old.renew(third, 60_000)
        assert new.load(third) == {"default": 200}
    finally:
        new.close()
        old.conn.close()


# -- the store loses its tables under a paused holder ----------------------------------------


def test_a_node_table_dropped_and_recreated_gives_a_paused_holder_nothing(
    own_db: str, table: str
) -> None:
    paused = PostgresRegistry(own_db, table=table, node_range=(7, 7))
    other = PostgresRegistry(own_db, table=table, node_range=(7, 7))
    try:
        lease = paused.acquire(1023, 60_000, 0)
        sql(own_db, f"DROP TABLE {table}")  # the data loss, while `paused` makes no call
        # A newcomer's first call makes the table again; it gets the node, after a lock-delay.
        newcomer = other.acquire(1023, 60_000, 0)
        assert newcomer.node == 7 and newcomer.settle_ms > 59_000
        assert paused.renew(lease, 0) is False
        paused.release(lease, 0)
        assert holder_of(own_db, table, 7) == newcomer.token
        # Dropped again and renewed while missing: an error, then the table is back and the
        # renewal is refused (the old token is in no row of it).
        sql(own_db, f"DROP TABLE {table}")
        with pytest.raises(LeaseStoreUnavailable, match="lease renewal on .* failed"):
            other.renew(newcomer, 0)
        assert other.renew(newcomer, 0) is False
        assert sql(own_db, f"SELECT count(*) FROM {table} WHERE node = -1") == [(1,)]
    finally:
        paused.close()
        other.close()


def test_leader_tables_dropped_and_recreated_give_a_paused_leader_nothing(
    own_db: str, cluster: str
) -> None:
    paused = PostgresCoordinator(own_db, cluster)
    try:
        old = paused.campaign("paused", "127.0.0.1:1", 60_000)
        assert old is not None
        paused.reserve(old, "default", 10)
        sql(own_db, "DROP TABLE chronoid_seq_leader, chronoid_seq_watermark")
        time.sleep(0.01)
        successor = PostgresCoordinator(own_db, cluster)  # makes the tables again
        try:
            new = successor.campaign("successor", "127.0.0.1:2", 60_000)
            assert new is not None and new > old  # the epoch starts at the store clock
            with pytest.raises(LeadershipLost):
                paused.renew(old, 60_000)
            with pytest.raises(LeadershipLost):
                paused.reserve(old, "default", 11)
            # Worse: the store's clock came back to the lost epoch (a step back across the
            # loss). The identity is (epoch, member), so the paused leader still matches
            # nothing.
            sql(
                own_db, "UPDATE chronoid_seq_leader SET epoch = %s WHERE cluster = %s", old, cluster
            )
            with pytest.raises(LeadershipLost):
                paused.renew(old, 60_000)
            with pytest.raises(LeadershipLost):
                paused.reserve(old, "default", 12)
            paused.resign(old)
            assert successor.leader() == "127.0.0.1:2"
            successor.renew(old, 60_000)  # the successor's term, under the epoch it now has
            assert successor.load(old) == {}
        finally:
            successor.close()
    finally:
        paused.close()


# -- the statement timeout -------------------------------------------------------------------


def test_a_locked_node_row_fails_a_renewal_after_the_timeout(own_db: str, table: str) -> None:
    registry = PostgresRegistry(own_db, table=table, node_range=(2, 2), timeout_s=0.5)
    try:
        lease = registry.acquire(1023, 60_000, 0)
        with psycopg.connect(own_db) as blocker:
            blocker.execute(f"SELECT * FROM {table} WHERE node = 2 FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(LeaseStoreUnavailable) as failed:
                registry.renew(lease, 0)
            elapsed = time.monotonic() - started
            blocker.rollback()
        assert 0.4 < elapsed < 1.5, elapsed
        message = str(failed.value)
        assert "lease renewal on PostgreSQL" in message and "timeout" in message, message
        assert "\n" not in message and SECRET not in message, message
        assert registry.renew(lease, 0) is True  # a new connection, the same lease
    finally:
        registry.close()


def test_a_locked_leader_row_fails_writes_and_renewals_after_the_timeout(
    own_db: str, cluster: str
) -> None:
    coordinator = PostgresCoordinator(own_db, cluster, timeout_s=0.5)
    try:
        term = coordinator.campaign("a", "127.0.0.1:1", 60_000)
        assert term is not None
        with psycopg.connect(own_db) as blocker:
            blocker.execute(
                "SELECT * FROM chronoid_seq_leader WHERE cluster = %s FOR UPDATE", (cluster,)
            )
            for call, what in (
                (lambda: coordinator.reserve(term, "default", 1), "watermark write"),
                (lambda: coordinator.renew(term, 60_000), "lease renewal"),
            ):
                started = time.monotonic()
                with pytest.raises(LeaseStoreUnavailable) as failed:
                    call()
                elapsed = time.monotonic() - started
                assert 0.4 < elapsed < 1.5, (what, elapsed)
                message = str(failed.value)
                assert message.startswith(f"{what} on PostgreSQL"), message
                assert "\n" not in message and SECRET not in message, message
            blocker.rollback()
        coordinator.reserve(term, "default", 1)
        assert coordinator.load(term) == {"default": 1}
    finally:
        coordinator.close()


def test_an_unreachable_store_names_no_password() -> None:
    registry = PostgresRegistry(f"postgresql://u:{SECRET}@127.0.0.1:1/x", timeout_s=0.5)
    lease = Lease(node=1, token=new_token(), ttl_ms=1_000)
    with pytest.raises(LeaseStoreUnavailable) as failed:
        registry.renew(lease, 0)
    assert "cannot connect to PostgreSQL 127.0.0.1:1/x" in str(failed.value)
    assert SECRET not in str(failed.value) and "\n" not in str(failed.value)
    with pytest.raises(LeaseStoreUnavailable) as failed:
        PostgresRegistry(f"host=127.0.0.1 port=1 password={SECRET} bad", timeout_s=0.5).renew(
            lease, 0
        )
    assert SECRET not in str(failed.value), failed.value
