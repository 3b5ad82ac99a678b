"""The ``chronoid`` command: a thin layer over the library.

Every subcommand parses its arguments, calls the library and prints. Errors the library
raises become one line on stderr and a non-zero exit status; no logic lives here that the
library lacks. Each command group has its module in this package (:mod:`~chronoid.cli.ids`,
:mod:`~chronoid.cli.serve`, ...) with a ``register(subparsers)`` function.

A group's module is imported only when one of its commands runs (or for ``chronoid --help``
and an unknown command, which list them all): ``chronoid new`` must not pay for asyncio, ssl
or a database driver it never uses. ``benchmarks/bench_cli.py`` measures it.

Arguments are checked once, by the library, whose messages name the parameter that was
refused (``sites must be in 1..1024, got 0``); a command's ``flag_names`` default maps
parameters to its flags and :func:`main` prints the flag (``--sites must be in 1..1024``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

from chronoid.errors import ChronoidError

if TYPE_CHECKING:
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["build_parser", "flag_message", "main"]

Handler = Callable[[argparse.Namespace], int]


def _ids(subparsers: Subparsers) -> None:
    from chronoid.cli import ids

    ids.register(subparsers)


def _modes(subparsers: Subparsers) -> None:
    from chronoid.cli import modes

    modes.register(subparsers)


def _pg(subparsers: Subparsers) -> None:
    from chronoid.cli import pg

    pg.register(subparsers)


def _serve(subparsers: Subparsers) -> None:
    from chronoid.cli import serve

    serve.register(subparsers)


def _stream(subparsers: Subparsers) -> None:
    from chronoid.cli import stream

    stream.register(subparsers)


def _sim(subparsers: Subparsers) -> None:
    from chronoid.cli import sim

    sim.register(subparsers)


def _torture(subparsers: Subparsers) -> None:
    from chronoid.cli import torture

    torture.register(subparsers)


# Every command, in the order `chronoid --help` lists them, with the group that adds it.
_COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "new": _ids,
    "inspect": _ids,
    "variants": _ids,
    "capacity": _modes,
    "pg": _pg,
    "serve": _serve,
    "probe": _serve,
    "stream": _stream,
    "sim": _sim,
    "torture": _torture,
}


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked (importlib.metadata
    costs more than building the whole parser)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show program's version number and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: with ``command``, only the group that holds that command (what
    :func:`main` runs); otherwise (or for a name no group holds) every subcommand."""
    parser = argparse.ArgumentParser(
        prog="chronoid",
        description="Time-ordered unique IDs and sequences for distributed systems.",
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    only = _COMMANDS.get(command) if command is not None else None
    groups = [only] if only is not None else list(dict.fromkeys(_COMMANDS.values()))
    for register in groups:
        register(subparsers)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option (the top-level
    options, -h and --version, take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def flag_message(message: str, flag_names: Mapping[str, str]) -> str:
    """``message`` with its leading parameter name written as the command's flag: a library
    message about one parameter starts with its name (``sites must be in 1..1024``; a name
    may be two words, ``buffer capacity``)."""
    for name, flag in flag_names.items():
        if message.startswith(f"{name} "):
            return flag + message[len(name) :]
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(arguments))
    args = parser.parse_args(arguments)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ChronoidError as exc:
        flag_names: Mapping[str, str] = getattr(args, "flag_names", {})
        print(f"chronoid: error: {flag_message(str(exc), flag_names)}", file=sys.stderr)
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
