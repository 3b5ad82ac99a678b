"""Start-up cost of the ``chronoid`` command: ``new`` and ``inspect`` against the import alone.

Run ``.venv/bin/python benchmarks/bench_cli.py [--quick]``. It prints a Markdown table and
writes it to ``benchmarks/results/cli.md``.

A one-ID command is almost all start-up: the interpreter, ``import chronoid``, building the
parser and importing the command's module. Each round starts every command below once as a
fresh process, in a shuffled order; a figure is the median over rounds of the wall time
(ms), and a ratio is the median of the per-round ratios against ``python -c 'import
chronoid'`` in the same round (the machine is shared and noisy). The goal (issue 20): ``chronoid
new`` and ``chronoid inspect`` at most 1.5 × the import. python-ulid's ``ulid build`` and
``ulid show`` (a peer with the same kind of CLI) run in the same rounds, for scale.

The last column is what ``python -X importtime`` shows each chronoid command importing of
the heavy modules a one-ID command does not need (asyncio, ssl, socket, psycopg, redis,
importlib.metadata); "none" is the point of the lazy command table in ``chronoid.cli``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from environment import markdown_table, measured_line

RESULTS = Path(__file__).resolve().parent / "results" / "cli.md"
BASELINE = "python -c 'import chronoid'"
HEAVY = ("asyncio", "ssl", "socket", "psycopg", "redis", "importlib.metadata")
"""Modules a one-ID command must not import (the last column of the table)."""
AN_ID = "386321955185229824"
A_ULID = "01HZ7X8Q9R0000000000000000"


def _script(name: str) -> str:
    """The console script ``name`` of this interpreter's environment."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"bench_cli: `{name}` is not installed (pip install -e '.[dev]')")
    return found


# What the console script pip writes for `chronoid` runs, for a checkout given by --before.
_CONSOLE_SCRIPT = "import re, sys; from chronoid.cli import main; sys.exit(main())"


def commands(before: Path | None) -> dict[str, list[str]]:
    """Label -> argv, the baseline first; with ``before``, the same commands of the chronoid
    in that checkout (its ``src`` first on ``PYTHONPATH``)."""
    python, chronoid, ulid = sys.executable, _script("chronoid"), _script("ulid")
    if before is not None:
        src = before / "src" if (before / "src" / "chronoid").is_dir() else before
        env = ["env", f"PYTHONPATH={src}"]
        tag = before.name
        old = {
            f"python -c 'import chronoid' ({tag})": [*env, python, "-c", "import chronoid"],
            f"chronoid new ({tag})": [*env, python, "-c", _CONSOLE_SCRIPT, "new"],
            f"chronoid inspect {AN_ID} ({tag})": [
                *env,
                python,
                "-c",
                _CONSOLE_SCRIPT,
                "inspect",
                AN_ID,
            ],
        }
    else:
        old = {}
    return {
        "python -c pass": [python, "-c", "pass"],
        BASELINE: [python, "-c", "import chronoid"],
        "chronoid new": [chronoid, "new"],
        f"chronoid inspect {AN_ID}": [chronoid, "inspect", AN_ID],
        "python -m chronoid new": [python, "-m", "chronoid", "new"],
        "chronoid serve --help": [chronoid, "serve", "--help"],
        "ulid build": [ulid, "build"],
        f"ulid show {A_ULID}": [ulid, "show", A_ULID],
        **old,
    }


def _note(label: str) -> str:
    if label.startswith("ulid "):
        return " (python-ulid)"
    return " (the interpreter alone)" if label == "python -c pass" else ""


def heavy_imports(argv: list[str]) -> str:
    """The modules of :data:`HEAVY` that ``argv`` (a chronoid command) imports."""
    if argv[0] == "env":
        return ""
    if Path(argv[0]).name != "chronoid" and "chronoid" not in argv[1:3]:
        return ""
    runner = [sys.executable, "-X", "importtime"]
    if Path(argv[0]).name == "chronoid":
        runner += ["-c", "import sys; from chronoid.cli import main; sys.exit(main())", *argv[1:]]
    else:
        runner += argv[1:]
    proc = subprocess.run(runner, capture_output=True, text=True, check=True)
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    found = [name for name in HEAVY if name in names]
    return ", ".join(found) if found else "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="also time a checkout of an older commit (e.g. `git archive REV src | tar -x "
        "-C DIR`), ratios against this checkout's import",
    )
    args = parser.parse_args(argv)
    rounds = 10 if args.quick else 40
    runs = commands(args.before)
    for command in runs.values():  # warm the file cache and the .pyc files first
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    started_at = datetime.now(UTC)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    ratios: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        order = list(runs)
        random.shuffle(order)
        this_round: dict[str, float] = {}
        for name in order:
            started = time.perf_counter()
            subprocess.run(runs[name], stdout=subprocess.DEVNULL, check=True)
            this_round[name] = (time.perf_counter() - started) * 1000
        for name, ms in this_round.items():
            samples[name].append(ms)
            ratios[name].append(ms / this_round[BASELINE])
    flags = ["--quick"] if args.quick else []
    if args.before:
        flags += ["--before", str(args.before)]
    lines = [
        measured_line(
            "bench_cli.py",
            flags,
            f"{rounds} rounds, each command a fresh process; goal: `chronoid new` and "
            "`chronoid inspect` ≤ 1.50 × the import",
            at=started_at,
        ),
        "",
        *markdown_table(
            ("command", "ms (median)", f"× `{BASELINE}`", "heavy modules imported"),
            [
                (
                    f"`{name}`{_note(name)}",
                    f"{statistics.median(samples[name]):.1f}",
                    f"{statistics.median(ratios[name]):.2f}",
                    heavy_imports(command),
                )
                for name, command in runs.items()
            ],
            align="lrrl",
        ),
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
