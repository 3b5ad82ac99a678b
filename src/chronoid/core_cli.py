"""``chronoid new``, ``chronoid inspect`` and ``chronoid variants``: the core subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from chronoid.codec import FORMATS, format_id, parse_id
from chronoid.errors import InvalidArgument
from chronoid.generator import MAX_BATCH, Generator
from chronoid.layout import Layout
from chronoid.modes.cli import add_new_arguments, make_mode_batch_source
from chronoid.variants import VARIANTS, get_layout

_CHUNK = 100_000  # IDs printed per write: bounded memory for huge -n


def register(subparsers: Any) -> None:
    """Add the core subcommands to the ``chronoid`` parser."""
    new = subparsers.add_parser(
        "new",
        help="print new IDs, one a line",
        description="Print new time-ordered IDs, one a line.",
    )
    new.add_argument(
        "--variant", default="snowflake", help="layout name (default: snowflake; see `variants`)"
    )
    new.add_argument(
        "--node",
        type=int,
        default=None,
        help="node (worker) ID (default: 0; Mode B: the instance node, default random)",
    )
    new.add_argument(
        "-n", "--count", type=int, default=1, help=f"how many IDs (1..{MAX_BATCH}, default: 1)"
    )
    new.add_argument("--format", choices=FORMATS, default="int", help="output form (default: int)")
    add_new_arguments(new)
    new.set_defaults(handler=_cmd_new)

    inspect = subparsers.add_parser(
        "inspect",
        help="decode an ID into timestamp, node and sequence",
        description="Decode an ID (decimal, 0x-hex or Crockford Base32) into its fields.",
    )
    inspect.add_argument("id", help="the ID: decimal, 0x-prefixed hex or Crockford Base32")
    inspect.add_argument(
        "--variant", default="snowflake", help="layout the ID was made in (default: snowflake)"
    )
    inspect.add_argument(
        "--input-format",
        choices=("auto", *FORMATS),
        default="auto",
        help="how to read ID (default: auto: digits are decimal, 0x is hex, else Base32)",
    )
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.set_defaults(handler=_cmd_inspect)

    variants = subparsers.add_parser(
        "variants",
        help="list every named layout",
        description="List every named layout: bits, precision, epoch, expiry, IDs per tick.",
    )
    variants.add_argument("--markdown", action="store_true", help="print a Markdown table")
    variants.set_defaults(handler=_cmd_variants)


def make_batch_source(args: argparse.Namespace) -> tuple[Layout, Callable[[int], list[int]]]:
    """The layout and a ``batch(n)`` callable that ``chronoid new`` prints from."""
    mode_options = ("mode", "registry", "state_file", "force")
    if any(getattr(args, name, None) not in (None, False) for name in mode_options):
        if args.mode in ("a", "c") and args.node is not None:
            raise InvalidArgument(f"--node does not apply to --mode {args.mode}: it picks its own")
        return make_mode_batch_source(args)
    layout = get_layout(args.variant)
    generator = Generator(layout, args.node if args.node is not None else 0)
    return layout, generator.next_ids


def _cmd_new(args: argparse.Namespace) -> int:
    if not 1 <= args.count <= MAX_BATCH:
        raise InvalidArgument(f"--count must be 1..{MAX_BATCH}, got {args.count}")
    layout, batch = make_batch_source(args)
    remaining = args.count
    out = sys.stdout
    while remaining:
        n = min(remaining, _CHUNK)
        out.write("".join(format_id(v, layout.width, args.format) + "\n" for v in batch(n)))
        remaining -= n
    out.flush()
    return 0


def describe(value: int, layout: Layout) -> dict[str, Any]:
    """The fields of ``value`` as a JSON-ready dict (what ``inspect`` prints)."""
    parts = layout.unpack(value)
    return {
        "id": value,
        "base32": format_id(value, layout.width, "base32"),
        "hex": format_id(value, layout.width, "hex"),
        "variant": layout.name,
        "time": parts.time.isoformat().replace("+00:00", "Z"),
        "timestamp": parts.timestamp,
        "unit": layout.unit.description,
        "node": parts.node,
        "sequence": parts.sequence,
        "bits": layout.bits_label(),
        "expiry": layout.expiry.isoformat().replace("+00:00", "Z"),
    }


def _cmd_inspect(args: argparse.Namespace) -> int:
    layout = get_layout(args.variant)
    value = parse_id(args.id, layout.width, args.input_format)
    fields = describe(value, layout)
    if args.json:
        # The id goes out as a string too: JSON numbers above 2^53 break in JavaScript.
        print(json.dumps({**fields, "id": str(value)}))
    else:
        for key, item in fields.items():
            print(f"{key:<10} {item}")
    return 0


def variant_rows() -> list[dict[str, str]]:
    """One row per named layout, as printed by ``chronoid variants``."""
    rows = []
    for name, layout in VARIANTS.items():
        rows.append(
            {
                "variant": name,
                "width": str(layout.width),
                "signed": "yes" if layout.signed else "no",
                "T/N/S bits": layout.bits_label(),
                "precision": layout.unit.description,
                "epoch": layout.epoch.date().isoformat(),
                "expiry": layout.expiry.date().isoformat(),
                "nodes": f"{layout.max_node + 1:,}",
                "IDs/tick/node": f"{layout.ids_per_tick:,}",
            }
        )
    return rows


def _cmd_variants(args: argparse.Namespace) -> int:
    rows = variant_rows()
    headers = list(rows[0])
    if args.markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "|".join(" --- " for _ in headers) + "|")
        for row in rows:
            print(
                "| " + " | ".join(f"`{v}`" if k == "variant" else v for k, v in row.items()) + " |"
            )
        return 0
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(row[h].ljust(w) for h, w in zip(headers, widths, strict=True)))
    return 0
