"""Storage and comparison-cost scenarios: 64- vs 128-bit keys, SQLite and PostgreSQL B-trees.

These measure timings and sizes on the machine that runs them, so the report gives ratios
and set-up (row counts, batch size, page size) next to every number (erratum 10: storage
figures depend on the set-up).
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chronoid.clock import ManualClock
from chronoid.generator import Generator
from chronoid.sim.common import (
    fmt_int,
    fmt_ratio,
    fmt_timing,
    mode_b_np,
    timing_spread,
)
from chronoid.sim.model import Context, Plot, ScenarioResult, Series, Table, Verdict
from chronoid.variants import VARIANTS

__all__ = ["compare_cost", "fk_density", "postgres_btree", "sqlite_btree"]

_START_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
_RATE = 10_000  # simulated IDs per second for the time-ordered keys
_BATCH = 10_000  # rows per insert batch (one transaction each)

Key = int | bytes
MODE_B = "chrono64s Mode B (mixed, counter never restarts)"
MODE_B_RESTART = "chrono64s Mode B (mixed, sequence restarts each second)"
PLAIN = "chrono64s plain (increasing)"
_RUNS = 5  # ingestion runs per key type: timings as median (min-max)


@dataclass(frozen=True, slots=True)
class KeyKind:
    """One primary-key type under test: a label, its byte width and its values in order."""

    label: str
    width: int  # bytes of the key itself
    is_uuid: bool
    values: Sequence[Key]


def _uuid7(rnd: random.Random, ms: int) -> bytes:
    value = (
        (ms << 80) | (0x7 << 76) | (rnd.getrandbits(12) << 64) | (0b10 << 62) | rnd.getrandbits(62)
    )
    return value.to_bytes(16, "big")


def _uuid4(rnd: random.Random) -> bytes:
    value = rnd.getrandbits(128)
    value = (value & ~(0xF << 76)) | (0x4 << 76)
    value = (value & ~(0b11 << 62)) | (0b10 << 62)
    return value.to_bytes(16, "big")


def make_keys(seed: int, rows: int) -> list[KeyKind]:
    """The key types compared, each ``rows`` values in insertion order (deterministic).

    Time-ordered keys are made at ``_RATE`` IDs per second from 2026-01-01.
    """
    rnd = random.Random(seed)
    layout = VARIANTS["chrono64s"]
    # Mode B: the counter never resets, the tick follows the simulated clock.
    counters = np.arange(rows, dtype=np.uint64)
    ticks = np.uint64(layout.tick_of_ns(_START_NS)) + counters // np.uint64(_RATE)
    base, salt = rnd.randrange(layout.max_node + 1), rnd.getrandbits(30)
    mode_b = mode_b_np(layout, ticks, counters, base, salt, 17).tolist()
    # The spec's Mode B restarts its sequence every second (chronoid's counter never does).
    restarting = mode_b_np(layout, ticks, counters % np.uint64(_RATE), base, salt, 17).tolist()
    clock = ManualClock(_START_NS)
    gen = Generator(layout, rnd.randrange(layout.max_node + 1), clock=clock)
    plain = []
    step = 1_000_000_000 // _RATE
    for _ in range(rows):
        plain.append(gen.next_id())
        clock.advance_ns(step)
    start_ms = _START_NS // 1_000_000
    v7 = [_uuid7(rnd, start_ms + i * 1_000 // _RATE) for i in range(rows)]
    v4 = [_uuid4(rnd) for _ in range(rows)]
    return [
        KeyKind(MODE_B, 8, False, mode_b),
        KeyKind(PLAIN, 8, False, plain),
        KeyKind("UUIDv7", 16, True, v7),
        KeyKind("UUIDv4", 16, True, v4),
        KeyKind(MODE_B_RESTART, 8, False, restarting),
    ]


# -- 64- vs 128-bit comparison cost ----------------------------------------------------------


def _median_time_s(fn: Callable[[], object], reps: int) -> float:
    times_s = []
    for _ in range(reps):
        t0_s = time.perf_counter()
        fn()
        times_s.append(time.perf_counter() - t0_s)
    return statistics.median(times_s)


def compare_cost(ctx: Context) -> ScenarioResult:
    """Sorting, hashing and looking up 64-bit against 128-bit keys, interleaved runs."""
    rnd = random.Random(ctx.seed + 11)
    n = ctx.scaled(200_000, 1_000_000)
    reps = 7
    k64 = [rnd.getrandbits(63) for _ in range(n)]
    k128 = [rnd.getrandbits(128) for _ in range(n)]
    b64 = [k.to_bytes(8, "big") for k in k64]
    b128 = [k.to_bytes(16, "big") for k in k128]
    d64 = dict.fromkeys(k64, 1)
    d128 = dict.fromkeys(k128, 1)
    s8 = np.array(b64, dtype="S8")
    s16 = np.array(b128, dtype="S16")
    u64 = np.array(k64, dtype=np.uint64)
    sorted_u64 = np.sort(u64)
    sorted_s16 = np.sort(s16)
    probe = rnd.sample(range(n), min(n, 100_000))
    probe_u64 = u64[probe]
    probe_s16 = s16[probe]

    # SQLite: point lookups through an INTEGER index and a 16-byte BLOB index.
    tmp = tempfile.mkdtemp(prefix="chronoid-sim-")
    con = sqlite3.connect(os.path.join(tmp, "lookup.db"))
    con.execute("CREATE TABLE a (pk INTEGER PRIMARY KEY, id INTEGER NOT NULL)")
    con.execute("CREATE TABLE b (pk INTEGER PRIMARY KEY, id BLOB NOT NULL)")
    con.executemany("INSERT INTO a (id) VALUES (?)", ((k,) for k in k64))
    con.executemany("INSERT INTO b (id) VALUES (?)", ((k,) for k in b128))
    con.execute("CREATE UNIQUE INDEX a_id ON a(id)")
    con.execute("CREATE UNIQUE INDEX b_id ON b(id)")
    con.commit()
    look64 = [k64[i] for i in probe[:20_000]]
    look128 = [b128[i] for i in probe[:20_000]]

    def sql_lookups(table: str, keys: list[Any]) -> None:
        cur = con.cursor()
        for k in keys:
            cur.execute(f"SELECT pk FROM {table} WHERE id = ?", (k,)).fetchone()

    ops: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("Python `sorted()` of ints", lambda: sorted(k64), lambda: sorted(k128)),
        ("Python `sorted()` of big-endian bytes", lambda: sorted(b64), lambda: sorted(b128)),
        ("Python dict: build from keys", lambda: dict.fromkeys(k64), lambda: dict.fromkeys(k128)),
        (
            "Python dict: 100k lookups",
            lambda: [d64[k64[i]] for i in probe],
            lambda: [d128[k128[i]] for i in probe],
        ),
        ("numpy sort, fixed-width bytes (S8 vs S16)", lambda: np.sort(s8), lambda: np.sort(s16)),
        (
            "numpy binary search: uint64 vs S16",
            lambda: np.searchsorted(sorted_u64, probe_u64),
            lambda: np.searchsorted(sorted_s16, probe_s16),
        ),
        (
            "SQLite: 20k point lookups (INTEGER vs 16-byte BLOB index)",
            lambda: sql_lookups("a", look64),
            lambda: sql_lookups("b", look128),
        ),
    ]
    rows: list[list[str]] = []
    ratios: list[float] = []
    spread = 1.0
    for label, op64, op128 in ops:
        ctx.progress(label)
        t64_s: list[float] = []
        t128_s: list[float] = []
        for _ in range(reps):  # interleaved, so drift hits both sides alike
            t64_s.append(_median_time_s(op64, 1))
            t128_s.append(_median_time_s(op128, 1))
        # Medians of interleaved runs, with the range of the per-run ratios.
        per_run = [b / a for a, b in zip(t64_s, t128_s, strict=True)]
        ratio = statistics.median(per_run)
        spread = max(spread, timing_spread(t64_s), timing_spread(t128_s))
        ratios.append(ratio)
        rows.append(
            [
                label,
                fmt_timing(t64_s),
                fmt_timing(t128_s),
                f"{fmt_ratio(ratio)} ({min(per_run):.2f}–{max(per_run):.2f})",
            ]
        )
    con.close()
    lo, hi = min(ratios), max(ratios)
    return ScenarioResult(
        name="compare-cost",
        title="64-bit vs 128-bit comparison cost (Theorem 3, Scenario 11)",
        claim='§4.1: cycles(ChronoID) ≤ ½ · cycles(UUID); §8.1: "a 1.96x speed advantage for '
        'register-level 64-bit operations over 128-bit identifiers".',
        method=f"{fmt_int(n)} random 63-bit and 128-bit keys (as ints, 8/16-byte strings and "
        f"numpy fixed-width arrays, and in SQLite indexes); each operation timed {reps} times, "
        "64- and 128-bit runs interleaved; medians with min–max, and the median of the per-run "
        "ratios with their range. Python and SQLite do not expose "
        "raw register compares, so this measures what a Python program pays.",
        verdict=Verdict.DOES_NOT_HOLD if not 1.8 <= lo <= hi <= 2.2 else Verdict.HOLDS,
        reason=f"The 128-bit key costs {lo:.2f}× to {hi:.2f}× the 64-bit one depending on the "
        "operation: 64-bit keys are never slower by much, but 1.96× is not a constant. "
        "Whatever the CPU saves per compare is mostly hidden behind object, hashing and "
        "page-access overheads.",
        headline=f"128-bit / 64-bit cost {lo:.2f}×–{hi:.2f}× (claim 1.96×)",
        timing_spread=spread,
        tables=[
            Table(["operation", "64-bit", "128-bit", "128 / 64, median of runs (range)"], rows)
        ],
    )


# -- SQLite B-tree ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IngestResult:
    """One key type's ingestion: per-batch seconds and the key index's size."""

    label: str
    batch_seconds: list[float]
    index_bytes: int
    leaf_pages: int
    rows: int

    @property
    def total_s(self) -> float:
        """Total insert time (s)."""
        return sum(self.batch_seconds)


def _sqlite_ingest(path: str, kind: KeyKind, progress: Callable[[str], None]) -> IngestResult:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    col = "BLOB" if kind.is_uuid else "INTEGER"
    con.execute(f"CREATE TABLE t (pk INTEGER PRIMARY KEY, id {col} NOT NULL, payload INTEGER)")
    con.execute("CREATE UNIQUE INDEX t_id ON t(id)")
    con.commit()
    batches_s: list[float] = []
    values = kind.values
    for start in range(0, len(values), _BATCH):
        chunk = [(v, i) for i, v in enumerate(values[start : start + _BATCH], start)]
        t0_s = time.perf_counter()
        con.executemany("INSERT INTO t (id, payload) VALUES (?, ?)", chunk)
        con.commit()
        batches_s.append(time.perf_counter() - t0_s)
        if len(batches_s) % 10 == 0:
            progress(f"SQLite {kind.label}: {start + len(chunk):,} rows")
    size = con.execute("SELECT SUM(pgsize) FROM dbstat WHERE name = 't_id'").fetchone()[0]
    leaves = con.execute(
        "SELECT COUNT(*) FROM dbstat WHERE name = 't_id' AND pagetype = 'leaf'"
    ).fetchone()[0]
    con.close()
    return IngestResult(kind.label, batches_s, int(size), int(leaves), len(values))


def _ingest_plots(
    engine: str, results: list[list[IngestResult]], page_label: str
) -> tuple[Plot, Plot]:
    graph_b = Plot(
        f"graph_b_ingestion_{engine.lower()}.png",
        f"Graph B ({engine}): insert time per {_BATCH:,}-row batch as the table grows (first run)",
        "rows already in the table",
        "ms per batch",
        [
            Series(
                r[0].label,
                [i * _BATCH for i in range(len(r[0].batch_seconds))],
                [s * 1e3 for s in r[0].batch_seconds],
                "-",
            )
            for r in results
        ],
    )
    graph_c = Plot(
        f"graph_c_index_size_{engine.lower()}.png",
        f"Graph C ({engine}): size of the index on the key, {results[0][0].rows:,} rows",
        "key type",
        "index size (MiB)",
        [
            Series(
                f"index on the key ({page_label})",
                [r[0].label for r in results],
                [r[-1].index_bytes / 2**20 for r in results],
            )
        ],
        kind="bar",
    )
    return graph_b, graph_c


def _median_total(runs: list[IngestResult]) -> float:
    return statistics.median(r.total_s for r in runs)


def _ingest_table(
    results: list[list[IngestResult]], page_bytes: int
) -> tuple[Table, dict[str, float]]:
    by_label = {r[0].label: r for r in results}
    v4 = by_label["UUIDv4"]
    rows = []
    for runs in results:
        r = runs[-1]
        per_page = r.rows / r.leaf_pages if r.leaf_pages else r.rows * page_bytes / r.index_bytes
        ratios = [a.total_s / b.total_s for a, b in zip(v4, runs, strict=True)]
        rows.append(
            [
                r.label,
                fmt_timing([x.total_s for x in runs]),
                f"{fmt_ratio(statistics.median(ratios))} ({min(ratios):.2f}–{max(ratios):.2f})",
                f"{r.index_bytes / 2**20:.2f} MiB",
                f"{(1 - r.index_bytes / v4[-1].index_bytes) * 100:.0f} %",
                fmt_int(per_page),
                f"{statistics.median(runs[0].batch_seconds[-5:]) * 1e3:.0f} ms",
            ]
        )
    mode_b = by_label[MODE_B]
    spread = max(timing_spread([x.total_s for x in runs]) for runs in results)
    return (
        Table(
            [
                "key",
                f"insert time, median ({_RUNS} runs, min–max)",
                "speed vs UUIDv4 (median of per-run ratios, range)",
                "index size",
                "smaller than UUIDv4 by",
                f"keys per {page_bytes // 1024} KiB leaf page",
                "last batches of the first run (median)",
            ],
            rows,
        ),
        {
            "speed": _median_total(v4) / _median_total(mode_b),
            "smaller": 1 - mode_b[-1].index_bytes / v4[-1].index_bytes,
            "plain_speed": _median_total(v4) / _median_total(by_label[PLAIN]),
            # Keys per 8 KiB of index (internal pages included), comparable to §4.3's figures.
            "page_chrono": 8192 * mode_b[-1].rows / mode_b[-1].index_bytes,
            "page_uuid": 8192 * v4[-1].rows / v4[-1].index_bytes,
            "spread": spread,
        },
    )


_STORAGE_CLAIM = (
    "§4.2: ChronoID achieved **3.87x faster ingestion** than UUID v4 on a 1M-row SQLite "
    "dataset and its indices were **49% smaller**; §4.3: 1,024 vs 512 IDs per 8 KB page; "
    '§8.1: ChronoID remains 50% smaller than UUIDv7 "while offering better ingestion '
    'velocity".'
)


def sqlite_btree(ctx: Context) -> ScenarioResult:
    """Ingestion time and index size in SQLite for four key types."""
    rows = ctx.scaled(1_000_000, 5_000_000)
    kinds = make_keys(ctx.seed + 13, rows)
    tmp = tempfile.mkdtemp(prefix="chronoid-sim-")
    results: list[list[IngestResult]] = [[] for _ in kinds]
    for run in range(_RUNS):  # interleaved runs, so drift hits every key type alike
        for n, kind in enumerate(kinds):
            path = os.path.join(tmp, f"k{n}.db")
            ctx.progress(f"SQLite run {run + 1}/{_RUNS}: {kind.label}")
            results[n].append(_sqlite_ingest(path, kind, lambda _text: None))
            os.unlink(path)
    os.rmdir(tmp)
    table, ratios = _ingest_table(results, 4096)
    graph_b, graph_c = _ingest_plots("SQLite", results, "4 KiB pages")
    by_label = {r[0].label: r[-1] for r in results}
    v7 = by_label["UUIDv7"]
    mode_b = by_label[MODE_B]
    return ScenarioResult(
        name="sqlite-btree",
        title="SQLite B-tree ingestion and index size (Theorem 4, Scenario 17)",
        claim=_STORAGE_CLAIM,
        method=f"{fmt_int(rows)} rows per key type into a fresh SQLite {sqlite3.sqlite_version} "
        f"file (rowid table plus a UNIQUE index on the key; journal off, synchronous off, "
        f"default 2 MB cache), in batches of {_BATCH:,} rows, one transaction each, {_RUNS} "
        f"interleaved runs per key type. Time-ordered keys are made at {_RATE:,} IDs/s. Index "
        "size from `dbstat`.",
        verdict=Verdict.PARTLY,
        reason=f"The direction holds: Mode B `chrono64s` ingests {fmt_ratio(ratios['speed'])} "
        f"faster than UUIDv4 (plain increasing: {fmt_ratio(ratios['plain_speed'])}) and its "
        f"index is {ratios['smaller'] * 100:.0f} % smaller, against "
        f"{(1 - mode_b.index_bytes / v7.index_bytes) * 100:.0f} % smaller than UUIDv7. "
        "The factors depend on row count, cache and batch size: neither 3.87× nor 49 % is a "
        f"constant. Per 8 KiB of index: {ratios['page_chrono']:.0f} Mode B keys against "
        f"{ratios['page_uuid']:.0f} UUIDv4 keys, not 1,024 against 512. Timings vary from run "
        f"to run: the slowest run of a key type took up to {ratios['spread']:.2f}× its fastest.",
        headline=f"{fmt_ratio(ratios['speed'])} faster, index {ratios['smaller'] * 100:.0f} % "
        f"smaller than UUIDv4 ({fmt_int(rows)} rows, median of {_RUNS} runs)",
        timing_spread=ratios["spread"],
        tables=[table],
        plots=[graph_b, graph_c],
    )


# -- PostgreSQL B-tree ------------------------------------------------------------------------


class PostgresUnavailable(Exception):
    """PostgreSQL did not answer at the configured DSN."""


def _pg_connect(dsn: str) -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is in the dev extra
        raise PostgresUnavailable(f"psycopg is not installed ({exc})") from exc
    try:
        return psycopg.connect(dsn, connect_timeout=3)
    except psycopg.Error as exc:
        raise PostgresUnavailable(
            f"PostgreSQL is not reachable at {dsn} ({str(exc).strip().splitlines()[0]}); "
            "start it with scripts/services.sh"
        ) from exc


def _not_run(name: str, title: str, claim: str, why: str) -> ScenarioResult:
    return ScenarioResult(
        name=name,
        title=title,
        claim=claim,
        method="needs a PostgreSQL server at 127.0.0.1:5432 (user postgres, database test)",
        verdict=Verdict.NOT_RUN,
        reason=why,
        headline=f"not run: {why}",
    )


def _pg_ingest(conn: Any, schema: str, n: int, kind: KeyKind) -> IngestResult:
    table = f"{schema}.k{n}"
    col = "uuid" if kind.is_uuid else "bigint"
    conn.execute(f"CREATE TABLE {table} (id {col} PRIMARY KEY, payload integer NOT NULL)")
    conn.commit()
    batches_s: list[float] = []
    values = kind.values
    for start in range(0, len(values), _BATCH):
        chunk = values[start : start + _BATCH]
        t0_s = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {table} (id, payload) FROM STDIN") as copy:
            for i, v in enumerate(chunk, start):
                copy.write_row((uuid.UUID(bytes=v) if isinstance(v, bytes) else v, i))
        conn.commit()
        batches_s.append(time.perf_counter() - t0_s)
    size = conn.execute(f"SELECT pg_relation_size('{table}_pkey')").fetchone()[0]
    conn.commit()
    return IngestResult(kind.label, batches_s, int(size), 0, len(values))


def _more_less(change: float, up: str, down: str) -> str:
    return f"{abs(change) * 100:.0f} % {up if change > 0 else down}"


def postgres_btree(ctx: Context) -> ScenarioResult:
    """Ingestion time and primary-key index size in PostgreSQL for four key types."""
    title = "PostgreSQL B-tree ingestion and index size (Theorem 4)"
    try:
        conn = _pg_connect(ctx.pg_dsn)
    except PostgresUnavailable as exc:
        return _not_run("postgres-btree", title, _STORAGE_CLAIM, str(exc))
    rows = ctx.scaled(1_000_000, 5_000_000)
    kinds = make_keys(ctx.seed + 13, rows)
    schema = f"chronoid_sim_{os.getpid()}"
    results: list[list[IngestResult]] = [[] for _ in kinds]
    try:
        conn.execute("SET synchronous_commit = off")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.commit()
        version = conn.execute("SHOW server_version").fetchone()[0]
        for run in range(_RUNS):  # interleaved runs, so drift hits every key type alike
            for n, kind in enumerate(kinds):
                ctx.progress(f"PostgreSQL run {run + 1}/{_RUNS}: {kind.label}")
                results[n].append(_pg_ingest(conn, schema, n, kind))
                conn.execute(f"DROP TABLE {schema}.k{n}")
                conn.commit()
    finally:
        conn.rollback()
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.commit()
        conn.close()
    table, ratios = _ingest_table(results, 8192)
    graph_b, graph_c = _ingest_plots("PostgreSQL", results, "8 KiB pages")
    last = {r[0].label: r[-1] for r in results}
    runs_of = {r[0].label: r for r in results}
    v7 = last["UUIDv7"]
    vs_v7_size = last[MODE_B].index_bytes / v7.index_bytes - 1
    vs_v7_time = _median_total(runs_of[MODE_B]) / _median_total(runs_of["UUIDv7"]) - 1
    vs_plain = last[MODE_B].index_bytes / last[PLAIN].index_bytes - 1
    restart_vs_v7 = last[MODE_B_RESTART].index_bytes / v7.index_bytes - 1
    mib = 2**20
    return ScenarioResult(
        name="postgres-btree",
        title=title,
        claim=_STORAGE_CLAIM,
        method=f"{fmt_int(rows)} rows per key type into `bigint`/`uuid PRIMARY KEY` tables on "
        f"PostgreSQL {version} (synchronous_commit off), COPY in batches of {_BATCH:,} rows, "
        f"one commit each, {_RUNS} interleaved runs; index size from `pg_relation_size` of the "
        "primary-key index; keys per page = rows · 8192 / index bytes (internal pages "
        "included). Two Mode B key models: chronoid's counter that never restarts, and the "
        "spec's sequence that restarts every second.",
        verdict=Verdict.PARTLY,
        reason=f"Mode B `chrono64s` ingests {fmt_ratio(ratios['speed'])} as fast as UUIDv4 "
        f"(plain increasing bigint {fmt_ratio(ratios['plain_speed'])}) with an index "
        f"{ratios['smaller'] * 100:.0f} % smaller, not 49 %; 8 KiB of index holds "
        f"{ratios['page_chrono']:.0f} Mode B keys against {ratios['page_uuid']:.0f} UUIDs, not "
        "1,024 against 512 (tuple headers, line pointers, half-full split pages). "
        "Against UUIDv7 the Mode B index is "
        f"{_more_less(vs_v7_size, 'larger', 'smaller')} and inserts take "
        f"{_more_less(vs_v7_time, 'longer', 'less time')}. The mixed sequence has a cost: the "
        f"Mode B index is {_more_less(vs_plain, 'larger', 'smaller')} than a plain increasing "
        "bigint's, because inserts scatter inside each second and split pages half full. The "
        "key model matters: with the spec's sequence that restarts every second the Mode B "
        f"index is {last[MODE_B_RESTART].index_bytes / mib:.2f} MiB, "
        f"{_more_less(restart_vs_v7, 'larger', 'smaller')} than UUIDv7's "
        f"{v7.index_bytes / mib:.2f} MiB (never-restarting counter: "
        f"{last[MODE_B].index_bytes / mib:.2f} MiB). Timings vary from run to run: the slowest "
        f"run of a key type took up to {ratios['spread']:.2f}× its fastest.",
        headline=f"{fmt_ratio(ratios['speed'])} vs UUIDv4, index {ratios['smaller'] * 100:.0f} % "
        f"smaller; vs UUIDv7 index {_more_less(vs_v7_size, 'larger', 'smaller')} (counter), "
        f"{_more_less(restart_vs_v7, 'larger', 'smaller')} (sequence restarting each second)",
        timing_spread=ratios["spread"],
        tables=[table],
        plots=[graph_b, graph_c],
    )


# -- foreign-key density (Graph D) ------------------------------------------------------------


_FK_CLAIM = (
    '§6.1: `chrono32y` saves 12 bytes per foreign key against a UUID; §8.1: "a **72.9% '
    "storage saving** for `chrono32y` compared to random identifiers like UUIDv4 on "
    'physical B-Trees".'
)


def _distinct(rnd: random.Random, top: int, count: int) -> list[int]:
    chosen: dict[int, None] = {}
    while len(chosen) < count:
        chosen[rnd.randrange(top + 1)] = None
    return list(chosen)


def _fk_tenants(seed: int, tenants: int) -> list[tuple[str, str, str, list[Key]]]:
    rnd = random.Random(seed)
    y = VARIANTS["chrono32y"]
    s = VARIANTS["chrono64s"]
    ids32 = _distinct(rnd, y.max_id, tenants)
    ids64 = _distinct(rnd, s.max_id, tenants)
    uuids = [_uuid4(rnd) for _ in range(tenants)]
    return [
        ("chrono32y (4 B)", "INTEGER", "integer", list(ids32)),
        ("chrono64s (8 B)", "INTEGER", "bigint", list(ids64)),
        ("UUIDv4 (16 B)", "BLOB", "uuid", list(uuids)),
    ]


def fk_density(ctx: Context) -> ScenarioResult:
    """Bytes per child row a tenant foreign key costs: 32-bit, 64-bit and UUID."""
    rows = ctx.scaled(1_000_000, 5_000_000)
    tenants = 10_000
    rnd = random.Random(ctx.seed + 14)
    picks = [rnd.randrange(tenants) for _ in range(rows)]
    kinds = _fk_tenants(ctx.seed + 15, tenants)
    tmp = tempfile.mkdtemp(prefix="chronoid-sim-")
    measured: dict[str, dict[str, float]] = {}
    for n, (label, sql_type, _pg_type, ids) in enumerate(kinds):
        ctx.progress(f"SQLite {label}")
        con = sqlite3.connect(os.path.join(tmp, f"fk{n}.db"))
        con.execute("PRAGMA journal_mode=OFF")
        con.execute(f"CREATE TABLE child (pk INTEGER PRIMARY KEY, tenant {sql_type} NOT NULL)")
        con.execute("CREATE INDEX child_tenant ON child(tenant)")
        con.executemany("INSERT INTO child (tenant) VALUES (?)", ((ids[p],) for p in picks))
        con.commit()
        sizes = dict(con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        con.close()
        measured[label] = {
            "sqlite_index": sizes["child_tenant"] / rows,
            "sqlite_table": sizes["child"] / rows,
        }
    pg_note = ""
    try:
        conn = _pg_connect(ctx.pg_dsn)
    except PostgresUnavailable as exc:
        pg_note = f" PostgreSQL part not run: {exc}."
    else:
        schema = f"chronoid_simfk_{os.getpid()}"
        try:
            conn.execute(f"CREATE SCHEMA {schema}")
            for n, (label, _sql_type, pg_type, ids) in enumerate(kinds):
                ctx.progress(f"PostgreSQL {label}")
                table = f"{schema}.child{n}"
                conn.execute(
                    f"CREATE TABLE {table} (pk bigint NOT NULL, tenant {pg_type} NOT NULL)"
                )
                with conn.cursor() as cur, cur.copy(f"COPY {table} (pk, tenant) FROM STDIN") as cp:
                    for i, p in enumerate(picks):
                        v = ids[p]
                        cp.write_row((i, uuid.UUID(bytes=v) if isinstance(v, bytes) else v))
                conn.execute(f"CREATE INDEX child{n}_dedup ON {table} (tenant)")
                conn.execute(
                    f"CREATE INDEX child{n}_plain ON {table} (tenant) "
                    "WITH (deduplicate_items = off)"
                )
                index_bytes = conn.execute(
                    f"SELECT pg_relation_size('{schema}.child{n}_dedup')"
                ).fetchone()[0]
                plain_bytes = conn.execute(
                    f"SELECT pg_relation_size('{schema}.child{n}_plain')"
                ).fetchone()[0]
                measured[label]["pg_index_plain"] = int(plain_bytes) / rows
                table_bytes = conn.execute(f"SELECT pg_relation_size('{table}')").fetchone()[0]
                measured[label]["pg_index"] = int(index_bytes) / rows
                measured[label]["pg_table"] = int(table_bytes) / rows
            conn.commit()
        finally:
            conn.rollback()
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.commit()
            conn.close()
    labels = [k[0] for k in kinds]
    uuid_label = labels[-1]
    columns = [
        c
        for c in ("sqlite_index", "sqlite_table", "pg_index", "pg_index_plain", "pg_table")
        if c in measured[labels[0]]
    ]
    names = {
        "sqlite_index": "SQLite FK index",
        "sqlite_table": "SQLite child table",
        "pg_index": "PostgreSQL FK index (dedup on)",
        "pg_index_plain": "PostgreSQL FK index (dedup off)",
        "pg_table": "PostgreSQL child table",
    }
    table_rows = []
    for label in labels:
        cells = [label]
        for c in columns:
            value = measured[label][c]
            saving = 1 - value / measured[uuid_label][c]
            cells.append(
                f"{value:.1f} B ({saving * 100:.0f} % less)"
                if label != uuid_label
                else f"{value:.1f} B"
            )
        table_rows.append(cells)
    savings = [1 - measured[labels[0]][c] / measured[uuid_label][c] for c in columns]
    return ScenarioResult(
        name="fk-density",
        title="Foreign-key density: `chrono32y` tenant IDs (Graph D, Scenario 25)",
        claim=_FK_CLAIM,
        method=f"A child table of {fmt_int(rows)} rows referencing {tenants:,} tenants (about "
        "20 rows each) through a tenant column with an index, for a 32-bit `chrono32y`, a "
        "64-bit `chrono64s` and a 16-byte UUID tenant key; bytes per row of the FK index and "
        "of the child table (SQLite `dbstat`; PostgreSQL `pg_relation_size`, B-tree "
        f"deduplication at its default)." + pg_note,
        verdict=Verdict.DOES_NOT_HOLD if max(savings) < 0.729 * 0.9 else Verdict.PARTLY,
        reason=f"The raw column saves 12 bytes against a UUID (4 vs 16), but stored rows carry "
        f"headers, row IDs and alignment: the `chrono32y` saving is "
        f"{min(savings) * 100:.0f}–{max(savings) * 100:.0f} % depending on the engine and "
        f"structure, not 72.9 %: no measurement comes near it (best {max(savings) * 100:.0f} %).",
        headline=f"`chrono32y` FK saves {min(savings) * 100:.0f}–{max(savings) * 100:.0f} % "
        "per row vs UUID",
        tables=[Table(["tenant key", *[names[c] + " per row" for c in columns]], table_rows)],
        plots=[
            Plot(
                "graph_d_fk_bytes.png",
                f"Graph D: bytes per child row for the tenant FK ({fmt_int(rows)} rows)",
                "tenant key type",
                "bytes per child row",
                [Series(names[c], labels, [measured[lb][c] for lb in labels]) for c in columns],
                kind="bar",
            )
        ],
    )
