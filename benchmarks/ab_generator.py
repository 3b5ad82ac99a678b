"""A/B of ``chronoid.generator``: the working tree's against a git revision's, in one run.

Run ``.venv/bin/python benchmarks/ab_generator.py [--against REV] [--rounds N]`` before
committing a change to the generator (its hot path must not get slower). Both versions are
loaded into the same process; every round times each case on both, in a shuffled order, on
a manual clock (no waits for the wall clock); a ratio is the median of per-round ratios
(after / before), so load on a shared machine cancels out. Prints Markdown; writes nothing.
An A/A run (``--against`` the working tree's own commit, nothing changed) shows the noise.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import chronoid.generator as after
from chronoid.clock import ManualClock
from environment import markdown_table, measured_line

ROOT = Path(__file__).resolve().parent.parent
CALLS = 200_000


def _load(rev: str, scratch: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:src/chronoid/generator.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = scratch / "generator_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("generator_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed(work: Callable[[], object], ids: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter_ns()
        work()
        return (time.perf_counter_ns() - start) / ids
    finally:
        gc.enable()


def next_id(module: ModuleType, variant: str) -> float:
    """ns per next_id() inside ticks (1,000 calls, then the clock moves one tick)."""
    clock = ManualClock()
    gen = module.Generator(variant, 1, clock=clock)
    call, step, calls = gen.next_id, gen.layout.unit_ns, range(1000)

    def work() -> None:
        for _ in range(CALLS // 1000):
            [call() for _ in calls]
            clock.advance_ns(step)

    return _timed(work, CALLS)


def next_ids(module: ModuleType, variant: str, count: int) -> float:
    """ns per ID of next_ids(count) batches (the clock stands still: batches span ticks)."""
    gen = module.Generator(variant, 1, clock=ManualClock())
    return _timed(lambda: [gen.next_ids(count) for _ in range(CALLS // count)], CALLS)


def new_tick(module: ModuleType, variant: str) -> float:
    """ns per next_id() when every call enters a new tick: the slow path."""
    clock = ManualClock()
    gen = module.Generator(variant, 1, clock=clock)
    call, step, calls = gen.next_id, gen.layout.unit_ns, CALLS // 10

    def work() -> None:
        for _ in range(calls):
            clock.advance_ns(step)
            call()

    return _timed(work, calls)


CASES: dict[str, Callable[[ModuleType], float]] = {
    "next_id, snowflake": lambda m: next_id(m, "snowflake"),
    "next_id, chrono64s": lambda m: next_id(m, "chrono64s"),
    "next_ids(100), chrono64s": lambda m: next_ids(m, "chrono64s", 100),
    "next_ids(5000), snowflake": lambda m: next_ids(m, "snowflake", 5000),
    "next_id entering a new tick, chrono64s": lambda m: new_tick(m, "chrono64s"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--against", default="HEAD", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds (default 21)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        before = _load(args.against, Path(scratch))
    samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in CASES}
    for _ in range(args.rounds):
        for name, case in random.sample(list(CASES.items()), len(CASES)):
            for slot, module in random.sample([(0, before), (1, after)], 2):
                samples[name][slot].append(case(module))
    flags = [f"--against {args.against}", f"--rounds {args.rounds}"]
    print(measured_line("ab_generator.py", flags, f"{args.rounds} interleaved rounds"))
    print()
    rows = [
        (
            name,
            f"{statistics.median(old):,.1f}",
            f"{statistics.median(new):,.1f}",
            f"{statistics.median(n / o for n, o in zip(new, old, strict=True)):.3f}",
        )
        for name, (old, new) in samples.items()
    ]
    header = ("case", f"{args.against} ns/ID", "working tree ns/ID", "after / before")
    print("\n".join(markdown_table(header, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
