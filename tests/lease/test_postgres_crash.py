"""A PostgreSQL crash under the lease stores: what they were told is durable must be.

A cluster of the test's own (initdb on a spare port), tuned as many are for speed: the
database's ``synchronous_commit`` is off, so a commit is acknowledged before its WAL reaches
the disk. Then ``pg_ctl stop -m immediate`` (no flush, as a crash of the server) and a
restart: a watermark or node lease the server acknowledged must have survived.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chronoid.lease.postgres import PostgresCoordinator, PostgresRegistry
from tests.postgres.test_crash import BIN, Cluster
from tests.support import free_port


@pytest.fixture()
def cluster() -> Iterator[Cluster]:
    if not (BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 binaries not found in {BIN}", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="chronoid-pgadv-crash-"))
    shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    node = Cluster(root, free_port())
    try:
        node.init()
        node.start()
        with psycopg.connect(node.dsn, autocommit=True) as conn:
            conn.execute("ALTER DATABASE postgres SET synchronous_commit = off")
            conn.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
            conn.execute("ALTER SYSTEM SET wal_writer_flush_after = '1GB'")
            conn.execute("SELECT pg_reload_conf()")
        yield node
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


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
