"""``outbound-schema snapshot``: regenerate the expected-schema files from the revisions.

The revisions run, one at a time from base to head, in a scratch database (on
the server of the configured URL, or on an embedded server of its own); after
each, the catalog of every table but the host application's stand-ins and the
version table is written to that revision's file. Nothing else is read, so the
files are the same whichever supported PostgreSQL version generates them (the
test suite regenerates them on 15, 16 and 18 and compares).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from outbound_schema.catalog import HOST_TABLES, Snapshot, snapshot, tables_in_current_schema
from outbound_schema.config import EXPECTED_ATTRIBUTE, PREFLIGHT_ATTRIBUTE, VERSION_TABLE, alembic_config
from outbound_schema.database import Where, connect, engine_for, target
from outbound_schema.dsn import Target
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.expected import ExpectedSchemas, file_for, render, schema_dir
from outbound_schema.history import SCHEMA_FOLDER
from outbound_schema.standing import HISTORY_TABLE


@contextmanager
def scratch_database(server: Where | None) -> Iterator[Target]:
    """A new, empty database holding the host tables' stand-ins; dropped afterwards.

    On ``server``'s PostgreSQL (its role must be allowed to create databases), else on
    an embedded server in a temporary folder.
    """
    from outbound_schema.embedded import create_host_standins, server_target, start_server

    with tempfile.TemporaryDirectory(prefix="outbound-schema-snapshot-") as folder:
        embedded = None
        if server is None:
            embedded = start_server(Path(folder) / "pgdata", delete_on_exit=True)
            on = server_target(embedded)
        else:
            on = target(server)
        name = f"outbound_schema_snapshot_{uuid.uuid4().hex[:10]}"
        try:
            with on.connect(autocommit=True) as admin:
                try:
                    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
                except psycopg.Error as exc:
                    raise OutboundSchemaError(
                        f"Could not create a scratch database on {on.shown} to generate the expected schema in "
                        f"({' '.join(str(exc).split())}). Use a role that may create databases, or unset "
                        "DATABASE_URL (and libpq's PG* variables) to use an embedded PostgreSQL.",
                        exit_code=2,
                    ) from None
            try:
                scratch = on.with_database(name)
                engine = engine_for(scratch)
                with engine.begin() as conn:
                    create_host_standins(conn)
                engine.dispose()
                yield scratch
            finally:
                with on.connect(autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            if embedded is not None:
                embedded.cleanup()


def generate(
    script: ScriptDirectory, scratch: Where, after: Mapping[str, Callable[[], object]] | None = None
) -> dict[str, Snapshot]:
    """The catalog after each of our revisions, base to head, built in the empty database ``scratch``.

    ``after[revision]()``, where given, is called right after that revision, with no connection open
    to ``scratch`` (it may copy it: ``CREATE DATABASE ... TEMPLATE``).
    """
    expected = ExpectedSchemas(script)
    revisions = expected.managed()
    # Planning a revision reads the catalog it starts from: the one just generated, never a stale file.
    fresh: dict[str, Snapshot | None] = {rev.revision: None for rev in revisions}
    with ExitStack() as open_session:
        # One server session for every revision and catalog: a new one per step cost more than the step.
        conn = None
        for rev in revisions:
            if conn is None:
                conn = open_session.enter_context(connect(scratch))
            config = alembic_config(scratch)
            config.set_main_option("script_location", script.dir)
            config.attributes["connection"] = conn
            config.attributes[EXPECTED_ATTRIBUTE] = fresh
            config.attributes[PREFLIGHT_ATTRIBUTE] = False
            command.upgrade(config, rev.revision)
            # Read as a new session would (check and status do): nothing a revision set stays.
            conn.execute(text("RESET ALL"))
            conn.commit()
            ours = tables_in_current_schema(conn, excluding=[*HOST_TABLES, VERSION_TABLE, HISTORY_TABLE])
            fresh[rev.revision] = snapshot(conn, ours)
            conn.rollback()  # the next revision starts outside any transaction
            if after and rev.revision in after:
                open_session.close()
                conn = None
                after[rev.revision]()
    return {name: snap for name, snap in fresh.items() if snap is not None}


@dataclass(frozen=True)
class Outcome:
    written: list[Path]
    unchanged: list[Path]
    removed: list[Path]

    @property
    def stale(self) -> bool:
        return bool(self.written or self.removed)


def write(script: ScriptDirectory, catalogs: dict[str, Snapshot], *, check_only: bool = False) -> Outcome:
    """Write each revision's file (or, with ``check_only``, only say which would change)."""
    revisions = ExpectedSchemas(script).managed()
    written, unchanged = [], []
    for rev in revisions:
        path = file_for(rev)
        new = render(catalogs[rev.revision], rev.revision)
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == new:
            unchanged.append(path)
            continue
        written.append(path)
        if not check_only:
            path.write_text(new, encoding="utf-8")
    folders = {schema_dir(rev) for rev in revisions}
    known = {file_for(rev) for rev in revisions}
    removed = sorted(p for folder in folders for p in folder.glob("*.sql") if p not in known)
    if not check_only:
        for path in removed:
            path.unlink()
    return Outcome(written, unchanged, removed)


def regenerate(server: Where | None, *, check_only: bool = False) -> Outcome:
    """The whole command: scratch database, every revision, the files."""
    script = ScriptDirectory.from_config(alembic_config())
    if not ExpectedSchemas(script).managed():
        raise OutboundSchemaError(
            f"No revision keeps expected-schema files: {Path(script.dir) / SCHEMA_FOLDER} is missing. Create that "
            "folder beside versions/ and run the command again."
        )
    with scratch_database(server) as scratch:
        catalogs = generate(script, scratch)
    return write(script, catalogs, check_only=check_only)
