"""The sequencer's leader lease and fenced watermarks in PostgreSQL (psycopg 3).

Two tables, created on first use: ``chronoid_seq_leader`` holds one lease row per cluster
(``epoch``, member, advertised address, ``expires_at`` in server time) and
``chronoid_seq_watermark`` the watermarks. Every check uses the server's
``clock_timestamp()``, so member clocks never decide who leads.

* A campaign is one ``INSERT ... ON CONFLICT DO UPDATE SET epoch = epoch + 1 ... WHERE
  expires_at <= clock_timestamp()``: racing members serialise on the row and one wins.
* A watermark write locks the lease row ``FOR SHARE`` and writes only if the row still holds
  this member's epoch and a live lease. A campaign's update of that row waits for the write and
  a write waits for a campaign, so a write of an old epoch can never land after a new term has
  begun (fencing), whatever the timing.
* Every statement has ``statement_timeout`` = ``timeout``: a write stuck on a sick disk or a
  locked row fails after that long, and the leader steps down instead of holding on.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import psycopg

from chronoid.errors import InvalidArgument, LeadershipLost, StoreUnavailable

__all__ = ["PostgresCoordinator"]

_CLUSTER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

_CREATE = """
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

_CAMPAIGN = """
INSERT INTO chronoid_seq_leader AS l (cluster, epoch, member, address, expires_at)
VALUES (%(cluster)s, 1, %(member)s, %(address)s,
        clock_timestamp() + %(ttl)s * interval '1 second')
ON CONFLICT (cluster) DO UPDATE
    SET epoch = l.epoch + 1, member = excluded.member, address = excluded.address,
        expires_at = excluded.expires_at
    WHERE l.expires_at <= clock_timestamp()
RETURNING epoch
"""

_RENEW = """
UPDATE chronoid_seq_leader SET expires_at = clock_timestamp() + %(ttl)s * interval '1 second'
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

    ``timeout`` (s) bounds connecting and every statement. One connection serves the elector
    thread (lease) and one the watermark writes, each behind its own lock, so a slow write
    never delays a renewal.
    """

    def __init__(self, dsn: str, cluster: str = "default", *, timeout: float = 1.0) -> None:
        if not isinstance(cluster, str) or _CLUSTER.fullmatch(cluster) is None:
            raise InvalidArgument(
                f"cluster name must be 1-64 of A-Z a-z 0-9 _ . : -, got {cluster!r}"
            )
        if not 0 < timeout <= 60:
            raise InvalidArgument(f"timeout must be in (0, 60] seconds, got {timeout!r}")
        self.dsn = dsn
        self.cluster = cluster
        self.timeout = timeout
        self.description = f"PostgreSQL {_safe_dsn(dsn)} cluster {cluster!r}"
        self._lease_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._lease_conn: psycopg.Connection[Any] | None = None
        self._write_conn: psycopg.Connection[Any] | None = None
        with self._lease_lock:
            conn = self._connect_lease()
            try:
                self._run(conn, _CREATE, None)
            except StoreUnavailable:
                # Two members creating the tables at once: one CREATE loses; the tables exist.
                self._run(self._connect_lease(), _CREATE, None)

    # -- lease (elector thread) ------------------------------------------------------------

    def campaign(self, member: str, address: str, ttl: float) -> int | None:
        params = {"cluster": self.cluster, "member": member, "address": address, "ttl": ttl}
        with self._lease_lock:
            row = self._run(self._connect_lease(), _CAMPAIGN, params)
        return int(row[0]) if row is not None else None

    def renew(self, token: int, ttl: float) -> None:
        params = {"cluster": self.cluster, "epoch": token, "ttl": ttl}
        with self._lease_lock:
            row = self._run(self._connect_lease(), _RENEW, params)
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

    # -- watermarks (loop and reservation threads) -----------------------------------------

    def load(self, token: int) -> dict[str, int]:
        with self._write_lock:
            conn = self._connect_write()
            try:
                rows = conn.execute(_LOAD, {"cluster": self.cluster}).fetchall()
            except psycopg.Error as exc:
                self._drop_write()
                raise StoreUnavailable(f"cannot read watermarks: {_first_line(exc)}") from exc
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
        ms = int(self.timeout * 1000)
        try:
            return psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.timeout)),
                options=f"-c statement_timeout={ms} -c lock_timeout={ms}",
                # A store that stops answering mid-statement (a partition) fails the
                # connection after this long instead of hanging the thread.
                tcp_user_timeout=ms,
                keepalives_idle=1,
                keepalives_interval=1,
                keepalives_count=2,
                application_name="chronoid-sequencer",
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to {self.description}: {_first_line(exc)}"
            ) from exc

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
            raise StoreUnavailable(
                f"{what} on {self.description} failed: {_first_line(exc)}"
            ) from exc


def _first_line(exc: BaseException) -> str:
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
