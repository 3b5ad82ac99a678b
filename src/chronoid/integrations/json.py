"""IDs in JSON as strings, because JavaScript's ``JSON.parse`` rounds integers above 2^53.

Every 64-bit chronoid layout passes 2^53 within days of its epoch, so ``json.dumps({"id": id})``
writes a number a browser reads back as a different ID, silently. ``json.dumps`` never calls
``default=`` for an int, so the fix is an encoder that rewrites unsafe ints before encoding:

* ``json.dumps(payload, cls=IdEncoder)`` or :func:`dumps`: every int outside
  ±(2^53 - 1) becomes its decimal string; smaller ints stay numbers;
* :func:`json_safe` does the same rewrite on a copy, for other encoders (orjson:
  ``orjson.dumps(json_safe(payload))``; orjson's ``OPT_STRICT_INTEGER`` only *refuses* such
  ints);
* :func:`json_default`, for ``default=``: :class:`~chronoid.layout.IdParts` as a dict.

Pass ``all_ids=True`` (or use Pydantic's ``ChronoId`` type) to write every int as a string,
so a client never sees one field change type as the IDs grow.
"""

from __future__ import annotations

import json
from typing import Any

from chronoid.layout import IdParts

__all__ = ["MAX_SAFE_INTEGER", "IdEncoder", "dumps", "json_default", "json_safe"]

MAX_SAFE_INTEGER = 2**53 - 1
"""JavaScript's ``Number.MAX_SAFE_INTEGER``: the largest int JSON carries exactly to a browser."""


def json_safe(value: Any, *, all_ids: bool = False) -> Any:
    """A copy of ``value`` (dicts, lists, tuples walked) with unsafe ints as decimal strings.

    ``all_ids=True`` turns every int into a string; ``bool`` always stays a bool.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if all_ids or not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return str(int(value))
        return value
    if isinstance(value, dict):
        return {key: json_safe(item, all_ids=all_ids) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item, all_ids=all_ids) for item in value]
    if isinstance(value, IdParts):
        return json_safe(json_default(value), all_ids=all_ids)
    return value


def json_default(value: Any) -> Any:
    """For ``json.dumps(default=...)``: an :class:`IdParts` as a dict (the ID as a string).

    Raises:
        TypeError: anything else, as ``json`` expects of a ``default`` function.
    """
    if isinstance(value, IdParts):
        return {
            "id": str(value.id),
            "variant": value.layout.name,
            "time": value.time.isoformat().replace("+00:00", "Z"),
            "timestamp": value.timestamp,
            "node": value.node,
            "sequence": value.sequence,
        }
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class IdEncoder(json.JSONEncoder):
    """A ``json.JSONEncoder`` that writes ints beyond ±(2^53 - 1) as strings (``cls=IdEncoder``).

    Also encodes :class:`IdParts`; anything else unknown goes to ``default=`` as usual.
    """

    def __init__(self, *args: Any, all_ids: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.all_ids = all_ids

    def encode(self, o: Any) -> str:
        return super().encode(json_safe(o, all_ids=self.all_ids))

    def iterencode(self, o: Any, _one_shot: bool = False) -> Any:
        return super().iterencode(json_safe(o, all_ids=self.all_ids), _one_shot)

    def default(self, o: Any) -> Any:
        if isinstance(o, IdParts):
            return json_default(o)
        return super().default(o)


def dumps(value: Any, *, all_ids: bool = False, **kwargs: Any) -> str:
    """``json.dumps`` with :class:`IdEncoder`: ``dumps({"id": gen.next_id()})``."""
    return json.dumps(value, cls=IdEncoder, all_ids=all_ids, **kwargs)
