"""Where the database is: URL resolution, credential masking, engines."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from outbound_schema import dsn
from outbound_schema.catalog import HOST_TABLES, existing_relations
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.settings import DATABASE_URL

URL_ENV_VAR = str(DATABASE_URL.env)
#: Seconds to wait for a server to answer a connection (libpq's connect_timeout).
DEFAULT_CONNECT_TIMEOUT = 10


_ACCEPTED_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}


def parse_url(raw: str, *, source: str) -> URL:
    """Turn ``raw`` into a psycopg 3 URL, or raise a clear error naming ``source``.

    ``postgresql://`` (and Heroku's ``postgres://``) become ``postgresql+psycopg://``
    because psycopg 3 is the driver this library ships with.
    """
    dsn.conninfo(raw, source=source)  # one set of rules and messages: the check's, which needs no SQLAlchemy
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError):  # accepted above, so unlikely; SQLAlchemy's message shows the password
        raise OutboundSchemaError(
            f"The database URL from {source} could not be parsed. Give a URL of the form "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME (postgresql+psycopg:// works too)."
        ) from None
    return url.set(drivername="postgresql+psycopg")


def mask(url: URL | str) -> str:
    """The URL as text with its password hidden, however malformed, ``?password=`` too; safe to log."""
    return dsn.mask(url if isinstance(url, str) else url.render_as_string(hide_password=True))


def configured_url(explicit: str | None = None, *, explicit_source: str = "--database-url") -> URL | None:
    """The URL to use: an explicit one first, then ``DATABASE_URL``; ``None`` if neither is set."""
    if explicit:
        return parse_url(explicit, source=explicit_source)
    from_env = os.environ.get(URL_ENV_VAR)
    if from_env:
        return parse_url(from_env, source=f"the {URL_ENV_VAR} environment variable")
    return None


def engine_for(url: URL, **pool_options: Any) -> Engine:
    """An engine for our own work: one that also works through a pooler.

    No startup ``options`` (a default PgBouncer refuses them; options given in the URL are kept),
    no server-side prepared statements (``prepare_threshold=None``: under transaction pooling the
    next statement may reach a server connection that never prepared them), and a connect timeout
    (``DEFAULT_CONNECT_TIMEOUT`` seconds unless the URL gives ``connect_timeout``), so that a server
    that never answers is an error, not a hang. No hstore look-up either (``use_native_hstore=False``):
    our tables have no hstore column, and SQLAlchemy would otherwise query ``pg_type`` for it on each
    engine's first connection, four round trips and a cold catalog planned for every command.
    ``pool_options`` go to ``create_engine`` as they are (``pool_pre_ping`` and ``use_native_hstore``
    among them override these defaults).
    """
    connect_args: dict[str, object] = {"prepare_threshold": None}
    connect_args["application_name"] = url.query.get("application_name", dsn.APPLICATION_NAME)
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
    options: dict[str, Any] = {"pool_pre_ping": True, "use_native_hstore": False, **pool_options}
    return create_engine(url, connect_args=connect_args, **options)


@contextmanager
def connect(url: URL) -> Iterator[Connection]:
    """A connection to ``url``; failing to connect is a clear error (exit code 2)."""
    engine = engine_for(url)
    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:  # refused, timed out, or a URL option libpq does not know: not connected
            raise dsn.could_not_connect(mask(url), " ".join(str(exc.orig).split())) from None
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
