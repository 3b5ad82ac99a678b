"""The ``chronoid`` command: a thin layer over the library.

Every subcommand parses its arguments, calls the library and prints. Errors the library
raises become one line on stderr and a non-zero exit status; no logic lives here that the
library lacks. Subsystems (sequencer, stream, modes, ...) add their own subcommands through
a ``register(subparsers)`` function in their ``cli`` module, listed in ``_SUBCOMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from chronoid.errors import ChronoidError

# Modules that add subcommands: each defines register(subparsers) -> None.
_SUBCOMMAND_MODULES: tuple[str, ...] = (
    "chronoid.cli.ids",
    "chronoid.cli.modes",
    "chronoid.cli.pg",
    "chronoid.cli.serve",
    "chronoid.cli.stream",
    "chronoid.cli.sim",
    "chronoid.cli.torture",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subsystem's subcommands."""
    parser = argparse.ArgumentParser(
        prog="chronoid",
        description="Time-ordered unique IDs and sequences for distributed systems.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _SUBCOMMAND_MODULES:
        module: Any = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ChronoidError as exc:
        print(f"chronoid: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `chronoid new -n 1000000 | head` closes the pipe early; that is not an error.
        # Point stdout at /dev/null so the interpreter's final flush does not complain.
        _silence_stdout()
        return 0
    except OSError as exc:
        # Output that cannot be written (a full disk, /dev/full, EIO) is one line too.
        where = f": {exc.filename}" if exc.filename else " (writing the output?)"
        print(f"chronoid: error: {exc.strerror or exc}{where}", file=sys.stderr)
        try:
            sys.stdout.flush()
        except OSError:
            _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null: its buffer cannot be written, and the interpreter's final
    flush would print a second complaint."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _version() -> str:
    from chronoid.version import package_version

    return package_version()


if __name__ == "__main__":
    sys.exit(main())
