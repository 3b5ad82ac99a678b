"""16 sessions × 50,000 IDs at once: no duplicates, no hot row."""

from __future__ import annotations

import threading

from tests.postgres.conftest import Installed

SESSIONS = 16
PER_SESSION = 50_000
BATCH = 5_000


def test_sixteen_sessions_insert_unique_primary_keys(installed: Installed) -> None:
    """Every session inserts through the column default; a duplicate would fail the primary
    key. The table is in the install's schema and dropped afterwards."""
    with installed.connect() as conn:
        conn.execute(
            "CREATE TABLE chronoid_concurrency ("
            " id bigint PRIMARY KEY DEFAULT chronoid_next('chrono64ms'), session integer)"
        )
    errors: list[BaseException] = []
    barrier = threading.Barrier(SESSIONS)

    def work(session: int) -> None:
        try:
            with installed.connect() as conn:
                barrier.wait()
                for _ in range(PER_SESSION // BATCH):
                    conn.execute(
                        "INSERT INTO chronoid_concurrency (session) "
                        "SELECT %s FROM generate_series(1, %s)",
                        (session, BATCH),
                    )
        except BaseException as exc:  # reported below, with the session's number
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(SESSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with installed.connect() as conn:
            total, distinct, sessions = conn.execute(
                "SELECT count(*), count(DISTINCT id), count(DISTINCT session) "
                "FROM chronoid_concurrency"
            ).fetchone() or (0, 0, 0)
            # No shared state row was written: the config table is untouched by inserts.
            updates = conn.execute(
                "SELECT n_tup_upd FROM pg_stat_user_tables "
                "WHERE relid = 'chronoid_config'::regclass"
            ).fetchone()
        assert (total, distinct, sessions) == (
            SESSIONS * PER_SESSION,
            SESSIONS * PER_SESSION,
            SESSIONS,
        )
        assert updates is not None and updates[0] <= 2  # the install's own version UPDATEs
    finally:
        with installed.connect() as conn:
            conn.execute("DROP TABLE chronoid_concurrency")
