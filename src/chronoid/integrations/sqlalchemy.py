"""SQLAlchemy 2 column type and defaults for chronoid IDs.

* :class:`ChronoIdType` -- ``BIGINT`` for a 64-bit layout, ``INTEGER`` for a 32-bit one;
  values are checked against the layout on the way in. Unsigned layouts do not fit
  PostgreSQL's signed integers (nor SQLite's, at 64 bits), so they are refused there with a
  clear error when the type is compiled.
* a Python-side default: ``default=IdDefault("chrono64s", registry=...)``
  (:class:`chronoid.integrations.defaults.IdDefault`, safe in forked workers);
* a server-side default: ``server_default=chronoid_next("chrono64s")``, the SQL function that
  ``chronoid pg install`` (or the Alembic operation) puts in PostgreSQL; on SQLite,
  :func:`register_sqlite_functions` provides the same function from Python, so one model
  serves both. Either way the ORM reads the new key back with ``INSERT ... RETURNING``.

Example::

    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    from chronoid.integrations.sqlalchemy import ChronoIdType, chronoid_next

    class Base(DeclarativeBase): ...

    class Order(Base):
        __tablename__ = "orders"
        id: Mapped[int] = mapped_column(
            ChronoIdType("chrono64s"), primary_key=True, server_default=chronoid_next("chrono64s")
        )
"""

from __future__ import annotations

from chronoid.extras import require_extra

require_extra("sqlalchemy", "chronoid.integrations.sqlalchemy", "sqlalchemy")

from typing import Any

from sqlalchemy import BigInteger, Integer, event, text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeDecorator, TypeEngine

from chronoid.errors import DecodeError, InvalidArgument
from chronoid.integrations.defaults import IdDefault
from chronoid.integrations.ids import check_id
from chronoid.layout import Layout
from chronoid.variants import VariantName, get_layout

__all__ = ["ChronoIdType", "IdDefault", "chronoid_next", "register_sqlite_functions"]

_SIGNED_ONLY = ("postgresql", "sqlite")


def _server_variants() -> tuple[str, ...]:
    from chronoid.postgres.sqlgen import MODE_B_VARIANTS

    return MODE_B_VARIANTS


class ChronoIdType(TypeDecorator[int]):
    """An integer column holding IDs of one layout (``BIGINT`` or ``INTEGER`` by its width).

    Args:
        variant: a variant name or a :class:`~chronoid.layout.Layout`.

    Raises:
        UnknownVariant: at construction. InvalidArgument: an unsigned layout on PostgreSQL or
        (64-bit) SQLite, when a statement or DDL is compiled. DecodeError (wrapped by
        SQLAlchemy in ``StatementError``): a bound value that is not an ID of the layout.
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, variant: VariantName | Layout) -> None:
        self.layout = get_layout(variant)
        self.variant = self.layout.name
        super().__init__()

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        layout = self.layout
        if not layout.signed and (
            dialect.name == "postgresql" or (dialect.name in _SIGNED_ONLY and layout.width > 32)
        ):
            raise InvalidArgument(
                f"{layout.name} is unsigned: its IDs reach 2^{layout.width} - 1, past the "
                f"signed {layout.width}-bit integers of {dialect.name}; use the signed "
                f"variant {layout.name[1:]!r}"
            )
        if layout.width <= 31 or (layout.width == 32 and layout.signed):
            return dialect.type_descriptor(Integer())
        return dialect.type_descriptor(BigInteger())

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return check_id(self.layout, value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)

    @property
    def python_type(self) -> type[int]:
        return int

    def __repr__(self) -> str:
        return f"ChronoIdType({self.layout.name!r})"


def chronoid_next(variant: VariantName) -> TextClause:
    """``server_default=`` calling the database's ``chronoid_next(variant)``.

    PostgreSQL gets the function from ``chronoid pg install`` or
    :func:`chronoid.integrations.alembic` (``op.install_chronoid()``); SQLite from
    :func:`register_sqlite_functions`. 32-bit variants call ``chronoid_next32`` (an
    ``integer``).

    Raises:
        InvalidArgument: a variant the SQL function does not serve (unsigned, or too few IDs
        per tick to be safe under concurrent sessions).
    """
    layout = get_layout(variant)
    if layout.name not in _server_variants():
        raise InvalidArgument(
            f"chronoid_next does not serve {layout.name!r} (unsigned, or fewer than 2^16 IDs "
            f"per tick); allowed: {', '.join(_server_variants())}"
        )
    function = "chronoid_next32" if layout.width == 32 else "chronoid_next"
    # Parenthesised: SQLite accepts an expression default only in parentheses.
    return text(f"({function}('{layout.name}'))")


def register_sqlite_functions(
    engine: Engine, *, registry: str | None = None, node: int | None = None
) -> None:
    """Give every SQLite connection of ``engine`` ``chronoid_next()`` and ``chronoid_next32()``.

    The functions draw IDs from one :class:`IdDefault` per variant (``registry`` for Mode C,
    or a fixed ``node``), so a ``server_default=chronoid_next(...)`` column works on SQLite as
    it does on PostgreSQL, ``RETURNING`` included.

    Raises:
        InvalidArgument: ``engine`` is not a SQLite engine.
    """
    if engine.dialect.name != "sqlite":
        raise InvalidArgument(
            f"register_sqlite_functions is for SQLite engines, got {engine.dialect.name}"
        )
    sources: dict[str, IdDefault] = {}

    def source(variant: object) -> IdDefault:
        name = str(variant)
        found = sources.get(name)
        if found is None:
            if name not in _server_variants():
                raise DecodeError(f"chronoid_next does not serve {name!r}")
            found = sources.setdefault(
                name, IdDefault(get_layout(name), registry=registry, node=node)
            )
        return found

    def next64(variant: object) -> int:
        return source(variant)()

    @event.listens_for(engine, "connect")
    def _register(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("chronoid_next", 1, next64)
        dbapi_connection.create_function("chronoid_next32", 1, next64)
