"""DDL under lock and statement timeouts (outbound_schema.ddl): a held lock makes DDL time out, retry, then stop
naming its holder; the dialer's workers keep writing while DDL waits."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from tests.conftest import TEMPLATE_HEAD, Databases
from tests.helpers import (
    HEAD,
    backends,
    catalog,
    cli_forked,
    cli_here,
    connected,
    plain,
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
