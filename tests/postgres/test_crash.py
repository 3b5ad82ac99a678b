"""Crash safety: a PostgreSQL sequence is WAL-logged, so IDs never repeat across a crash.

The test starts its own cluster on a spare port (initdb as the ``postgres`` OS user), makes
IDs, kills the server with ``pg_ctl stop -m immediate`` (no shutdown checkpoint: recovery
replays the WAL, like after a power cut of the server process) and makes more IDs. It uses
month- and year-precision variants, so the IDs before and after the crash share one tick
and only the sequence keeps them apart: a sequence that restarted would repeat them.

With ``synchronous_commit = off`` a commit returns before its WAL is flushed, and the
sequence's advance is lost with it: ``chronoid_next`` turns the setting on for its own
transaction. What that still leaves open (a value drawn from another transaction's record
that never got flushed) is the strict xfail at the end, so the gap is seen, not forgotten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chronoid.postgres.installer import install
from tests.support import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
VARIANTS = ("chrono64mo", "chrono32y", "chrono64s")


def _as_postgres(*args: str, timeout: float = 60) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        check=True,
        capture_output=True,
        timeout=timeout,
    )


class Cluster:
    """A throw-away PostgreSQL 15 cluster owned by the postgres OS user."""

    def __init__(self, root: Path, port: int) -> None:
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = port
        self.dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.socket_dir = root

    def init(self) -> None:
        _as_postgres(
            str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir} "
            "-c shared_buffers=16MB -c max_connections=20"
        )
        _as_postgres(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def crash(self) -> None:
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def stop(self) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "-D", str(self.data),
             "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )  # fmt: skip


@contextlib.contextmanager
def private_cluster(prefix: str) -> Iterator[Cluster]:
    """A PostgreSQL 15 cluster of the test's own on a spare port, started (stopped and
    removed after): a test that crashes its server must not crash the shared one."""
    if not (BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 binaries not found in {BIN}", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    node = Cluster(root, free_port())
    try:
        node.init()
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def cluster() -> Iterator[Cluster]:
    with private_cluster("chronoid-crash-") as node:
        yield node


def _make_ids(dsn: str, per_variant: int) -> dict[str, tuple[list[int], int, int]]:
    """Per variant: IDs (each statement autocommitted), first and last sequence value."""
    made: dict[str, tuple[list[int], int, int]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS chronoid_kept (id bigint PRIMARY KEY)")
        for variant in VARIANTS:
            row = conn.execute(
                f"SELECT chronoid_next(%s), currval('chronoid_seq_{variant}')", (variant,)
            ).fetchone()
            assert row is not None
            ids, first = [row[0]], row[1]
            for _ in range(4):
                rows = conn.execute(
                    "SELECT chronoid_next(%s) FROM generate_series(1, %s)",
                    (variant, per_variant // 4),
                ).fetchall()
                ids += [r[0] for r in rows]
            # A row written to a table too: its commit is what a client relies on.
            conn.execute("INSERT INTO chronoid_kept SELECT chronoid_next(%s)", (variant,))
            row = conn.execute(f"SELECT currval('chronoid_seq_{variant}')").fetchone()
            assert row is not None
            made[variant] = (ids, first, row[0])
    return made


def _synchronous_commit_off(dsn: str) -> None:
    """Make ``off`` the server's default, as a database tuned for speed has it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")
    with psycopg.connect(dsn, autocommit=True) as conn:  # a new session sees the reload
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)


def _one_by_one(dsn: str, count: int) -> list[int]:
    """IDs from ``count`` single-row autocommitted statements, the way an application asks."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = [conn.execute("SELECT chronoid_next('chrono64mo')").fetchone() for _ in range(count)]
    return [row[0] for row in rows if row is not None]


@pytest.mark.parametrize("synchronous_commit", ["on", "off"])
def test_ids_after_an_immediate_restart_never_repeat(
    cluster: Cluster, synchronous_commit: str
) -> None:
    install(cluster.dsn)
    if synchronous_commit == "off":
        _synchronous_commit_off(cluster.dsn)
    before = _make_ids(cluster.dsn, 20_000)
    cluster.crash()
    cluster.start()
    after = _make_ids(cluster.dsn, 20_000)
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        kept = conn.execute("SELECT count(*) FROM chronoid_kept").fetchone()
    assert kept == (2 * len(VARIANTS),)  # both runs' committed rows survived, no PK clash
    for variant in VARIANTS:
        old_ids, _, old_last = before[variant]
        new_ids, new_first, _ = after[variant]
        old, new = set(old_ids), set(new_ids)
        assert len(old) == len(old_ids) and len(new) == len(new_ids)
        assert not old & new, f"{variant}: {len(old & new)} IDs repeated after the crash"
        # The sequence resumed above every value used before the crash (it may skip some).
        assert new_first > old_last, (variant, old_last, new_first)


def test_single_row_ids_never_repeat_after_a_crash_with_synchronous_commit_off(
    cluster: Cluster,
) -> None:
    # The adversarial finding: before the fix, 152 of 2,000 such IDs came back after a crash.
    install(cluster.dsn)
    _synchronous_commit_off(cluster.dsn)
    before = _one_by_one(cluster.dsn, 2_000)
    cluster.crash()
    cluster.start()
    after = _one_by_one(cluster.dsn, 2_000)
    repeated = set(before) & set(after)
    assert len(before) == len(after) == 2_000
    assert not repeated, f"{len(repeated)} of {len(before)} IDs repeated after the crash"


@pytest.mark.xfail(
    strict=True,
    reason="not covered: a cached sequence value whose WAL record belongs to another "
    "transaction that has not committed (or aborted) is lost with that record; the commit "
    "of a transaction that wrote no WAL of its own waits for nothing",
)
def test_ids_drawn_while_another_transaction_holds_the_sequence_record(cluster: Cluster) -> None:
    install(cluster.dsn)
    holder = psycopg.connect(cluster.dsn, autocommit=True)
    try:
        holder.execute("CHECKPOINT")  # the next nextval WAL-logs: the holder's transaction
        holder.execute("BEGIN")
        holder.execute("SELECT chronoid_next('chrono64mo')")
        before = _one_by_one(cluster.dsn, 10)  # from the 32 values the holder's record logged
        cluster.crash()
    finally:
        with contextlib.suppress(psycopg.Error):
            holder.close()
    cluster.start()
    after = _one_by_one(cluster.dsn, 50)
    assert not set(before) & set(after), "IDs committed before the crash were issued again"
