"""Fixtures for the mode tests: registries on the shared servers with per-test namespaces, and
a Redis of our own (on a spare port) for the tests that stop it (etcd's: tests/conftest.py)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
import redis

from chronoid.lease.base import NodeRegistry
from chronoid.lease.url import parse_registry_url
from tests.support import OwnServer, free_port, redis_ready
from tests.support import wait_until as wait_until  # the lease tests import it from here

BACKENDS = ("memory", "redis", "etcd", "postgres")

RegistryFactory = Callable[..., NodeRegistry]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each registry backend in turn."""
    return str(request.param)


def age_history(registry: NodeRegistry) -> NodeRegistry:
    """Give a test namespace a history older than any TTL, as a long-used registry has: its
    never-used nodes are then issued from at once (no lock-delay). Tests of the lock-delay
    itself use namespaces without this."""
    from chronoid.lease.etcd import EtcdRegistry, b64
    from chronoid.lease.postgres import PostgresRegistry
    from chronoid.lease.redis import RedisRegistry

    if isinstance(registry, RedisRegistry):
        registry._client.set(f"{registry._prefix}registry", 0)
    elif isinstance(registry, PostgresRegistry):
        aged = "UPDATE {table} SET expires_at = '2000-01-01' WHERE node = -1"
        registry._session.run("aging", registry._rows.statement(aged))
    elif isinstance(registry, EtcdRegistry):
        registry._etcd.post(
            "/kv/put", {"key": b64(f"{registry._prefix}history/born"), "value": b64("1")}
        )
    return registry


@pytest.fixture
def registry_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A registry URL with a namespace of its own (key prefix or table), cleaned up after; its
    history is aged (see :func:`age_history`)."""
    tag = uuid.uuid4().hex[:12]
    if backend == "memory":
        yield f"memory://test-{tag}"
        return
    if backend == "redis":
        base = request.getfixturevalue("redis_url")
        prefix = f"chronoid-test-{tag}:"
        age_history(parse_registry_url(f"{base}?prefix={prefix}")).close()
        yield f"{base}?prefix={prefix}"
        client = redis.Redis.from_url(base)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
        return
    if backend == "etcd":
        parsed = urlparse(request.getfixturevalue("etcd_url"))
        prefix = f"/chronoid-test/{tag}/"
        url = f"etcd://{parsed.hostname}:{parsed.port}?prefix={prefix}"
        age_history(parse_registry_url(url)).close()
        yield url
        from etcd3gw.client import Etcd3Client

        client = Etcd3Client(str(parsed.hostname), int(parsed.port or 2379), api_path="/v3/")
        client.delete_prefix(prefix)
        return
    dsn = request.getfixturevalue("pg_dsn")
    table = f"chronoid_test_leases_{tag}"
    sep = "&" if "?" in dsn else "?"
    age_history(parse_registry_url(f"{dsn}{sep}table={table}")).close()
    yield f"{dsn}{sep}table={table}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def make_registry(registry_url: str) -> Iterator[RegistryFactory]:
    """``make_registry(node_range=None)``: a new client of the test's registry namespace."""
    made: list[NodeRegistry] = []

    def factory(node_range: tuple[int, int] | None = None) -> NodeRegistry:
        registry = parse_registry_url(registry_url, node_range=node_range)
        made.append(registry)
        return registry

    yield factory
    for registry in made:
        registry.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[OwnServer, str]]:
    """A redis-server of our own on a spare port (no persistence): (server, URL)."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed (scripts/install.sh installs it)"
    port = free_port()
    server = OwnServer(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        redis_ready(port),
        tmp_path / "redis.log",
    )
    server.start()
    yield server, f"redis://127.0.0.1:{port}/0"
    server.stop()
