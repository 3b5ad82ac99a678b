"""ID generation: chronoid's generators against the peers, side by side in one run.

Run ``.venv/bin/python benchmarks/bench_ids.py [--quick]``. It prints Markdown tables and
writes them to ``benchmarks/results/ids.md`` (the README quotes that file).

The machine is shared and noisy, so every figure comes from interleaved rounds: each round
measures every implementation once, in a shuffled order; a figure is the median over the
rounds, and a ratio is the median of the per-round ratios against snowflake-id measured in
the same round. Garbage collection is off while a sample runs.

Two per-ID figures, because the Snowflake layout has a ceiling of 4,096 IDs per ms per
worker (244 ns/ID): a generator that is faster than that for long must either wait for the
next ms (chronoid, the plain baseline) or fail (snowflake-id returns ``None``).

* **burst**: 2,000 calls that start right after a millisecond boundary, so no Snowflake
  layout reaches its ceiling: the cost of the call itself.
* **sustained**: calls back to back for tens of ms; elapsed time divided by the IDs actually
  obtained (a ``None`` is not an ID), so waits and failures count.

Both include the benchmark loop's own overhead (a list comprehension calling the function),
printed in the header so it can be subtracted.
"""

from __future__ import annotations

import argparse
import functools
import gc
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count, repeat
from pathlib import Path

import snowflake  # snowflake-id
import sonyflake_turbo
import tsidpy
import ulid  # python-ulid
import uuid6
import uuid_utils

from chronoid import Backwards, ChronoSequence, Generator
from environment import markdown_table, measured_line

RESULTS = Path(__file__).resolve().parent / "results" / "ids.md"
CEILING_PER_MS = 4096
"""The Snowflake layout's capacity: 2^12 sequence values per ms per worker."""
CEILING_PER_S = CEILING_PER_MS * 1000
CEILING_NS_PER_ID = 1e6 / CEILING_PER_MS
BURST_CALLS = 2000
REFERENCE = "snowflake-id"
_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z, the Snowflake layout's epoch

IdFn = Callable[[], object]


class PlainSnowflake:
    """The textbook pure-Python Snowflake (41/10/12, one lock), the baseline of the issue.

    It spins until the next ms when a ms's 4,096 sequence values are used, and raises when
    the clock goes back: no policy, no fork safety.
    """

    def __init__(self, worker: int) -> None:
        self._lock = threading.Lock()
        self._worker = worker << 12
        self._last = -1
        self._seq = 0

    def next_id(self) -> int:
        with self._lock:
            ts = time.time_ns() // 1_000_000 - _EPOCH_MS
            if ts == self._last:
                self._seq = (self._seq + 1) & 4095
                if self._seq == 0:
                    while ts <= self._last:
                        ts = time.time_ns() // 1_000_000 - _EPOCH_MS
            elif ts < self._last:
                raise RuntimeError(f"clock moved backwards by {self._last - ts} ms")
            else:
                self._seq = 0
            self._last = ts
            return (ts << 22) | self._worker | self._seq


_nodes = count(1)


def _node() -> int:
    """A node (worker) no other generator of this run uses (0..1023)."""
    return next(_nodes) % 1024


_chrono64s_nodes = count(0)


def _fresh_chrono64s() -> IdFn:
    # chrono64s allows 32,768 IDs per second per node: a fresh node per burst keeps the
    # measurement on the call's cost instead of on waiting for the next second.
    return Generator("chrono64s", next(_chrono64s_nodes) % 32768).next_id


@dataclass
class Case:
    """One implementation under test."""

    key: str
    label: str
    make: Callable[[], IdFn]
    per_call: int = 1
    burst_calls: int = BURST_CALLS
    fresh_each_burst: bool = False
    sustained: bool = True
    note: str = ""
    fn: IdFn | None = None
    sustained_calls: int = 0
    burst_ns: list[float] = field(default_factory=list)
    sustained_ns: list[float] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)


def cases() -> list[Case]:
    """Every implementation of the per-ID table, chronoid first."""
    return [
        Case(
            "chronoid-seq",
            "chronoid `ChronoSequence(w).next_id()`",
            lambda: ChronoSequence(_node()).next_id,
            note="Snowflake 41/10/12, lock, WAIT policies, fork-safe",
        ),
        Case(
            "chronoid-hlc",
            'chronoid `Generator("snowflake", n, on_backwards=HLC).next_id()`',
            lambda: Generator("snowflake", _node(), on_backwards=Backwards.HLC).next_id,
            note="never waits: borrows the next ms on overflow",
        ),
        Case(
            "chronoid-c64s",
            'chronoid `Generator("chrono64s", n).next_id()`',
            _fresh_chrono64s,
            fresh_each_burst=True,
            sustained=False,
            note="sustained: capped by the layout at 32,768 IDs/s/node",
        ),
        Case(
            "chronoid-batch",
            'chronoid `Generator("snowflake", n).next_ids(4096)`, per ID',
            lambda: functools.partial(Generator("snowflake", _node()).next_ids, CEILING_PER_MS),
            per_call=CEILING_PER_MS,
            burst_calls=1,
            sustained=False,
            note="one call fills one ms; sustained: see the batch table",
        ),
        Case(
            "plain",
            "plain pure-Python Snowflake with a lock (baseline)",
            lambda: PlainSnowflake(_node()).next_id,
            note="written in this benchmark",
        ),
        Case(
            REFERENCE,
            "snowflake-id `next(SnowflakeGenerator(w))`",
            lambda: snowflake.SnowflakeGenerator(_node()).__next__,
            note="no lock; returns None on overflow or clock regression",
        ),
        Case(
            "sonyflake",
            "sonyflake-turbo `next(SonyFlake(*ids))`",
            lambda: sonyflake_turbo.SonyFlake(*range(512)).__next__,
            note="C; 512 machine IDs so 25,600 IDs/s per ID does not cap it",
        ),
        Case(
            "tsid-gen",
            "tsidpy `TSIDGenerator(node).create()`",
            lambda: tsidpy.TSIDGenerator(node=_node()).create,
        ),
        Case("tsid", "tsidpy `TSID.create()`", lambda: tsidpy.TSID.create),
        Case("uuid-utils", "uuid-utils `uuid7()`", lambda: uuid_utils.uuid7, note="Rust"),
        Case("uuid6", "uuid6 `uuid7()`", lambda: uuid6.uuid7),
        Case("ulid", "python-ulid `ULID()`", lambda: ulid.ULID),
        Case("uuid4", "stdlib `uuid.uuid4()`", lambda: uuid.uuid4),
        Case("uuid1", "stdlib `uuid.uuid1()`", lambda: uuid.uuid1),
    ]


def _unwrap(case: Case) -> IdFn:
    fn = case.fn
    assert fn is not None
    return fn


def _next_ms() -> None:
    """Spin until a new millisecond starts (the clock the generators read)."""
    ms = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == ms:
        pass


def _burst(case: Case) -> tuple[float, int]:
    """One burst: (ns per ID, IDs obtained)."""
    fn = case.make() if case.fresh_each_burst else _unwrap(case)
    calls = repeat(None, case.burst_calls)
    _next_ms()
    t0 = time.perf_counter_ns()
    out = [fn() for _ in calls]
    elapsed = time.perf_counter_ns() - t0
    got = (len(out) - out.count(None)) * case.per_call
    return elapsed / max(got, 1), got


def _sustained(case: Case) -> tuple[float, float]:
    """Calls back to back: (ns per ID obtained, share of calls that returned None)."""
    fn = _unwrap(case)
    calls = repeat(None, case.sustained_calls)
    t0 = time.perf_counter_ns()
    out = [fn() for _ in calls]
    elapsed = time.perf_counter_ns() - t0
    failed = out.count(None)
    got = len(out) - failed
    return elapsed / max(got, 1), failed / len(out)


def _loop_overhead_ns() -> float:
    calls = repeat(None, 200_000)
    fn = int
    t0 = time.perf_counter_ns()
    [fn() for _ in calls]
    return (time.perf_counter_ns() - t0) / 200_000


@dataclass
class Config:
    rounds: int
    bursts: int
    sample_s: float
    batch_s: float
    batch_repeats: int
    thread_s: float
    thread_repeats: int


def measure_ids(all_cases: list[Case], cfg: Config, rng: random.Random) -> float:
    """Fill every case's burst/sustained samples; returns the loop overhead (ns/call)."""
    for case in all_cases:
        case.fn = case.make()
        _burst(case)  # warm-up
        if case.sustained:
            per_call = _sustained_calibrate(case)
            case.sustained_calls = max(1000, int(cfg.sample_s * 1e9 / per_call))
    overheads = []
    for _ in range(cfg.rounds):
        order = all_cases[:]
        rng.shuffle(order)
        gc.collect()
        gc.disable()
        try:
            overheads.append(_loop_overhead_ns())
            for case in order:
                case.burst_ns.append(statistics.median(_burst(case)[0] for _ in range(cfg.bursts)))
                if case.sustained:
                    ns, failed = _sustained(case)
                    case.sustained_ns.append(ns)
                    case.failed.append(failed)
        finally:
            gc.enable()
    return statistics.median(overheads)


def _sustained_calibrate(case: Case) -> float:
    fn = _unwrap(case)
    calls = repeat(None, 2000)
    t0 = time.perf_counter_ns()
    [fn() for _ in calls]
    return (time.perf_counter_ns() - t0) / 2000


def _paired_ratio(values: list[float], reference: list[float]) -> float:
    return statistics.median(v / r for v, r in zip(values, reference, strict=True))


# -- batch throughput ----------------------------------------------------------------------


def measure_batch(
    sizes: tuple[int, ...], cfg: Config, rng: random.Random
) -> dict[int, list[float]]:
    """IDs/s of ``next_ids(size)`` called back to back for ``cfg.batch_s`` of wall time."""
    rates: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(cfg.batch_repeats):
        order = list(sizes)
        rng.shuffle(order)
        for size in order:
            gen = Generator("snowflake", _node())
            gen.next_ids(1)
            made = 0
            gc.collect()
            t0 = time.perf_counter_ns()
            deadline = t0 + int(cfg.batch_s * 1e9)
            while time.perf_counter_ns() < deadline:
                made += len(gen.next_ids(size))
            rates[size].append(made / ((time.perf_counter_ns() - t0) / 1e9))
    return rates


# -- threads ---------------------------------------------------------------------------------


def run_threads(fn: Callable[[], int], threads: int, duration_s: float) -> float:
    """Total IDs/s of ``threads`` threads calling ``fn`` for ``duration_s``."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    deadline = [0]

    def work(slot: int) -> None:
        made = 0
        start.wait()
        end = deadline[0]
        while time.perf_counter_ns() < end:
            for _ in repeat(None, 500):
                fn()
            made += 500
        counts[slot] = made

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    t0 = time.perf_counter_ns()
    deadline[0] = t0 + int(duration_s * 1e9)
    start.wait()
    for thread in pool:
        thread.join()
    return sum(counts) / ((time.perf_counter_ns() - t0) / 1e9)


@dataclass
class ThreadCase:
    label: str
    make: Callable[[], Callable[[], int]]
    single: list[float] = field(default_factory=list)
    four: list[float] = field(default_factory=list)


def measure_threads(cfg: Config, rng: random.Random) -> list[ThreadCase]:
    """Single-thread vs 4 threads sharing one generator, interleaved."""
    tcases = [
        ThreadCase("chronoid `ChronoSequence.next_id()`", lambda: ChronoSequence(_node()).next_id),
        ThreadCase(
            "chronoid HLC `next_id()`",
            lambda: Generator("snowflake", _node(), on_backwards=Backwards.HLC).next_id,
        ),
        ThreadCase("plain Snowflake with a lock", lambda: PlainSnowflake(_node()).next_id),
    ]
    for _ in range(cfg.thread_repeats):
        jobs = [(case, n) for case in tcases for n in (1, 4)]
        rng.shuffle(jobs)
        for case, n in jobs:
            rate = run_threads(case.make(), n, cfg.thread_s)
            (case.single if n == 1 else case.four).append(rate)
    return tcases


# -- report ----------------------------------------------------------------------------------


def _ns(value: float) -> str:
    return f"{value:,.0f}"


def render(
    all_cases: list[Case],
    overhead: float,
    batch: dict[int, list[float]],
    tcases: list[ThreadCase],
    cfg: Config,
    flags: list[str],
) -> str:
    ref = next(c for c in all_cases if c.key == REFERENCE)
    lines = [
        measured_line("bench_ids.py", flags),
        "",
        f"{cfg.rounds} interleaved rounds; each figure is the median over the rounds, each "
        f"ratio the median of per-round ratios to snowflake-id. **burst**: {BURST_CALLS:,} "
        "calls right after a ms boundary (median of "
        f"{cfg.bursts} per round), below every layout's ceiling: the cost of a call. "
        "**sustained**: back-to-back calls, time divided by IDs obtained (`None` is not an "
        f"ID). The Snowflake layout's ceiling is {CEILING_PER_MS:,} IDs/ms per worker = "
        f"{CEILING_NS_PER_ID:.0f} ns/ID sustained. Figures include the benchmark loop, "
        f"{overhead:.0f} ns/call.",
        "",
    ]
    rows = []
    for case in all_cases:
        burst = statistics.median(case.burst_ns)
        ratio = _paired_ratio(case.burst_ns, ref.burst_ns)
        burst_cell = f"{burst:,.1f}" if case.per_call > 1 else _ns(burst)
        if case.sustained:
            sus = _ns(statistics.median(case.sustained_ns))
            sus_ratio = f"{_paired_ratio(case.sustained_ns, ref.sustained_ns):.2f}"
            failed = statistics.median(case.failed)
            fail_cell = f"{failed:.1%}" if failed else "0"
        else:
            sus = sus_ratio = fail_cell = "n/a"
        rows.append((case.label, burst_cell, f"{ratio:.2f}", sus, sus_ratio, fail_cell, case.note))
    lines += markdown_table(
        "implementation | burst ns/ID | burst ratio | sustained ns/ID | sustained ratio "
        "| calls that failed | notes",
        rows,
        align="lrrrrrl",
    )
    medians = {size: statistics.median(rates) for size, rates in batch.items()}
    lines += [
        "",
        f"Batch throughput: `next_ids(size)` back to back for {cfg.batch_s:g} s of wall time "
        f"(median of {cfg.batch_repeats}), one worker, against the layout's ceiling of "
        f"{CEILING_PER_S:,} IDs/s (a run starts in a fresh ms, so it may pass 100 % by up to "
        "one ms's worth):",
        "",
        *markdown_table(
            ("call", "IDs/s", "% of ceiling"),
            [
                (f"`next_ids({size})`", f"{rate:,.0f}", f"{rate / CEILING_PER_S:.1%}")
                for size, rate in medians.items()
            ],
        ),
        "",
        f"Threads: 4 threads sharing one generator vs 1 thread, {cfg.thread_s:g} s each "
        f"(median of {cfg.thread_repeats}, interleaved):",
        "",
    ]
    four_vs_one = [
        statistics.median(f / s for f, s in zip(tc.four, tc.single, strict=True)) for tc in tcases
    ]
    lines += markdown_table(
        ("generator", "1 thread IDs/s", "4 threads IDs/s (total)", "4 threads vs 1"),
        [
            (
                tc.label,
                f"{statistics.median(tc.single):,.0f}",
                f"{statistics.median(tc.four):,.0f}",
                f"{pct:.0%}",
            )
            for tc, pct in zip(tcases, four_vs_one, strict=True)
        ],
    )
    lines += ["", *targets(all_cases, batch, four_vs_one[0])]
    return "\n".join(lines) + "\n"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def targets(all_cases: list[Case], batch: dict[int, list[float]], four_vs_one: float) -> list[str]:
    """Issue 2's three performance targets, judged on this run's figures."""
    ref = next(c for c in all_cases if c.key == REFERENCE)
    seq = next(c for c in all_cases if c.key == "chronoid-seq")
    burst = _paired_ratio(seq.burst_ns, ref.burst_ns)
    sustained = _paired_ratio(seq.sustained_ns, ref.sustained_ns)
    ref_failed = statistics.median(ref.failed)
    batch_pct = statistics.median(batch[CEILING_PER_MS]) / CEILING_PER_S
    return [
        "Targets (issue 2), judged on this run:",
        "",
        f"- `ChronoSequence.next_id()` / snowflake-id `next()` ≤ 1.0, judged on the cost of "
        f"a call (burst): {burst:.2f} {_verdict(burst <= 1.0)}. Sustained, both are held to "
        f"the layout's ceiling of {CEILING_NS_PER_ID:.0f} ns/ID (ratio {sustained:.2f}), "
        f"snowflake-id by failing {ref_failed:.1%} of its calls with `None`.",
        f"- `next_ids({CEILING_PER_MS})` ≥ 95 % of {CEILING_PER_S:,} IDs/s: {batch_pct:.1%} "
        f"{_verdict(batch_pct >= 0.95)}.",
        f"- 4 threads sharing `ChronoSequence` ≥ 50 % of one thread: {four_vs_one:.0%} "
        f"{_verdict(four_vs_one >= 0.5)}.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed (default: random)")
    parser.add_argument(
        "--no-write", action="store_true", help=f"print only; do not write {RESULTS.name}"
    )
    args = parser.parse_args(argv)
    if args.quick:
        cfg = Config(
            rounds=7,
            bursts=3,
            sample_s=0.02,
            batch_s=1.0,
            batch_repeats=2,
            thread_s=0.5,
            thread_repeats=2,
        )
    else:
        cfg = Config(
            rounds=25,
            bursts=5,
            sample_s=0.05,
            batch_s=1.0,
            batch_repeats=5,
            thread_s=1.0,
            thread_repeats=5,
        )
    rng = random.Random(args.seed)
    all_cases = cases()
    print(f"per-ID: {len(all_cases)} implementations x {cfg.rounds} rounds ...", file=sys.stderr)
    overhead = measure_ids(all_cases, cfg, rng)
    print("batch throughput ...", file=sys.stderr)
    batch = measure_batch((CEILING_PER_MS, 65536), cfg, rng)
    print("threads ...", file=sys.stderr)
    tcases = measure_threads(cfg, rng)
    text = render(all_cases, overhead, batch, tcases, cfg, sys.argv[1:])
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
