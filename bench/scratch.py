"""Scratch databases for the benchmarks: on DATABASE_URL's server, else an embedded one."""

from __future__ import annotations

import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outbound_schema.database import configured_url
from outbound_schema.embedded import create_host_standins, server_url, start_server


class Server:
    """Creates databases for one benchmark run and drops them all when ``stack`` closes."""

    def __init__(self, stack: ExitStack) -> None:
        url = configured_url()
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

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in reversed(self.created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
