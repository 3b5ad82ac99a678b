"""IDs in JSON as strings: the stdlib encoder, ``json_safe`` and the orjson recipe."""

from __future__ import annotations

import json
import pickle

import orjson
import pytest

from chronoid import Generator, get_layout
from chronoid.errors import InvalidArgument, InvalidNode, UnknownVariant
from chronoid.integrations.defaults import IdDefault
from chronoid.integrations.json import MAX_SAFE_INTEGER, IdEncoder, dumps, json_default, json_safe

ID = Generator("chrono64s", node=1).next_id()


def test_plain_json_loses_the_id_in_javascript() -> None:
    assert ID > MAX_SAFE_INTEGER  # every 64-bit layout is past 2^53 by now
    odd = ID | 1  # an odd int past 2^53 has no exact double
    assert int(float(json.loads(json.dumps({"id": odd}))["id"])) != odd  # what JSON.parse sees


def test_encoder_writes_unsafe_ints_as_strings() -> None:
    payload = {"id": ID, "n": 3, "ok": True, "items": [ID, (ID, -ID)], "neg": -MAX_SAFE_INTEGER}
    expected = {
        "id": str(ID),
        "n": 3,
        "ok": True,
        "items": [str(ID), [str(ID), str(-ID)]],
        "neg": -MAX_SAFE_INTEGER,
    }
    assert json.loads(json.dumps(payload, cls=IdEncoder)) == expected
    assert json.loads(dumps(payload)) == expected
    assert json.loads(dumps(payload, all_ids=True))["n"] == "3"
    assert json.loads(json.dumps(payload, cls=IdEncoder, indent=2)) == expected  # iterencode


def test_id_parts_and_default() -> None:
    parts = get_layout("chrono64s").unpack(ID)
    encoded = json.loads(json.dumps({"parts": parts}, default=json_default))
    assert encoded["parts"]["id"] == str(ID) and encoded["parts"]["variant"] == "chrono64s"
    assert encoded["parts"]["time"].endswith("Z")
    assert json.loads(dumps(parts))["id"] == str(ID)
    with pytest.raises(TypeError, match="set"):
        json.dumps({1, 2}, default=json_default)


def test_orjson_recipe() -> None:
    payload = {"id": ID, "n": 3}
    with pytest.raises(orjson.JSONEncodeError):  # orjson can refuse, not fix
        orjson.dumps(payload, option=orjson.OPT_STRICT_INTEGER)
    assert orjson.loads(orjson.dumps(json_safe(payload))) == {"id": str(ID), "n": 3}


def test_id_default_arguments_and_pickling(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgument, match="not both"):
        IdDefault("chrono64s", registry="memory://", node=1)
    with pytest.raises(InvalidNode, match="node 1048576 is out of range for chrono64s"):
        IdDefault("chrono64s", node=1 << 20)
    with pytest.raises(UnknownVariant):
        IdDefault("chrono64x")  # type: ignore[arg-type]
    monkeypatch.delenv("CHRONOID_REGISTRY_URL", raising=False)
    with pytest.raises(InvalidArgument, match="CHRONOID_REGISTRY_URL"):
        IdDefault("chrono64s")()
    monkeypatch.setenv("CHRONOID_REGISTRY_URL", "memory://t_integ_json")
    from_env = IdDefault("chrono64s")
    assert from_env() < from_env()
    from_env.close()
    fixed = IdDefault("chrono64s", node=4)
    copy = pickle.loads(pickle.dumps(fixed))
    assert copy == fixed and copy.deconstruct() == (
        "chronoid.integrations.defaults.IdDefault",
        ("chrono64s",),
        {"node": 4},
    )
    assert "s3cret" not in repr(IdDefault("chrono64s", registry="redis://u:s3cret@h/0"))
