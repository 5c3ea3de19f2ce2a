"""How a migration runs DDL on a live database without stalling the dialer's workers.

Blocking DDL (CREATE TABLE, ALTER TABLE, DROP) runs in its own short
transaction under ``SET LOCAL lock_timeout`` and ``statement_timeout``: if the
lock it needs is not granted quickly, the statement gives up instead of
queueing, so workers queued behind it are never held for longer than the lock
timeout. The transaction is retried with exponential back-off for up to the lock
wait total (and at most the lock retries, when given); each retry's line names the
sessions holding the lock, and between attempts ``outbound-schema status`` shows
the wait (``progress.lock_wait_mark``). When the total runs out the migration
stops with a message naming the sessions that held the lock and how to end them.

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
import itertools
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

from outbound_schema import progress
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.keywords import literal
from outbound_schema.settings import (
    ALLOW_DATA_LOSS,
    LOCK_RETRIES,
    LOCK_TIMEOUT,
    LOCK_WAIT_TOTAL,
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
    lock_wait_total_s: float = LOCK_WAIT_TOTAL.default
    lock_retries: int | None = LOCK_RETRIES.default  # None: only the total bounds the attempts
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
            lock_wait_total_s=value(LOCK_WAIT_TOTAL),
            lock_retries=value(LOCK_RETRIES),
            allow_data_loss=value(ALLOW_DATA_LOSS),
            progress_interval_s=value(PROGRESS_INTERVAL),
        )

    def backoff_s(self, attempt: int) -> float:
        """The pause after the ``attempt``-th lock timeout (before jitter): doubling from the first, capped."""
        return float(min(self.first_backoff_s * 2 ** min(attempt - 1, 16), self.max_backoff_s))


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
        guard = self.session_guard()
        local = {"lock_timeout": f"{lock_timeout}ms", "statement_timeout": f"{limits.statement_timeout_ms}ms"}
        if name := self.application_name(label):
            local["application_name"] = name  # given back at COMMIT
        # Online, the session check and the settings in one round trip, not one each: set_config(name,
        # value, true) is SET LOCAL, and the session is checked on the pid read before anything is changed.
        setup = f"SELECT pg_backend_pid(), {_set_config(local, is_local=True)}"
        started = time.monotonic()
        for attempt in itertools.count(1):
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
            waited = time.monotonic() - started
            left = limits.lock_wait_total_s - waited
            out_of_retries = limits.lock_retries is not None and attempt > limits.lock_retries
            last = left <= 0 or out_of_retries
            # Who holds it, read right away; between attempts the look-up is headed by what waits, which
            # status in another shell reads (the session's last query) while this one sleeps.
            mark = None if last else progress.lock_wait_mark(label, tables, attempt, waited)
            wait = self._lock_wait(tables, mark)
            if last:
                why = (
                    f"its {LOCK_RETRIES.name}, {limits.lock_retries}, ran out before the {LOCK_WAIT_TOTAL.name}"
                    if out_of_retries
                    else f"the {LOCK_WAIT_TOTAL.name} of {progress.duration(limits.lock_wait_total_s)}"
                )
                raise OutboundSchemaError(
                    f"{label}: the lock it needs on {_tables(tables)} was not granted within {lock_timeout} ms "
                    f"in {attempt} attempt{'s' if attempt > 1 else ''} over {progress.duration(waited)} ({why}), "
                    "so it gave up rather than make the dialer's workers queue behind it; nothing of this "
                    f"change was applied. {_holders_advice(wait, tables)} Changes already applied are kept; allow a "
                    f"longer wait with {LOCK_WAIT_TOTAL.sources()}."
                ) from None
            delay = limits.backoff_s(attempt)
            delay = min(delay * random.uniform(0.8, 1.2), left)  # deploys retrying in step would collide again
            log.warning(
                "%s: lock not granted within %d ms on %s (attempt %d, %s of the %s %s): %s; retrying in %.1f s",
                label,
                lock_timeout,
                _tables(tables),
                attempt,
                progress.duration(waited),
                progress.duration(limits.lock_wait_total_s),
                LOCK_WAIT_TOTAL.name,
                _holders(wait, tables),
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

    def _lock_wait(self, tables: Sequence[str], mark: str | None) -> progress.LockWait:
        """Who holds or queues for a lock on ``tables`` now, in a query headed by ``mark`` (which status
        reads while this session waits for its next attempt). Who, never what: other sessions' SQL may
        carry personal data."""
        listed = "ARRAY[" + ", ".join(literal(t) for t in tables) + "]::text[]" if tables else "ARRAY[]::text[]"
        sql = f"{mark or ''}{progress.lock_wait_sql(listed)}"
        # Colons are SQL's here (casts, the mark's JSON), never bind parameters.
        return progress.lock_wait(self.execute(text(sql.replace(":", "\\:"))).all())


def _tables(tables: Sequence[str]) -> str:
    return ", ".join(tables) if tables else "the objects it changes"


def _holders(wait: progress.LockWait, tables: Sequence[str]) -> str:
    """``held by pid 4242 (...); 2 sessions queued behind it``, for a retry's line."""
    if not tables:
        return "the statement names no table, so who holds the lock is not known"
    if not wait.holders:
        return "no session holds a lock there any more"
    return f"held by {progress.sessions(wait.holders)}; {progress.queued_behind(wait.queued)}"


def _holders_advice(wait: progress.LockWait, tables: Sequence[str]) -> str:
    """Who held the lock at the last attempt, and how to end them, for the message that gives up."""
    if not tables:
        return "The statement names no table, so who holds the lock is not known: run the upgrade again later."
    if not wait.holders:
        return "No session holds a lock there any more: run the upgrade again."
    ends = progress.ending(wait.holders)
    return (
        f"It is held by {progress.sessions(wait.holders)}; {progress.queued_behind(wait.queued)}. Ask its owner "
        f"to end that transaction, or end it with {ends}, then run the upgrade again."
    )


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
