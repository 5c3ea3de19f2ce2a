"""Safe on a live database: lock timeouts and retries, and downgrades that never drop data silently."""

from __future__ import annotations

import re
import threading
import time

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outbound_schema.config import LOCK_KEY, alembic_config
from outbound_schema.database import engine_for
from outbound_schema.ddl import DDLRunner, Limits, SessionGuard, Statement
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.settings import timeout_ms, wait_seconds
from tests.conftest import TEMPLATE_HEAD, Databases
from tests.helpers import (
    HEAD,
    ScriptError,
    backends,
    catalog,
    cli_forked,
    cli_here,
    connected,
    plain,
    run_script,
    version,
)

JOBS = "outbound_call_jobs"


def hold_table_lock(url: URL, table: str) -> tuple[threading.Event, threading.Thread]:
    """Another session holding a lock on ``table`` (as a long report query would) until told to stop."""
    started, stop = threading.Event(), threading.Event()

    def hold() -> None:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text(f"LOCK TABLE {table} IN ACCESS SHARE MODE"))
            started.set()
            stop.wait(60)
            conn.rollback()
        engine.dispose()

    holder = threading.Thread(target=hold)
    holder.start()
    assert started.wait(10)
    return stop, holder


@pytest.mark.waits
def test_a_held_lock_makes_ddl_time_out_retry_then_stop(head_db: URL, databases: Databases) -> None:
    assert cli_here("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    # A copy of the same template on the same server: its tables have the same OIDs as ours. A lock held
    # there blocks nothing here and must not be named.
    sibling = databases.create(TEMPLATE_HEAD)
    stop, holder = hold_table_lock(head_db, "outbound_call_jobs")
    stop_sibling, sibling_holder = hold_table_lock(sibling, "outbound_call_jobs")
    try:
        started = time.monotonic()
        done = cli_here("upgrade", "--lock-timeout", "50ms", "--lock-retries", "2", DATABASE_URL=plain(head_db))
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        stop_sibling.set()
        holder.join()
        sibling_holder.join()
        databases.release(sibling)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "lock not granted within 50 ms (attempt 1 of 3); retrying" in message
    assert "(attempt 2 of 3)" in message
    assert "46b: add column outbound_call_jobs.dial_started_at: the lock it needs on outbound_call_jobs" in message
    assert "was not granted within 50 ms in 3 attempts" in message
    # Names the blocking session: who and how, never its SQL.
    blockers = re.findall(
        r"pid \d+ \(user \w+, application [^,]+, idle in transaction, holding AccessShareLock\)", message
    )
    assert len(blockers) == 1, message  # the sibling database's session is not one
    assert "LOCK TABLE" not in message
    assert elapsed < 30, "it gave up instead of queueing"
    assert version(head_db) == ["46a"]
    columns = {c.name for c in catalog(head_db).tables["outbound_call_jobs"].columns}
    assert "dial_started_at" not in columns


@pytest.mark.waits
def test_a_lock_released_during_the_retries_lets_the_upgrade_finish(head_db: URL) -> None:
    assert cli_here("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    stop, holder = hold_table_lock(head_db, "outbound_call_jobs")
    deploy = cli_forked("upgrade", "--lock-timeout", "50ms", DATABASE_URL=plain(head_db))  # a process of its own
    for line in deploy.stderr:  # the first lock timeout, then let the holder finish
        if "retrying" in line:
            break
    stop.set()
    holder.join()
    _, rest = deploy.communicate(timeout=120)
    assert deploy.returncode == 0, rest
    assert version(head_db) == [HEAD]


@pytest.mark.waits
def test_workers_keep_writing_while_ddl_waits(head_db: URL) -> None:
    """While our ALTER waits for its lock, writers queue behind it for at most the lock timeout."""
    assert cli_here("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        conn.execute(text("INSERT INTO outbound_call_runs (business_id) VALUES (1)"))
        conn.commit()
    stop, holder = hold_table_lock(head_db, "outbound_call_jobs")
    deploy = cli_forked("upgrade", "--lock-timeout", "100ms", "--lock-retries", "3", DATABASE_URL=plain(head_db))
    worst = 0.0
    engine = create_engine(head_db, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as writer:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and deploy.poll() is None:
                start = time.monotonic()
                writer.execute(text("INSERT INTO outbound_call_jobs (run_id, lead_id) VALUES (1, 1)"))
                worst = max(worst, time.monotonic() - start)
                # A write every 2 ms still meets each 100 ms lock attempt about 50 times; back to back,
                # the writer made some 6,000 inserts, seconds of CPU that the other tests wanted.
                time.sleep(0.002)
    finally:
        stop.set()
        holder.join()
        deploy.communicate(timeout=120)
        engine.dispose()
    # 100 ms of queueing behind one attempt, plus scheduling slack on a busy CI machine.
    assert worst < 0.5, f"a writer stalled {worst * 1000:.0f} ms"
    assert backends(head_db, "state = 'active' AND wait_event_type = 'Lock'") == 0


def test_downgrade_refuses_to_drop_data(legacy_head_db: URL) -> None:
    with connected(legacy_head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        run_id = conn.scalar(text("INSERT INTO outbound_call_runs (business_id) VALUES (1) RETURNING id"))
        conn.execute(
            text("INSERT INTO outbound_call_jobs (run_id, lead_id, dial_lock_token) VALUES (:r, 1, 'w1')"),
            {"r": run_id},
        )
        conn.commit()
    before = catalog(legacy_head_db)

    refused = cli_here("downgrade", "46b", DATABASE_URL=plain(legacy_head_db))
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert "Downgrading 46c would destroy data (column outbound_call_jobs.dial_lock_token holds values)" in message
    assert "nothing was reverted" in message and "--allow-data-loss" in message
    # Refused before anything of the run changed: not even 46d's index was dropped.
    assert version(legacy_head_db) == ["46d"]
    assert catalog(legacy_head_db) == before

    # Columns without values go without asking; a table with rows does not.
    assert cli_here("downgrade", "46c", DATABASE_URL=plain(legacy_head_db)).returncode == 0
    assert cli_here("downgrade", "46a", "--allow-data-loss", DATABASE_URL=plain(legacy_head_db)).returncode == 0
    refused_table = cli_here("downgrade", "base", DATABASE_URL=plain(legacy_head_db))
    assert refused_table.returncode == 1 and "table outbound_call_jobs holds rows" in refused_table.stderr
    assert version(legacy_head_db) == ["46a"]
    allowed = cli_here("downgrade", "base", "--allow-data-loss", DATABASE_URL=plain(legacy_head_db))
    assert allowed.returncode == 0, allowed.stderr
    assert catalog(legacy_head_db).tables == {}


def test_offline_downgrade_script_guards_data(legacy_head_db: URL) -> None:
    with connected(legacy_head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        conn.execute(text("INSERT INTO outbound_call_runs (id, business_id) VALUES (1, 1)"))
        conn.execute(text("INSERT INTO outbound_call_jobs (run_id, lead_id, dial_lock_token) VALUES (1, 1, 'w1')"))
        conn.commit()
    guarded = cli_here("downgrade", "46d:46b", "--sql")
    assert guarded.returncode == 0, guarded.stderr
    with pytest.raises(ScriptError, match="Downgrading 46c would destroy data"):
        run_script(legacy_head_db, guarded.stdout)
    assert "dial_lock_token" in {c.name for c in catalog(legacy_head_db).tables["outbound_call_jobs"].columns}

    allowed = cli_here("downgrade", "46d:46b", "--sql", "--allow-data-loss")
    assert "RAISE" not in allowed.stdout
    run_script(legacy_head_db, allowed.stdout)
    assert "dial_lock_token" not in {c.name for c in catalog(legacy_head_db).tables["outbound_call_jobs"].columns}
    assert version(legacy_head_db) == ["46b"]


def test_lock_wait_zero_gives_up_at_once(head_db: URL) -> None:
    with connected(head_db) as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        holder.commit()
        started = time.monotonic()
        done = cli_here("upgrade", "--lock-wait", "0", DATABASE_URL=plain(head_db))
        assert done.returncode == 1 and "for more than 0 s" in done.stderr
        assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--statement-timeout", "0", "shorter than a millisecond"),
        ("--lock-timeout", "soon", "is not a duration"),
        ("--lock-retries", "-1", "not a whole number"),
        ("--lock-wait", "nan", "is not a duration"),
        ("--lock-wait", "abc", "Give seconds, such as 600"),  # not milliseconds: a bare number here is seconds
        ("--lock-wait", "1w", "Give seconds, such as 600"),
        ("--statement-timeout", "1w", "units us, ms, s, min, h or d"),
        ("--statement-timeout", "40d", "longer than PostgreSQL allows"),
    ],
)
def test_bad_limits_are_refused(option: str, value: str, message: str) -> None:
    done = cli_here("upgrade", option, value, DATABASE_URL="postgresql://u@127.0.0.1:1/db")
    assert done.returncode == 1 and message in done.stderr


@pytest.mark.parametrize(
    ("value", "milliseconds"),
    [
        ("250ms", 250),
        ("30s", 30_000),
        ("5min", 300_000),
        ("1h", 3_600_000),
        ("1.5h", 5_400_000),
        ("1e3", 1000),
        ("1.5e1s", 15_000),
    ],
)
def test_durations_are_read_as_postgresql_reads_them(value: str, milliseconds: int) -> None:
    assert timeout_ms(value) == milliseconds
    if not value[-1].isdigit():  # a plain number is seconds for the lock wait, milliseconds for a timeout
        assert wait_seconds(value) == milliseconds / 1000


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
