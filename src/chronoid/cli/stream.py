"""``chronoid stream``: emit events at aligned boundaries until stopped."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chronoid.errors import InvalidArgument
from chronoid.stream.engine import Engine
from chronoid.stream.event import Frequency
from chronoid.stream.sinks import parse_sink

if TYPE_CHECKING:
    from chronoid.cli import Subparsers


def register(subparsers: Subparsers) -> None:
    """Add ``stream`` to the ``chronoid`` parser."""
    parser = subparsers.add_parser(
        "stream",
        help="emit events at aligned wall-clock boundaries",
        description=(
            "Emit one event per aligned boundary (second, minute, hour or day) as JSON lines "
            "on stdout, to a Redis Stream or to NATS JetStream, until SIGINT/SIGTERM (the "
            "buffer is flushed)."
        ),
    )
    parser.add_argument(
        "--freq",
        action="append",
        choices=[f.label for f in Frequency],
        help="boundary size; repeat for several streams (default: second)",
    )
    parser.add_argument("--tz", default="UTC", help="time zone of day boundaries (default: UTC)")
    parser.add_argument("--instance-id", default="", help="copied into every event")
    parser.add_argument(
        "--sink",
        default="stdout",
        help=(
            "stdout (default), redis://host:port/db?stream=NAME&maxlen=N or "
            "nats://host:port?subject=NAME&stream=NAME (JetStream; the stream is created if "
            "missing). Both store each boundary once and take max_outage_s=S: how long to "
            "keep reconnecting while the server is gone (default 30; events wait in the "
            "buffer)"
        ),
    )
    parser.add_argument(
        "--catch-up",
        action="store_true",
        help="after a forward clock jump, also emit the skipped boundaries, flagged late",
    )
    parser.add_argument(
        "--max-catch-up",
        type=int,
        default=1000,
        help="with --catch-up, at most this many late events per jump (default: 1000)",
    )
    parser.add_argument(
        "--buffer-size", type=int, default=1024, help="events held for the sink (default: 1024)"
    )
    parser.add_argument(
        "--count", type=int, default=None, help="stop after this many events (default: never)"
    )
    parser.set_defaults(
        handler=_cmd_stream,
        flag_names={
            "buffer capacity": "--buffer-size",
            "max_catch_up": "--max-catch-up",
            "max_events": "--count",
        },
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin)"
        ) from None


def _cmd_stream(args: argparse.Namespace) -> int:
    from chronoid.cli import _version

    frequencies = [Frequency.parse(f) for f in (args.freq or ["second"])]
    zone = _zone(args.tz)
    sink = parse_sink(args.sink)
    engine = Engine(
        list(dict.fromkeys(frequencies)),
        [sink],
        zone,
        buffer_size=args.buffer_size,
        catch_up=args.catch_up,
        max_catch_up=args.max_catch_up,
        max_events=args.count,
        producer_version=_version(),
        instance_id=args.instance_id,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, engine.stop)
        stats = await engine.run()
        if stats.dropped:
            print(f"chronoid stream: {stats.dropped} events dropped (buffer full)", file=sys.stderr)

    asyncio.run(main())
    return 0
