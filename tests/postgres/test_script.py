"""The SQL script: generated from Python, idempotent, versioned, removable."""

from __future__ import annotations

import psycopg
import pytest

from chronoid.errors import InvalidArgument, SqlInstallError, UnknownVariant
from chronoid.mix import multiplier, weyl_step_constant
from chronoid.postgres.installer import (
    expected_id,
    install,
    installed_settings,
    sql_text,
    uninstall,
    uninstall_sql_text,
)
from chronoid.postgres.sqlgen import MODE_B_VARIANTS, SCRIPT_VERSION, SQL_VARIANTS, build_script
from chronoid.variants import VARIANTS
from tests.postgres.conftest import Installed, drop_schema, unique_schema


def test_committed_script_is_what_the_generator_makes() -> None:
    # If this fails, run: python -m chronoid.postgres.sqlgen > src/chronoid/postgres/chronoid.sql
    assert sql_text() == build_script()


def test_script_has_no_transaction_control_and_names_its_version() -> None:
    text = sql_text()
    assert f"chronoid {SCRIPT_VERSION}:" in text.splitlines()[0]
    lines = [line.strip().upper() for line in text.splitlines()]
    assert "BEGIN;" not in lines and "COMMIT;" not in lines  # migration tools wrap it


def test_variant_table_matches_python(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT name, width, signed, timestamp_bits, node_bits, sequence_bits, epoch_us, "
        "unit_us, unit_months, mode_b FROM chronoid_variants"
    ).fetchall()
    assert {r[0] for r in rows} == set(SQL_VARIANTS)
    for name, width, signed, t, n, s, epoch_us, unit_us, months, mode_b in rows:
        lay = VARIANTS[name]
        assert (width, signed, t, n, s) == (
            lay.width,
            lay.signed,
            lay.timestamp_bits,
            lay.node_bits,
            lay.sequence_bits,
        )
        assert epoch_us * 1_000 == lay.epoch_ns
        assert unit_us == (None if lay.unit.ns is None else lay.unit.ns // 1_000)
        assert months == lay.unit.months
        assert mode_b == (name in MODE_B_VARIANTS)
    assert "uchrono64s" not in SQL_VARIANTS and "chrono32bs" not in MODE_B_VARIANTS


def test_multiplier_and_weyl_constants_match_python(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT b, i, chronoid_multiplier(b, i), chronoid_weyl_step_constant(b) "
        "FROM generate_series(0, 63) b, generate_series(0, 63) i"
    ).fetchall()
    assert len(rows) == 64 * 64
    for bits, index, mult, step in rows:
        expected = multiplier(bits, index)
        # bits = 64 never occurs in SQL; at 63 bits the value still fits a bigint.
        assert mult == expected, (bits, index)
        assert step == weyl_step_constant(bits), bits


def test_install_twice_keeps_settings_sequences_and_functions(installed: Installed) -> None:
    with installed.connect() as conn:
        conn.execute("SELECT chronoid_next('chrono64s') FROM generate_series(1, 10)")
        before_seq = conn.execute("SELECT last_value FROM chronoid_seq_chrono64s").fetchone()
        before_src = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE oid = 'chronoid_next(text)'::regprocedure"
        ).fetchone()
    again = install(installed.dsn, schema=installed.schema)
    assert again == installed.settings
    with installed.connect() as conn:
        after_seq = conn.execute("SELECT last_value FROM chronoid_seq_chrono64s").fetchone()
        # The sequence goes on (the install's self-check draws one value); it never restarts.
        assert before_seq is not None and after_seq == (before_seq[0] + 1,)
        after_src = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE oid = 'chronoid_next(text)'::regprocedure"
        ).fetchone()
        assert after_src == before_src
        assert installed_settings(conn) == installed.settings
        assert conn.execute("SELECT chronoid_version()").fetchone() == (SCRIPT_VERSION,)


def test_reinstall_upgrades_a_version_1_install_to_the_durable_functions(pg_dsn: str) -> None:
    schema = unique_schema()
    try:
        settings = install(pg_dsn, schema=schema)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            # What version 1 left behind: the same settings, a chronoid_next without the guard.
            conn.execute(f"UPDATE {schema}.chronoid_config SET version = 1")
            conn.execute(
                f"CREATE OR REPLACE FUNCTION {schema}.chronoid_next(variant text) "
                "RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$ SELECT 1::bigint $$"
            )
        assert install(pg_dsn, schema=schema) == settings
        with psycopg.connect(pg_dsn, autocommit=True, options=f"-c search_path={schema}") as conn:
            assert conn.execute("SELECT version FROM chronoid_config").fetchone() == (
                SCRIPT_VERSION,
            )
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = off")
                row = conn.execute("SELECT chronoid_next('chrono64s')").fetchone()
                assert row is not None and row[0] > 1
                assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    finally:
        drop_schema(pg_dsn, schema)


def test_settings_are_random_per_install_and_in_range(pg_dsn: str, installed: Installed) -> None:
    settings = installed.settings
    assert 0 <= settings.multiplier_index <= 63
    assert 0 <= settings.node_seed < 1 << 63 and 0 <= settings.salt_seed < 1 << 63
    other = unique_schema()
    try:
        assert install(pg_dsn, schema=other).salt_seed != settings.salt_seed
    finally:
        drop_schema(pg_dsn, other)


def test_refuses_to_downgrade_a_newer_install(pg_dsn: str) -> None:
    schema = unique_schema()
    try:
        install(pg_dsn, schema=schema)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"UPDATE {schema}.chronoid_config SET version = 99")
        with pytest.raises(SqlInstallError, match="version 99 is installed"):
            install(pg_dsn, schema=schema)
    finally:
        drop_schema(pg_dsn, schema)


def test_uninstall_removes_every_object_and_respects_dependents(pg_dsn: str) -> None:
    schema = unique_schema()
    try:
        install(pg_dsn, schema=schema)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE {schema}.chronoid_dep "
                f"(id bigint PRIMARY KEY DEFAULT {schema}.chronoid_next('chrono64s'))"
            )
        with pytest.raises(SqlInstallError, match="depend"):
            uninstall(pg_dsn, schema=schema)
        uninstall(pg_dsn, schema=schema, cascade=True)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            left = conn.execute(
                "SELECT count(*) FROM pg_class c WHERE c.relnamespace = %s::regnamespace "
                "AND c.relname LIKE 'chronoid%%' AND c.relname <> 'chronoid_dep' "
                "AND c.relname NOT LIKE 'chronoid_dep%%'",
                (schema,),
            ).fetchone()
            funcs = conn.execute(
                "SELECT count(*) FROM pg_proc WHERE pronamespace = %s::regnamespace", (schema,)
            ).fetchone()
            types = conn.execute(
                "SELECT count(*) FROM pg_type WHERE typnamespace = %s::regnamespace "
                "AND typname LIKE 'chronoid%%' AND typname NOT LIKE '%%chronoid_dep%%'",
                (schema,),
            ).fetchone()
        assert (left, funcs, types) == ((0,), (0,), (0,))
        assert "DROP FUNCTION IF EXISTS chronoid_next(text);" in uninstall_sql_text()
    finally:
        drop_schema(pg_dsn, schema)


def test_bad_arguments_raise_named_errors(pg_dsn: str) -> None:
    with pytest.raises(InvalidArgument, match="schema must be a plain SQL identifier"):
        install(pg_dsn, schema='x"; DROP TABLE y; --')
    with pytest.raises(InvalidArgument, match="dsn"):
        install("")
    with pytest.raises(SqlInstallError, match="cannot connect"):
        install("postgresql://postgres@127.0.0.1:1/none")


def test_a_schema_name_with_a_trailing_newline_is_refused(pg_dsn: str) -> None:
    # "chronoid\n" (read from a file) would be a schema of its own: two installs, two
    # node seeds, next to each other.
    schema = unique_schema() + "\n"
    try:
        with pytest.raises(InvalidArgument, match="schema must be a plain SQL identifier"):
            install(pg_dsn, schema=schema)
    finally:
        drop_schema(pg_dsn, schema)


@pytest.mark.parametrize(
    "dsn", ["postgresql://u:Zq9pwSecret%zz@127.0.0.1:5432/x", "postgresql://u:p@Zq9pwSecret@h:1/x"]
)
def test_a_malformed_dsn_names_no_password_in_one_line(dsn: str) -> None:
    with pytest.raises(SqlInstallError) as failed:
        install(dsn)
    message = str(failed.value)
    assert "Zq9pwSecret" not in message and "\n" not in message, message


def test_python_helpers_validate(installed: Installed) -> None:
    with pytest.raises(UnknownVariant, match="uchrono64s"):
        expected_id(installed.settings, "uchrono64s", 0, 1)
    with installed.connect() as conn, pytest.raises(SqlInstallError, match="is chronoid installed"):
        installed_settings(conn, schema="chronoid_nowhere")
    with installed.connect() as conn, pytest.raises(InvalidArgument, match="schema"):
        installed_settings(conn, schema="1bad")
