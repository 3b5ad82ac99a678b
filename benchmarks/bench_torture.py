"""The long torture: ``chronoid torture serve`` (standalone and ``--ha etcd``) and ``chronoid
torture lease``, 10 minutes each.

Each target runs on a seeded random schedule of every fault kind it has (serve: kill -9,
SIGTERM, SIGSTOP, a second server on the data directory, the state file deleted; serve-ha:
kill -9, SIGTERM and SIGSTOP of the leader, etcd paused, killed and cut off from the leader;
lease: SIGSTOP of a Mode C process past its lease, a Mode C process cut off from the registry,
kill -9 of Mode C and Mode B processes, the Redis registry killed and restarted without its
data), several hundred faults per target. Writes ``benchmarks/results/torture.md`` (the
verdict figures of every run) and the timeline plots to ``docs/plots/torture-<target>.png``;
each run's history, verdict and logs stay in ``benchmarks/results/torture-<target>/`` (not
committed).

    .venv/bin/python benchmarks/bench_torture.py                  # 600 s per target (30 min)
    .venv/bin/python benchmarks/bench_torture.py --quick          # 60 s per target
    .venv/bin/python benchmarks/bench_torture.py --chronoid-src /work/wt/old   # another checkout

Exit status 1 if either run found a violation (the table says which).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from chronoid.torture.checker import check
from chronoid.torture.history import parse_lines

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PLOTS = ROOT / "docs" / "plots"


TARGETS = {"serve": ["serve"], "serve-ha": ["serve", "--ha", "etcd"], "lease": ["lease"]}
"""Each run's name and its ``chronoid torture`` arguments."""


def run_target(target: str, seconds: float, seed: int, chronoid_src: str | None) -> dict[str, str]:
    out = RESULTS / f"torture-{target}"
    command = [
        sys.executable, "-m", "chronoid", "torture", *TARGETS[target],
        "--time", f"{seconds:g}", "--seed", str(seed), "--out", str(out),
    ]  # fmt: skip
    if chronoid_src:
        command += ["--chronoid-src", chronoid_src]
    print("$", " ".join(command), flush=True)
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    print(completed.stdout, completed.stderr, sep="", flush=True)
    history_path = out / "history.jsonl"
    if not history_path.exists():
        return {"target": target, "verdict": f"did not run (exit {completed.returncode})"}
    with history_path.open() as handle:
        history = parse_lines(handle)
    verdict = check(history)
    if (out / "timeline.png").exists():
        PLOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "timeline.png", PLOTS / f"torture-{target}.png")
    failed = ", ".join(f"{k} {n}" for k, n in verdict.violation_counts.items()) or "none"
    return {
        "target": target,
        "seconds": f"{seconds:g}",
        "operations": f"{verdict.operations:,}",
        "values checked": f"{verdict.values_checked:,}",
        "faults": f"{sum(verdict.faults_by_kind.values())} ("
        + ", ".join(f"{k} {n}" for k, n in verdict.faults_by_kind.items())
        + ")",
        "largest gap": "-" if verdict.largest_gap is None else f"{verdict.largest_gap:,}",
        "longest unavailability": f"{verdict.longest_unavailable_ns / 1e9:.2f} s",
        "violations": failed,
        "verdict": "PASS" if verdict.ok else "FAIL",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 s per target instead of 600")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per target")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", choices=tuple(TARGETS), default=None)
    parser.add_argument("--chronoid-src", default=None, help="torture this checkout instead")
    args = parser.parse_args(argv)
    seconds = args.seconds or (60.0 if args.quick else 600.0)
    targets = [args.only] if args.only else list(TARGETS)
    rows = [run_target(t, seconds, args.seed, args.chronoid_src) for t in targets]
    columns = list(rows[0])
    for row in rows[1:]:
        columns += [c for c in row if c not in columns]
    lines = [
        "# Torture (`benchmarks/bench_torture.py`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, Python "
        f"{platform.python_version()}, seed {args.seed}"
        + (f", chronoid from {args.chronoid_src}" if args.chronoid_src else "")
        + ". Every fault kind of each target on a seeded random schedule; plots in "
        "`docs/plots/torture-*.png`.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows),
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "torture.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if all(row.get("verdict") == "PASS" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
