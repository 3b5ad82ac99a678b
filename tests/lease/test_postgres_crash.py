"""A PostgreSQL crash under the lease stores: what they were told is durable must be.

A cluster of the test's own (initdb on a spare port), tuned as many are for speed: the
database's ``synchronous_commit`` is off, so a commit is acknowledged before its WAL reaches
the disk. Then ``pg_ctl stop -m immediate`` (no flush, as a crash of the server) and a
restart: a watermark or node lease the server acknowledged must have survived.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from chronoid.lease.postgres import PostgresCoordinator, PostgresRegistry
from tests.postgres.test_crash import Cluster, private_cluster


@pytest.fixture()
def cluster() -> Iterator[Cluster]:
    with private_cluster("chronoid-pgadv-crash-") as node:
        with psycopg.connect(node.dsn, autocommit=True) as conn:
            conn.execute("ALTER DATABASE postgres SET synchronous_commit = off")
            conn.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
            conn.execute("ALTER SYSTEM SET wal_writer_flush_after = '1GB'")
            conn.execute("SELECT pg_reload_conf()")
        yield node


def test_an_acknowledged_watermark_survives_a_crash_of_an_asynchronous_commit_database(
    cluster: Cluster,
) -> None:
    coordinator = PostgresCoordinator(cluster.dsn, "c")
    term = coordinator.campaign("a", "127.0.0.1:1", 60_000)
    assert term is not None
    coordinator.load(term)
    for high in range(1_000, 21_000, 1_000):
        coordinator.reserve(term, "default", high)  # acknowledged: values below it go out
    coordinator.close()
    cluster.crash()
    cluster.start()
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        stored = conn.execute("SELECT high FROM chronoid_seq_watermark").fetchall()
    assert stored == [(20_000,)], f"acknowledged 20000, the crash left {stored}"


def test_an_acknowledged_node_renewal_survives_a_crash_of_an_asynchronous_commit_database(
    cluster: Cluster,
) -> None:
    registry = PostgresRegistry(cluster.dsn, node_range=(1, 1))
    lease = registry.acquire(1023, 60_000, 0)
    for last_ns in range(1, 21):
        assert registry.renew(lease, last_ns * 10**18)
    registry.close()
    cluster.crash()
    cluster.start()
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT holder, last_ns FROM chronoid_node_leases WHERE node = 1")
        stored = rows.fetchall()
    assert stored == [(lease.token, 20 * 10**18)], f"the crash left {stored}"
