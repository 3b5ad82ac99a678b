"""Crash safety: a PostgreSQL sequence is WAL-logged, so IDs never repeat across a crash.

The test starts its own cluster on a spare port (initdb as the ``postgres`` OS user), makes
IDs, kills the server with ``pg_ctl stop -m immediate`` (no shutdown checkpoint: recovery
replays the WAL, like after a power cut of the server process) and makes more IDs. It uses
month- and year-precision variants, so the IDs before and after the crash share one tick
and only the sequence keeps them apart: a sequence that restarted would repeat them.
"""

from __future__ import annotations

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


@pytest.fixture()
def cluster() -> Iterator[Cluster]:
    if not (BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 binaries not found in {BIN}", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="chronoid-crash-"))
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


def test_ids_after_an_immediate_restart_never_repeat(cluster: Cluster) -> None:
    install(cluster.dsn)
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
