"""Alembic operations that install and remove chronoid's SQL functions in PostgreSQL.

Import this module in ``env.py`` (or in the migration) and write::

    import chronoid.integrations.alembic  # registers the operations

    def upgrade():
        op.install_chronoid()
        op.create_table("orders", sa.Column("id", ChronoIdType("chrono64s"),
                        primary_key=True, server_default=chronoid_next("chrono64s")))

    def downgrade():
        op.drop_table("orders")
        op.uninstall_chronoid()

``install_chronoid`` runs the same script as ``chronoid pg install`` inside the migration's
transaction (idempotent: an existing install keeps its node, salt and sequences), serialised
against concurrent installs by the same advisory lock. Online migrations only: offline
(``--sql``) output cannot carry the script's ``DO`` block through Alembic's text handling;
use ``chronoid pg sql`` for a SQL file.
"""

from __future__ import annotations

from chronoid.extras import require_extra

require_extra("alembic", "chronoid.integrations.alembic", "alembic", "sqlalchemy")

from typing import Any

from alembic.operations import MigrateOperation, Operations

from chronoid.errors import InvalidArgument
from chronoid.postgres import installer

__all__ = ["InstallChronoidOp", "UninstallChronoidOp"]


def _driver_connection(operations: Operations) -> Any:
    bind = operations.get_bind()
    if bind.dialect.name != "postgresql":
        raise InvalidArgument(
            f"chronoid's SQL functions are for PostgreSQL, not {bind.dialect.name}; on SQLite "
            "use chronoid.integrations.sqlalchemy.register_sqlite_functions(engine)"
        )
    if operations.migration_context.as_sql:
        raise InvalidArgument(
            "install_chronoid runs online only; for --sql output include `chronoid pg sql`"
        )
    # The psycopg connection itself: it runs a multi-statement script in one call, inside
    # the transaction Alembic has open on it.
    return bind.connection.driver_connection


@Operations.register_operation("install_chronoid")
class InstallChronoidOp(MigrateOperation):
    """``op.install_chronoid()``: apply chronoid's install script (idempotent)."""

    def __init__(self) -> None:
        pass

    @classmethod
    def install_chronoid(cls, operations: Operations) -> None:
        """Install ``chronoid_next()`` and friends into the connection's current schema."""
        operations.invoke(cls())

    def reverse(self) -> UninstallChronoidOp:
        return UninstallChronoidOp()


@Operations.register_operation("uninstall_chronoid")
class UninstallChronoidOp(MigrateOperation):
    """``op.uninstall_chronoid(cascade=False)``: drop every chronoid object.

    Without ``cascade`` PostgreSQL refuses while a column default still calls
    ``chronoid_next`` (drop those tables or defaults first).
    """

    def __init__(self, cascade: bool = False) -> None:
        self.cascade = cascade

    @classmethod
    def uninstall_chronoid(cls, operations: Operations, cascade: bool = False) -> None:
        """Remove chronoid's SQL objects from the connection's current schema."""
        operations.invoke(cls(cascade=cascade))

    def reverse(self) -> InstallChronoidOp:
        return InstallChronoidOp()


@Operations.implementation_for(InstallChronoidOp)
def _install(operations: Operations, operation: InstallChronoidOp) -> None:
    # the advisory lock key of `chronoid pg install`: concurrent installs wait for each other
    conn = _driver_connection(operations)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (installer._LOCK_KEY,))
    conn.execute(installer.sql_text())


@Operations.implementation_for(UninstallChronoidOp)
def _uninstall(operations: Operations, operation: UninstallChronoidOp) -> None:
    conn = _driver_connection(operations)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (installer._LOCK_KEY,))
    conn.execute(installer.uninstall_sql_text(cascade=operation.cascade))
