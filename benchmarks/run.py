"""Run every ``benchmarks/bench_*.py``, then refresh the README's generated blocks.

    .venv/bin/python benchmarks/run.py [--quick] [--only ids,sequencer,...]

Each benchmark runs as its own subprocess (a crash or a missing server in one does not stop
the others) with ``--quick`` passed through. At the end it lists the benchmarks that failed,
calls ``scripts/update_readme.py`` so the README quotes the fresh ``benchmarks/results/*.md``,
and exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
UPDATE_README = ROOT / "scripts" / "update_readme.py"


def discover() -> dict[str, Path]:
    """Topic name (``ids`` for ``bench_ids.py``) -> script, sorted by name."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCH_DIR.glob("bench_*.py"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run every benchmarks/bench_*.py, then refresh the README tables."
    )
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated topics to run, e.g. ids,sequencer (default: all)",
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="do not run scripts/update_readme.py"
    )
    args = parser.parse_args(argv)

    available = discover()
    if args.only:
        wanted = [t.strip() for t in args.only.split(",") if t.strip()]
        unknown = [t for t in wanted if t not in available]
        if unknown:
            print(
                f"run.py: unknown benchmark(s) {', '.join(unknown)}; "
                f"available: {', '.join(available) or 'none'}",
                file=sys.stderr,
            )
            return 2
        selected = {t: available[t] for t in wanted}
    else:
        selected = available

    outcomes: list[tuple[str, int, float]] = []
    for topic, script in selected.items():
        cmd = [sys.executable, str(script.relative_to(ROOT))]
        if args.quick:
            cmd.append("--quick")
        print(f"\n=== {topic}: {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(cmd, cwd=ROOT)
        outcomes.append((topic, rc, time.monotonic() - t0))

    readme_rc = 0
    if not args.no_readme:
        print(f"\n=== README: {UPDATE_README.relative_to(ROOT)}", flush=True)
        readme_rc = subprocess.call([sys.executable, str(UPDATE_README)], cwd=ROOT)

    print("\n=== summary")
    for topic, rc, seconds in outcomes:
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"{topic:<12} {status:<18} {seconds:6.1f} s")
    failed = [topic for topic, rc, _ in outcomes if rc != 0]
    if failed:
        print(f"failed: {', '.join(failed)}")
    if readme_rc != 0:
        print(f"update_readme.py failed (exit {readme_rc})")
    return 1 if failed or readme_rc != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
