"""How a migration runs DDL on a live database without stalling the dialer's workers.

Blocking DDL (CREATE TABLE, ALTER TABLE, DROP) runs in its own short
transaction under ``SET LOCAL lock_timeout`` and ``statement_timeout``: if the
lock it needs is not granted quickly, the statement gives up instead of
queueing, so workers queued behind it are never held for longer than the lock
timeout. The transaction is retried with exponential back-off a bounded number
of times, then the migration stops with a message naming the sessions that
held the lock.

Index builds and drops run ``CONCURRENTLY``, outside any transaction. They take
a lock that never conflicts with reads and writes, so their lock timeout is the
statement timeout: waiting costs the workers nothing.

A run online and an offline (``--sql``) script make the same changes (online, settings go
through ``set_config`` and a session's own are given back; a script writes ``SET``); offline
there is no retry, but every statement can be run again (``IF NOT EXISTS``).
``outbound_schema.safety`` decides which statements each operation needs.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Executable, text
from sqlalchemy.exc import DBAPIError

from outbound_schema.errors import OutboundSchemaError
from outbound_schema.keywords import literal
from outbound_schema.settings import (
    ALLOW_DATA_LOSS,
    LOCK_RETRIES,
    LOCK_TIMEOUT,
    PROGRESS_INTERVAL,
    STATEMENT_TIMEOUT,
    Setting,
)

log = logging.getLogger("outbound_schema.ddl")

LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
RAISE_EXCEPTION = "P0001"  # our own guards (DO ... RAISE EXCEPTION) refusing a change


@dataclass(frozen=True)
class Limits:
    """Timeouts and retries for the DDL of one run, and how often a long statement reports; the defaults
    are the settings' (``outbound_schema.settings``)."""

    lock_timeout_ms: int = LOCK_TIMEOUT.default
    statement_timeout_ms: int = STATEMENT_TIMEOUT.default
    lock_retries: int = LOCK_RETRIES.default
    first_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    allow_data_loss: bool = ALLOW_DATA_LOSS.default
    progress_interval_s: float = PROGRESS_INTERVAL.default

    @classmethod
    def of(cls, value: Callable[[Setting], Any]) -> Limits:
        """The limits with each setting's ``value(setting)``."""
        return cls(
            lock_timeout_ms=value(LOCK_TIMEOUT),
            statement_timeout_ms=value(STATEMENT_TIMEOUT),
            lock_retries=value(LOCK_RETRIES),
            allow_data_loss=value(ALLOW_DATA_LOSS),
            progress_interval_s=value(PROGRESS_INTERVAL),
        )


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


@dataclass(frozen=True)
class Call:
    """A statement executed by a call of its own (Alembic's executor, with the statement's parameters)."""

    run: Callable[[], object]


Statement = str | Executable | Call


@dataclass(frozen=True)
class SessionGuard:
    """The server session that holds the migration lock, and what to say when a statement reaches another
    (``locking.same_session_guard`` makes one)."""

    backend: int
    message: str

    def statement(self) -> str:
        """A statement that fails, saying why, unless it runs in that session."""
        return (
            f"DO $$BEGIN IF pg_backend_pid() <> {self.backend} THEN "
            f"RAISE EXCEPTION USING MESSAGE = {literal(self.message)}; END IF; END$$"
        )

    def check(self, backend: object) -> None:
        """Stop unless ``backend``, the ``pg_backend_pid()`` a statement read, is that session's."""
        if backend != self.backend:
            raise OutboundSchemaError(self.message)


class DDLRunner:
    """Runs DDL statements for a migration under ``limits``, through ``execute`` (Alembic's own executor).

    Online the statements reach the server; offline (``as_sql``) they are written
    to the script, with the same transactions and settings around them.
    """

    def __init__(
        self,
        execute: Callable[[Statement], Any],
        limits: Limits,
        *,
        as_sql: bool,
        session_guard: Callable[[], SessionGuard | None] = lambda: None,
        watch: Callable[[str], AbstractContextManager[object]] = lambda _label: nullcontext(),
        application_name: Callable[[str], str | None] = lambda _label: None,
    ) -> None:
        self.execute = execute
        self.limits = limits
        self.as_sql = as_sql
        #: Online, the server session holding the migration lock (``locking.same_session_guard``): every
        #: transaction checks it is still there before it changes anything.
        self.session_guard = session_guard
        #: Around each statement as it runs: reports its progress while it runs long (``progress.Watch``).
        self.watch = watch
        #: Online, what the connection is called while it runs a statement (``progress.application_name``),
        #: for ``outbound-schema status`` in another shell; set with the session check in a transaction (given
        #: back at COMMIT), after it outside one (given back after the statement).
        self.application_name = application_name

    def in_transaction(
        self, statements: Sequence[Statement], *, label: str, tables: Sequence[str], waits_harmlessly: bool = False
    ) -> None:
        """Run ``statements`` in one short transaction under the limits, retrying lock timeouts.

        ``waits_harmlessly``: the statements take only locks that never block reads
        and writes (VALIDATE CONSTRAINT), so they wait up to the statement timeout.
        """
        limits = self.limits
        lock_timeout = limits.statement_timeout_ms if waits_harmlessly else limits.lock_timeout_ms
        if self.as_sql:  # a script a reviewer reads: the settings as SET LOCAL, one a line
            settings = [
                f"SET LOCAL lock_timeout = '{lock_timeout}ms'",
                f"SET LOCAL statement_timeout = '{limits.statement_timeout_ms}ms'",
            ]
            for statement in ("BEGIN", *settings, *statements, "COMMIT"):
                self.execute(statement)
            return
        attempts = limits.lock_retries + 1
        guard = self.session_guard()
        local = {"lock_timeout": f"{lock_timeout}ms", "statement_timeout": f"{limits.statement_timeout_ms}ms"}
        if name := self.application_name(label):
            local["application_name"] = name  # given back at COMMIT
        # Online, the session check and the settings in one round trip, not one each: set_config(name,
        # value, true) is SET LOCAL, and the session is checked on the pid read before anything is changed.
        setup = f"SELECT pg_backend_pid(), {_set_config(local, is_local=True)}"
        for attempt in range(1, attempts + 1):
            try:
                with self.watch(label):
                    self.execute("BEGIN")
                    backend = self.execute(setup).scalar()
                    if guard is not None:
                        guard.check(backend)
                    for statement in (*statements, "COMMIT"):
                        self.execute(statement)
                return
            except BaseException as exc:
                self._rollback()
                if not isinstance(exc, DBAPIError):
                    raise  # Ctrl-C, a bug: nothing of this transaction stays
                if _sqlstate(exc) == RAISE_EXCEPTION and isinstance(exc.orig, psycopg.Error):
                    raise OutboundSchemaError(str(exc.orig.diag.message_primary)) from None
                if _sqlstate(exc) == QUERY_CANCELED:
                    raise _statement_timeout(label, limits) from None
                if _sqlstate(exc) != LOCK_NOT_AVAILABLE:
                    raise
                if attempt == attempts:
                    raise OutboundSchemaError(
                        f"{label}: the lock it needs on {', '.join(tables)} was not granted within "
                        f"{lock_timeout} ms in {attempts} attempts, so it gave up rather than make the "
                        f"dialer's workers queue behind it; nothing of this change was applied. Sessions holding "
                        f"locks there now: {self._lock_holders(tables)}. Run the upgrade again when they are done "
                        "(changes already applied are kept), or allow more with --lock-timeout / --lock-retries."
                    ) from None
                delay = min(limits.first_backoff_s * 2 ** (attempt - 1), limits.max_backoff_s)
                delay *= random.uniform(0.8, 1.2)  # deploys retrying in step would collide again
                log.warning(
                    "%s: lock not granted within %d ms (attempt %d of %d); retrying in %.1f s",
                    label,
                    lock_timeout,
                    attempt,
                    attempts,
                    delay,
                )
                time.sleep(delay)

    def _rollback(self) -> None:
        with contextlib.suppress(DBAPIError):  # the connection is gone, and the transaction with it
            self.execute("ROLLBACK")

    def outside(self, statement: Statement, *, label: str) -> None:
        """Run a statement that cannot run in a transaction (CONCURRENTLY) under the statement timeout.

        Its lock never blocks reads or writes, so it may wait as long as the statement may run.
        The session's own settings are put back afterwards (a host's connection goes back as it came).
        """
        timeout = f"{self.limits.statement_timeout_ms}ms"
        if self.as_sql:  # a script a reviewer reads: SET, one a line, and back to the defaults after
            self.execute(f"SET lock_timeout = {literal(timeout)}")
            self.execute(f"SET statement_timeout = {literal(timeout)}")
            self.execute(statement)
            self.execute("SET lock_timeout = DEFAULT")
            self.execute("SET statement_timeout = DEFAULT")
            return
        wanted = {"lock_timeout": timeout, "statement_timeout": timeout}
        if (name := self.application_name(label)) is not None:
            wanted["application_name"] = name
        # Online, three round trips where SHOW and SET took ten: one reads the session (checked) and the
        # settings as they are (to give back), one sets them, one gives them back; set_config(..., false) is SET.
        read = ", ".join(f"current_setting({literal(setting)})" for setting in wanted)
        backend, *values = self.execute(f"SELECT pg_backend_pid(), {read}").one()
        if (guard := self.session_guard()) is not None:
            guard.check(backend)
        saved = dict(zip(wanted, values, strict=True))
        self.execute(f"SELECT {_set_config(wanted, is_local=False)}")
        try:
            with self.watch(label):
                self.execute(statement)
        except DBAPIError as exc:
            if _sqlstate(exc) in (QUERY_CANCELED, LOCK_NOT_AVAILABLE):
                raise _statement_timeout(label, self.limits) from None
            raise
        finally:
            self.execute(f"SELECT {_set_config(saved, is_local=False)}")

    def _lock_holders(self, tables: Sequence[str]) -> str:
        # Who, not what: other sessions' SQL may carry personal data.
        rows = self.execute(
            text(
                "SELECT DISTINCT a.pid, a.usename, a.application_name, a.state, l.mode "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.granted AND l.pid <> pg_backend_pid() AND l.database = ("
                "SELECT oid FROM pg_database WHERE datname = current_database()) AND l.relation = ANY("
                "SELECT to_regclass(quote_ident(t)) FROM unnest(CAST(:tables AS text[])) AS t) ORDER BY a.pid"
            ).bindparams(tables=list(tables))
        )
        found = [
            f"pid {pid} (user {user}, application {app or '-'}, {state}, holding {mode})"
            for pid, user, app, state, mode in rows
        ]
        return ", ".join(found) if found else "none any more"


def _set_config(settings: dict[str, str], *, is_local: bool) -> str:
    """The select list setting each of ``settings``: as SET LOCAL would (``is_local``), else as SET."""
    flag = "true" if is_local else "false"
    return ", ".join(f"set_config({literal(name)}, {literal(value)}, {flag})" for name, value in settings.items())


def _statement_timeout(label: str, limits: Limits) -> OutboundSchemaError:
    return OutboundSchemaError(
        f"{label}: stopped by the statement timeout of {limits.statement_timeout_ms} ms. An index build "
        "interrupted this way leaves an INVALID index, which the next upgrade drops and rebuilds. Run the "
        f"upgrade again with a larger {STATEMENT_TIMEOUT.flag} (or {STATEMENT_TIMEOUT.env})."
    )
