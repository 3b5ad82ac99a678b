"""Bit parity between the SQL functions and Python (spec 002 Scenario 18).

Each check sends 10,000 random inputs per variant in one query (arrays through unnest) and
compares every row with the Python definition: compose() for chronoid_compose, mode_b_id()
(through expected_id) for chronoid_make, tick_of_ns() for chronoid_tick, unpack() for
chronoid_decode.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from chronoid.layout import Layout
from chronoid.mix import compose
from chronoid.postgres.installer import expected_id
from chronoid.postgres.sqlgen import MODE_B_VARIANTS, SQL_VARIANTS
from chronoid.variants import get_layout
from tests.postgres.conftest import Installed

N = 10_000
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# date_part('epoch') is a float8: exact ticks for whole-second units until 2^53 µs since 1970
# (2255), for sub-second units until 2^32 s (2106); calendar units always. See sqlgen._tick_expr.
_EXACT_UNTIL_US = {True: 1 << 53, False: (1 << 32) * 1_000_000}


def _instant(us: int) -> datetime:
    return _UNIX_EPOCH + timedelta(microseconds=us)


def _us_of(moment: datetime) -> int:
    delta = moment - _UNIX_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _exact_until_us(layout: Layout) -> int:
    if layout.unit.ns is None:
        return 1 << 62
    return _EXACT_UNTIL_US[layout.unit.ns % 1_000_000_000 == 0]


def _random_instants(layout: Layout, rng: random.Random, count: int) -> list[int]:
    """µs since 1970: random ones, plus tick starts and the µs just before them."""
    first = layout.epoch_ns // 1_000
    last = min(layout.expiry.timestamp() * 1_000_000, _exact_until_us(layout))
    last = min(int(last), _us_of(datetime(9999, 1, 1, tzinfo=UTC))) - 1
    instants = [rng.randrange(first, last) for _ in range(count // 2)]
    last_tick = layout.tick_of_ns(last * 1_000)
    while len(instants) < count:
        start = layout.tick_start_ns(rng.randrange(1, last_tick + 1)) // 1_000
        instants += [start, start - 1]
    return instants[:count]


@pytest.mark.parametrize("variant", SQL_VARIANTS)
def test_compose_matches_python(conn: psycopg.Connection, variant: str) -> None:
    layout = get_layout(variant)
    rng = random.Random(f"compose-{variant}")
    rows = []
    for i in range(N):
        edge = i < 4  # the extremes of every field
        rows.append(
            (
                layout.max_timestamp * (i % 2) if edge else rng.randrange(layout.max_timestamp + 1),
                layout.max_node * (i // 2 % 2) if edge else rng.randrange(layout.max_node + 1),
                layout.max_sequence * (i % 2) if edge else rng.randrange(layout.max_sequence + 1),
                rng.randrange(1 << layout.suffix_bits),
                rng.randrange(64),
                i % 7 != 0,
            )
        )
    columns = [list(c) for c in zip(*rows, strict=True)]
    got = conn.execute(
        "SELECT chronoid_compose(%s, t, n, s, salt, idx, mixed) FROM unnest("
        "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::int[], %s::boolean[]) "
        "WITH ORDINALITY AS u(t, n, s, salt, idx, mixed, ord) ORDER BY ord",
        (variant, *columns),
    ).fetchall()
    expected = [compose(layout, t, n, s, salt, idx, mix_node=m) for t, n, s, salt, idx, m in rows]
    assert [r[0] for r in got] == expected


@pytest.mark.parametrize("variant", MODE_B_VARIANTS)
def test_make_and_tick_match_python(
    conn: psycopg.Connection, installed: Installed, variant: str
) -> None:
    """chronoid_make is chronoid_next's code with the clock and sequence as arguments."""
    layout = get_layout(variant)
    rng = random.Random(f"make-{variant}")
    instants = _random_instants(layout, rng, N)
    values = [rng.randrange(1, 1 << 62) for _ in range(N - 2)] + [1, (1 << 63) - 1]
    got = conn.execute(
        "SELECT chronoid_tick(%s, at), chronoid_make(%s, at, v) FROM unnest("
        "%s::timestamptz[], %s::bigint[]) WITH ORDINALITY AS u(at, v, ord) ORDER BY ord",
        (variant, variant, [_instant(us) for us in instants], values),
    ).fetchall()
    for (tick, made), us, value in zip(got, instants, values, strict=True):
        want_tick = layout.tick_of_ns(us * 1_000)
        assert tick == want_tick, (variant, _instant(us))
        assert made == expected_id(installed.settings, variant, want_tick, value), value


@pytest.mark.parametrize("variant", SQL_VARIANTS)
def test_decode_matches_unpack(conn: psycopg.Connection, variant: str) -> None:
    layout = get_layout(variant)
    rng = random.Random(f"decode-{variant}")
    ids = [0, layout.max_id] + [rng.randrange(layout.max_id + 1) for _ in range(1_998)]
    got = conn.execute(
        "SELECT (chronoid_decode(i, %s)).* FROM unnest(%s::bigint[]) "
        "WITH ORDINALITY AS u(i, ord) ORDER BY ord",
        (variant, ids),
    ).fetchall()
    for (name, value, moment, tick, node, sequence), want in zip(got, ids, strict=True):
        parts = layout.unpack(want)
        assert (name, value, tick, node, sequence) == (
            variant,
            want,
            parts.timestamp,
            parts.node,
            parts.sequence,
        )
        if parts.time.year < 9999:
            assert moment == parts.time, want


def test_sql_rejects_what_python_rejects(conn: psycopg.Connection) -> None:
    layout = get_layout("chrono64s")
    checks = [
        ("chronoid_compose('chrono64s', -1, 0, 0, 0, 0)", "timestamp -1 outside"),
        (f"chronoid_compose('chrono64s', 0, {layout.max_node + 1}, 0, 0, 0)", "node"),
        (f"chronoid_compose('chrono64s', 0, 0, {layout.max_sequence + 1}, 0, 0)", "sequence"),
        ("chronoid_compose('nope', 0, 0, 0, 0, 0)", "unknown variant 'nope'"),
        ("chronoid_decode(-1, 'chrono64s')", "outside"),
        (f"chronoid_decode({1 << 31}, 'chrono32y')", "outside"),
        ("chronoid_mix(1, 64, 0, 0)", "field width must be 0..63 bits, got 64"),
        ("chronoid_tick('chrono64s', '2019-12-31 23:59:59Z')", "clock_outside_epoch"),
        ("chronoid_tick('snowflake', '2300-01-01Z')", "clock_outside_epoch"),
    ]
    for expr, message in checks:
        with pytest.raises(psycopg.Error, match=message):
            conn.execute(f"SELECT {expr}")
