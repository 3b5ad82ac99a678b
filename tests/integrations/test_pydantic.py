"""The Pydantic v2 type against the real pydantic: inputs, range, JSON/Python output, schema."""

from __future__ import annotations

import json
from typing import Annotated

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from chronoid import Generator, encode_base32, get_layout
from chronoid.codec import base32_width, decode_base32
from chronoid.errors import InvalidArgument, UnknownVariant
from chronoid.integrations.pydantic import Chrono64sId, ChronoId, SnowflakeId
from chronoid.variants import VARIANTS

S = get_layout("chrono64s")
ID = Generator("chrono64s", node=5).next_id()
B32 = encode_base32(ID, 64)


class Order(BaseModel):
    id: Chrono64sId
    ref: Annotated[int, ChronoId("chrono64s", form="base32")] | None = None
    tenant: Annotated[int, ChronoId("chrono32y")] = 0


@pytest.mark.parametrize("given", [ID, str(ID), B32, B32.lower(), str(ID).zfill(19)])
def test_accepts_int_decimal_and_base32(given: object) -> None:
    assert Order.model_validate({"id": given}).id == ID
    assert Order.model_validate_json(json.dumps({"id": given})).id == ID


@pytest.mark.parametrize(
    "given",
    [
        -1,
        S.max_id + 1,
        True,
        1.0,
        "",
        " 1",
        "1 ",
        "+1",
        "-1",
        "1_000",
        "١٢٣",  # Arabic-Indic digits: isdigit() but not ASCII
        B32[:-1],  # Base32 must be full width
        B32 + "0",
        "ZZZZZZZZZZZZZ",  # 65 bits
        "U" * 13,  # not in Crockford's alphabet
        "9" * 20,
        None,
        [ID],
    ],
)
def test_refuses(given: object) -> None:
    with pytest.raises(ValidationError) as info:
        Order.model_validate({"id": given})
    assert info.value.errors()[0]["loc"] == ("id",)


def test_32_bit_range_is_the_layout() -> None:
    y = get_layout("chrono32y")
    assert Order(id=ID, tenant=y.max_id).tenant == y.max_id
    with pytest.raises(ValidationError, match="chrono32y"):
        Order(id=ID, tenant=y.max_id + 1)


def test_output_is_int_in_python_and_string_in_json() -> None:
    order = Order(id=ID, ref=ID)
    assert order.model_dump() == {"id": ID, "ref": ID, "tenant": 0}
    assert order.model_dump(mode="json") == {"id": str(ID), "ref": B32, "tenant": "0"}
    assert json.loads(order.model_dump_json()) == {"id": str(ID), "ref": B32, "tenant": "0"}
    assert Order.model_validate_json(order.model_dump_json()) == order  # round trip


def test_json_schema() -> None:
    validation = Order.model_json_schema(mode="validation")["properties"]["id"]
    assert validation["anyOf"][0] == {"type": "integer", "minimum": 0, "maximum": S.max_id}
    assert validation["anyOf"][1] == {"type": "string", "pattern": "^[0-9]{1,19}$"}
    assert validation["anyOf"][2]["minLength"] == 13
    serialization = Order.model_json_schema(mode="serialization")["properties"]
    assert serialization["id"]["type"] == "string"
    assert serialization["id"]["pattern"] == "^[0-9]{1,19}$"
    assert serialization["ref"]["anyOf"][0]["maxLength"] == 13  # Optional -> anyOf with null
    assert "chrono64s" in serialization["id"]["description"]


def test_type_adapter_and_snowflake_alias() -> None:
    adapter = TypeAdapter(SnowflakeId)
    assert adapter.validate_python("383045822742265856") == 383045822742265856
    assert adapter.dump_json(383045822742265856) == b'"383045822742265856"'
    assert adapter.json_schema()["title"] == "snowflake ID"


def test_bad_type_arguments_fail_at_definition() -> None:
    with pytest.raises(UnknownVariant):
        ChronoId("chrono64x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="form"):
        ChronoId("chrono64s", form="hex")  # type: ignore[arg-type]


def test_runs_on_pydantic_2() -> None:
    assert pydantic.VERSION.startswith("2.")


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(VARIANTS)),
    form=st.sampled_from(["decimal", "base32"]),
    digits=st.text(alphabet="0123456789", min_size=13, max_size=13),
    fraction=st.floats(min_value=0, max_value=1),
    pick=st.sampled_from(["digits", "random", "max", "zero"]),
)
def test_json_output_reads_back_to_the_same_id_in_every_layout_and_form(
    name: str, form: str, digits: str, fraction: float, pick: str
) -> None:
    """What the field writes in JSON, it reads back: on main at d4e129d a ``form="base32"``
    field wrote ``"0612345678901"`` and read it back as the decimal 612345678901."""
    layout = get_layout(name)
    width = base32_width(layout.width)
    value = {
        "digits": decode_base32(digits[:width], 65, exact_width=False) % (layout.max_id + 1),
        "random": min(int(fraction * layout.max_id), layout.max_id),
        "max": layout.max_id,
        "zero": 0,
    }[pick]
    adapter: TypeAdapter[int] = TypeAdapter(Annotated[int, ChronoId(name, form=form)])
    assert adapter.validate_json(adapter.dump_json(value)) == value


def test_an_all_digit_base32_string_is_base32_in_either_form() -> None:
    layout = get_layout("chrono64ms")
    value = decode_base32("0612345678901", 64)
    for form in ("decimal", "base32"):
        adapter: TypeAdapter[int] = TypeAdapter(Annotated[int, ChronoId(layout, form=form)])
        assert adapter.validate_python("0612345678901") == value  # as `chronoid inspect` reads it
        assert adapter.validate_python("1234567890123") == (
            1234567890123 if form == "decimal" else decode_base32("1234567890123", 64)
        )
