"""SQL/Python bit parity (Scenario 18), run against a PostgreSQL server when one is given."""

from __future__ import annotations

import os
import random

from chronoid.mix import BASKET_SIZE, compose
from chronoid.sim.common import (
    fmt_int,
)
from chronoid.sim.model import Context, ScenarioResult, Table, Verdict
from chronoid.variants import get_layout

__all__ = ["sql_parity"]


# -- 12f. SQL / Python bit parity (Scenario 18) ----------------------------------------------


_PARITY_UNTIL_NS = 4_102_444_800 * 10**9  # 2100-01-01T00:00:00Z


def sql_parity(ctx: Context) -> ScenarioResult:
    """The PostgreSQL functions against the Python definitions, on random inputs."""
    title = "SQL/Python bit parity (Scenario 18)"
    claim = (
        '§8.1: "Achieved **100% bit-parity** between the formal SQL specification and the '
        'Rust implementation (Scenario 18)."'
    )
    try:
        import psycopg

        from chronoid.postgres.installer import expected_id, install
        from chronoid.postgres.sqlgen import MODE_B_VARIANTS, SQL_VARIANTS
    except ImportError as exc:  # pragma: no cover - psycopg is in the dev extra
        return _sql_not_run(title, claim, f"psycopg is not installed ({exc})")
    try:
        probe = psycopg.connect(ctx.pg_dsn, connect_timeout=3)
    except psycopg.Error as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _sql_not_run(title, claim, f"no PostgreSQL at {ctx.pg_dsn} ({why})")
    probe.close()
    rnd = random.Random(ctx.seed + 18)
    per_variant = ctx.scaled(2_000, 20_000)
    schema = f"chronoid_simparity_{os.getpid()}_{rnd.getrandbits(32):08x}"
    rows: list[list[str]] = []
    checked = mismatched = 0
    try:
        settings = install(ctx.pg_dsn, schema=schema)
        with psycopg.connect(
            ctx.pg_dsn, autocommit=True, options=f"-c search_path={schema}"
        ) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            for variant in SQL_VARIANTS:
                ctx.progress(f"compose {variant}")
                layout = get_layout(variant)
                inputs = [
                    (
                        rnd.randrange(layout.max_timestamp + 1),
                        rnd.randrange(layout.max_node + 1),
                        rnd.randrange(layout.max_sequence + 1),
                        rnd.randrange(1 << layout.suffix_bits),
                        rnd.randrange(BASKET_SIZE),
                        rnd.random() < 0.8,
                    )
                    for _ in range(per_variant)
                ]
                columns = [list(c) for c in zip(*inputs, strict=True)]
                got = conn.execute(
                    "SELECT chronoid_compose(%s, t, n, s, salt, idx, mixed) FROM unnest("
                    "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::int[], "
                    "%s::boolean[]) WITH ORDINALITY AS u(t, n, s, salt, idx, mixed, ord) "
                    "ORDER BY ord",
                    (variant, *columns),
                ).fetchall()
                want = [
                    compose(layout, t, nd, sq, salt, idx, mix_node=m)
                    for t, nd, sq, salt, idx, m in inputs
                ]
                bad = sum(1 for (g,), w in zip(got, want, strict=True) if g != w)
                made_bad = 0
                if variant in MODE_B_VARIANTS:
                    # Tick starts before 2100: PostgreSQL's clock arithmetic is float8 and
                    # exact there for every unit (tests/postgres/test_parity.py).
                    until_ns = layout.tick_start_ns(layout.max_timestamp)
                    last = layout.tick_of_ns(min(until_ns, _PARITY_UNTIL_NS))
                    ticks = [rnd.randrange(last + 1) for _ in range(per_variant)]
                    values = [rnd.randrange(1, 1 << 62) for _ in range(per_variant)]
                    instants = [layout.time_of(t) for t in ticks]
                    made = conn.execute(
                        "SELECT chronoid_make(%s, at, v) FROM unnest("
                        "%s::timestamptz[], %s::bigint[]) WITH ORDINALITY AS u(at, v, ord) "
                        "ORDER BY ord",
                        (variant, instants, values),
                    ).fetchall()
                    made_bad = sum(
                        1
                        for (g,), t, v in zip(made, ticks, values, strict=True)
                        if g != expected_id(settings, variant, t, v)
                    )
                checked += per_variant * (2 if variant in MODE_B_VARIANTS else 1)
                mismatched += bad + made_bad
                rows.append(
                    [
                        f"`{variant}`",
                        f"{per_variant - bad:,}/{per_variant:,}",
                        f"{per_variant - made_bad:,}/{per_variant:,}"
                        if variant in MODE_B_VARIANTS
                        else "—",
                    ]
                )
    except psycopg.Error as exc:
        return _sql_not_run(title, claim, f"PostgreSQL refused the check ({exc})")
    finally:
        try:
            with psycopg.connect(ctx.pg_dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except psycopg.Error:
            pass
    server = version[0] if version else "?"
    return ScenarioResult(
        name="sql-parity",
        title=title,
        claim=claim,
        method=f"chronoid's SQL functions installed into a throw-away schema of PostgreSQL "
        f"{server} at `{ctx.pg_dsn}`; for each of the {len(SQL_VARIANTS)} SQL variants "
        f"{fmt_int(per_variant)} random inputs through `chronoid_compose` against "
        "`chronoid.mix.compose`, and for the Mode B variants as many (tick start before 2100, "
        "sequence value) pairs through `chronoid_make` (the body of `chronoid_next`) against "
        "the Python Mode B mapping. The test suite checks the same at every commit "
        "(`tests/postgres/test_parity.py`).",
        verdict=Verdict.HOLDS if mismatched == 0 else Verdict.DOES_NOT_HOLD,
        reason=f"{checked - mismatched:,} of {checked:,} SQL results are bit-identical to "
        "Python." + ("" if mismatched == 0 else f" {mismatched:,} differ."),
        headline=f"{checked - mismatched:,}/{checked:,} bit-identical (PostgreSQL {server})",
        tables=[Table(["variant", "`chronoid_compose`", "`chronoid_make` (Mode B)"], rows)],
    )


def _sql_not_run(title: str, claim: str, why: str) -> ScenarioResult:
    """The parity check needs a database; without one the report says so."""
    return ScenarioResult(
        name="sql-parity",
        title=title,
        claim=claim,
        method="needs a PostgreSQL server (`chronoid sim --pg-dsn DSN`)",
        verdict=Verdict.NOT_RUN,
        reason=why,
        headline=f"not run: {why}",
    )
