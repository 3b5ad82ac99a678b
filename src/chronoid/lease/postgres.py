"""Node leases in a PostgreSQL table (psycopg 3).

One row per node ever leased: ``node``, ``holder`` (owner token, NULL when free), ``expires_at``
(server time) and ``last_ns`` (numeric: ns values pass the bigint range in 2262, before many
layouts expire). Row ``-1`` is the lock-delay's marker: its ``expires_at`` is the time the
table's history began, so a node claimed in a table younger than one TTL (new, or dropped and
re-created; rows made since then prove nothing) waits until that history is one TTL old. Restoring
the table from a backup is a data loss this marker cannot see: wait one TTL before using it.

A claim is one statement: pick the first free node from a random start
(preferring nodes whose ``last_ns`` has passed) and ``INSERT ... ON CONFLICT (node) DO UPDATE
... WHERE expires_at <= clock_timestamp()``. Two claimants racing for one node serialise on the
row; the loser gets no row back and tries again. Renewal and release are ``UPDATE ... WHERE
holder = token``. Expiry uses the server's clock, so client clocks never decide who holds a
node.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
import threading
from typing import Any

import psycopg
from psycopg import sql

from chronoid.errors import InvalidArgument, NodeSpaceExhausted, RegistryUnavailable
from chronoid.lease.base import Lease, check_node_range, new_token, node_bounds

__all__ = ["PostgresRegistry"]

_INHERITED: list[Any] = []
"""Connections inherited through fork(), kept referenced so they are never closed here."""

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MAX_CLAIM_TRIES = 32

_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    node integer PRIMARY KEY,
    holder text,
    expires_at timestamptz NOT NULL,
    last_ns numeric(20, 0) NOT NULL DEFAULT 0
)
"""

_CLAIM = """
WITH candidate AS (
    SELECT g.n AS node, COALESCE(t.last_ns, 0) AS last_ns
    FROM generate_series(%(lo)s::integer, %(hi)s::integer) AS g(n)
    LEFT JOIN {table} AS t ON t.node = g.n
    WHERE t.node IS NULL OR t.expires_at <= clock_timestamp()
    ORDER BY COALESCE(t.last_ns, 0) > %(now)s, (g.n - %(lo)s + %(size)s - %(start)s) %% %(size)s
    LIMIT 1
)
INSERT INTO {table} AS t (node, holder, expires_at, last_ns)
SELECT node, %(token)s, clock_timestamp() + %(ttl)s * interval '1 millisecond', last_ns
FROM candidate
ON CONFLICT (node) DO UPDATE
    SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE t.expires_at <= clock_timestamp()
RETURNING node, last_ns,
    EXTRACT(EPOCH FROM clock_timestamp() - (SELECT expires_at FROM {table} WHERE node = -1))
        * 1000 AS history_ms
"""

# The lock-delay's marker: row -1 (never a node) holds the time the table's history began.
_MARKER = """
INSERT INTO {table} (node, holder, expires_at, last_ns)
VALUES (-1, NULL, clock_timestamp(), 0)
ON CONFLICT (node) DO NOTHING
"""

_ANY_FREE = """
SELECT EXISTS (
    SELECT 1 FROM generate_series(%(lo)s::integer, %(hi)s::integer) AS g(n)
    LEFT JOIN {table} AS t ON t.node = g.n
    WHERE t.node IS NULL OR t.expires_at <= clock_timestamp()
)
"""

_RENEW = """
UPDATE {table}
SET expires_at = clock_timestamp() + %(ttl)s * interval '1 millisecond',
    last_ns = GREATEST(last_ns, %(last)s)
WHERE node = %(node)s AND holder = %(token)s
RETURNING node
"""

_RELEASE = """
UPDATE {table}
SET holder = NULL, expires_at = '-infinity', last_ns = %(last)s
WHERE node = %(node)s AND holder = %(token)s
"""


class PostgresRegistry:
    """Node leases in one PostgreSQL table (created if missing).

    Args:
        dsn: a libpq connection string or URL.
        table: the lease table's name (lower-case identifier, default
            ``chronoid_node_leases``).
        node_range: hand out only nodes ``lo..hi`` (inclusive).
        timeout_s: connect timeout (s).
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "chronoid_node_leases",
        node_range: tuple[int, int] | None = None,
        timeout_s: float = 3.0,
    ) -> None:
        if not isinstance(table, str) or not _TABLE_NAME.match(table):
            raise InvalidArgument(
                f"table must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, up to 63 "
                f"characters), got {table!r}"
            )
        if not timeout_s > 0:
            raise InvalidArgument(f"timeout_s must be > 0, got {timeout_s!r}")
        self._range = check_node_range(node_range)
        self._dsn = dsn
        self._table = sql.Identifier(table)
        self._table_name = table
        self._timeout = max(1, round(timeout_s))
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _query(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(table=self._table)

    def _execute(self, template: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self._dsn, autocommit=True, connect_timeout=self._timeout
                    )
                    self._create_table(self._conn)
                cursor = self._conn.execute(self._query(template), params)
                return cursor.fetchall() if cursor.description is not None else []
            except psycopg.OperationalError as exc:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise RegistryUnavailable(f"PostgreSQL registry: {exc}".strip()) from exc
            except psycopg.Error as exc:
                raise RegistryUnavailable(f"PostgreSQL registry: {exc}".strip()) from exc

    def _create_table(self, conn: psycopg.Connection[Any]) -> None:
        # Another process may create it at the same moment.
        with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            conn.execute(self._query(_CREATE))
        conn.execute(self._query(_MARKER))

    def acquire(self, max_node: int, ttl_ms: int, now_ns: int) -> Lease:
        lo, hi = node_bounds(max_node, self._range)
        size = hi - lo + 1
        token = new_token()
        for _ in range(_MAX_CLAIM_TRIES):
            params = {
                "lo": lo,
                "hi": hi,
                "size": size,
                "start": secrets.randbelow(size),
                "now": now_ns,
                "token": token,
                "ttl": ttl_ms,
            }
            rows = self._execute(_CLAIM, params)
            if rows:
                node, last, history_ms = rows[0]
                # Only a history (marker) at least one TTL old vouches for a node: rows made
                # inside a younger one (a claim, a release during a lock-delay) say nothing of
                # a holder from before a loss; a missing marker vouches for nothing.
                age = float(history_ms) if history_ms is not None else 0.0
                settle = max(0, math.ceil(ttl_ms - age))
                return Lease(int(node), token, ttl_ms, int(last), settle_ms=settle)
            if not self._execute(_ANY_FREE, {"lo": lo, "hi": hi})[0][0]:
                break
        raise NodeSpaceExhausted(
            f"all {size} nodes {lo}..{hi} in PostgreSQL table {self._table_name} are leased"
        )

    def renew(self, lease: Lease, last_ns: int) -> bool:
        params = {"ttl": lease.ttl_ms, "last": last_ns, "node": lease.node, "token": lease.token}
        return bool(self._execute(_RENEW, params))

    def release(self, lease: Lease, last_ns: int) -> None:
        # Set, not raised: the holder's renewals recorded ahead of what it used.
        last = max(last_ns, lease.not_before_ns)
        params = {"last": last, "node": lease.node, "token": lease.token}
        self._execute(_RELEASE, params)

    def after_fork(self) -> None:
        """Forget the connection inherited through fork() without closing it: libpq's close
        sends a Terminate message, which would end the parent's session."""
        self._lock = threading.Lock()
        if self._conn is not None:
            _INHERITED.append(self._conn)
        self._conn = None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"PostgresRegistry(table={self._table_name!r})"
