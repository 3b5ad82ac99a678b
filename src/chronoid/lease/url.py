"""Node registries for Mode C: who holds which node, until when, and where the last holder stopped.

Every backend keeps, per node, a lease (a random owner token that expires unless renewed) and
``last_ns``: the first instant (ns since the Unix epoch) at which a later holder may issue IDs
without repeating the previous holder's, i.e. the end of the last tick it used. A holder records
it on every renewal and on release. Backends:

=================================  =====================================================
URL                                backend
=================================  =====================================================
``memory://[name]``                :class:`~chronoid.lease.memory.MemoryRegistry`
``redis://host:port/db``           :class:`~chronoid.lease.redis.RedisRegistry`
``etcd://host:port``               :class:`~chronoid.lease.etcd.EtcdRegistry`
``postgresql://user@host/db``      :class:`~chronoid.lease.postgres.PostgresRegistry`
=================================  =====================================================

Query parameters: ``prefix=`` (Redis key prefix, etcd key prefix), ``table=`` (PostgreSQL
table), ``nodes=LO-HI`` (hand out only nodes LO..HI, e.g. one range per region).
"""

from __future__ import annotations

import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chronoid.errors import InvalidArgument
from chronoid.extras import require_extra
from chronoid.lease.base import (
    Lease,
    NodeRegistry,
    check_node_range,
    new_token,
    node_bounds,
)
from chronoid.redact import redact_dsn

__all__ = [
    "SCHEMES",
    "Lease",
    "NodeRegistry",
    "check_node_range",
    "new_token",
    "node_bounds",
    "parse_registry_url",
]

SCHEMES = ("memory", "redis", "rediss", "etcd", "postgresql", "postgres")
"""URL schemes :func:`parse_registry_url` understands."""

_MEMORY: dict[str, NodeRegistry] = {}
_MEMORY_LOCK = threading.Lock()


def _parse_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        if not sep:
            raise ValueError(text)
        return int(lo), int(hi)
    except ValueError:
        raise InvalidArgument(f"nodes= must be LO-HI (e.g. nodes=0-63), got {text!r}") from None


def parse_registry_url(url: str, *, node_range: tuple[int, int] | None = None) -> NodeRegistry:
    """A node registry from a URL (see the module docstring for the forms).

    ``node_range`` overrides a ``nodes=`` query parameter. Client libraries are imported only
    for the backend asked for.

    Raises:
        InvalidArgument: an unknown scheme or a malformed parameter.
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"a registry URL is a str, got {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidArgument(
            f"unknown registry URL {redact_dsn(url)!r}: use memory://, redis://host:port/db, "
            "etcd://host:port or postgresql://user@host/db"
        )
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    ours = {k: params.pop(k) for k in ("prefix", "table", "nodes") if k in params}
    if node_range is None and "nodes" in ours:
        node_range = _parse_range(ours["nodes"])
    node_range = check_node_range(node_range)
    rest = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(params), parts.fragment))
    if scheme == "memory":
        from chronoid.lease.memory import MemoryRegistry

        name = parts.netloc + parts.path
        with _MEMORY_LOCK:
            registry = _MEMORY.get(name)
            if registry is None:
                registry = _MEMORY[name] = MemoryRegistry(node_range=node_range)
        return registry
    if scheme in ("redis", "rediss"):
        require_extra("redis", "a Redis node registry (Mode C)", "redis")
        from chronoid.lease.redis import RedisRegistry

        return RedisRegistry(rest, prefix=ours.get("prefix", "chronoid:"), node_range=node_range)
    if scheme == "etcd":
        require_extra("etcd", "an etcd node registry (Mode C)", "etcd3gw", "requests")
        from chronoid.lease.etcd import EtcdRegistry

        if parts.hostname is None:
            raise InvalidArgument(f"an etcd URL needs a host, e.g. etcd://127.0.0.1:2379: {url!r}")
        return EtcdRegistry(
            parts.hostname,
            parts.port or 2379,
            prefix=ours.get("prefix", "/chronoid/"),
            node_range=node_range,
        )
    require_extra("postgres", "a PostgreSQL node registry (Mode C)", "psycopg")
    from chronoid.lease.postgres import PostgresRegistry

    return PostgresRegistry(
        rest, table=ours.get("table", "chronoid_node_leases"), node_range=node_range
    )
