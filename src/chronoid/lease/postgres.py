"""Leases in PostgreSQL (psycopg 3): the Mode C node registry and the sequencer's election
store, written once. Both are thin users of one session and one lease-row discipline, so a
fix to either reaches both leases.

**One session** (:class:`_Session`): a connection with :func:`connect`'s timeouts (every
statement, lock wait and unanswered TCP send fails after ``timeout_s``: a write stuck on a
sick disk or a locked row fails, and its holder steps down instead of holding on), used
under one lock. Every psycopg error becomes one :class:`LeaseStoreUnavailable` line (what
failed, on which store, the error's first line, no password) and drops the connection; the
next call opens a new one and creates the tables again, so a dropped table comes back.

**One lease-row discipline** (:class:`_LeaseRows`): a lease is a row keyed by its slot
(``node``, ``cluster``) whose ``expires_at`` is on the store's ``clock_timestamp()`` only,
so client clocks never decide who holds it. A claim is one ``INSERT ... ON CONFLICT (key) DO
UPDATE ... WHERE expires_at <= clock_timestamp()``: racing claimants serialise on the row and
one wins. Renewal, release and a fenced write's ``FOR SHARE`` lock touch the row only if it
still names the holder's identity and its lease is live (``expires_at >
clock_timestamp()``), so a holder whose lease expired, taken or not, changes nothing (a
taken one finds another identity; an untaken one claims again). A release sets
``expires_at`` to ``-infinity``: free, whatever the store's clock does next.

**Node leases (Mode C).** ``chronoid_node_leases(node, holder, expires_at, last_ns)``: the
identity is ``holder``, a random 128-bit token per claim (NULL when released); ``last_ns`` is
numeric (ns values pass the bigint range in 2262, before many layouts expire). A claim takes
the first free node from a random start, preferring nodes whose ``last_ns`` has passed. Row
``-1`` is the lock-delay's marker: its ``expires_at`` is the time the table's history began,
so a node claimed in a table younger than one TTL (new, or dropped and re-created: rows made
since then prove nothing) waits until that history is one TTL old. Restoring the table from
a backup is a data loss this marker cannot see: wait one TTL before using it.

**Leader lease (sequencer failover).** ``chronoid_seq_leader(cluster, epoch, member, address,
expires_at)``, watermarks in ``chronoid_seq_watermark``. The identity is ``(epoch, member,
address)``; the epoch is the fencing token: ``greatest(epoch + 1, store clock in ms)``, so
epochs grow and a row made again after a data loss starts at the clock, above the lost row's
epochs. A
watermark write locks the lease row ``FOR SHARE`` under the discipline's identity check; a
claim's update of that row waits for the write and a write waits for a claim, so a write of
an old term can never land after a new term has begun. A watermark the term loaded or wrote
is only updated, never inserted again: a row gone under the live term (deleted, its table
dropped and re-created) is the store's data loss (``StoreDataLost``), not a row to refill.

**Why two tables, and mixed fleets.** The tables, columns and their meanings are main's: a
rolling upgrade runs old and new processes on one database, so the format cannot change
(one table would need a key, identity and payload of both shapes). What differs is data,
not discipline: the key's type, how a claim picks its row (a node range, one cluster), the
identity (a random token; an epoch that must also grow, because the sequencer hands it out
as its fencing token) and the payload (``last_ns``; ``member``/``address``). Against old
writers, on the same columns: an old claim also writes only where the lease expired and
replaces the identity (a new token; an epoch above the last), so a new holder's identity no
longer matches once anyone else holds the row; the new checks are the old ones plus more
(a node renewal now also needs a live lease, a leader's also its ``member`` and
``address``), so an old
holder's own checks are as safe as before. A dropped and re-created table cannot give a
paused holder's identity to a newcomer: a node token is random; a new epoch starts at the
store clock in ms, and it could meet an old one only if the database's clock came back to it
(a step back across the loss) or a cluster handed over more often than once per ms, and then
only for the same ``member`` name and advertised ``address``: two members named alike (one
shared ``--member``) still differ there, as they must for their redirects to work.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
import threading
from collections.abc import Sequence
from typing import Any

import psycopg

from chronoid.errors import (
    InvalidArgument,
    LeadershipLost,
    LeaseStoreUnavailable,
    NodeSpaceExhausted,
    StoreDataLost,
)
from chronoid.lease.base import Lease, check_node_range, new_token, node_bounds
from chronoid.redact import redact_dsn

__all__ = ["PostgresCoordinator", "PostgresRegistry", "connect"]

Params = dict[str, object]

_INHERITED: list[Any] = []
"""Connections inherited through fork(), kept referenced so they are never closed here."""


def connect(dsn: str, timeout_s: float, application_name: str) -> psycopg.Connection[Any]:
    """An autocommit connection whose every statement, lock wait and unanswered TCP send
    fails after ``timeout_s`` (a partitioned store fails the call instead of hanging it),
    and whose commits are durable when acknowledged: ``synchronous_commit`` is ``on``
    whatever the database or role sets (``off``, a common speed tuning, acknowledges a
    commit before its WAL is on disk, so a crash of the server takes back leases and
    watermarks already relied on). A server run with ``fsync = off`` cannot keep that.

    Raises:
        LeaseStoreUnavailable: no connection (the message names no password).
    """
    ms = int(timeout_s * 1000)
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(1, round(timeout_s)),
            options=f"-c statement_timeout={ms} -c lock_timeout={ms} -c synchronous_commit=on",
            tcp_user_timeout=ms,
            keepalives_idle=1,
            keepalives_interval=1,
            keepalives_count=2,
            application_name=application_name,
        )
    except psycopg.Error as exc:
        raise LeaseStoreUnavailable(
            redact_dsn(f"cannot connect to PostgreSQL {_safe_dsn(dsn)}: {first_line(exc)}", dsn=dsn)
        ) from exc


class _Session:
    """One connection and the one way to use it (see the module docstring): ``setup`` runs
    on every new connection; a concurrent ``CREATE ... IF NOT EXISTS`` that loses its race
    is ignored (the table exists)."""

    def __init__(
        self,
        dsn: str,
        timeout_s: float,
        description: str,
        setup: Sequence[str],
        application_name: str,
    ) -> None:
        ok = isinstance(timeout_s, int | float) and not isinstance(timeout_s, bool)
        if not (ok and 0 < timeout_s <= 60):
            raise InvalidArgument(f"timeout_s must be in (0, 60] seconds, got {timeout_s!r}")
        self.description = description
        self._dsn = dsn
        self._timeout_s = float(timeout_s)
        self._setup = setup
        self._application_name = application_name
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def run(self, what: str, query: str, params: Params | None = None) -> list[Any]:
        """The rows of ``query`` (none for a statement without a result)."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self._dsn, self._timeout_s, self._application_name)
                    for statement in self._setup:
                        with contextlib.suppress(
                            psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable
                        ):
                            self._conn.execute(statement)
                cursor = self._conn.execute(query, params)
                return cursor.fetchall() if cursor.description is not None else []
            except psycopg.Error as exc:
                self._close()
                raise LeaseStoreUnavailable(
                    redact_dsn(f"{what} on {self.description} failed: {first_line(exc)}")
                ) from exc

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()

    def after_fork(self) -> None:
        """Forget the connection inherited through fork() without closing it: libpq's close
        sends a Terminate message, which would end the parent's session."""
        self._lock = threading.Lock()
        if self._conn is not None:
            _INHERITED.append(self._conn)
        self._conn = None


class _LeaseRows:
    """The lease-row discipline of one table (see the module docstring). Statements name
    the row ``l``; their parameters are named after the columns they compare, ``%(ttl_ms)s``
    is the lease's length from now on the store's clock."""

    def __init__(self, table: str, key: str, identity: tuple[str, ...]) -> None:
        held = " AND ".join(f"l.{column} = %({column})s" for column in (key, *identity))
        self._fields = {
            "table": f'"{table}"',  # a checked lower-case identifier
            "key": key,
            "until": "clock_timestamp() + %(ttl_ms)s * interval '1 millisecond'",
            "free": "l.expires_at <= clock_timestamp()",
            "held": f"{held} AND l.expires_at > clock_timestamp()",
        }

    def statement(self, template: str) -> str:
        """``template`` with ``{table}``, ``{key}``, ``{until}`` (the new expiry), ``{free}``
        and ``{held}`` (the row ``l`` is free / still this holder's) filled in."""
        return template.format(**self._fields)

    def claim(self, rows: str, update: str, returning: str) -> str:
        """Insert ``rows`` (columns, then VALUES or a SELECT); on the key's row, only if its
        lease expired, set ``update`` (a new identity) and the new expiry."""
        return self.statement(
            f"INSERT INTO {{table}} AS l {rows} ON CONFLICT ({{key}}) DO UPDATE SET {update}, "
            f"expires_at = excluded.expires_at WHERE {{free}} RETURNING {returning}"
        )

    def renew(self, also: str = "") -> str:
        return self.statement(
            f"UPDATE {{table}} AS l SET expires_at = {{until}}{also} WHERE {{held}} RETURNING 1"
        )

    def release(self, also: str = "") -> str:
        """Ends the lease at ``-infinity``: free whatever the store's clock does next."""
        return self.statement(
            f"UPDATE {{table}} AS l SET expires_at = '-infinity'{also} WHERE {{held}}"
        )

    def fence(self) -> str:
        """A query that locks the row ``FOR SHARE`` while it is this holder's."""
        return self.statement("SELECT 1 FROM {table} AS l WHERE {held} FOR SHARE")


_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MAX_CLAIM_TRIES = 32

_NODE_SETUP = (
    "CREATE TABLE IF NOT EXISTS {table} (node integer PRIMARY KEY, holder text, "
    "expires_at timestamptz NOT NULL, last_ns numeric(20, 0) NOT NULL DEFAULT 0)",
    # The lock-delay's marker: row -1 (never a node), the time the table's history began.
    "INSERT INTO {table} (node, holder, expires_at, last_ns) "
    "VALUES (-1, NULL, clock_timestamp(), 0) ON CONFLICT (node) DO NOTHING",
)

# The free nodes of lo..hi; a claim takes the first from a random start, preferring nodes
# whose last_ns has passed, and returns the age of the table's history (ms).
_FREE_NODES = """FROM generate_series(%(lo)s::integer, %(hi)s::integer) AS g(n)
LEFT JOIN {table} AS l ON l.node = g.n WHERE l.node IS NULL OR {free}"""
_NODE_CLAIM_ROWS = f"""(node, holder, expires_at, last_ns)
SELECT g.n, %(holder)s, {{until}}, COALESCE(l.last_ns, 0) {_FREE_NODES}
ORDER BY COALESCE(l.last_ns, 0) > %(now)s, (g.n - %(lo)s + %(size)s - %(start)s) %% %(size)s
LIMIT 1"""
_NODE_CLAIMED = """node, last_ns,
EXTRACT(EPOCH FROM clock_timestamp() - (SELECT expires_at FROM {table} WHERE node = -1)) * 1000"""


class PostgresRegistry:
    """Node leases in one PostgreSQL table (created if missing).

    Args:
        dsn: a libpq connection string or URL.
        table: the lease table's name (lower-case identifier, default
            ``chronoid_node_leases``).
        node_range: hand out only nodes ``lo..hi`` (inclusive).
        timeout_s: connect and statement timeout (s), in (0, 60].
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "chronoid_node_leases",
        node_range: tuple[int, int] | None = None,
        timeout_s: float = 3.0,
    ) -> None:
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise InvalidArgument(
                f"table must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, up to 63 "
                f"characters), got {table!r}"
            )
        self._range = check_node_range(node_range)
        self._table_name = table
        rows = self._rows = _LeaseRows(table, "node", ("holder",))
        setup = [rows.statement(statement) for statement in _NODE_SETUP]
        description = f"PostgreSQL {_safe_dsn(dsn)} table {table}"
        self._session = _Session(dsn, timeout_s, description, setup, "chronoid-lease")
        self._claim = rows.claim(_NODE_CLAIM_ROWS, "holder = excluded.holder", _NODE_CLAIMED)
        self._any_free = rows.statement(f"SELECT EXISTS (SELECT 1 {_FREE_NODES})")
        self._renew = rows.renew(", last_ns = GREATEST(l.last_ns, %(last)s)")
        self._release = rows.release(", holder = NULL, last_ns = %(last)s")

    def acquire(self, max_node: int, ttl_ms: int, now_ns: int) -> Lease:
        lo, hi = node_bounds(max_node, self._range)
        size = hi - lo + 1
        token = new_token()
        for _ in range(_MAX_CLAIM_TRIES):
            params = {"lo": lo, "hi": hi, "size": size, "now": now_ns, "holder": token}
            params |= {"start": secrets.randbelow(size), "ttl_ms": ttl_ms}
            rows = self._session.run("node claim", self._claim, params)
            if rows:
                node, last, history_ms = rows[0]
                # Only a history (marker) at least one TTL old vouches for a node: rows made
                # inside a younger one (a claim, a release during a lock-delay) say nothing of
                # a holder from before a loss; a missing marker vouches for nothing.
                age = float(history_ms) if history_ms is not None else 0.0
                settle = max(0, math.ceil(ttl_ms - age))
                return Lease(int(node), token, ttl_ms, int(last), settle_ms=settle)
            if not self._session.run("node claim", self._any_free, params)[0][0]:
                break
        raise NodeSpaceExhausted(
            f"all {size} nodes {lo}..{hi} in PostgreSQL table {self._table_name} are leased"
        )

    def renew(self, lease: Lease, last_ns: int) -> bool:
        params = {"node": lease.node, "holder": lease.token, "ttl_ms": lease.ttl_ms}
        return bool(self._session.run("lease renewal", self._renew, {**params, "last": last_ns}))

    def release(self, lease: Lease, last_ns: int) -> None:
        # Set, not raised: the holder's renewals recorded ahead of what it used.
        last = max(last_ns, lease.not_before_ns)
        params = {"node": lease.node, "holder": lease.token, "last": last}
        self._session.run("lease release", self._release, params)

    def after_fork(self) -> None:
        """Forget the connection inherited through fork() (see :meth:`_Session.after_fork`)."""
        self._session.after_fork()

    def close(self) -> None:
        """Close the connection."""
        self._session.close()

    def __repr__(self) -> str:
        return f"PostgresRegistry(table={self._table_name!r})"


_CLUSTER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

_LEADER = _LeaseRows("chronoid_seq_leader", "cluster", ("epoch", "member", "address"))
_LEADER_SETUP = (
    "CREATE TABLE IF NOT EXISTS chronoid_seq_leader (cluster text PRIMARY KEY, "
    "epoch bigint NOT NULL, member text NOT NULL, address text NOT NULL, "
    "expires_at timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS chronoid_seq_watermark (cluster text NOT NULL, "
    "name text NOT NULL, high bigint NOT NULL, PRIMARY KEY (cluster, name))",
)
# A new term's epoch: the store clock in ms, or one more than the last when that is larger.
_CAMPAIGN = _LEADER.claim(
    "(cluster, epoch, member, address, expires_at) VALUES (%(cluster)s, "
    "(extract(epoch from clock_timestamp()) * 1000)::bigint, %(member)s, %(address)s, {until})",
    "epoch = greatest(l.epoch + 1, excluded.epoch), member = excluded.member, "
    "address = excluded.address",
    "epoch",
)
_LEADER_RENEW = _LEADER.renew()
_RESIGN = _LEADER.release()
_LEADER_ADDRESS = (
    "SELECT address FROM chronoid_seq_leader "
    "WHERE cluster = %(cluster)s AND expires_at > clock_timestamp()"
)
_HOLDS = "SELECT 1 FROM chronoid_seq_watermark WHERE cluster = %(cluster)s LIMIT 1"
_LOAD = "SELECT name, high FROM chronoid_seq_watermark WHERE cluster = %(cluster)s"
_RESERVE = (
    f"WITH term AS ({_LEADER.fence()}) "
    "INSERT INTO chronoid_seq_watermark (cluster, name, high) "
    "SELECT %(cluster)s, %(name)s, %(high)s FROM term "
    "ON CONFLICT (cluster, name) DO UPDATE SET high = excluded.high RETURNING high"
)
# A watermark the term loaded or wrote: updated, never inserted, so a row lost under the
# live term (deleted, its table dropped) is seen, not written back alone (see reserve()).
_RESERVE_STORED = (
    f"WITH term AS ({_LEADER.fence()}), written AS (UPDATE chronoid_seq_watermark "
    "SET high = %(high)s WHERE cluster = %(cluster)s AND name = %(name)s "
    "AND EXISTS (SELECT 1 FROM term) RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM term), EXISTS (SELECT 1 FROM written)"
)


class PostgresCoordinator:
    """Lease and watermarks of cluster ``cluster`` in the database at ``dsn``.

    ``timeout_s`` bounds connecting and every statement. One session serves the elector
    thread (lease) and one the watermark writes, so a slow write never delays a renewal.
    """

    def __init__(self, dsn: str, cluster: str = "default", *, timeout_s: float = 1.0) -> None:
        if not isinstance(cluster, str) or _CLUSTER.fullmatch(cluster) is None:
            raise InvalidArgument(
                f"cluster name must be 1-64 of A-Z a-z 0-9 _ . : -, got {cluster!r}"
            )
        self.cluster = cluster
        self.description = f"PostgreSQL {_safe_dsn(dsn)} cluster {cluster!r}"
        session = (dsn, timeout_s, self.description, _LEADER_SETUP, "chronoid-sequencer")
        self._lease, self._writes = _Session(*session), _Session(*session)
        # The member and address of the terms won: with the epoch, their identity.
        self._member: str | None = None
        self._address: str | None = None
        # The term that loaded last, and the watermarks it loaded or wrote since.
        self._stored: tuple[int, set[str]] = (0, set())
        self._lease.run("table setup", "SELECT 1")  # a bad store fails here

    def _term(self, token: int, **params: object) -> Params:
        identity = {"epoch": token, "member": self._member, "address": self._address}
        return {"cluster": self.cluster, **identity, **params}

    # -- lease (elector thread) ------------------------------------------------------------

    def campaign(self, member: str, address: str, ttl_ms: int) -> int | None:
        params = {"cluster": self.cluster, "member": member, "address": address, "ttl_ms": ttl_ms}
        rows = self._lease.run("campaign", _CAMPAIGN, params)
        if not rows:
            return None
        self._member, self._address = member, address
        return int(rows[0][0])

    def renew(self, token: int, ttl_ms: int) -> None:
        if not self._lease.run("lease renewal", _LEADER_RENEW, self._term(token, ttl_ms=ttl_ms)):
            raise LeadershipLost(
                f"the lease of term {token} has expired or a newer term exists in "
                f"{self.description}"
            )

    def resign(self, token: int) -> None:
        self._lease.run("resignation", _RESIGN, self._term(token))

    def leader(self) -> str | None:
        rows = self._lease.run("leader lookup", _LEADER_ADDRESS, {"cluster": self.cluster})
        return str(rows[0][0]) if rows else None

    def holds_watermarks(self) -> bool:
        return bool(self._lease.run("watermark lookup", _HOLDS, {"cluster": self.cluster}))

    # -- watermarks (loop and reservation threads) -----------------------------------------

    def load(self, token: int) -> dict[str, int]:
        rows = self._writes.run("watermark read", _LOAD, {"cluster": self.cluster})
        marks = {str(name): int(high) for name, high in rows}
        self._stored = (token, set(marks))
        return marks

    def reserve(self, token: int, name: str, high: int) -> None:
        """Store ``high`` under term ``token``'s fence. A watermark the term loaded or wrote
        is only updated: had its row gone under the live term and a write put it back, the
        store would hold the default watermark, a successor's evidence of a complete store,
        without the other sequences, and restart them.

        Raises:
            LeadershipLost: the term is not the live lease.
            StoreDataLost: the row is gone: the store lost data under the live term.
        """
        term, names = self._stored
        params = self._term(token, name=name, high=high)
        if term != token or name not in names:
            if not self._writes.run("watermark write", _RESERVE, params):
                raise self._fenced(token, name, high)
            names.add(name)
            return
        live, written = self._writes.run("watermark write", _RESERVE_STORED, params)[0]
        if not live:
            raise self._fenced(token, name, high)
        if not written:
            raise StoreDataLost(
                f"the store lost its data: watermark of {name!r}, stored in term {token}, is "
                f"gone from {self.description}; which values were handed out is unknown, so "
                "this member issues nothing until every member is restarted with --initial "
                "above the last value handed out"
            )

    def _fenced(self, token: int, name: str, high: int) -> LeadershipLost:
        return LeadershipLost(
            f"fenced: term {token} is no longer the live lease of {self.description}; "
            f"watermark {high} of {name!r} not written"
        )

    def close(self) -> None:
        self._lease.close()
        self._writes.close()


def first_line(exc: BaseException) -> str:
    """The first line of a psycopg error (its detail lines repeat the query)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _safe_dsn(dsn: str) -> str:
    """The DSN without a password, for logs (masked also where a raw ``@`` in the password
    made part of it the host name)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable DSN)"
    host = info.get("host", "localhost")
    port = info.get("port", "5432")
    db = info.get("dbname", "")
    return redact_dsn(f"{host}:{port}/{db}", dsn=dsn)
