"""``chronoid new`` (a plain generator or Mode A, B or C), ``chronoid inspect`` and
``chronoid variants``: the ID commands."""

from __future__ import annotations

import argparse
import atexit
import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from chronoid.codec import FORMATS, format_ids, well_formed
from chronoid.errors import ChronoidError, DecodeError, InvalidArgument
from chronoid.generator import MAX_BATCH, Generator
from chronoid.identify import PLAUSIBLE_LEAD_S, Reading, candidates, describe, iso_utc, read
from chronoid.layout import Layout
from chronoid.progress import ProgressLine
from chronoid.variants import VARIANTS, get_layout

if TYPE_CHECKING:
    from chronoid.cli import Subparsers

_CHUNK = 100_000  # IDs printed per write: bounded memory for huge -n
_PROGRESS_AFTER_S = 2.0  # `new` stays silent when it finishes sooner than this
_MAX_LINE_BYTES = 1024  # a stdin line longer than this is no ID: refused unread


def register(subparsers: Subparsers) -> None:
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
    new.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output form: int (default), base32 (13 or 7 symbols) or hex (0x + 16 or 8 digits)",
    )
    new.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per ID, as `inspect --json` prints it (every form, the fields)",
    )
    _add_mode_arguments(new)
    new.set_defaults(handler=_cmd_new)

    inspect = subparsers.add_parser(
        "inspect",
        help="decode IDs into timestamp, node and sequence",
        description=(
            "Decode IDs (decimal, 0x-hex or Crockford Base32) into their fields, one output "
            "line (or JSON object) per ID. Without --variant, list every layout under which "
            f"the ID's time is plausible (not more than {PLAUSIBLE_LEAD_S // 3600} h after "
            "now) instead of guessing one. Auto mode reads ASCII digits as decimal, 0x... as "
            "hex and 13 (64-bit) or 7 (32-bit) symbols as Base32; a string that is valid in "
            "two forms is refused with both readings, except that an all-digit string with a "
            "leading 0 is Base32 (decimal IDs are never written with one)."
        ),
    )
    inspect.add_argument(
        "ids",
        nargs="+",
        metavar="ID",
        help="an ID, or - to read IDs from standard input, one a line (blank lines skipped)",
    )
    inspect.add_argument(
        "--variant",
        default=None,
        help="layout the IDs were made in (default: list every plausible layout)",
    )
    inspect.add_argument(
        "--input-format",
        choices=("auto", *FORMATS),
        default="auto",
        help="how to read IDs (default: auto, see above); a named form also reads hex "
        "without 0x and Base32 shorter than full width",
    )
    inspect.add_argument("--json", action="store_true", help="print one JSON object per ID")
    inspect.set_defaults(handler=_cmd_inspect)

    variants = subparsers.add_parser(
        "variants",
        help="list every named layout",
        description="List every named layout: bits, precision, epoch, expiry, IDs per tick.",
    )
    variants.add_argument("--markdown", action="store_true", help="print a Markdown table")
    variants.add_argument("--json", action="store_true", help="print one JSON object per layout")
    variants.set_defaults(handler=_cmd_variants)


def make_batch_source(args: argparse.Namespace) -> tuple[Layout, Callable[[int], list[int]]]:
    """The layout and a ``batch(n)`` callable that ``chronoid new`` prints from."""
    mode_options = ("mode", "registry", "state_file", "force")
    if any(getattr(args, name, None) not in (None, False) for name in mode_options):
        if args.mode in ("a", "c") and args.node is not None:
            raise InvalidArgument(f"--node does not apply to --mode {args.mode}: it picks its own")
        return _mode_batch_source(args)
    layout = get_layout(args.variant)
    generator = Generator(layout, args.node if args.node is not None else 0)
    return layout, generator.next_ids


def _add_mode_arguments(new: argparse.ArgumentParser) -> None:
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


def _mode_batch_source(args: argparse.Namespace) -> tuple[Layout, Callable[[int], list[int]]]:
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


def _cmd_new(args: argparse.Namespace) -> int:
    if not 1 <= args.count <= MAX_BATCH:
        raise InvalidArgument(f"--count must be 1..{MAX_BATCH}, got {args.count}")
    if args.json and args.format is not None:
        raise InvalidArgument("--json prints every form of each ID; leave out --format")
    layout, batch = make_batch_source(args)
    form = args.format or "int"
    out = sys.stdout
    # Progress only where someone watches it and the IDs do not scroll over it.
    progress = ProgressLine(plain=False, delay_s=_PROGRESS_AFTER_S)
    show = progress.tty and not out.isatty()
    done = 0
    while done < args.count:
        n = min(args.count - done, _CHUNK)
        values = batch(n)
        if args.json:
            lines = [json.dumps(describe(v, layout)) for v in values]
        else:
            lines = format_ids(values, layout.width, form)
        lines.append("")
        out.write("\n".join(lines))
        done += n
        if show:
            progress.update(
                f"chronoid new: {done:,} / {args.count:,} IDs ({done / args.count:.0%})"
            )
    out.flush()
    progress.finish()
    return 0


class _LineTooLong(str):
    """A stdin line cut at ``_MAX_LINE_BYTES``: refused whatever its first bytes say (a cut
    line of 2,000 zeros and a 5 must not read as 0)."""


def _stdin_lines() -> Iterator[str]:
    """Lines of standard input, undecodable bytes kept as surrogates so that the parser
    names them; a line too long to be an ID is cut (and refused) without being held whole."""
    if sys.stdin is None:  # started with standard input closed (`chronoid inspect - <&-`)
        raise InvalidArgument("standard input is closed: nothing to read for '-'")
    stream = sys.stdin.buffer
    while raw := stream.readline(_MAX_LINE_BYTES + 1):
        if len(raw) > _MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := stream.readline(65_536)) and not rest.endswith(b"\n"):
                pass
            yield _LineTooLong(raw[:40].decode("utf-8", "backslashreplace"))
            continue
        yield raw.decode("utf-8", "surrogateescape").rstrip("\r\n")


def _inputs(ids: list[str]) -> Iterator[str]:
    for item in ids:
        if item == "-":
            yield from (line for line in _stdin_lines() if line.strip(" \t"))
        else:
            yield item


def _reading_text(reading: Reading, *, full: bool) -> str:
    parts = reading.parts
    text = f"{parts.layout.name} {iso_utc(parts.time)} node={parts.node} sequence={parts.sequence}"
    if full:
        fields = describe(parts.id, parts.layout)
        text += f" timestamp={parts.timestamp} id={parts.id} base32={fields['base32']}"
        text += f" hex={fields['hex']} form={reading.form}"
    return text


def _cmd_inspect(args: argparse.Namespace) -> int:
    layout = get_layout(args.variant) if args.variant is not None else None
    status = 0
    for text in _inputs(args.ids):
        try:
            if isinstance(text, _LineTooLong):
                raise DecodeError(
                    f"a line of standard input starting {str(text)!r} is longer than "
                    f"{_MAX_LINE_BYTES} bytes: no ID is that long"
                )
            if layout is not None:
                reading = read(text, layout, args.input_format)
                if not reading.plausible:
                    print(
                        f"chronoid: warning: {text.strip()} decodes under {layout.name} to "
                        f"{iso_utc(reading.parts.time)}, more than "
                        f"{PLAUSIBLE_LEAD_S // 3600} h after now: is --variant right?",
                        file=sys.stderr,
                    )
                found = [reading]
            else:
                found = candidates(text, args.input_format)
        except ChronoidError as exc:
            status = 1
            print(f"chronoid: error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"input": well_formed(text), "error": str(exc)}))
            continue
        if args.json:
            if layout is not None:
                print(json.dumps(found[0].to_dict()))
            else:
                print(json.dumps({"input": text, "candidates": [r.to_dict() for r in found]}))
        elif layout is not None:
            print(f"{text.strip()}  {_reading_text(found[0], full=True)}")
        else:
            print(f"{text.strip()}  {_candidates_text(found)}")
        sys.stdout.flush()  # a reader feeding IDs one by one through a pipe gets each answer
    return status


def _candidates_text(found: list[Reading]) -> str:
    forms = {r.form for r in found}
    if len(forms) == 1:
        head = f"read as {found[0].form}; plausible in {len(found)} layouts, newest first: "
        return head + "; ".join(_reading_text(r, full=False) for r in found)
    head = (
        f"read as {' or '.join(sorted(forms))}; plausible in {len(found)} layouts, newest first: "
    )
    return head + "; ".join(f"{_reading_text(r, full=False)} (as {r.form})" for r in found)


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


def variant_record(layout: Layout) -> dict[str, Any]:
    """One layout's figures as typed JSON values (``chronoid variants --json``)."""
    return {
        "variant": layout.name,
        "width": layout.width,
        "signed": layout.signed,
        "timestamp_bits": layout.timestamp_bits,
        "node_bits": layout.node_bits,
        "sequence_bits": layout.sequence_bits,
        "unit": layout.unit_code,
        "precision": layout.unit.description,
        "epoch": iso_utc(layout.epoch),
        "expiry": iso_utc(layout.expiry),
        "nodes": layout.max_node + 1,
        "ids_per_tick_per_node": layout.ids_per_tick,
    }


def _cmd_variants(args: argparse.Namespace) -> int:
    if args.json:
        for layout in VARIANTS.values():
            print(json.dumps(variant_record(layout)))
        return 0
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
