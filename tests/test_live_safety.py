"""Safe on a live database: lock timeouts and retries, and downgrades that never drop data silently."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from tests.helpers import BIN, backends, catalog, cli, connected, plain, version


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


def test_a_held_lock_makes_ddl_time_out_retry_then_stop(head_db: URL) -> None:
    assert cli("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    stop, holder = hold_table_lock(head_db, "outbound_call_jobs")
    try:
        started = time.monotonic()
        done = cli("upgrade", "--lock-timeout", "50ms", "--lock-retries", "2", DATABASE_URL=plain(head_db))
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        holder.join()
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "lock not granted within 50 ms (attempt 1 of 3); retrying" in message
    assert "(attempt 2 of 3)" in message
    assert "46b: add column outbound_call_jobs.dial_started_at: the lock it needs on outbound_call_jobs" in message
    assert "was not granted within 50 ms in 3 attempts" in message
    assert "LOCK TABLE outbound_call_jobs IN ACCESS SHARE MODE" in message, "names the blocking session"
    assert elapsed < 30, "it gave up instead of queueing"
    assert version(head_db) == ["46a"]
    columns = {c.name for c in catalog(head_db).tables["outbound_call_jobs"].columns}
    assert "dial_started_at" not in columns


def test_a_lock_released_during_the_retries_lets_the_upgrade_finish(head_db: URL) -> None:
    assert cli("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    stop, holder = hold_table_lock(head_db, "outbound_call_jobs")
    deploy = subprocess.Popen(
        [str(BIN / "outbound-schema"), "upgrade", "--lock-timeout", "50ms"],
        env={**os.environ, "DATABASE_URL": plain(head_db)},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert deploy.stderr is not None
    for line in deploy.stderr:  # the first lock timeout, then let the holder finish
        if "retrying" in line:
            break
    stop.set()
    holder.join()
    _, rest = deploy.communicate(timeout=120)
    assert deploy.returncode == 0, rest
    assert version(head_db) == ["46d"]


def test_workers_keep_writing_while_ddl_waits(head_db: URL) -> None:
    """While our ALTER waits for its lock, writers queue behind it for at most the lock timeout."""
    assert cli("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        conn.execute(text("INSERT INTO outbound_call_runs (business_id) VALUES (1)"))
        conn.commit()
    stop, holder = hold_table_lock(head_db, "outbound_call_jobs")
    deploy = subprocess.Popen(
        [str(BIN / "outbound-schema"), "upgrade", "--lock-timeout", "100ms", "--lock-retries", "3"],
        env={**os.environ, "DATABASE_URL": plain(head_db)},
        stderr=subprocess.DEVNULL,
    )
    worst = 0.0
    engine = create_engine(head_db, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as writer:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and deploy.poll() is None:
                start = time.monotonic()
                writer.execute(text("INSERT INTO outbound_call_jobs (run_id, lead_id) VALUES (1, 1)"))
                worst = max(worst, time.monotonic() - start)
    finally:
        stop.set()
        holder.join()
        deploy.wait(timeout=120)
        engine.dispose()
    # 100 ms of queueing behind one attempt, plus scheduling slack on a busy CI machine.
    assert worst < 0.5, f"a writer stalled {worst * 1000:.0f} ms"
    assert backends(head_db, "state = 'active' AND wait_event_type = 'Lock'") == 0


def test_downgrade_refuses_to_drop_data(head_db: URL) -> None:
    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        run_id = conn.scalar(text("INSERT INTO outbound_call_runs (business_id) VALUES (1) RETURNING id"))
        conn.execute(
            text("INSERT INTO outbound_call_jobs (run_id, lead_id, dial_lock_token) VALUES (:r, 1, 'w1')"),
            {"r": run_id},
        )
        conn.commit()
    before = catalog(head_db)

    refused = cli("downgrade", "46b", DATABASE_URL=plain(head_db))
    assert refused.returncode == 1
    assert "Downgrading 46c would destroy data (column outbound_call_jobs.dial_lock_token holds values)" in (
        " ".join(refused.stderr.split())
    )
    assert "--allow-data-loss" in refused.stderr
    # 46d only held an index: it was reverted; 46c was not.
    assert version(head_db) == ["46c"]
    assert catalog(head_db).tables == before.tables

    # Empty columns go without asking; a table with rows does not.
    assert cli("downgrade", "46a", "--allow-data-loss", DATABASE_URL=plain(head_db)).returncode == 0
    refused_table = cli("downgrade", "base", DATABASE_URL=plain(head_db))
    assert refused_table.returncode == 1 and "table outbound_call_jobs holds rows" in refused_table.stderr
    assert version(head_db) == ["40b"]
    allowed = cli("downgrade", "base", "--allow-data-loss", DATABASE_URL=plain(head_db))
    assert allowed.returncode == 0, allowed.stderr
    assert catalog(head_db).tables == {}


def test_offline_downgrade_script_guards_data(head_db: URL) -> None:
    script = cli("downgrade", "46d:46b", "--sql")
    assert script.returncode == 0, script.stderr
    assert "IF EXISTS (SELECT FROM outbound_call_jobs WHERE dial_lock_token IS NOT NULL) THEN RAISE" in script.stdout
    allowed = cli("downgrade", "46d:46b", "--sql", "--allow-data-loss")
    assert "RAISE" not in allowed.stdout
