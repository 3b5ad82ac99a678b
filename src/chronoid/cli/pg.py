"""``chronoid pg install|sql|uninstall``: a thin layer over :mod:`chronoid.postgres.installer`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from chronoid.postgres import installer

if TYPE_CHECKING:
    from chronoid.cli import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add ``chronoid pg`` and its subcommands to the ``chronoid`` parser."""
    pg = subparsers.add_parser(
        "pg",
        help="install chronoid_next() and friends into PostgreSQL (Mode B, no extension)",
        description=(
            "Mode B inside PostgreSQL: a plain SQL script (no C extension) providing "
            "chronoid_next(variant), usable as a column default, and chronoid_decode(id, variant)."
        ),
    )
    commands = pg.add_subparsers(dest="pg_command", metavar="PG_COMMAND", required=True)

    install = commands.add_parser(
        "install",
        help="apply the SQL script in one transaction (idempotent)",
        description="Apply the SQL script in one transaction. Running it again keeps the "
        "install's node, salt and sequences.",
    )
    install.add_argument("--dsn", required=True, help="libpq connection string or URI")
    install.add_argument("--schema", help="schema to install into (default: current schema)")
    install.set_defaults(handler=_cmd_install)

    sql = commands.add_parser(
        "sql",
        help="print the install script (for a migration tool or psql -1 -f)",
        description="Print the install script, or with --uninstall the removal script.",
    )
    sql.add_argument("--uninstall", action="store_true", help="print the removal script")
    sql.set_defaults(handler=_cmd_sql)

    uninstall = commands.add_parser(
        "uninstall",
        help="drop every chronoid object from the schema",
        description="Drop every chronoid object. A later install restarts the sequences with a "
        "new salt, so its IDs may repeat the old install's within one tick.",
    )
    uninstall.add_argument("--dsn", required=True, help="libpq connection string or URI")
    uninstall.add_argument("--schema", help="schema to remove from (default: current schema)")
    uninstall.add_argument(
        "--cascade",
        action="store_true",
        help="also drop column defaults that call chronoid_next",
    )
    uninstall.set_defaults(handler=_cmd_uninstall)


def _cmd_install(args: argparse.Namespace) -> int:
    settings = installer.install(args.dsn, schema=args.schema)
    print(
        f"chronoid SQL version {settings.version} installed in schema {settings.schema} "
        f"(multiplier index {settings.multiplier_index})"
    )
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    text = installer.uninstall_sql_text() if args.uninstall else installer.sql_text()
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def _cmd_uninstall(args: argparse.Namespace) -> int:
    installer.uninstall(args.dsn, schema=args.schema, cascade=args.cascade)
    where = f"schema {args.schema}" if args.schema else "the current schema"
    print(f"chronoid SQL objects removed from {where}")
    return 0
