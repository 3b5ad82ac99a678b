"""The Pydantic v2 type against the real pydantic: inputs, range, JSON/Python output, schema."""

from __future__ import annotations

import json
from typing import Annotated

import pydantic
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from chronoid import Generator, encode_base32, get_layout
from chronoid.errors import InvalidArgument, UnknownVariant
from chronoid.integrations.pydantic import Chrono64sId, ChronoId, SnowflakeId

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
