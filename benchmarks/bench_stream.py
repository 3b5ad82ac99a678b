"""How late ChronoStream emits: emit time minus boundary, over real wall-clock seconds.

Runs the real engine (system clock, asyncio) for ``--seconds`` second ticks and reports the
lateness distribution (p50, p99, max) of the moment each event reaches the sink minus the
boundary it stands for. Writes ``benchmarks/results/stream.md``.

    .venv/bin/python benchmarks/bench_stream.py              # 60 s
    .venv/bin/python benchmarks/bench_stream.py --quick      # 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC
from pathlib import Path

from chronoid.stream import Engine, Event, Frequency
from environment import markdown_table, measured_line

RESULTS = Path(__file__).with_name("results") / "stream.md"


class TimingSink:
    """Records emit time minus boundary (ns) for every event."""

    def __init__(self) -> None:
        self.lateness_ns: list[int] = []

    async def write(self, event: Event) -> None:
        self.lateness_ns.append(time.time_ns() - event.timestamp)

    async def close(self) -> None:
        return None


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="second ticks to measure")
    parser.add_argument("--quick", action="store_true", help="10 seconds")
    args = parser.parse_args()
    seconds = 10 if args.quick else args.seconds
    sink = TimingSink()
    engine = Engine([Frequency.SECOND], [sink], UTC, max_events=seconds)
    asyncio.run(engine.run())
    ms = [v / 1e6 for v in sink.lateness_ns]
    table = "\n".join(
        [
            measured_line(
                "bench_stream.py",
                ["--quick"] if args.quick else [],
                f"{len(ms)} second ticks, real clock",
            ),
            "",
            *markdown_table(
                ("emit time − boundary", "ms"),
                [
                    ("p50", f"{statistics.median(ms):.2f}"),
                    ("p99", f"{percentile(sink.lateness_ns, 0.99) / 1e6:.2f}"),
                    ("max", f"{max(ms):.2f}"),
                    ("min", f"{min(ms):.2f}"),
                ],
            ),
        ]
    )
    print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")


if __name__ == "__main__":
    main()
