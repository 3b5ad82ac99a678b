"""One parser for lease store URLs, and the two openers built on it.

=================================  =====================================================
URL                                store
=================================  =====================================================
``memory://[name]``                :class:`~chronoid.lease.memory.MemoryRegistry` (Mode C)
``redis://host:port/db``           :class:`~chronoid.lease.redis.RedisRegistry` (Mode C)
``etcd://host:port[,host:port]``   :class:`~chronoid.lease.etcd.EtcdRegistry`,
                                   :class:`~chronoid.lease.etcd.EtcdCoordinator`
``postgresql://user@host/db``      :class:`~chronoid.lease.postgres.PostgresRegistry`,
                                   :class:`~chronoid.lease.postgres.PostgresCoordinator`
=================================  =====================================================

One query-string rule for every store: ``prefix=`` (Redis and etcd key prefix), ``table=``
(PostgreSQL table of node leases) and ``nodes=LO-HI`` (hand out only nodes LO..HI, e.g. one
range per region) are chronoid's; every other parameter is passed to the client (libpq,
redis-py). etcd endpoints are parsed by :func:`~chronoid.lease.etcd.parse_etcd_endpoints`
(etcd's own ``--endpoints`` forms, IPv6 in brackets, default port 2379).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chronoid.endpoints import parse_etcd_endpoints
from chronoid.errors import InvalidArgument
from chronoid.extras import require_extra
from chronoid.lease.base import Coordinator, NodeRegistry, check_node_range
from chronoid.redact import redact_dsn

__all__ = ["SCHEMES", "StoreUrl", "open_coordinator", "parse_registry_url", "parse_store_url"]

SCHEMES = ("memory", "redis", "rediss", "etcd", "postgresql", "postgres")
"""URL schemes :func:`parse_store_url` understands."""

_OURS = ("prefix", "table", "nodes")

_MEMORY: dict[str, NodeRegistry] = {}
_MEMORY_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed store URL: ``kind`` (``memory``, ``redis``, ``etcd``, ``postgresql``),
    ``client_url`` (the URL without chronoid's parameters, for the client library; the memory
    store's name), ``endpoints`` (etcd's) and chronoid's own parameters ``options``."""

    kind: str
    client_url: str
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)

    def node_range(self) -> tuple[int, int] | None:
        """``nodes=LO-HI`` as ``(lo, hi)``, or None when absent.

        Raises:
            InvalidArgument: not two ints LO-HI with 0 <= LO <= HI.
        """
        text = self.options.get("nodes")
        if text is None:
            return None
        lo, sep, hi = text.partition("-")
        try:
            if not sep:
                raise ValueError(text)
            return check_node_range((int(lo), int(hi)))
        except ValueError:
            raise InvalidArgument(f"nodes= must be LO-HI (e.g. nodes=0-63), got {text!r}") from None


def parse_store_url(url: str) -> StoreUrl:
    """Split a store URL into what the store's client needs and chronoid's own parameters.

    Raises:
        InvalidArgument: not a str, an unknown scheme, or a bad etcd endpoint list.
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"a store URL is a str, got {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise InvalidArgument(
            f"unknown registry URL {redact_dsn(url)!r}: use memory://, redis://host:port/db, "
            "etcd://host:port or postgresql://user@host/db"
        )
    if scheme == "etcd":
        # Not urlsplit: an etcd list may hold several hosts, each as etcd's --endpoints do.
        body, _, query = rest.partition("?")
        options = dict(parse_qsl(query, keep_blank_values=True))
        if set(options) - set(_OURS):
            raise InvalidArgument(
                f"etcd URL {redact_dsn(url)!r}: only prefix= and nodes= may follow the "
                "endpoints, e.g. etcd://127.0.0.1:2379,127.0.0.1:22379?prefix=/mine/"
            )
        try:
            endpoints = parse_etcd_endpoints(body)
        except InvalidArgument as exc:  # it names the endpoint: user:password@ too
            raise InvalidArgument(redact_dsn(str(exc), dsn=url)) from None
        return StoreUrl("etcd", url, endpoints, options)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidArgument(f"bad store URL {redact_dsn(url)!r}: {exc}") from None
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    options = {k: params.pop(k) for k in _OURS if k in params}
    client_url = urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urlencode(params), parts.fragment)
    )
    if scheme == "memory":
        return StoreUrl("memory", parts.netloc + parts.path, options=options)
    kind = "redis" if scheme.startswith("redis") else "postgresql"
    return StoreUrl(kind, client_url, options=options)


def parse_registry_url(url: str, *, node_range: tuple[int, int] | None = None) -> NodeRegistry:
    """A Mode C node registry from a URL (see the module docstring for the forms).

    ``node_range`` overrides a ``nodes=`` query parameter. Client libraries are imported only
    for the backend asked for.

    Raises:
        InvalidArgument: an unknown scheme or a malformed parameter.
    """
    store = parse_store_url(url)
    node_range = check_node_range(node_range) if node_range is not None else store.node_range()
    prefix = store.options.get("prefix")
    if store.kind == "memory":
        from chronoid.lease.memory import MemoryRegistry

        with _MEMORY_LOCK:
            registry = _MEMORY.get(store.client_url)
            if registry is None:
                registry = _MEMORY[store.client_url] = MemoryRegistry(node_range=node_range)
        return registry
    if store.kind == "redis":
        require_extra("redis", "a Redis node registry (Mode C)", "redis")
        from chronoid.lease.redis import RedisRegistry

        return RedisRegistry(store.client_url, prefix=prefix or "chronoid:", node_range=node_range)
    if store.kind == "etcd":
        require_extra("etcd", "an etcd node registry (Mode C)", "etcd3gw", "requests")
        from chronoid.lease.etcd import EtcdRegistry

        return EtcdRegistry(store.endpoints, prefix=prefix or "/chronoid/", node_range=node_range)
    require_extra("postgres", "a PostgreSQL node registry (Mode C)", "psycopg")
    from chronoid.lease.postgres import PostgresRegistry

    table = store.options.get("table", "chronoid_node_leases")
    return PostgresRegistry(store.client_url, table=table, node_range=node_range)


def open_coordinator(url: str, cluster: str, timeout_s: float) -> Coordinator:
    """The sequencer's election store for ``postgresql://...`` or
    ``etcd://host:port[,host:port...]`` (``prefix=`` sets etcd's key prefix).

    Raises:
        InvalidArgument: another scheme, or a bad URL.
    """
    store = parse_store_url(url) if url.startswith(("postgres", "etcd")) else None
    if store is not None and store.kind == "postgresql":
        require_extra("postgres", "serve --ha postgresql://...", "psycopg")
        from chronoid.lease.postgres import PostgresCoordinator

        return PostgresCoordinator(url, cluster, timeout_s=timeout_s)
    if store is not None and store.kind == "etcd":
        require_extra("etcd", "serve --ha etcd://...", "etcd3gw", "requests")
        from chronoid.lease.etcd import EtcdCoordinator

        prefix = store.options.get("prefix", "/chronoid/sequencer/")
        return EtcdCoordinator(store.endpoints, cluster, timeout_s=timeout_s, prefix=prefix)
    raise InvalidArgument(
        "the election store must be a postgresql://... or etcd://host:port[,host:port...] "
        f"URL, got {redact_dsn(url)!r}"
    )
