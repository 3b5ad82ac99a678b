"""String forms: how fast ``chronoid new --format ...`` can write IDs, before and after.

Run ``.venv/bin/python benchmarks/bench_codec.py [--quick]``. It prints a Markdown table and
writes it to ``benchmarks/results/codec.md``.

Each round formats the same 100,000 ``chrono64s`` IDs once with every encoder, in a shuffled
order; a figure is the median over rounds of ns per ID, and a ratio is the median of the
per-round ratios against ``str(int)`` in the same round (the machine is shared and noisy).
``a95c2b7 base32`` is the per-symbol loop ``encode_base32`` used at commit a95c2b7, kept here
verbatim as the "before" figure; ``python-ulid`` (a peer: Crockford Base32 of 128-bit ULIDs)
is listed for scale, per ID of its own 26-symbol form.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import ulid  # python-ulid

from chronoid import Generator
from chronoid.codec import ALPHABET, encode_base32, format_ids
from environment import markdown_table, measured_line

RESULTS = Path(__file__).resolve().parent / "results" / "codec.md"
COUNT = 100_000


def _a95c2b7_encode_base32(value: int, bits: int = 64) -> str:
    # The loop of a95c2b7's encode_base32, without its argument checks (flattering it).
    chars = []
    for _ in range(-(-bits // 5)):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 15
    values = Generator("chrono64s", node=3).next_ids(COUNT)
    ulids = [ulid.ULID() for _ in range(COUNT)]
    encoders: dict[str, Callable[[], object]] = {
        "str(int) (decimal, baseline)": lambda: list(map(str, values)),
        "format_ids int": lambda: format_ids(values, 64, "int"),
        "format_ids hex": lambda: format_ids(values, 64, "hex"),
        "format_ids base32": lambda: format_ids(values, 64, "base32"),
        "encode_base32 per ID": lambda: [encode_base32(v, 64) for v in values],
        "a95c2b7 base32 (per-symbol loop)": lambda: [_a95c2b7_encode_base32(v) for v in values],
        "python-ulid str(ULID) (26 symbols)": lambda: list(map(str, ulids)),
    }
    samples: dict[str, list[float]] = {name: [] for name in encoders}
    ratios: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(rounds):
        order = list(encoders)
        random.shuffle(order)
        this_round: dict[str, float] = {}
        for name in order:
            gc.disable()
            started = time.perf_counter_ns()
            encoders[name]()
            this_round[name] = (time.perf_counter_ns() - started) / COUNT
            gc.enable()
        base = this_round["str(int) (decimal, baseline)"]
        for name, ns in this_round.items():
            samples[name].append(ns)
            ratios[name].append(ns / base)
    lines = [
        measured_line(
            "bench_codec.py",
            ["--quick"] if args.quick else [],
            f"{COUNT:,} chrono64s IDs × {rounds} rounds",
        ),
        "",
        *markdown_table(
            ("encoder", "ns/ID (median)", "× str(int)"),
            [
                (
                    name,
                    f"{statistics.median(samples[name]):.0f}",
                    f"{statistics.median(ratios[name]):.2f}",
                )
                for name in encoders
            ],
        ),
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
