"""Django: ``ChronoIdField`` and a migration operation that installs chronoid's SQL functions.

``ChronoIdField(variant="chrono64s")`` is a ``bigint`` (``integer`` for 32-bit layouts) that
accepts only IDs of its layout. Two ways to fill it:

* Python side: ``default=IdDefault("chrono64s", registry=...)`` (or ``node=``), a
  deconstructible callable, so ``makemigrations`` writes
  ``chronoid.integrations.defaults.IdDefault('chrono64s', ...)`` and the migration loads; it
  builds its generator in each worker after the fork (see
  :mod:`chronoid.integrations.defaults`). Any database.
* database side (PostgreSQL, Django 5.0+): ``db_default=ChronoNext("chrono64s")`` calls
  ``chronoid_next('chrono64s')`` in the ``INSERT``; Django reads the key back with
  ``RETURNING``. The functions come from :class:`InstallChronoid` in a migration::

      # shop/migrations/0001_chronoid.py  (python manage.py makemigrations shop --empty)
      from django.db import migrations
      from chronoid.integrations.django import InstallChronoid

      class Migration(migrations.Migration):
          operations = [InstallChronoid()]

  The next ``makemigrations`` puts the models in 0002, after it.
"""

from __future__ import annotations

from chronoid.extras import require_extra

require_extra("django", "chronoid.integrations.django", "django")

from typing import Any

from django.db import models
from django.db.migrations.operations.base import Operation

from chronoid.errors import DecodeError, InvalidArgument
from chronoid.integrations.defaults import IdDefault
from chronoid.integrations.ids import check_id, parse_text
from chronoid.layout import Layout
from chronoid.postgres import installer
from chronoid.variants import VariantName, get_layout

__all__ = ["ChronoIdField", "ChronoNext", "IdDefault", "InstallChronoid"]


def _server_variant(variant: str) -> Layout:
    from chronoid.postgres.sqlgen import MODE_B_VARIANTS

    layout = get_layout(variant)
    if layout.name not in MODE_B_VARIANTS:
        raise InvalidArgument(
            f"chronoid_next does not serve {layout.name!r} (unsigned, or fewer than 2^16 IDs "
            f"per tick); allowed: {', '.join(MODE_B_VARIANTS)}"
        )
    return layout


class ChronoNext(models.Func):  # type: ignore[misc]
    """``chronoid_next('variant')`` as a Django expression, for ``db_default=`` (PostgreSQL)."""

    def __init__(self, variant: VariantName, **extra: Any) -> None:
        layout = _server_variant(variant)
        self.function = "chronoid_next32" if layout.width == 32 else "chronoid_next"
        output = models.IntegerField() if layout.width == 32 else models.BigIntegerField()
        super().__init__(models.Value(layout.name), output_field=output, **extra)


class ChronoIdField(models.BigIntegerField):  # type: ignore[misc]
    """An integer field holding IDs of one layout.

    Args:
        variant: a variant name (default ``"chrono64s"``); ``integer`` columns for 32-bit
            layouts, ``bigint`` for 64-bit ones. Unsigned layouts are refused on PostgreSQL
            (and 64-bit ones on SQLite): their IDs pass the signed range.
        Other arguments as for ``BigIntegerField`` (``primary_key``, ``default``,
        ``db_default``, ...).

    Values may be given as ints, decimal strings or fixed-width Crockford Base32 (forms,
    querysets); anything outside the layout raises ``ValidationError`` on ``full_clean()``
    and ``DecodeError`` when saved.
    """

    description = "chronoid ID"

    def __init__(self, *args: Any, variant: VariantName = "chrono64s", **kwargs: Any) -> None:
        self.layout = get_layout(variant)
        self.variant = self.layout.name
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        kwargs["variant"] = self.variant
        return name, "chronoid.integrations.django.ChronoIdField", args, kwargs

    def get_internal_type(self) -> str:
        return (
            "IntegerField" if self.layout.width <= 32 and self.layout.signed else "BigIntegerField"
        )

    def db_type(self, connection: Any) -> Any:
        layout = self.layout
        vendor = connection.vendor
        if not layout.signed and (
            vendor == "postgresql" or (vendor == "sqlite" and layout.width > 32)
        ):
            raise InvalidArgument(
                f"{layout.name} is unsigned: its IDs pass the signed {layout.width}-bit integers "
                f"of {vendor}; use the signed variant {layout.name[1:]!r}"
            )
        return super().db_type(connection)

    def to_python(self, value: Any) -> Any:
        from django.core.exceptions import ValidationError

        if value is None:
            return None
        try:
            if isinstance(value, str):
                return parse_text(self.layout, value)
            return check_id(self.layout, value)
        except DecodeError as exc:
            raise ValidationError(str(exc), code="invalid") from None

    def get_prep_value(self, value: Any) -> Any:
        value = super(models.BigIntegerField, self).get_prep_value(value)  # Field's, no int()
        if value is None or hasattr(value, "resolve_expression"):
            return value
        if isinstance(value, str):
            return parse_text(self.layout, value)
        return check_id(self.layout, value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> int | None:
        return None if value is None else int(value)


class InstallChronoid(Operation):  # type: ignore[misc]
    """A migration operation: install chronoid's SQL functions (PostgreSQL; elsewhere a no-op).

    Runs the script of ``chronoid pg install`` in the migration's transaction (idempotent);
    reversing it drops every chronoid object (PostgreSQL refuses while a column default still
    calls ``chronoid_next``: reverse the models' migration first).
    """

    reversible = True
    reduces_to_sql = True
    atomic = True

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return ("chronoid.integrations.django.InstallChronoid", [], {})

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # no model state: functions, sequences and a config table only

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            # the advisory lock key of `chronoid pg install`: concurrent installs wait
            schema_editor.execute("SELECT pg_advisory_xact_lock(%s)", (installer._LOCK_KEY,))
            schema_editor.execute(installer.sql_text(), None)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(installer.uninstall_sql_text(), None)

    def describe(self) -> str:
        return "Install chronoid's SQL functions (chronoid_next) on PostgreSQL"

    @property
    def migration_name_fragment(self) -> str:
        return "install_chronoid"
