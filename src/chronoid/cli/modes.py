"""``chronoid capacity``: Mode A duplicate risk, a thin layer over :mod:`chronoid.capacity`."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING

from chronoid.capacity import budget_markdown, capacity, format_report
from chronoid.errors import InvalidArgument

if TYPE_CHECKING:
    from chronoid.cli import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add ``capacity`` to the ``chronoid`` parser."""
    cap = subparsers.add_parser(
        "capacity",
        help="Mode A duplicate risk for a fleet's total throughput",
        description=(
            "Probability of at least one duplicate ID per window, per day and per year for a "
            "Mode A fleet making R IDs/s in total, and the throughput that stays under a "
            "target, for steady counts per window (the exact birthday product) and for "
            "generators at random moments (Poisson counts). It counts IDs, not nodes."
        ),
    )
    cap.add_argument("--variant", help="layout name, e.g. chrono64s")
    cap.add_argument(
        "--ids-per-second",
        type=float,
        help="IDs per second made by the whole fleet together",
    )
    cap.add_argument(
        "--budget-table",
        action="store_true",
        help="print the Markdown table of throughput budgets per layout (what the README quotes)",
    )
    cap.add_argument(
        "--target", type=float, default=1e-3, help="acceptable probability (default: 0.001)"
    )
    cap.add_argument("--json", action="store_true", help="print one JSON object")
    cap.set_defaults(handler=_cmd_capacity)


def _cmd_capacity(args: argparse.Namespace) -> int:
    if args.budget_table:
        print(budget_markdown(args.target), end="")
        return 0
    if args.variant is None or args.ids_per_second is None:
        raise InvalidArgument("capacity needs --variant and --ids-per-second (or --budget-table)")
    report = capacity(args.variant, args.ids_per_second, args.target)
    if args.json:
        fields = dataclasses.asdict(report)
        fields["layout"] = report.layout.name
        fields["arrivals"] = "plain fields: steady counts; random_*: Poisson counts"
        print(json.dumps(fields))
    else:
        print(format_report(report))
    return 0
