"""SQLAlchemy engines on the connection layer, :mod:`outbound_schema.dsn`.

An engine made here connects with :meth:`outbound_schema.dsn.Target.connect` (SQLAlchemy's ``do_connect``
hook): the URL is read by libpq, once, in :mod:`outbound_schema.dsn`, and SQLAlchemy's own URL parsing never
decides where we connect. A ``sqlalchemy.engine.URL`` object someone built (a test, a host application
handing one to our ``env.py``) is taken apart into libpq's parameters, never rendered and read again.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError

from outbound_schema import dsn
from outbound_schema.catalog import HOST_TABLES, existing_relations
from outbound_schema.errors import OutboundSchemaError

URL_ENV_VAR = dsn.URL_ENV_VAR

#: Where a database is: a target of the connection layer, a URL (text, read by libpq) or a SQLAlchemy URL object.
Where = dsn.Target | URL | str

#: The target each engine of ours connects to.
_TARGETS: weakref.WeakKeyDictionary[Engine, dsn.Target] = weakref.WeakKeyDictionary()


def target(where: Where, *, source: str = "the URL given") -> dsn.Target:
    """``where`` as a target of the connection layer."""
    if isinstance(where, dsn.Target):
        return where
    if isinstance(where, str):
        return dsn.parse(where, source=source)
    return _from_url_object(where, source)


def _from_url_object(url: URL, source: str) -> dsn.Target:
    """A URL object's parts, as it holds them, as libpq parameters (a query value given twice: hosts and
    ports joined with commas, ``options`` with blanks, as SQLAlchemy's psycopg dialect joins them)."""
    from psycopg.conninfo import make_conninfo

    shown = dsn.mask(url.render_as_string(hide_password=True))
    if url.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
        dsn.parse(f"{url.drivername}://", source=source)  # the one message for a wrong driver
    params: dict[str, str] = {}
    for key, value in url.query.items():
        values = [value] if isinstance(value, str) else list(value)
        params[key] = (" " if key == "options" else ",").join(values)
    parts = {"host": url.host, "port": url.port, "dbname": url.database, "user": url.username}
    params.update({key: str(value) for key, value in parts.items() if value not in (None, "")})
    if url.password:
        params["password"] = str(url.password)
    return dsn.Target(make_conninfo("", **params), source, shown)


def mask(where: Where) -> str:
    """Where the database is, as text with its password hidden (``?password=`` too); safe to log."""
    return dsn.mask(where) if isinstance(where, str) else target(where).shown


def engine_for(where: Where, **pool_options: Any) -> Engine:
    """An engine for our own work, connecting through the connection layer: one that also works through a
    pooler (no startup ``options`` of its own, no server-side prepared statements) and gives up connecting
    after the layer's connect timeout. No hstore look-up either (``use_native_hstore=False``): our tables have
    no hstore column, and SQLAlchemy would otherwise query ``pg_type`` for it on each engine's first
    connection, four round trips and a cold catalog planned for every command. ``pool_options`` go to
    ``create_engine`` as they are (``pool_pre_ping`` and ``use_native_hstore`` among them override these
    defaults; ``connect_args`` reach ``psycopg.connect``). Failing to connect raises the layer's clear error.
    """
    where = target(where)
    options: dict[str, Any] = {"pool_pre_ping": True, "use_native_hstore": False, **pool_options}
    engine = create_engine("postgresql+psycopg://", **options)  # the dialect only: where is ``where``'s

    def connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> Any:
        return where.connect(**cparams)  # the dialect's own: its psycopg adapters ("context")

    event.listen(engine, "do_connect", connect)
    _TARGETS[engine] = where
    return engine


def target_of(engine: Engine) -> dsn.Target | None:
    """The target an engine made by :func:`engine_for` connects to; None for another engine."""
    return _TARGETS.get(engine)


def describe(connection: Connection) -> str:
    """Where ``connection`` is, masked: its target as configured, else its engine's URL."""
    found = target_of(connection.engine)
    return found.shown if found is not None else dsn.mask(connection.engine.url.render_as_string())


@contextmanager
def connect(where: Where) -> Iterator[Connection]:
    """A connection to ``where``; failing to connect is a clear error (exit code 2)."""
    engine = engine_for(where)
    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:  # the layer raises its own error; this is for a driver error all the same
            raise dsn.could_not_connect(target(where).shown, " ".join(str(exc.orig).split())) from None
        with connection:
            yield connection
    finally:
        engine.dispose()


def require_host_tables(connection: Connection, tables: Sequence[str] = HOST_TABLES) -> None:
    """Refuse to go on when a host table our foreign keys need is absent."""
    present = existing_relations(connection, tables, kinds="rp")  # tables, partitioned tables
    missing = [name for name in tables if name not in present]
    if missing:
        raise OutboundSchemaError(
            f"The database lacks the host application's table(s) {', '.join(missing)}, which "
            "our tables reference by foreign key. Nothing was "
            "changed. Create them first, normally by running the host application's own "
            "migrations against this database, then run the upgrade again; outbound-schema "
            "never creates the host's tables itself."
        )
