"""Fixtures for the PostgreSQL tests: chronoid installed into a throw-away schema."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from chronoid.postgres.installer import InstallSettings, install


@dataclass(frozen=True)
class Installed:
    """A schema holding a fresh chronoid install, and how to reach it."""

    dsn: str
    schema: str
    settings: InstallSettings

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """An autocommit connection whose search_path starts at the install's schema."""
        return psycopg.connect(
            self.dsn, autocommit=True, options=f"-c search_path={self.schema}", **kwargs
        )


def unique_schema(prefix: str = "chronoid_t") -> str:
    """A schema name no other test run uses (the test database is shared)."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def installed(pg_dsn: str) -> Iterator[Installed]:
    """chronoid installed in a schema of its own, dropped after the module's tests."""
    schema = unique_schema()
    try:
        settings = install(pg_dsn, schema=schema)
        yield Installed(pg_dsn, schema, settings)
    finally:
        drop_schema(pg_dsn, schema)


@pytest.fixture()
def conn(installed: Installed) -> Iterator[psycopg.Connection[Any]]:
    with installed.connect() as connection:
        yield connection
