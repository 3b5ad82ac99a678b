"""Shared fixtures: the real servers integration tests talk to.

A test that needs PostgreSQL, Redis, etcd or NATS takes the matching fixture. If the server
does not answer, the test fails with the reason (it never skips silently): ``scripts/test.sh``
starts all four. Addresses can be overridden with CHRONOID_TEST_PG_DSN,
CHRONOID_TEST_REDIS_URL, CHRONOID_TEST_ETCD_URL and CHRONOID_TEST_NATS_URL.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from hypothesis import settings

from tests.support import OwnServer, etcd_ready, free_port

# Hypothesis' default 200 ms deadline per example is a timed assertion: on the shared two-core
# machine a pack/unpack example took 287 ms once and failed the run. Speed is measured in
# benchmarks/, so no example has a deadline.
settings.register_profile("chronoid", deadline=None)
settings.load_profile("chronoid")

PG_DSN = os.environ.get("CHRONOID_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CHRONOID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ETCD_URL = os.environ.get("CHRONOID_TEST_ETCD_URL", "http://127.0.0.1:2379")
NATS_URL = os.environ.get("CHRONOID_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _require_port(url: str, what: str) -> None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port
    assert port is not None, url
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        pytest.fail(
            f"{what} is not reachable at {host}:{port} ({exc}); start it with scripts/services.sh",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """DSN of the real PostgreSQL server (fails the test if it is down)."""
    _require_port(PG_DSN, "PostgreSQL")
    return PG_DSN


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis server (fails the test if it is down)."""
    _require_port(REDIS_URL, "Redis")
    return REDIS_URL


@pytest.fixture(scope="session")
def etcd_url() -> str:
    """URL of the real etcd server's HTTP/JSON gateway (fails the test if it is down)."""
    _require_port(ETCD_URL, "etcd")
    return ETCD_URL


@pytest.fixture(scope="session")
def nats_url() -> str:
    """URL of the real NATS server, started with JetStream (fails the test if it is down)."""
    _require_port(NATS_URL, "NATS")
    return NATS_URL


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[tuple[OwnServer, str]]:
    """An etcd of our own on spare ports, data in tmp_path (kept across restarts)."""
    exe = shutil.which("etcd")
    assert exe, "etcd is not installed (Debian package etcd-server)"
    port, peer = free_port(), free_port()
    server = OwnServer(
        [
            exe,
            "--name",
            "chronoid-own",
            "--data-dir",
            str(tmp_path / "etcd-data"),
            "--listen-client-urls",
            f"http://127.0.0.1:{port}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{port}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"chronoid-own=http://127.0.0.1:{peer}",
        ],
        etcd_ready(port),
        tmp_path / "etcd.log",
    )
    server.start()
    yield server, f"etcd://127.0.0.1:{port}"
    server.stop()


SERVER_FIXTURES = frozenset(
    {"pg_dsn", "redis_url", "etcd_url", "nats_url", "registry_url", "make_registry"}
    | {"own_redis", "own_etcd"}
)
"""Fixtures that stand for a real server: a test taking one is an integration test."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One rule for the marker, so a module of mixed tests needs no module-wide one (which
    # would also mark its in-memory tests).
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
