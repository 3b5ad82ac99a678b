"""Leases in PostgreSQL (psycopg 3): the Mode C node registry and the sequencer's election
store, on one connection helper. Expiry always uses the server's ``clock_timestamp()``, so
client clocks never decide who holds a lease, and every statement has a timeout.

**Node leases (Mode C).** One row per node ever leased: ``node``, ``holder`` (owner token,
NULL when free), ``expires_at`` (server time) and ``last_ns`` (numeric: ns values pass the
bigint range in 2262, before many layouts expire). Row ``-1`` is the lock-delay's marker: its
``expires_at`` is the time the table's history began, so a node claimed in a table younger
than one TTL (new, or dropped and re-created; rows made since then prove nothing) waits until
that history is one TTL old. Restoring the table from a backup is a data loss this marker
cannot see: wait one TTL before using it. A claim is one statement: pick the first free node
from a random start (preferring nodes whose ``last_ns`` has passed) and ``INSERT ... ON
CONFLICT (node) DO UPDATE ... WHERE expires_at <= clock_timestamp()``. Two claimants racing
for one node serialise on the row; the loser gets no row back and tries again. Renewal and
release are ``UPDATE ... WHERE holder = token``.

**Leader lease (sequencer failover).** ``chronoid_seq_leader`` holds one lease row per cluster
(``epoch``, member, advertised address, ``expires_at``) and ``chronoid_seq_watermark`` the
watermarks. A campaign is one ``INSERT ... ON CONFLICT DO UPDATE SET epoch = greatest(epoch +
1, store clock in ms) ... WHERE expires_at <= clock_timestamp()``: racing members serialise on
the row and one wins; a row made again after a data loss starts at the clock, above the lost
row's epochs, so a leader paused across the loss cannot take the new term for its own. A
watermark write locks the lease row ``FOR SHARE`` and writes only if the row still holds this
member's epoch and a live lease. A campaign's update of that row waits for the write and a
write waits for a campaign, so a write of an old epoch can never land after a new term has
begun (fencing), whatever the timing. ``statement_timeout`` = ``timeout_s``: a write stuck on a
sick disk or a locked row fails after that long, and the leader steps down instead of holding
on.
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

from chronoid.errors import (
    InvalidArgument,
    LeadershipLost,
    LeaseStoreUnavailable,
    NodeSpaceExhausted,
)
from chronoid.lease.base import Lease, check_node_range, new_token, node_bounds

__all__ = ["PostgresCoordinator", "PostgresRegistry", "connect"]

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
        timeout_s: connect and statement timeout (s).
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
        self._timeout_s = timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _query(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(table=self._table)

    def _execute(self, template: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self._dsn, self._timeout_s, "chronoid-lease")
                    self._create_table(self._conn)
                cursor = self._conn.execute(self._query(template), params)
                return cursor.fetchall() if cursor.description is not None else []
            except psycopg.OperationalError as exc:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise LeaseStoreUnavailable(f"PostgreSQL registry: {exc}".strip()) from exc
            except psycopg.Error as exc:
                raise LeaseStoreUnavailable(f"PostgreSQL registry: {exc}".strip()) from exc

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


def connect(dsn: str, timeout_s: float, application_name: str) -> psycopg.Connection[Any]:
    """An autocommit connection whose every statement, lock wait and unanswered TCP send
    fails after ``timeout_s`` (a partitioned store fails the call instead of hanging it).

    Raises:
        LeaseStoreUnavailable: no connection (the message names no password).
    """
    ms = int(timeout_s * 1000)
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(1, round(timeout_s)),
            options=f"-c statement_timeout={ms} -c lock_timeout={ms}",
            tcp_user_timeout=ms,
            keepalives_idle=1,
            keepalives_interval=1,
            keepalives_count=2,
            application_name=application_name,
        )
    except psycopg.Error as exc:
        raise LeaseStoreUnavailable(
            f"cannot connect to PostgreSQL {_safe_dsn(dsn)}: {first_line(exc)}"
        ) from exc


_CLUSTER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

_LEADER_CREATE = """
CREATE TABLE IF NOT EXISTS chronoid_seq_leader (
    cluster text PRIMARY KEY,
    epoch bigint NOT NULL,
    member text NOT NULL,
    address text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS chronoid_seq_watermark (
    cluster text NOT NULL,
    name text NOT NULL,
    high bigint NOT NULL,
    PRIMARY KEY (cluster, name)
)
"""

# A new term's epoch is the store clock in ms, or one more than the last when that is larger:
# epochs grow, and a row made again after a data loss does not start again at an epoch a
# paused leader of the lost row still holds (it would take its successor's term for its own).
_CAMPAIGN = """
INSERT INTO chronoid_seq_leader AS l (cluster, epoch, member, address, expires_at)
VALUES (%(cluster)s, (extract(epoch from clock_timestamp()) * 1000)::bigint, %(member)s,
        %(address)s, clock_timestamp() + %(ttl)s * interval '1 millisecond')
ON CONFLICT (cluster) DO UPDATE
    SET epoch = greatest(l.epoch + 1, excluded.epoch), member = excluded.member,
        address = excluded.address, expires_at = excluded.expires_at
    WHERE l.expires_at <= clock_timestamp()
RETURNING epoch
"""

_LEADER_RENEW = """
UPDATE chronoid_seq_leader SET expires_at = clock_timestamp() + %(ttl)s * interval '1 millisecond'
WHERE cluster = %(cluster)s AND epoch = %(epoch)s AND expires_at > clock_timestamp()
RETURNING epoch
"""

_RESIGN = """
UPDATE chronoid_seq_leader SET expires_at = clock_timestamp()
WHERE cluster = %(cluster)s AND epoch = %(epoch)s AND expires_at > clock_timestamp()
"""

_LEADER = """
SELECT address FROM chronoid_seq_leader
WHERE cluster = %(cluster)s AND expires_at > clock_timestamp()
"""

_HOLDS = "SELECT 1 FROM chronoid_seq_watermark WHERE cluster = %(cluster)s LIMIT 1"

_LOAD = "SELECT name, high FROM chronoid_seq_watermark WHERE cluster = %(cluster)s"

_RESERVE = """
WITH term AS (
    SELECT 1 FROM chronoid_seq_leader
    WHERE cluster = %(cluster)s AND epoch = %(epoch)s AND expires_at > clock_timestamp()
    FOR SHARE
)
INSERT INTO chronoid_seq_watermark AS w (cluster, name, high)
SELECT %(cluster)s, %(name)s, %(high)s FROM term
ON CONFLICT (cluster, name) DO UPDATE SET high = excluded.high
RETURNING high
"""


class PostgresCoordinator:
    """Lease and watermarks of cluster ``cluster`` in the database at ``dsn``.

    ``timeout_s`` bounds connecting and every statement. One connection serves the elector
    thread (lease) and one the watermark writes, each behind its own lock, so a slow write
    never delays a renewal.
    """

    def __init__(self, dsn: str, cluster: str = "default", *, timeout_s: float = 1.0) -> None:
        if not isinstance(cluster, str) or _CLUSTER.fullmatch(cluster) is None:
            raise InvalidArgument(
                f"cluster name must be 1-64 of A-Z a-z 0-9 _ . : -, got {cluster!r}"
            )
        if not 0 < timeout_s <= 60:
            raise InvalidArgument(f"timeout must be in (0, 60] seconds, got {timeout_s!r}")
        self.dsn = dsn
        self.cluster = cluster
        self.timeout_s = timeout_s
        self.description = f"PostgreSQL {_safe_dsn(dsn)} cluster {cluster!r}"
        self._lease_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._lease_conn: psycopg.Connection[Any] | None = None
        self._write_conn: psycopg.Connection[Any] | None = None
        with self._lease_lock:
            conn = self._connect_lease()
            try:
                self._run(conn, _LEADER_CREATE, None)
            except LeaseStoreUnavailable:
                # Two members creating the tables at once: one CREATE loses; the tables exist.
                self._run(self._connect_lease(), _LEADER_CREATE, None)

    # -- lease (elector thread) ------------------------------------------------------------

    def campaign(self, member: str, address: str, ttl_ms: int) -> int | None:
        params = {"cluster": self.cluster, "member": member, "address": address, "ttl": ttl_ms}
        with self._lease_lock:
            row = self._run(self._connect_lease(), _CAMPAIGN, params)
        return int(row[0]) if row is not None else None

    def renew(self, token: int, ttl_ms: int) -> None:
        params = {"cluster": self.cluster, "epoch": token, "ttl": ttl_ms}
        with self._lease_lock:
            row = self._run(self._connect_lease(), _LEADER_RENEW, params)
        if row is None:
            raise LeadershipLost(
                f"the lease of term {token} has expired or a newer term exists in "
                f"{self.description}"
            )

    def resign(self, token: int) -> None:
        with self._lease_lock:
            self._run(self._connect_lease(), _RESIGN, {"cluster": self.cluster, "epoch": token})

    def leader(self) -> str | None:
        with self._lease_lock:
            row = self._run(self._connect_lease(), _LEADER, {"cluster": self.cluster})
        return str(row[0]) if row is not None else None

    def holds_watermarks(self) -> bool:
        with self._lease_lock:
            row = self._run(self._connect_lease(), _HOLDS, {"cluster": self.cluster})
        return row is not None

    # -- watermarks (loop and reservation threads) -----------------------------------------

    def load(self, token: int) -> dict[str, int]:
        with self._write_lock:
            conn = self._connect_write()
            try:
                rows = conn.execute(_LOAD, {"cluster": self.cluster}).fetchall()
            except psycopg.Error as exc:
                self._drop_write()
                raise LeaseStoreUnavailable(f"cannot read watermarks: {first_line(exc)}") from exc
        return {str(name): int(high) for name, high in rows}

    def reserve(self, token: int, name: str, high: int) -> None:
        params = {"cluster": self.cluster, "epoch": token, "name": name, "high": high}
        with self._write_lock:
            row = self._run(self._connect_write(), _RESERVE, params, write=True)
        if row is None:
            raise LeadershipLost(
                f"fenced: term {token} is no longer the live lease of {self.description}; "
                f"watermark {high} of {name!r} not written"
            )

    def close(self) -> None:
        for lock, attr in ((self._lease_lock, "_lease_conn"), (self._write_lock, "_write_conn")):
            with lock:
                conn = getattr(self, attr)
                setattr(self, attr, None)
                if conn is not None:
                    conn.close()

    # -- connections -----------------------------------------------------------------------

    def _open(self) -> psycopg.Connection[Any]:
        return connect(self.dsn, self.timeout_s, "chronoid-sequencer")

    def _connect_lease(self) -> psycopg.Connection[Any]:
        if self._lease_conn is None or self._lease_conn.closed:
            self._lease_conn = self._open()
        return self._lease_conn

    def _connect_write(self) -> psycopg.Connection[Any]:
        if self._write_conn is None or self._write_conn.closed:
            self._write_conn = self._open()
        return self._write_conn

    def _drop_write(self) -> None:
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None

    def _run(
        self,
        conn: psycopg.Connection[Any],
        query: str,
        params: dict[str, object] | None,
        *,
        write: bool = False,
    ) -> tuple[Any, ...] | None:
        try:
            cursor = conn.execute(query, params)
            return cursor.fetchone() if cursor.description is not None else None
        except psycopg.Error as exc:
            # A broken or timed-out connection is replaced on the next call.
            conn.close()
            what = "watermark write" if write else "lease statement"
            raise LeaseStoreUnavailable(
                f"{what} on {self.description} failed: {first_line(exc)}"
            ) from exc


def first_line(exc: BaseException) -> str:
    """The first line of a psycopg error (its detail lines repeat the query)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _safe_dsn(dsn: str) -> str:
    """The DSN without a password, for logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable DSN)"
    host = info.get("host", "localhost")
    port = info.get("port", "5432")
    db = info.get("dbname", "")
    return f"{host}:{port}/{db}"
