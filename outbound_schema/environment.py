"""Running a migration with outbound-schema's guarantees, from any Alembic ``env.py``.

Our own ``env.py`` calls :func:`run_migrations`; so does a host application's
whose Alembic history includes our revisions as a branch::

    context.configure(connection=connection, transaction_per_migration=True)
    run_migrations(context)

It puts the safety layer (``outbound_schema.safety``) into the run and, online,
takes the migration lock for it (``outbound_schema.locking``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError

from outbound_schema.config import (
    EXPECTED_ATTRIBUTE,
    LIMITS_ATTRIBUTE,
    LOCK_WAIT_ATTRIBUTE,
    PLAN_ATTRIBUTE,
    PREFLIGHT_ATTRIBUTE,
    SETTINGS_ATTRIBUTE,
    VERSION_TABLE,
)
from outbound_schema.database import describe
from outbound_schema.ddl import Limits
from outbound_schema.errors import OutboundSchemaError, connection_lost
from outbound_schema.expected import ExpectedSchemas
from outbound_schema.history import History
from outbound_schema.locking import migration_lock, refuse_transaction_pooling
from outbound_schema.safety import alembic_api, install
from outbound_schema.safety.privileges import refuse_unreadable_records
from outbound_schema.session import kept_alive, refuse_read_only
from outbound_schema.settings import LOCK_WAIT, POOLER, Setting, check_x_arguments, handed_or_resolved
from outbound_schema.standing import Standing, read_versions, stand

log = logging.getLogger("outbound_schema.migrate")


class MigrationError(OutboundSchemaError, CommandError):
    """An :class:`OutboundSchemaError` as Alembic's command line expects errors: one line, no traceback."""


@contextmanager
def alembic_errors() -> Iterator[None]:
    """Hand our errors to Alembic as its own ``CommandError``s (ours catch them as before)."""
    try:
        yield
    except OutboundSchemaError as exc:
        if isinstance(exc, CommandError):
            raise
        raise MigrationError(str(exc), exit_code=exc.exit_code) from None
    except CommandError as exc:  # Alembic's own: a revision it cannot find gets what to do next
        detail = " ".join(str(exc).split())
        if not detail.startswith("Can't locate revision"):
            raise
        raise MigrationError(
            f"{detail}; nothing was changed. `alembic history` lists the revisions this release knows, "
            "`alembic heads` its head, and `outbound-schema status` says where the database is (a revision "
            "this release does not know was recorded by a newer release, or in another history's version table)."
        ) from None
    except DBAPIError as exc:  # a session that ended: one paragraph saying what ended it, not a traceback
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        detail = " ".join(str(exc.orig).split())
        message = connection_lost(sqlstate, detail, "nothing of the revision that failed was recorded")
        if message is None or not (exc.connection_invalidated or sqlstate):
            raise
        raise MigrationError(message) from None


def setting(context: Any, declared: Setting) -> Any:
    """A setting of this run (``outbound_schema.settings``): handed over by our command line, else ``-x``,
    else the environment, else the default."""
    handed = context.config.attributes.get(SETTINGS_ATTRIBUTE)
    return handed_or_resolved(declared, handed, context.get_x_argument(as_dictionary=True))


def limits(context: Any) -> Limits:
    """The DDL limits of this run: handed over whole, else each setting as :func:`setting` finds it."""
    handed = context.config.attributes.get(LIMITS_ATTRIBUTE)
    if isinstance(handed, Limits):
        return handed
    return Limits.of(lambda declared: setting(context, declared))


def run_migrations(context: Any, *, lock_wait: float | str | None = None) -> None:
    """Run the migrations ``context`` (``alembic.context``, configured) was set up for, safely.

    Online, the run holds the migration lock: one process migrates a database at a
    time; the others wait up to ``lock_wait`` seconds (default: the ``lock_wait`` setting, from ``-x
    lock_wait=``, else its environment variable, else 600), then find nothing left to do.
    """
    with alembic_errors():
        # A host's env.py may read -x keys of its own: only likely misspellings of ours are refused.
        check_x_arguments(context.get_x_argument(as_dictionary=False), all_ours=False)
        _run(context, lock_wait)


def _run(context: Any, lock_wait: float | str | None) -> None:
    migration_context = context.get_context()
    if context.is_offline_mode():
        _install(context)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = migration_context.connection
    with ExitStack() as session:
        if not connection.in_transaction():  # else the migration lock refuses it, saying why
            # Right after connecting, before anything is set on the session (a pooler handing transactions
            # around would hand the settings to other clients) or locked: a session that can write, kept alive.
            pooler = setting(context, POOLER)
            refuse_transaction_pooling(connection, pooler)
            if alembic_api.command_name(migration_context) in ("upgrade", "downgrade", "stamp"):
                refuse_read_only(connection, describe(connection))
                refuse_unreadable_records(
                    connection, migration_context.version_table, migration_context.version_table_schema
                )
            session.enter_context(kept_alive(connection))
        _install(context)
        _run_online(context, lock_wait)


def _install(context: Any) -> None:
    config = context.config
    migration_context = context.get_context()
    expected = ExpectedSchemas(context.script, config.attributes.get(EXPECTED_ATTRIBUTE))
    impl = install(
        migration_context, limits(context), expected, preflight=config.attributes.get(PREFLIGHT_ATTRIBUTE, True)
    )
    recorder = config.attributes.get(PLAN_ATTRIBUTE)
    if recorder is not None and context.is_offline_mode():
        recorder.attach(impl)  # outbound-schema plan: the offline script, statement by statement


def _run_online(context: Any, lock_wait: float | str | None) -> None:
    config = context.config
    migration_context = context.get_context()
    if lock_wait is None:
        lock_wait = config.attributes.get(LOCK_WAIT_ATTRIBUTE)
    if lock_wait is None:
        wait_seconds = setting(context, LOCK_WAIT)
    else:
        wait_seconds = LOCK_WAIT.parse(str(lock_wait), "the lock wait handed to run_migrations")
    connection = migration_context.connection
    log.info("Migrating %s", describe(connection))
    # Rolling deploys start several upgrades at once: one migrates, the others
    # wait here, then find nothing left to do.
    direction = _direction(migration_context)
    started = time.monotonic()
    with (
        migration_lock(connection, wait_seconds, pooler=setting(context, POOLER)),
        context.begin_transaction(),
    ):
        standing = _standing(context, connection) if direction else None
        if standing is not None and standing.state in ("ahead", "unknown"):
            _past_this_release(standing, direction)
            return
        context.run_migrations()
    if standing is not None:
        _summary(standing, _read(connection, lambda: read_versions(connection)), direction, started)


def _direction(migration_context: Any) -> str | None:
    """``upgrade`` or ``downgrade`` for Alembic's commands of those names; None for any other (stamp, current)."""
    name = alembic_api.command_name(migration_context)
    return name if name in ("upgrade", "downgrade") else None


def _read(connection: Any, read: Any) -> Any:
    """``read()`` on ``connection``, leaving no transaction open that was not open before."""
    was_open = connection.in_transaction()
    try:
        return read()
    finally:
        if not was_open and connection.in_transaction():
            connection.commit()


def _standing(context: Any, connection: Any) -> Standing | None:
    """Where the database stands, for our own version table and history (a host's Alembic judges its own)."""
    migration_context = context.get_context()
    if migration_context.version_table != VERSION_TABLE or migration_context.version_table_schema:
        return None
    history = History.read(Path(context.script.dir))
    return _read(connection, lambda: stand(connection, history))  # type: ignore[no-any-return]


def _past_this_release(standing: Standing, direction: str | None) -> None:
    """A database a newer release migrated: an upgrade has nothing to do, a downgrade cannot be done here."""
    if standing.state == "unknown":
        raise OutboundSchemaError(standing.unknown_error_text())
    if direction == "upgrade":
        log.info("%s; nothing to do", standing.summary())
        return
    newer = ", ".join(entry.revision for entry in standing.newer)
    releases = sorted({entry.release or "unnamed" for entry in standing.newer})
    raise OutboundSchemaError(
        f"The database is {standing.summary()}. This release does not have revision(s) {newer}, so it cannot "
        f"revert them; nothing was changed. Downgrade with the release that applied them ({', '.join(releases)}) "
        f"to {standing.head} first, then with this one."
    )


def _summary(before: Standing, after: list[str], direction: str | None, started: float) -> None:
    """The run's last line: where it left the database, and how long it took."""
    was = ", ".join(before.current) or "base"
    now = ", ".join(after) or "base"
    if tuple(after) == before.current:
        where = f"at {now} (head)" if now == before.head else f"at {now}"
        log.info("%s: nothing to do", where)
        return
    verb = "upgraded" if direction == "upgrade" else "downgraded"
    log.info("%s %s -> %s in %.1f s", verb, was, now, time.monotonic() - started)
