"""The migration's server session: refused where it cannot write, kept alive whatever the server's settings.

Before the migration lock is taken or anything is set, a session that cannot write is refused (exit 2): a hot
standby (``pg_is_in_recovery()``), which would otherwise fail at the first change, or at head say nothing is
to do; or a session read-only by a role's or database's ``default_transaction_read_only``.

Then the settings a role or database may carry that end a session mid-run (``idle_session_timeout``, which
fires while the run waits between lock retries; ``idle_in_transaction_session_timeout``; PostgreSQL 17's
``transaction_timeout``) are turned off for this session alone, with ``SET``, and given back after the run.
``client_connection_check_interval`` (PostgreSQL 14+) lets the server abort our statements if this process
dies. The progress watcher's session turns the same timeouts off (:data:`KEEP_ALIVE`). Statements stay
bounded: the DDL sets its own lock and statement timeouts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from outbound_schema.errors import OutboundSchemaError
from outbound_schema.keywords import literal

#: Settings that end a session (not a statement) when it idles or its transaction runs long: turned off.
SESSION_ENDING = ("idle_session_timeout", "idle_in_transaction_session_timeout", "transaction_timeout")

#: For any session of ours that must last: each of :data:`SESSION_ENDING` this server has, off (``SET``).
KEEP_ALIVE = (
    "SELECT set_config(name, '0', false) FROM unnest(CAST(ARRAY["
    + ", ".join(literal(name) for name in SESSION_ENDING)
    + "] AS text[])) AS name WHERE current_setting(name, true) IS NOT NULL"
)

_WANTED = {**dict.fromkeys(SESSION_ENDING, "0"), "client_connection_check_interval": "1s"}

_STANDING = text(
    """
    SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), current_user,
           (SELECT coalesce(sender_host || ':' || sender_port, '') FROM pg_stat_wal_receiver LIMIT 1)
    """
)


def refuse_read_only(connection: Connection, where: str) -> None:
    """Refuse, before anything is locked, set or changed, a session that cannot write (exit code 2)."""
    standby, read_only, role, primary = connection.execute(_STANDING).one()
    connection.commit()
    if standby:
        known = f" (it replicates from {primary})" if primary else ""
        raise OutboundSchemaError(
            f"The database at {where} is a hot standby{known}: pg_is_in_recovery() is true, so it replays its "
            "primary's changes and accepts none of its own. Nothing was locked, set or changed. Run the "
            "migration against the primary: point the URL at it, or, with several hosts in the URL, add "
            "target_session_attrs=read-write (or primary) to pick it. The standby gets the changes from the "
            "primary by itself; status and check work on either.",
            exit_code=2,
        )
    if read_only == "on":
        raise OutboundSchemaError(
            f"The session at {where} is read-only: default_transaction_read_only is on for the role {role} or "
            "for this database, so no change could be made. Nothing was locked, set or changed. Migrate as a "
            f"role whose sessions may write (ALTER ROLE {role} SET default_transaction_read_only = off), or "
            "lift the setting for the database if it is no longer meant to be frozen.",
            exit_code=2,
        )


@contextmanager
def kept_alive(connection: Connection) -> Iterator[None]:
    """For the block: the settings that would end the session mid-run off, and the server told to abort our
    statements if this process dies; as they were afterwards, so a connection handed to us goes back as
    it came. ``connection`` must not be inside a transaction."""
    names = list(_WANTED)
    listed = ", ".join(literal(name) for name in names)
    found = connection.execute(
        text(
            f"SELECT name, current_setting(name, true) FROM unnest(CAST(ARRAY[{listed}] AS text[])) AS name "
            "WHERE current_setting(name, true) IS NOT NULL"
        )
    ).all()
    saved = {str(name): str(value) for name, value in found}
    if saved:
        connection.execute(text(f"SELECT {_set({name: _WANTED[name] for name in saved})}"))
    connection.commit()
    try:
        yield
    finally:
        if saved and not (connection.invalidated or connection.closed):
            try:
                if connection.in_transaction():
                    connection.rollback()
                connection.execute(text(f"SELECT {_set(saved)}"))
                connection.commit()
            except SQLAlchemyError:  # the connection is gone, and its settings with it
                pass


def _set(settings: dict[str, str]) -> str:
    return ", ".join(f"set_config({literal(name)}, {literal(value)}, false)" for name, value in settings.items())
