"""``chronoid capacity`` and the ``--mode`` forms of ``chronoid new``: a thin layer."""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from chronoid.capacity import budget_markdown, capacity, format_report
from chronoid.errors import InvalidArgument
from chronoid.layout import Layout
from chronoid.variants import get_layout

__all__ = ["add_new_arguments", "make_mode_batch_source", "register"]


def register(subparsers: Any) -> None:
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


def add_new_arguments(new: argparse.ArgumentParser) -> None:
    """The ``--mode`` options of ``chronoid new``."""
    new.add_argument(
        "--mode",
        choices=("a", "b", "c"),
        default=None,
        help="ChronoID operating mode: a (random persona), b (instance, see --state-file), "
        "c (node leased from --registry); default: a plain generator on --node",
    )
    new.add_argument(
        "--registry",
        default=None,
        help="Mode C registry URL: redis://host:port/db, etcd://host:port, "
        "postgresql://user@host/db or memory://",
    )
    new.add_argument("--state-file", default=None, help="Mode B durable state file")
    new.add_argument(
        "--force", action="store_true", help="Mode A: accept a variant it calls unsafe"
    )


def make_mode_batch_source(args: argparse.Namespace) -> tuple[Layout, Callable[[int], list[int]]]:
    """The layout and ``batch(n)`` of a Mode A, B or C generator for ``chronoid new``.

    Raises:
        InvalidArgument: options that do not belong to the chosen mode.
    """
    layout = get_layout(args.variant)
    if args.mode != "c" and args.registry is not None:
        raise InvalidArgument("--registry belongs to --mode c")
    if args.mode != "b" and args.state_file is not None:
        raise InvalidArgument("--state-file belongs to --mode b")
    if args.mode != "a" and args.force:
        raise InvalidArgument("--force belongs to --mode a")
    if args.mode == "a":
        from chronoid.modes.persona import PersonaGenerator

        return layout, PersonaGenerator(layout, force=args.force).next_ids
    if args.mode == "b":
        from chronoid.modes.instance import InstanceGenerator

        instance = InstanceGenerator(layout, args.node, state_file=args.state_file)
        atexit.register(instance.close)
        return layout, instance.next_ids
    if args.registry is None:
        raise InvalidArgument("--mode c needs --registry URL (e.g. redis://127.0.0.1:6379/0)")
    from chronoid.lease.url import parse_registry_url
    from chronoid.modes.lease import LeaseGenerator

    leased = LeaseGenerator(layout, parse_registry_url(args.registry))
    atexit.register(leased.close)
    return layout, leased.next_ids
