"""``chronoid sim``: run the evidence scenarios and write the report (a thin layer)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chronoid.project import docs_link
from chronoid.sim.model import Context, Verdict
from chronoid.sim.runner import run

if TYPE_CHECKING:
    from chronoid.cli import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add ``chronoid sim`` to the ``chronoid`` parser."""
    sim = subparsers.add_parser(
        "sim",
        help="simulate and benchmark the spec's claims; write report.md and plots",
        description="Run the evidence scenarios (spec 002 §8) and write OUT/report.md with "
        "PNG plots in OUT/plots. Simulated figures are deterministic for a given --seed; "
        "timings vary from run to run (each is repeated, median and min-max reported).",
    )
    sim.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="run only this scenario (repeatable; see --list)",
    )
    sim.add_argument("--list", action="store_true", help="list the scenarios and exit")
    sim.add_argument(
        "--json", action="store_true", help="with --list: one JSON object per scenario"
    )
    sim.add_argument("--out", default="sim-report", help="output directory (default: sim-report)")
    sim.add_argument(
        "--full", action="store_true", help="spec-sized runs (1e9 IDs, 1M rows): much slower"
    )
    sim.add_argument(
        "--seed", type=int, default=Context().seed, help=f"random seed (default {Context().seed})"
    )
    sim.add_argument(
        "--pg-dsn",
        default=Context().pg_dsn,
        help="PostgreSQL for the storage scenarios (default: %(default)s)",
    )
    sim.add_argument(
        "--readme",
        metavar="PATH",
        help="also refresh the verdict table between the sim-summary markers of this README",
    )
    sim.set_defaults(handler=_cmd_sim)


def _cmd_sim(args: argparse.Namespace) -> int:
    try:
        from chronoid.sim.report import summary_markdown, update_readme, write_report
        from chronoid.sim.scenarios import SCENARIOS, get_scenario
    except ImportError as exc:  # the sim extra is optional: say how to get it
        print(
            f"chronoid: error: `chronoid sim` needs numpy and matplotlib ({exc}); "
            "install them with: pip install 'chronoid[sim]'",
            file=sys.stderr,
        )
        return 1

    if args.list and args.json:
        for s in SCENARIOS:
            print(json.dumps({"name": s.name, "summary": s.summary}))
        return 0
    if args.list:
        width = max(len(s.name) for s in SCENARIOS)
        for s in SCENARIOS:
            print(f"{s.name:<{width}}  {s.summary}")
        return 0
    if args.scenario:
        for name in args.scenario:
            get_scenario(name)  # fail before running anything
    ctx = Context(seed=args.seed, full=args.full, pg_dsn=args.pg_dsn)
    started_s = time.perf_counter()
    results = run(args.scenario, ctx)
    elapsed_s = time.perf_counter() - started_s
    command = " ".join(
        [
            "chronoid sim",
            *(f"--scenario {n}" for n in args.scenario or []),
            f"--out {args.out}",
            *(["--full"] if args.full else []),
            *([f"--seed {args.seed}"] if args.seed != Context().seed else []),
            *([f"--readme {args.readme}"] if args.readme else []),
        ]
    )
    path = write_report(
        results, Path(args.out), seed=args.seed, full=args.full, seconds=elapsed_s, command=command
    )
    print(f"wrote {path} ({len(results)} scenarios, {elapsed_s:.0f} s)")
    if args.readme:
        readme = Path(args.readme)
        link = docs_link(path, readme)  # absolute into docs/: the README is read on PyPI
        update_readme(readme, summary_markdown(results, link))
        print(f"refreshed the evidence summary in {readme}")
    status = 0
    for r in results:
        if r.verdict is Verdict.NOT_RUN:
            print(f"chronoid: error: {r.name} not run: {r.reason}", file=sys.stderr)
            status = 1
    return status
