"""The migration lock (outbound_schema.locking): concurrent deploys migrate once, waiters poll soon then twice
a second, a wait that expires says who holds the lock, and statements stay on the lock's server session."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import IO

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outbound_schema import locking
from outbound_schema.config import LOCK_KEY, alembic_config
from outbound_schema.database import engine_for
from outbound_schema.ddl import DDLRunner, Limits, SessionGuard, Statement
from outbound_schema.errors import OutboundSchemaError
from tests.helpers import (
    HEAD,
    catalog,
    catalog_text,
    cli_forked,
    cli_here,
    connected,
    expected_text,
    inject,
    plain,
    rows,
    version,
)
from tests.legacy import assert_rows_kept, legacy_db

JOBS = "outbound_call_jobs"


def hold_migration_lock(url: URL) -> Callable[[], None]:
    """Take the migration lock as a running migration would; returns the release."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    conn = engine.connect()
    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})

    def release() -> None:
        """Let go now, synchronously (a closed session frees it a moment later); again, nothing more."""
        if not conn.closed:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            conn.close()
            engine.dispose()

    return release


def read_until(stream: IO[str], marker: str) -> str:
    """Lines from ``stream`` up to and including the first that contains ``marker``."""
    seen = []
    for line in stream:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} never came; got: {''.join(seen)}")


@pytest.mark.heavy
def test_concurrent_deploys_migrate_once(host_db: URL) -> None:
    legacy_db(host_db, "46a")
    before = rows(host_db)
    release = hold_migration_lock(host_db)
    deploys = [cli_forked("upgrade", DATABASE_URL=plain(host_db)) for _ in range(4)]  # processes of their own
    early: list[str] = []
    try:
        # Every deploy reports that it is waiting before any may proceed.
        for deploy in deploys:
            assert deploy.stderr is not None
            early.append(read_until(deploy.stderr, "another migration holds the lock"))
    finally:
        release()
    finished = [p.communicate(timeout=120) for p in deploys]
    outputs = [(out, head + err) for head, (out, err) in zip(early, finished, strict=True)]

    assert [p.returncode for p in deploys] == [0, 0, 0, 0], outputs
    migrated = [err for _, err in outputs if "Running upgrade" in err]
    assert len(migrated) == 1
    assert all("another migration holds the lock" in err for _, err in outputs)
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)
    assert version(host_db) == [HEAD]
    assert_rows_kept(host_db, before)


def test_a_waiter_tries_again_soon_then_twice_a_second(host_db: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rolling deploy's pods each hold the lock briefly: the next one tries again after 50 ms, then
    100, 200, 400 and 500 ms. The lock is really held here, and let go at the fifth wait."""
    release = hold_migration_lock(host_db)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the waiter's waits, counted instead of slept
        waits.append(seconds)
        if len(waits) == 5:
            release()

    monkeypatch.setattr(locking, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    engine = engine_for(host_db)
    try:
        with engine.connect() as conn, locking.migration_lock(conn, wait_seconds=60):
            pass
    finally:
        engine.dispose()
        release()
    assert waits == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5])
    assert list(itertools.islice(locking.poll_intervals(), 7)) == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5, 0.5])


@pytest.mark.waits
def test_lock_wait_expires_with_a_clear_message(host_db: URL) -> None:
    legacy_db(host_db, "46b")
    before = catalog(host_db)
    release = hold_migration_lock(host_db)
    try:
        done = cli_here("upgrade", "--lock-wait", "1", DATABASE_URL=plain(host_db))
    finally:
        release()
    assert done.returncode == 1
    assert "has held the migration lock on this database for more than 1 s" in done.stderr
    assert "changed nothing" in done.stderr and "pg_terminate_backend(" in done.stderr
    assert catalog(host_db) == before and version(host_db) is None


def test_lock_wait_zero_gives_up_at_once(head_db: URL) -> None:
    with connected(head_db) as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        holder.commit()
        started = time.monotonic()
        done = cli_here("upgrade", "--lock-wait", "0", DATABASE_URL=plain(head_db))
        assert done.returncode == 1 and "for more than 0 s" in done.stderr
        assert time.monotonic() - started < 20


def test_a_connection_inside_a_transaction_is_refused(head_db: URL) -> None:
    engine = engine_for(head_db)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            with pytest.raises(OutboundSchemaError, match="inside a transaction"):
                command.downgrade(config, "46c")
    finally:
        engine.dispose()
    assert version(head_db) == [HEAD]


@pytest.mark.parametrize("concurrently", [False, True], ids=["in a transaction", "outside a transaction"])
def test_a_statement_reaching_another_server_session_changes_nothing(head_db: URL, concurrently: bool) -> None:
    """Every change first reads which server session it reached: reaching one other than the lock's (a
    pooler handing transactions around), it stops with the guard's message before it changes anything,
    and the session's settings are as they were."""
    engine = engine_for(head_db, isolation_level="AUTOCOMMIT")  # as in the safety layer's autocommit block
    try:
        with engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '7s'"))
            pid = conn.scalar(text("SELECT pg_backend_pid()"))

            def execute(statement: Statement) -> object:
                assert isinstance(statement, str)  # the runner's own statements, and this test's, are text
                return conn.exec_driver_sql(statement)

            def create_index(name: str, lock_holder: int) -> None:
                ddl = DDLRunner(
                    execute,
                    Limits(),
                    as_sql=False,
                    session_guard=lambda: SessionGuard(lock_holder, "moved"),
                    application_name=lambda label: f"outbound-schema {label}",
                )
                statement = f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}{name} ON {JOBS} (lead_id)"
                if concurrently:
                    ddl.outside(statement, label=name)
                else:
                    ddl.in_transaction([statement], label=name, tables=[JOBS])

            with pytest.raises(OutboundSchemaError, match=r"^moved$"):
                create_index("idx_elsewhere", lock_holder=pid + 1)
            create_index("idx_here", lock_holder=pid)  # the lock's own session: the change is made
            assert conn.scalar(text("SHOW lock_timeout")) == "7s"
            assert conn.scalar(text("SHOW application_name")) == "outbound-schema"
    finally:
        engine.dispose()
    indexes = catalog(head_db).indexes
    assert "idx_here" in indexes and "idx_elsewhere" not in indexes


@pytest.mark.waits
def test_the_preflight_read_queued_behind_an_alter_says_so_then_goes_on(host_db: URL) -> None:
    """A long transaction reads the jobs; someone's ALTER TABLE queues behind it; the upgrade's catalog read
    (pg_get_expr takes ACCESS SHARE on the table it deparses) queues behind that. It says who it waits on,
    tries again under a short lock timeout, and goes on once the transaction ends."""
    assert cli_here("upgrade", "46b", DATABASE_URL=plain(host_db)).returncode == 0
    reader, alter = create_engine(host_db), create_engine(host_db)
    try:
        with reader.connect() as long_read, alter.connect() as altering:
            long_read.execute(text("SET application_name = 'analytics report'"))
            long_read.execute(text("SELECT count(*) FROM outbound_call_jobs"))  # ACCESS SHARE, kept
            queued = altering.connection.dbapi_connection
            assert queued is not None
            queued.execute("SET lock_timeout = '20s'")
            pending = SimpleNamespace(done=False)

            def run_alter() -> None:
                try:
                    queued.execute("ALTER TABLE outbound_call_jobs ADD COLUMN IF NOT EXISTS note text")
                    queued.rollback()
                finally:
                    pending.done = True

            import threading

            threading.Thread(target=run_alter, daemon=True).start()
            deploy = cli_forked("upgrade", DATABASE_URL=plain(host_db))
            assert deploy.stderr is not None
            # Should the read wait silently, the report is ended after a while, so the test fails, not hangs.
            reader_pid = long_read.scalar(text("SELECT pg_backend_pid()"))
            watchdog = threading.Timer(30, lambda: inject(host_db, f"SELECT pg_terminate_backend({reader_pid})"))
            watchdog.start()
            try:
                said = read_until(deploy.stderr, "reading the catalog waits for a lock on")
            finally:
                watchdog.cancel()
            assert "held by pid" in said and "'analytics report'" in said and "1 session queued behind it" in said
            long_read.rollback()  # the report ends: the ALTER goes, then the upgrade
            _, err = deploy.communicate(timeout=60)
    finally:
        reader.dispose()
        alter.dispose()
    assert deploy.returncode == 0, err
    assert version(host_db) != ["46b"] and "Traceback" not in err
