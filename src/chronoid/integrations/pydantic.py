"""Pydantic v2 types for chronoid IDs: ``Annotated[int, ChronoId("chrono64s")]``.

A field of this type accepts an int, a decimal string or fixed-width Crockford Base32 (see
:func:`chronoid.integrations.ids.parse_text` for the strict rules), checks that the value fits
the layout, and serialises to an int in Python mode and to a string in JSON mode: 64-bit IDs
pass 2^53 within days of their epoch, and JavaScript's ``JSON.parse`` rounds such numbers
silently. The JSON schema says the same (a string with its pattern; on input also an integer).

Example::

    from typing import Annotated
    from pydantic import BaseModel
    from chronoid.integrations.pydantic import ChronoId

    class Order(BaseModel):
        id: Annotated[int, ChronoId("chrono64s")]
        parent: Annotated[int, ChronoId("chrono64s", form="base32")] | None = None
"""

from __future__ import annotations

from chronoid.extras import require_extra

require_extra("pydantic", "chronoid.integrations.pydantic", "pydantic")

from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from chronoid.codec import base32_width
from chronoid.errors import DecodeError
from chronoid.integrations.ids import (
    TextForm,
    check_form,
    check_id,
    format_text,
    layout_of,
    parse_text,
)
from chronoid.layout import Layout
from chronoid.variants import SNOWFLAKE, VariantName

__all__ = ["Chrono64sId", "ChronoId", "SnowflakeId"]

# Crockford's alphabet, either case, with the letters it reads as digits (I L O).
_BASE32_CLASS = "[0-9A-HJKMNP-TV-Za-hjkmnp-tv-zIiLlOo]"


class ChronoId:
    """Pydantic metadata that makes an ``int`` field an ID of one layout.

    Args:
        variant: a variant name (``"chrono64s"``) or a :class:`~chronoid.layout.Layout`.
        form: the string form in JSON: ``"decimal"`` (default) or ``"base32"``. Both forms
            are accepted on input whichever is chosen.

    Raises:
        UnknownVariant, InvalidArgument: an unknown variant or form (when the type is made).
    """

    __slots__ = ("form", "layout")

    def __init__(self, variant: VariantName | Layout, *, form: TextForm = "decimal") -> None:
        self.layout: Layout = layout_of(variant)
        self.form: TextForm = check_form(form)

    def __repr__(self) -> str:
        return f"ChronoId({self.layout.name!r}, form={self.form!r})"

    def _validate(self, value: Any) -> int:
        try:
            if isinstance(value, str):
                return parse_text(self.layout, value, self.form)
            return check_id(self.layout, value)
        except DecodeError as exc:
            raise PydanticCustomError("chronoid_id", "{reason}", {"reason": str(exc)}) from None

    def _serialize(self, value: int, info: core_schema.SerializationInfo) -> int | str:
        return format_text(self.layout, value, self.form) if info.mode_is_json() else value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                self._serialize, info_arg=True
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        layout = self.layout
        digits = len(str(layout.max_id))
        decimal = {"type": "string", "pattern": f"^[0-9]{{1,{digits}}}$"}
        base32 = {
            "type": "string",
            "pattern": f"^{_BASE32_CLASS}{{{base32_width(layout.width)}}}$",
            "minLength": base32_width(layout.width),
            "maxLength": base32_width(layout.width),
        }
        info = {
            "title": f"{layout.name} ID",
            "description": (
                f"A chronoid {layout.name} ID ({layout.width}-bit, "
                f"{layout.bits_label()} bits, 0..{layout.max_id}), written as "
                + ("decimal digits" if self.form == "decimal" else "Crockford Base32")
                + " in JSON."
            ),
        }
        if handler.mode == "serialization":
            return {**info, **(decimal if self.form == "decimal" else base32)}
        integer = {"type": "integer", "minimum": 0, "maximum": layout.max_id}
        return {**info, "anyOf": [integer, decimal, base32]}


SnowflakeId = Annotated[int, ChronoId(SNOWFLAKE)]
"""A Snowflake ID (``ChronoSequence``), a decimal string in JSON."""

Chrono64sId = Annotated[int, ChronoId("chrono64s")]
"""A ``chrono64s`` ID, a decimal string in JSON."""
