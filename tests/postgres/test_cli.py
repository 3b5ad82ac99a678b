"""One subprocess test per ``chronoid pg`` entry point, against the real server."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from chronoid.postgres.installer import sql_text, uninstall_sql_text
from tests.postgres.conftest import drop_schema, unique_schema


def _chronoid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chronoid", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pg_sql_prints_the_install_script() -> None:
    done = _chronoid("pg", "sql")
    assert done.returncode == 0, done.stderr
    assert done.stdout == sql_text()
    assert "CREATE OR REPLACE FUNCTION @schema@.chronoid_next(variant text)" in done.stdout
    removal = _chronoid("pg", "sql", "--uninstall")
    assert removal.returncode == 0 and removal.stdout == uninstall_sql_text()


def test_pg_install_then_uninstall(pg_dsn: str) -> None:
    schema = unique_schema("chronoid_cli")
    try:
        done = _chronoid("pg", "install", "--dsn", pg_dsn, "--schema", schema)
        assert done.returncode == 0, done.stderr
        assert f"installed in schema {schema}" in done.stdout
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            row = conn.execute(f"SELECT {schema}.chronoid_next('chrono64s')").fetchone()
            assert row is not None and row[0] > 0

        gone = _chronoid("pg", "uninstall", "--dsn", pg_dsn, "--schema", schema)
        assert gone.returncode == 0, gone.stderr
        assert f"removed from schema {schema}" in gone.stdout
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_proc WHERE pronamespace = %s::regnamespace", (schema,)
            ).fetchone()
            assert row == (0,)
    finally:
        drop_schema(pg_dsn, schema)


def test_pg_install_reports_a_bad_dsn_in_one_line() -> None:
    done = _chronoid("pg", "install", "--dsn", "postgresql://postgres@127.0.0.1:1/none")
    assert done.returncode == 1
    assert done.stderr.startswith("chronoid: error: cannot connect to PostgreSQL")
    assert "Traceback" not in done.stderr
