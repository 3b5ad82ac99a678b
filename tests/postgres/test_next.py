"""chronoid_next: what the hot path returns, as a column default, and where it refuses."""

from __future__ import annotations

import psycopg
import pytest

from chronoid.postgres.installer import expected_id
from chronoid.postgres.sqlgen import MODE_B_VARIANTS
from chronoid.variants import get_layout
from tests.postgres.conftest import Installed


@pytest.mark.parametrize("variant", MODE_B_VARIANTS)
def test_next_is_make_of_the_clock_and_the_sequence(
    conn: psycopg.Connection, installed: Installed, variant: str
) -> None:
    """Each ID equals Python's mode_b_id for its sequence value and a tick read around it.

    The target list is evaluated left to right per row, so ``before``/``after`` bracket the
    clock reading inside chronoid_next, and currval is the value its nextval drew.
    """
    layout = get_layout(variant)
    rows = conn.execute(
        "SELECT chronoid_tick(%s, clock_timestamp()), chronoid_next(%s), "
        f"currval('chronoid_seq_{variant}'), chronoid_tick(%s, clock_timestamp()) "
        "FROM generate_series(1, 500)",
        (variant, variant, variant),
    ).fetchall()
    values = [value for _, _, value, _ in rows]
    assert values == sorted(values) and len(set(values)) == len(values)
    for before, made, value, after in rows:
        candidates = {
            expected_id(installed.settings, variant, tick, value)
            for tick in range(before, after + 1)
        }
        assert made in candidates, (variant, made, value)
        assert 0 < made <= layout.max_id


def test_next_inlines_to_one_nextval(conn: psycopg.Connection) -> None:
    plan = conn.execute(
        "EXPLAIN VERBOSE SELECT chronoid_next('chrono64s') FROM generate_series(1, 3)"
    ).fetchall()
    text = "\n".join(row[0] for row in plan)
    assert "chronoid_next(" not in text  # inlined: no per-row SQL function call
    assert text.count("nextval(") == 1 and text.count("currval(") == 1
    # nextval must come before currval in evaluation (left operand first).
    assert text.index("nextval(") < text.index("currval(")


def test_column_defaults_give_unique_decodable_ids(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TEMP TABLE chronoid_events ("
        " id bigint PRIMARY KEY DEFAULT chronoid_next('chrono64s'),"
        " small integer UNIQUE DEFAULT chronoid_next32('chrono32y'),"
        " at timestamptz DEFAULT clock_timestamp())"
    )
    conn.execute(
        "INSERT INTO chronoid_events (at) SELECT clock_timestamp() FROM generate_series(1, 100)"
    )
    rows = conn.execute(
        "SELECT id, (chronoid_decode(id, 'chrono64s')).\"time\", at, small FROM chronoid_events"
    ).fetchall()
    assert len({r[0] for r in rows}) == 100
    for _, tick_start, at, small in rows:
        assert 0 <= (at - tick_start).total_seconds() < 1
        assert 0 < small < 2**31


def test_the_uniqueness_bound_is_exact(conn: psycopg.Connection) -> None:
    """Within one tick, any 2^(N+S) consecutive sequence values give distinct IDs, and value
    v + 2^(N+S) repeats v: the guarantee documented in docs/postgres.md, no more, no less."""
    for variant in ("chrono32w",):  # the smallest suffix served: 2^17 values per tick
        layout = get_layout(variant)
        span = 1 << layout.suffix_bits
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT chronoid_make(%s, '2030-06-01 12:00Z', v) "
                "FROM generate_series(1000, 1000 + %s) v ORDER BY v",
                (variant, span),
            ).fetchall()
        ]
        assert len(set(ids[:span])) == span, variant
        assert ids[span] == ids[0], variant


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("chronoid_next('uchrono64s')", "unsigned variants do not fit"),
        ("chronoid_next('chrono32bs')", "no node or sequence bits"),
        ("chronoid_next('chrono64us')", "fewer than 2.16 IDs per tick"),
        ("chronoid_next32('chrono32h')", "fewer than 2.16 IDs per tick"),
        ("chronoid_next('chrono64x')", "unknown variant"),
        ("chronoid_next32('chrono64s')", "not a 32-bit variant"),
        ("chronoid_make('nope', now(), 1)", "unknown variant"),
    ],
)
def test_refusals_name_the_variant_and_the_allowed_ones(
    conn: psycopg.Connection, call: str, message: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message) as info:
        conn.execute(f"SELECT {call}")
    assert "allowed: " in str(info.value)


def test_next_accepts_a_variant_column(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT v, chronoid_next(v) FROM unnest(ARRAY['chrono64s', 'chrono32y', 'snowflake']) v"
    ).fetchall()
    for variant, made in rows:
        assert get_layout(variant).unpack(made).timestamp > 0


def _setting_after(conn: psycopg.Connection, first: str, call: str) -> str:
    """``synchronous_commit`` at the end of a transaction that ran ``first`` then ``call``."""
    with conn.transaction():
        conn.execute(first)
        conn.execute(call)
        row = conn.execute("SHOW synchronous_commit").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("off", ["off", "false", "no", "0"])
@pytest.mark.parametrize(
    "call", ["SELECT chronoid_next('chrono64s')", "SELECT chronoid_next32('chrono32y')"]
)
def test_next_makes_its_transaction_commit_synchronously(
    conn: psycopg.Connection, off: str, call: str
) -> None:
    # Still "on" after the call returned, i.e. at COMMIT: the sequence's WAL is flushed.
    assert _setting_after(conn, f"SET LOCAL synchronous_commit = {off}", call) == "on"
    # Local to that transaction: the session's own setting comes back afterwards.
    conn.execute("SET synchronous_commit = off")
    try:
        conn.execute("SELECT chronoid_next('chrono64s')")  # its own autocommitted transaction
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
    finally:
        conn.execute("RESET synchronous_commit")


@pytest.mark.parametrize("stronger", ["local", "remote_write", "on", "remote_apply"])
def test_next_never_lowers_a_setting_that_already_flushes(
    conn: psycopg.Connection, stronger: str
) -> None:
    first = f"SET LOCAL synchronous_commit = {stronger}"
    assert _setting_after(conn, first, "SELECT chronoid_next('chrono64s')") == stronger


def test_a_function_set_clause_would_not_hold_until_commit(conn: psycopg.Connection) -> None:
    # Why chronoid_next calls set_config(..., true) rather than carrying a SET clause.
    conn.execute(
        "CREATE FUNCTION pg_temp.with_set_clause() RETURNS text LANGUAGE sql "
        "SET synchronous_commit = on AS $$ SELECT current_setting('synchronous_commit') $$"
    )
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = off")
        assert conn.execute("SELECT pg_temp.with_set_clause()").fetchone() == ("on",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)


def test_next_stays_parallel_unsafe_volatile_and_without_set_clauses(
    conn: psycopg.Connection,
) -> None:
    # set_config is an error in a parallel worker, and a SET clause would block inlining.
    rows = conn.execute(
        "SELECT proname, proparallel, provolatile, proconfig FROM pg_proc "
        "WHERE oid IN ('chronoid_next(text)'::regprocedure, 'chronoid_next32(text)'::regprocedure)"
    ).fetchall()
    assert sorted(rows) == [("chronoid_next", "u", "v", None), ("chronoid_next32", "u", "v", None)]
