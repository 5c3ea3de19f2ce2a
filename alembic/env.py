"""Alembic environment for outbound-schema.

Where the database is, in order: a connection or engine handed over in
``config.attributes["connection"]`` (tests, pytest-alembic, host applications),
a URL handed over by our command line, ``-x url=...``, ``sqlalchemy.url``,
``DATABASE_URL``; with none of these, online commands use the embedded
PostgreSQL (see ``outbound_schema.embedded``).
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.operations.ops import MigrationScript
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL, make_url

from outbound_schema.catalog import OUR_TABLES
from outbound_schema.config import LIMITS_ATTRIBUTE, LOCK_WAIT_ATTRIBUTE, URL_ATTRIBUTE, VERSION_TABLE
from outbound_schema.database import configured_url, connect
from outbound_schema.ddl import Limits, resolve_limits
from outbound_schema.embedded import default_database_url
from outbound_schema.locking import abort_if_client_dies, lock_wait_seconds, migration_lock
from outbound_schema.models import metadata

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Compare only our two tables: never the host's, never the version table."""
    if type_ == "table":
        return name in OUR_TABLES
    return True


def skip_empty_autogenerate(_context: object, _revision: object, directives: list[MigrationScript]) -> None:
    """``alembic revision --autogenerate`` with nothing to do writes no empty revision file."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives and directives[0].upgrade_ops_list[0].is_empty():
        directives[:] = []
        print("No changes in schema detected; no revision file generated.")


def configure(**options: Any) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # Each revision commits on its own: index builds run CONCURRENTLY,
        # outside a transaction, between them.
        transaction_per_migration=True,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
        process_revision_directives=skip_empty_autogenerate,
        **options,
    )


def explicit_url() -> URL | None:
    handed: URL | None = config.attributes.get(URL_ATTRIBUTE)
    if handed is not None:
        return handed
    from_x = context.get_x_argument(as_dictionary=True).get("url")
    if from_x:
        return configured_url(from_x, explicit_source="-x url=")
    from_ini = config.get_main_option("sqlalchemy.url")
    if from_ini:
        return configured_url(from_ini, explicit_source="sqlalchemy.url in the Alembic configuration")
    return configured_url()


def run_migrations_offline() -> None:
    # Offline only the dialect matters: no server is contacted.
    url = explicit_url() or make_url("postgresql+psycopg://")
    configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_with(connection: Connection) -> None:
    configure(connection=connection)
    wait = config.attributes.get(LOCK_WAIT_ATTRIBUTE)
    if wait is None:
        wait = context.get_x_argument(as_dictionary=True).get("lock_wait")
    # Rolling deploys start several upgrades at once: one migrates, the others
    # wait here, then find nothing left to do.
    with (
        migration_lock(connection, lock_wait_seconds(wait)),
        abort_if_client_dies(connection),
        context.begin_transaction(),
    ):
        context.run_migrations()


def run_migrations_online() -> None:
    handed = config.attributes.get("connection")
    if isinstance(handed, Connection):
        run_with(handed)
        return
    if isinstance(handed, Engine):
        with handed.connect() as connection:
            run_with(connection)
        return
    url = explicit_url() or default_database_url()
    with connect(url) as connection:
        run_with(connection)


# DDL timeouts and retries: from our command line, else -x, else the environment.
if not isinstance(config.attributes.get(LIMITS_ATTRIBUTE), Limits):
    config.attributes[LIMITS_ATTRIBUTE] = resolve_limits({}, context.get_x_argument(as_dictionary=True))

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
