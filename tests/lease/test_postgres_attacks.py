"""More attacks on the PostgreSQL lease discipline: passwords echoed back by libpq out of a
malformed DSN, and the node registry under truncation, stale holders and concurrent churn.

Tables and clusters are fresh per test, on a database of this module's own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from chronoid.errors import InvalidArgument, LeadershipLost, LeaseStoreUnavailable, StoreDataLost
from chronoid.lease.base import Lease, new_token
from chronoid.lease.postgres import PostgresCoordinator, PostgresRegistry
from chronoid.lease.url import open_coordinator
from tests.support import scratch_database, sql

SECRET = "Zq9pwSecret"


@pytest.fixture(scope="module")
def own_db(pg_dsn: str) -> Iterator[str]:
    with scratch_database(pg_dsn, "chronoid_pgadv") as dsn:
        yield dsn


@pytest.fixture
def table() -> str:
    return f"leases_{uuid.uuid4().hex[:12]}"


# -- passwords -------------------------------------------------------------------------------

MALFORMED = [
    # libpq quotes the token it cannot decode: the password itself.
    f"postgresql://u:{SECRET}%zz@127.0.0.1:5432/x",
    # An unencoded '@': libpq splits at the first one, so the rest of the password becomes
    # part of the host name, in every message that names the host.
    f"postgresql://u:p@{SECRET}@127.0.0.1:1/x",
]


@pytest.mark.parametrize("dsn", MALFORMED)
def test_a_malformed_dsn_names_no_password(dsn: str) -> None:
    lease = Lease(node=1, token=new_token(), ttl_ms=1_000)
    calls = (
        lambda: PostgresRegistry(dsn, timeout_s=0.5).renew(lease, 0),
        lambda: PostgresCoordinator(dsn, "c", timeout_s=0.5),
        lambda: open_coordinator(dsn, "c", 0.5),
    )
    for call in calls:
        with pytest.raises(LeaseStoreUnavailable) as failed:
            call()
        assert SECRET not in str(failed.value), failed.value
    assert SECRET not in repr(PostgresRegistry(dsn, timeout_s=0.5))


# -- watermarks lost under a live term -------------------------------------------------------


def test_a_watermark_row_lost_under_the_live_term_is_not_written_back(own_db: str) -> None:
    cluster = f"c-{uuid.uuid4().hex[:12]}"
    a = PostgresCoordinator(own_db, cluster)
    try:
        first = a.campaign("a", "127.0.0.1:1", 60_000)
        assert first is not None
        assert a.load(first) == {}
        a.reserve(first, "default", 10)  # new to the store: inserted
        a.reserve(first, "foo", 5)
        a.reserve(first, "default", 20)  # the term's own: updated
        sql(own_db, "DELETE FROM chronoid_seq_watermark WHERE cluster = %s", cluster)
        with pytest.raises(StoreDataLost, match="watermark of 'default', stored in term"):
            a.reserve(first, "default", 30)
        assert sql(own_db, "SELECT * FROM chronoid_seq_watermark WHERE cluster = %s", cluster) == []
        a.resign(first)
        second = a.campaign("a", "127.0.0.1:1", 60_000)
        assert second is not None
        a.load(second)
        a.reserve(second, "default", 40)  # a new term that loaded an empty store inserts
        with pytest.raises(LeadershipLost):
            a.reserve(first, "foo", 50)  # the fence still comes first
        assert a.load(second) == {"default": 40}
        a.resign(second)
        with pytest.raises(LeadershipLost):  # a loaded name, a term over: fenced
            a.reserve(second, "default", 60)
        assert a.load(second) == {"default": 40}
    finally:
        a.close()


# -- two members of one name -----------------------------------------------------------------


def test_an_epoch_met_again_under_the_same_member_name_gives_a_paused_leader_nothing(
    own_db: str,
) -> None:
    # `--member` set from one shared config file names every member "seq". The tables are
    # dropped under a paused leader and the store's clock comes back to its epoch (a step
    # back across the loss, or a restore): the successor's row then reads (epoch, "seq").
    cluster = f"c-{uuid.uuid4().hex[:12]}"
    paused = PostgresCoordinator(own_db, cluster)
    successor = PostgresCoordinator(own_db, cluster)
    try:
        old = paused.campaign("seq", "127.0.0.1:1", 60_000)
        assert old is not None
        paused.load(old)
        paused.reserve(old, "default", 10)
        sql(own_db, "DROP TABLE chronoid_seq_leader, chronoid_seq_watermark")
        with pytest.raises(LeaseStoreUnavailable):  # its session's first statement since
            successor.campaign("seq", "127.0.0.1:2", 60_000)
        new = successor.campaign("seq", "127.0.0.1:2", 60_000)  # reconnected: tables again
        assert new is not None
        sql(own_db, "UPDATE chronoid_seq_leader SET epoch = %s WHERE cluster = %s", old, cluster)
        with pytest.raises(LeadershipLost):
            paused.renew(old, 60_000)
        with pytest.raises(LeadershipLost):
            paused.reserve(old, "default", 11)
    finally:
        paused.close()
        successor.close()


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [
        "chronoid_node_leases\n",
        "Leases",
        'x"; DROP TABLE y; --',
        "a" * 64,
        "",
    ],
)
def test_a_table_name_that_is_not_exactly_an_identifier_is_refused(table: str) -> None:
    # "chronoid_node_leases\n" (a name read from a file, or ?table=...%0A in a URL) would
    # be a table of its own: a fleet split over two tables hands one node to two holders.
    with pytest.raises(InvalidArgument, match="table must be"):
        PostgresRegistry("postgresql://u@127.0.0.1:1/x", table=table)


# -- the lock-delay marker -------------------------------------------------------------------


@pytest.mark.parametrize("lose", ["TRUNCATE {table}", "DELETE FROM {table}"])
def test_a_node_table_emptied_under_a_holder_makes_every_newcomer_wait_one_ttl(
    own_db: str, table: str, lose: str
) -> None:
    # TRUNCATE and DELETE take the marker with the rows and, unlike DROP, no connected
    # session sees an error: a missing marker vouches for nothing, and one written by a new
    # session after the loss starts the history then. Either way the newcomer waits until
    # one TTL after the loss, here on both nodes, the held one and the released one.
    holder = PostgresRegistry(own_db, table=table, node_range=(4, 5))
    newcomer = PostgresRegistry(own_db, table=table, node_range=(4, 5))
    try:
        held = holder.acquire(1023, 5_000, 0)
        released = holder.acquire(1023, 5_000, 0)
        holder.release(released, 10**18)
        sql(own_db, lose.format(table=table))
        lost = time.monotonic()
        assert holder.renew(held, 0) is False
        first = newcomer.acquire(1023, 5_000, 0)
        second = newcomer.acquire(1023, 5_000, 0)
        since_ms = (time.monotonic() - lost) * 1000
        assert {first.node, second.node} == {4, 5}
        for lease in (first, second):
            assert lease.settle_ms >= 5_000 - since_ms, (lease, since_ms)
    finally:
        holder.close()
        newcomer.close()


# -- a renewal in flight while its lease expires ---------------------------------------------


def _in_thread(call: Callable[[], object]) -> Callable[[], object]:
    """Start ``call`` now; the returned function waits for its result (or its exception)."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(call())
        except Exception as exc:
            box.append(exc)

    thread = threading.Thread(target=run)
    thread.start()

    def result() -> object:
        thread.join(timeout=10)
        return box[0]

    return result


@pytest.mark.parametrize("lock", ["FOR SHARE", "FOR UPDATE"])
def test_a_renewal_stuck_on_a_lock_past_its_expiry_confirms_nothing_a_claim_behind_it_takes(
    own_db: str, table: str, lock: str
) -> None:
    # PostgreSQL computes an UPDATE's new row (expires_at = clock_timestamp() + ttl) when it
    # scans, before it waits for a row lock, and rechecks nothing after a wait for a mere
    # locker: a renewal stuck longer than its TTL commits an expiry already past, answers
    # "renewed", and the claim queued behind it takes the row at once. Both "win"; what keeps
    # them apart is the holder's rule (docs/leases.md): trusted until *send* + TTL - margin,
    # so a "renewed" that answers more than one TTL after its send confirms nothing.
    cluster = f"c-{uuid.uuid4().hex[:12]}"
    a = PostgresCoordinator(own_db, cluster, timeout_s=3)
    b = PostgresCoordinator(own_db, cluster, timeout_s=3)
    holder = PostgresRegistry(own_db, table=table, node_range=(6, 6))
    newcomer = PostgresRegistry(own_db, table=table, node_range=(6, 6))
    ttl_ms = 500
    try:
        term = a.campaign("a", "127.0.0.1:1", ttl_ms)
        assert term is not None
        lease = holder.acquire(1023, ttl_ms, 0)
        b.leader()  # both newcomers connected before the lock
        newcomer.renew(lease, 0)
        with psycopg.connect(own_db) as blocker:
            blocker.execute(
                f"SELECT 1 FROM chronoid_seq_leader WHERE cluster = %s {lock}", (cluster,)
            )
            blocker.execute(f"SELECT 1 FROM {table} WHERE node = 6 {lock}")
            sent = time.monotonic()
            renewed = _in_thread(lambda: (a.renew(term, ttl_ms), time.monotonic())[1])
            kept = _in_thread(lambda: (holder.renew(lease, 0), time.monotonic()))
            time.sleep(0.8)  # both leases expire while the renewals wait
            won = _in_thread(lambda: b.campaign("b", "127.0.0.1:2", 60_000))
            taken = _in_thread(lambda: newcomer.acquire(1023, 60_000, 0))
            time.sleep(0.3)
            blocker.commit()
        outcomes = {"leader": (renewed(), won()), "node": (kept(), taken())}
    finally:
        for closing in (a, b, holder, newcomer):
            closing.close()
    leader_answered, successor = outcomes["leader"]
    (node_renewed, node_answered), claim = outcomes["node"]
    assert isinstance(successor, int) and isinstance(claim, Lease), outcomes
    for answered, renewed_too in ((leader_answered, True), (node_answered, node_renewed)):
        if renewed_too:
            assert isinstance(answered, float) and answered - sent > ttl_ms / 1000, outcomes
