"""Scratch databases for the benchmarks: on DATABASE_URL's server, else an embedded one."""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from outbound_schema import dsn
from outbound_schema.embedded import create_host_standins, server_url, start_server


def libpq(url: URL) -> str:
    """``url`` as libpq (psycopg) takes it, password included."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Server:
    """Creates databases for one benchmark run and drops them all when ``stack`` closes."""

    def __init__(self, stack: ExitStack) -> None:
        # The benchmarks keep SQLAlchemy URL objects (they name databases with .set()); DATABASE_URL is
        # checked by the connection layer first.
        dsn.configured(None)
        raw = os.environ.get(dsn.URL_ENV_VAR)
        url = make_url(raw.strip()).set(drivername="postgresql+psycopg") if raw else None
        if url is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="outbound-bench-")))
            pg = start_server(folder / "pgdata", delete_on_exit=True)
            stack.callback(pg.cleanup)
            url = server_url(pg)
        self.url = url
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        stack.callback(self.admin.dispose)
        self.created: list[str] = []
        stack.callback(self.drop_all)

    def create(self, template: str = "template0") -> URL:
        name = f"outbound_bench_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        self.created.append(name)
        return self.url.set(database=name)

    def create_with_host_tables(self) -> URL:
        """A database holding stand-ins for the host application's tables, as before our first migration."""
        url = self.create()
        engine = create_engine(url)
        with engine.begin() as conn:
            create_host_standins(conn)
        engine.dispose()
        return url

    def with_jobs(self, revision: str, rows: int) -> URL:
        """A database migrated to ``revision`` holding ``rows`` jobs (100 runs, 10,000 leads), analyzed."""
        from alembic import command

        from outbound_schema.config import alembic_config

        url = self.create_with_host_tables()
        command.upgrade(alembic_config(url), revision)
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute("INSERT INTO business (id) SELECT generate_series(1, 100)")
            conn.execute("INSERT INTO leads (id) SELECT generate_series(1, 10000)")
            conn.execute(
                "INSERT INTO outbound_call_runs (business_id) SELECT 1 + i % 100 FROM generate_series(1, 100) i"
            )
            conn.execute(
                "INSERT INTO outbound_call_jobs (run_id, lead_id, status, call_sid, twilio_call_sid, created_at) "
                "SELECT 1 + i %% 100, 1 + i %% 10000, (ARRAY['queued','dialing','completed','failed'])[1 + i %% 4], "
                "'CA' || md5(i::text), CASE WHEN i %% 2 = 0 THEN 'CA' || md5(i::text) END, "
                "now() - i * interval '1 second' FROM generate_series(1, %s) i",
                (rows,),
            )
            conn.execute("VACUUM ANALYZE outbound_call_jobs")
        return url

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in reversed(self.created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
