"""Alembic environment for outbound-schema.

Where the database is, in order: a connection or engine handed over in
``config.attributes["connection"]`` (tests, pytest-alembic, host applications),
a URL handed over by our command line, ``-x url=...``, ``sqlalchemy.url``,
``DATABASE_URL``, libpq's ``PG*`` variables (``PGHOST``, ``PGSERVICE``, ...), all read by
``outbound_schema.dsn``; with none of these, online commands use the embedded
PostgreSQL (see ``outbound_schema.embedded``).

Every run goes through ``outbound_schema.environment.run_migrations``: the
migration lock, and the safety layer under each revision's ``op.*`` calls.
"""

from __future__ import annotations

import re
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.operations.ops import MigrationScript
from sqlalchemy import Connection, Engine, MetaData

from outbound_schema.config import METADATA_ATTRIBUTE, URL_ATTRIBUTE, VERSION_TABLE
from outbound_schema.database import connect, target
from outbound_schema.dsn import Target, configured
from outbound_schema.embedded import default_database_url
from outbound_schema.environment import alembic_errors, run_migrations
from outbound_schema.expected import ExpectedSchemas
from outbound_schema.revisions import next_revision_id
from outbound_schema.settings import DATABASE_URL, check_x_arguments

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def target_metadata() -> MetaData:
    handed = config.attributes.get(METADATA_ATTRIBUTE)
    if isinstance(handed, MetaData):
        return handed
    from outbound_schema.models import metadata

    return metadata


def our_tables() -> set[str]:
    """The tables autogenerate compares: the models', and every table a revision of ours leaves."""
    return set(target_metadata().tables) | set(ExpectedSchemas(context.script).tables())


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Compare only our tables: never the host's, never the version table."""
    if type_ == "table":
        return name in our_tables()
    return True


_RANDOM_ID = re.compile(r"^[0-9a-f]{12}$")  # Alembic's own, when no --rev-id is given


def revision_directives(_context: object, _revision: object, directives: list[MigrationScript]) -> None:
    """New revisions get the project's ids (47a after 46d); autogenerate with nothing to do writes no file."""
    if not directives:
        return
    script = directives[0]
    if getattr(config.cmd_opts, "autogenerate", False) and script.upgrade_ops_list[0].is_empty():
        directives[:] = []
        print("No changes in schema detected; no revision file generated.")
        return
    if script.rev_id and _RANDOM_ID.match(script.rev_id) and not getattr(config.cmd_opts, "rev_id", None):
        script.rev_id = next_revision_id(context.script.get_heads()) or script.rev_id


def configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata(),
        version_table=VERSION_TABLE,
        # Each revision commits on its own: index builds run CONCURRENTLY,
        # outside a transaction, between them.
        transaction_per_migration=True,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
        process_revision_directives=revision_directives,
        **options,
    )


def explicit_url() -> Target | None:
    """The database configured, read by the connection layer (outbound_schema.dsn); None: none is."""
    handed = config.attributes.get(URL_ATTRIBUTE)
    if handed is not None:
        return target(handed, source="the URL handed to Alembic")
    from_x = DATABASE_URL.from_x(context.get_x_argument(as_dictionary=True))
    if from_x:
        return configured(from_x, explicit_source=f"-x {DATABASE_URL.x_key}=")
    from_ini = config.get_main_option("sqlalchemy.url")
    if from_ini:
        return configured(from_ini, explicit_source="sqlalchemy.url in the Alembic configuration")
    return configured(None)


def writing_a_revision_by_hand() -> bool:
    """`alembic revision` without --autogenerate: only the revision id is needed, never a database."""
    command = getattr(config.cmd_opts, "cmd", (None,))[0]
    return getattr(command, "__name__", "") == "revision" and not getattr(config.cmd_opts, "autogenerate", False)


def run_migrations_offline() -> None:
    # Offline only the dialect matters: no server is contacted, and no URL is read.
    configure(url="postgresql+psycopg://", literal_binds=True, dialect_opts={"paramstyle": "named"})
    run_migrations(context)


def run_migrations_online() -> None:
    handed = config.attributes.get("connection")
    if isinstance(handed, Connection):
        configure(connection=handed)
        run_migrations(context)
        return
    if isinstance(handed, Engine):
        with handed.connect() as connection:
            configure(connection=connection)
            run_migrations(context)
        return
    with connect(explicit_url() or default_database_url()) as connection:
        configure(connection=connection)
        run_migrations(context)


with alembic_errors():
    check_x_arguments(context.get_x_argument(as_dictionary=False), all_ours=True)  # every -x key here is ours
    if writing_a_revision_by_hand():
        configure(dialect_name="postgresql", as_sql=True)
        context.run_migrations()
    elif context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
