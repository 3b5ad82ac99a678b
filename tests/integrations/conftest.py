"""Fixtures for the integration tests: a private PostgreSQL schema per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema in the shared ``test`` database, dropped afterwards (others share it)."""
    name = f"t_integ_{secrets.token_hex(4)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def url_for(pg_dsn: str) -> str:
    """The SQLAlchemy URL for the psycopg 3 driver."""
    return pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
