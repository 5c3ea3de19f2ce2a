"""Behind a real PgBouncer: transaction pooling is refused before anything changes, session pooling
migrates once, the read-only commands and the README's consumer examples work in either mode, and
our connections pass a default PgBouncer (which refuses startup ``options``)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outbound_schema.config import LOCK_KEY, VERSION_TABLE
from outbound_schema.settings import LOCK_WAIT, POOLER
from tests import pgbouncer
from tests.helpers import (
    HEAD,
    alembic_here,
    catalog_text,
    cli_forked,
    cli_here,
    connected,
    expected_text,
    plain,
    python_forked,
    tables,
    version,
)
from tests.test_readme import PYTHON_BLOCKS

Pooler = Callable[[str], URL]
ROUNDS = 2  # the second round reuses the server connections the first left behind
# Processes through a real PgBouncer: among the first tests scheduled (conftest), but for the one marked
# `waits`, which is spread through the run.
pytestmark = pytest.mark.heavy

CONCURRENT = 4
#: Our migration lock held in this database (pg_locks lists every database's, and the workers share a server).
OUR_LOCK = (
    "locktype = 'advisory' AND objid = :low "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def through(pooler: Pooler, mode: str, database: URL) -> URL:
    return pooler(mode).set(database=database.database)


def upgrade_all_at_once(url: URL, *options: str, **env: str) -> list[subprocess.CompletedProcess[str]]:
    """``CONCURRENT`` upgrades of ``url`` started together, as a rolling deploy starts them: each a
    process of its own (forked, see helpers.cli_forked)."""
    args = ("upgrade", "--database-url", plain(url), *options)
    processes = [cli_forked(*args, **env) for _ in range(CONCURRENT)]
    outputs = [p.communicate(timeout=120) for p in processes]
    return [
        subprocess.CompletedProcess(list(args), p.returncode, *out) for p, out in zip(processes, outputs, strict=True)
    ]


def server_sessions_are_clean(url: URL) -> None:
    """Through the pooler, every server connection it holds shows default settings and no lock of ours."""
    engines = [create_engine(url, connect_args={"prepare_threshold": None}) for _ in range(CONCURRENT)]
    try:
        connections = [engine.connect() for engine in engines]
        for conn in connections:  # each holds a server connection while the others look
            conn.begin()
            settings = dict(
                conn.execute(
                    text(
                        "SELECT name, setting FROM pg_settings WHERE name IN "
                        "('client_connection_check_interval', 'lock_timeout', 'statement_timeout')"
                    )
                ).all()
            )
            assert settings == {"client_connection_check_interval": "0", "lock_timeout": "0", "statement_timeout": "0"}
        locks = connections[0].scalar(
            text(f"SELECT count(*) FROM pg_locks WHERE {OUR_LOCK}"),
            {"low": LOCK_KEY & 0xFFFFFFFF},
        )
        assert locks == 0
        for conn in connections:
            conn.rollback()
            conn.close()
    finally:
        for engine in engines:
            engine.dispose()


def test_upgrade_through_transaction_pooling_refuses_and_leaves_nothing(host_db: URL, pooler: Pooler) -> None:
    pooled = through(pooler, "transaction", host_db)
    refused = 0
    for _ in range(ROUNDS):
        for done in upgrade_all_at_once(pooled):
            assert done.returncode == 2, done.stderr
            assert "reached through a connection pooler" in done.stderr and "Nothing was locked" in done.stderr
            assert "Traceback" not in done.stderr
            refused += 1
        assert version(host_db) is None and not {"outbound_call_jobs", "outbound_call_runs"} & tables(host_db)
        server_sessions_are_clean(pooled)
    assert refused == ROUNDS * CONCURRENT


def test_upgrade_through_session_pooling_migrates_once(host_db: URL, pooler: Pooler) -> None:
    """Told the pooler pools sessions, concurrent deploys behave as on a direct connection; told by the
    environment variable, or by the flag, which wins over the variable."""
    pooled = through(pooler, "session", host_db)
    told = [((), {str(POOLER.env): "session"}), (("--pooler", "session"), {str(POOLER.env): "none"})]
    for round_ in range(ROUNDS):
        options, env = told[round_ % len(told)]
        outcomes = upgrade_all_at_once(pooled, *options, **env)
        assert all(done.returncode == 0 for done in outcomes), [done.stderr for done in outcomes]
        migrated = [done for done in outcomes if "Running upgrade" in done.stderr]
        assert len(migrated) == (1 if round_ == 0 else 0)
        assert version(host_db) == [HEAD]
        server_sessions_are_clean(pooled)
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)


def test_alembic_is_told_session_pooling_with_x(host_db: URL, pooler: Pooler) -> None:
    """Under ``alembic``, ``-x pooler=session`` declares a session-pooled entry; without it the run is
    refused, naming every way to declare it, and changes nothing."""
    url = f"url={plain(through(pooler, 'session', host_db))}"
    refused = alembic_here("-x", url, "upgrade", "head")
    assert refused.returncode != 0 and "Nothing was locked" in refused.stderr, refused.stderr
    assert POOLER.how("session") in " ".join(refused.stderr.split()), refused.stderr
    assert version(host_db) is None
    done = alembic_here("-x", url, "-x", "pooler=session", "upgrade", "head", **{str(POOLER.env): "none"})
    assert done.returncode == 0, done.stderr
    assert version(host_db) == [HEAD]


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_read_only_commands_through_a_pooler(head_db: URL, pooler: Pooler, mode: str) -> None:
    pooled = plain(through(pooler, mode, head_db))
    check = cli_here("check", DATABASE_URL=pooled)
    assert check.returncode == 0, check.stdout + check.stderr
    status = cli_here("status", "--check", DATABASE_URL=pooled)
    assert status.returncode == 0, status.stdout + status.stderr


@pytest.mark.parametrize("example", range(len(PYTHON_BLOCKS)))
def test_readme_examples_through_transaction_pooling(head_db: URL, pooler: Pooler, example: int) -> None:
    """Each README example, 4 threads, 10 times each at once, through transaction pooling."""
    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (42); INSERT INTO leads (id) VALUES (7)"))
        conn.commit()
    program = (
        "import sys, threading\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        f"BLOCK = {PYTHON_BLOCKS[example]!r}\n"
        "def ten(_):\n"
        "    for _ in range(10):\n"
        "        exec(BLOCK, {'__name__': '__main__'})\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    list(pool.map(ten, range(4)))\n"
    )
    # A process of its own, forked, as the README's own test runs each block.
    pooled = through(pooler, "transaction", head_db)
    done = python_forked(program, DATABASE_URL=plain(pooled), PATH="/usr/bin:/bin")
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, f"{stderr[-3000:]}\n{pgbouncer.log_tail(pooled)}"
    with connected(head_db) as conn:
        runs = conn.scalar(text("SELECT count(*) FROM outbound_call_runs"))
    assert runs == 40, f"{runs} runs\n{stderr[-3000:]}\n{pgbouncer.log_tail(pooled)}"


def test_our_connections_pass_a_default_pgbouncer(head_db: URL, pooler: Pooler) -> None:
    """No startup options from us: a default PgBouncer would refuse them ('unsupported startup parameter')."""
    pooled = through(pooler, "transaction", head_db)
    from outbound_schema.database import engine_for

    engine = engine_for(pooled)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text(f"SELECT count(*) FROM {VERSION_TABLE}")) == 1
    finally:
        engine.dispose()
    # Many short checks at once share the pooler's connections: processes, as deploys are.
    checks = [cli_forked("check", DATABASE_URL=plain(pooled)) for _ in range(8)]
    for check in checks:
        check.communicate(timeout=120)
    codes = [check.returncode for check in checks]
    assert codes == [0] * 8


@pytest.mark.waits
def test_a_session_pooling_claim_that_is_false_stops_the_run(host_db: URL, pooler: Pooler) -> None:
    """Told 'session' through transaction pooling, runs stop at the first statement on another server
    session: never two migrating at once, never a traceback, and a direct upgrade then converges."""
    pooled = through(pooler, "transaction", host_db)
    # A lock left on a pooled server connection makes the others wait: only a second here.
    for done in upgrade_all_at_once(pooled, **{str(POOLER.env): "session", str(LOCK_WAIT.env): "1"}):
        stopped = (
            "The server session changed during the migration",
            "has held the migration lock",
            "already holds the migration lock",
        )
        assert done.returncode == 0 or any(reason in done.stderr for reason in stopped), done.stderr
        assert "Traceback" not in done.stderr
    assert len(version(host_db) or []) <= 1
    with connected(host_db) as conn:  # what a lying claim may leave: the lock on a pooled server connection
        conn.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_locks WHERE {OUR_LOCK}"),
            {"low": LOCK_KEY & 0xFFFFFFFF},
        )
        conn.commit()
    direct = cli_here("upgrade", DATABASE_URL=plain(host_db))
    assert direct.returncode == 0, direct.stderr
    assert version(host_db) == [HEAD] and catalog_text(host_db, HEAD) == expected_text(HEAD)


def test_a_long_lived_engine_through_transaction_pooling(head_db: URL, pooler: Pooler) -> None:
    """The README's advice: one engine per service, prepare_threshold=None. 4 threads x 30 sessions,
    each statement run often enough on one connection that psycopg would prepare it otherwise."""
    from sqlalchemy.orm import Session

    from outbound_schema import OutboundCallJob, OutboundCallRun

    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (42); INSERT INTO leads (id) VALUES (7)"))
        conn.commit()
    engine = create_engine(through(pooler, "transaction", head_db), connect_args={"prepare_threshold": None})

    def sessions(_: int) -> None:
        for _ in range(30):
            with Session(engine) as session:
                run = OutboundCallRun(business_id=42)
                session.add(run)
                session.flush()
                session.add(OutboundCallJob(run_id=run.id, lead_id=7))
                session.commit()

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(sessions, range(4)))
    finally:
        engine.dispose()
    with connected(head_db) as conn:
        assert conn.scalar(text("SELECT count(*) FROM outbound_call_jobs")) == 120
