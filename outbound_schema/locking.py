"""One migration at a time per database, for rolling deploys that all start ``upgrade``.

The lock is a session-level PostgreSQL advisory lock taken by *polling*
``pg_try_advisory_lock`` in short transactions. A waiter blocked inside
``pg_advisory_lock`` would hold a transaction open, and ``CREATE INDEX
CONCURRENTLY`` in the winning migration waits for every open transaction:
the two would wait on each other for ever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from outbound_schema.config import LOCK_KEY
from outbound_schema.ddl import SessionGuard
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.settings import LOCK_WAIT, POOLER

log = logging.getLogger("outbound_schema.lock")

#: A waiter tries for the lock again after 50 ms, then 100, 200, 400, and every 500 ms from there: a rolling
#: deploy's pods mostly find the schema at head and hold the lock briefly, so the next one goes on at
#: once rather than half a second later, while a long migration is polled twice a second.
FIRST_POLL_INTERVAL = 0.05
POLL_INTERVAL = 0.5

_TRY_LOCK = text(
    """
    SELECT held, CASE WHEN NOT held THEN pg_try_advisory_lock(:key) ELSE false END, pg_backend_pid()
    FROM (SELECT EXISTS (
        SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
          AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) AND objsubid = 1) AS held) AS mine
    """
)
_HOLDER = text(
    """
    SELECT pid FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND database = (
        SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) AND objsubid = 1
    """
)


#: Where, in the connection's ``info``, the server process holding the migration lock is kept for the run.
BACKEND_KEY = "outbound_schema.lock_backend"


def same_session_guard(connection: Connection) -> SessionGuard | None:
    """The server session holding the migration lock, which every statement of the run must reach.

    Behind a pooler that the operator said pools sessions (the ``pooler`` setting ``session``) but
    that hands transactions around after all, the run stops at its next statement, the revision in
    progress not recorded, instead of migrating beside another deploy.
    """
    holder = connection.info.get(BACKEND_KEY)
    if holder is None:
        return None
    message = (
        f"The server session changed during the migration: server process {int(holder)} took the migration lock, "
        "this statement reached another. The pooler in between hands transactions to different server "
        f"connections, so the {POOLER.name} setting 'session' is not true here. The revision in progress was not "
        "recorded; "
        f"the migration lock may stay with server process {int(holder)} until it closes (end it with SELECT "
        f"pg_terminate_backend({int(holder)}) or PgBouncer's RECONNECT). Migrate through a direct connection."
    )
    return SessionGuard(int(holder), message)


def refuse_transaction_pooling(connection: Connection, pooler: str | None = None) -> None:
    """Refuse, before anything is locked, set or changed, a migration through a connection pooler that
    may hand its transactions to different server sessions.

    A migration needs one server session throughout: the migration lock is a session lock, and its
    settings and concurrent index builds span transactions. Through PgBouncer in transaction or
    statement pooling the lock would be taken on one server connection and released on another,
    and the settings would outlive the run on connections other clients then use. A pooler shows
    itself: the server process a connection was opened with (libpq's backend PID, which a pooler
    makes up) is not the one serving it. Which pooling mode it runs no client can tell for sure,
    so the operator says session pooling with the ``pooler`` setting ``session`` (``pooler``; None: the
    setting's flagless reading, its environment variable).
    """
    dbapi = connection.connection.dbapi_connection
    opened_with = getattr(getattr(dbapi, "info", None), "backend_pid", None)
    serving = int(connection.scalar(text("SELECT pg_backend_pid()")) or 0)
    connection.commit()
    if opened_with is None or opened_with == serving:
        return  # a direct connection
    if (POOLER.resolve() if pooler is None else pooler) == "session":
        return
    raise OutboundSchemaError(
        "The database is reached through a connection pooler (PgBouncer or another: the server process "
        f"serving this connection, {serving}, is not the one it was opened with, {opened_with}). A migration "
        "needs one server session for the whole run (its lock, its settings and its concurrent index builds "
        "span transactions), which transaction or statement pooling does not give. Nothing was locked, set "
        "or changed. Run migrations through a direct connection to PostgreSQL; or, if this pooler entry uses "
        f"session pooling (PgBouncer: pool_mode = session), say so with {POOLER.how('session')}.",
        exit_code=2,
    )


def poll_intervals() -> Iterator[float]:
    """The waits between a waiter's tries for the migration lock: ``FIRST_POLL_INTERVAL``, doubling up
    to ``POLL_INTERVAL``."""
    interval = min(FIRST_POLL_INTERVAL, POLL_INTERVAL)
    while True:
        yield interval
        interval = min(interval * 2, POLL_INTERVAL)


@contextmanager
def migration_lock(connection: Connection, wait_seconds: float, *, pooler: str | None = None) -> Iterator[None]:
    """Hold the migration lock on ``connection`` for the duration of the block (``pooler``: the pooling mode
    the operator declared, see :func:`refuse_transaction_pooling`).

    ``connection`` must not be inside a transaction: polls commit as they go.
    """
    if connection.in_transaction():
        raise OutboundSchemaError(
            "The connection handed to the migrations is inside a transaction. Hand over a connection that is "
            "not (engine.connect(), not engine.begin()) or the Engine itself: the migrations commit each change "
            "on their own and wait for the migration lock outside any transaction."
        )
    refuse_transaction_pooling(connection, pooler)
    params = {"key": LOCK_KEY}
    deadline = time.monotonic() + wait_seconds
    started = time.monotonic()
    announced = False
    polls = poll_intervals()
    ids = {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF}
    while True:
        # A session lock is re-entrant: a server session that already holds it would grant it again. Only
        # through a pooler sharing server connections can a run find its own session holding it already.
        shared, acquired, backend = connection.execute(_TRY_LOCK, {**params, **ids}).one()
        if shared:
            connection.commit()
            raise OutboundSchemaError(
                f"The server session this run was given (server process {backend}) already holds the migration "
                "lock: another client's migration took it there, so a pooler in between shares server "
                f"connections between clients and the {POOLER.name} setting 'session' is not true here. Nothing was "
                "changed. Migrate through a direct connection."
            )
        holder = None if acquired else connection.scalar(_HOLDER, ids)
        connection.commit()  # a waiter holds no transaction open between polls
        if acquired:
            connection.info[BACKEND_KEY] = backend
            break
        if not announced:
            log.info("another migration holds the lock (server process %s); waiting up to %.0f s", holder, wait_seconds)
            announced = True
        if time.monotonic() >= deadline:
            raise OutboundSchemaError(
                f"Another outbound-schema migration has held the migration lock on this database for more "
                f"than {wait_seconds:.0f} s (server process {holder}), so this run gave up and changed "
                f"nothing. Let it finish and run again, or raise the wait with {LOCK_WAIT.sources()}. If that "
                "process is stuck, see it with SELECT * FROM pg_stat_activity "
                f"WHERE pid = {holder}, and stop it with pg_terminate_backend({holder})."
            )
        time.sleep(next(polls))
    if announced:
        log.info("migration lock acquired after %.1f s", time.monotonic() - started)
    try:
        yield
    finally:
        holder = connection.info.pop(BACKEND_KEY, None)
        try:
            if not (connection.invalidated or connection.closed):  # else the lock went with the session
                if connection.in_transaction():
                    connection.rollback()
                released = connection.scalar(text("SELECT pg_advisory_unlock(:key)"), params)
                connection.commit()
                if not released:
                    log.error(
                        "the migration lock was not held by this session at the end of the run: a pooler handed "
                        "the run another server connection (the %s setting 'session' is not true here). The lock "
                        "stays with server process %s until that connection closes: end it with SELECT "
                        "pg_terminate_backend(%s) (or PgBouncer's RECONNECT), and migrate through a direct "
                        "connection.",
                        POOLER.name,
                        holder,
                        holder,
                    )
        except SQLAlchemyError:  # the connection is gone, and the lock with it
            pass
