"""DDL under lock and statement timeouts (outbound_schema.ddl): a held lock makes DDL time out, retry, then stop
naming its holder; the dialer's workers keep writing while DDL waits."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

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
    wait_for,
)

JOBS = "outbound_call_jobs"
HOLDER_APP = "Metabase report"


@dataclass
class Holder:
    """Another session holding a lock on a table, as a long report query would, until :meth:`release`."""

    pid: int
    stop: threading.Event
    thread: threading.Thread

    def release(self) -> None:
        self.stop.set()
        self.thread.join()


def hold_table_lock(url: URL, table: str, *, application: str = HOLDER_APP, mode: str = "ACCESS SHARE") -> Holder:
    """A session holding ``mode`` on ``table`` until released (at most 60 s); when ``mode`` must queue, a
    session queued for it."""
    started, stop = threading.Event(), threading.Event()
    pids: list[int] = []

    def hold() -> None:
        engine = create_engine(url, connect_args={"application_name": application})
        with engine.connect() as conn:
            pids.append(int(conn.scalar(text("SELECT pg_backend_pid()")) or 0))
            started.set()
            conn.execute(text(f"LOCK TABLE {table} IN {mode} MODE"))
            stop.wait(60)
            conn.rollback()
        engine.dispose()

    thread = threading.Thread(target=hold)
    thread.start()
    assert started.wait(10)
    return Holder(pids[0], stop, thread)


def user(url: URL) -> str:
    with connected(url) as conn:
        return str(conn.scalar(text("SELECT current_user")))


def granted(url: URL, pid: int, *, queued: bool = False) -> bool:
    """Whether session ``pid`` holds a lock on a table (``queued``: waits for one)."""
    state = "false" if queued else "true"
    return (
        backends(
            url, f"pid = {pid} AND pid IN (SELECT pid FROM pg_locks WHERE granted = {state} AND locktype = 'relation')"
        )
        == 1
    )


RETRY = re.compile(
    r"46b: add column outbound_call_jobs\.dial_started_at: lock not granted within 50 ms on outbound_call_jobs "
    r"\(attempt (\d+), [\d.]+ s of the [^)]+ lock wait total\): held by pid (\d+) \(user (\w+), "
    r"application '([^']+)', idle in transaction, in its transaction for [\d.]+ s, since \d\d:\d\d:\d\d, "
    r"holding (\w+)\); (1 session|none) queued behind it; retrying in [\d.]+ s"
)


@pytest.mark.waits
def test_a_held_lock_is_named_at_each_retry_then_the_run_stops_saying_how_to_end_it(
    head_db: URL, databases: Databases
) -> None:
    assert cli_here("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    # A copy of the same template on the same server: its tables have the same OIDs as ours. A lock held
    # there blocks nothing here and must not be named.
    sibling = databases.create(TEMPLATE_HEAD)
    # A manual CREATE INDEX, say, and a worker's write queued behind it.
    holder = hold_table_lock(head_db, JOBS, mode="SHARE")
    sibling_holder = hold_table_lock(sibling, JOBS, application="elsewhere", mode="SHARE")
    wait_for(lambda: granted(head_db, holder.pid), seconds=10)
    queued = hold_table_lock(head_db, JOBS, application="dialer-worker", mode="ROW EXCLUSIVE")
    wait_for(lambda: granted(head_db, queued.pid, queued=True), seconds=10)
    try:
        started = time.monotonic()
        done = cli_here("upgrade", "--lock-timeout", "50ms", "--lock-wait-total", "2s", DATABASE_URL=plain(head_db))
        elapsed = time.monotonic() - started
        # The retries' limit, when also given, ends the attempts first.
        by_count = cli_here(
            "upgrade",
            "--lock-timeout",
            "50ms",
            "--lock-retries",
            "1",
            "--lock-wait-total",
            "1min",
            DATABASE_URL=plain(head_db),
        )
    finally:
        holder.release()
        queued.release()
        sibling_holder.release()
        databases.release(sibling)
    assert done.returncode == 1, done.stderr
    retries = [RETRY.search(line) for line in done.stderr.splitlines() if "retrying in" in line]
    assert len(retries) >= 2 and all(retries), done.stderr
    assert [int(m.group(1)) for m in retries if m] == list(range(1, len(retries) + 1))
    assert {m.groups()[1:] for m in retries if m} == {
        (str(holder.pid), user(head_db), HOLDER_APP, "ShareLock", "1 session")
    }
    message = " ".join(done.stderr.split())
    assert (
        "46b: add column outbound_call_jobs.dial_started_at: the lock it needs on outbound_call_jobs was not "
        f"granted within 50 ms in {len(retries) + 1} attempts over "
    ) in message
    assert "(the lock wait total of 2.0 s), so it gave up" in message
    assert re.search(
        rf"It is held by pid {holder.pid} \(user \w+, application '{HOLDER_APP}', idle in transaction, in its "
        r"transaction for [\d.]+ s, since [\d:]+, holding ShareLock\); 1 session queued behind it\. Ask its owner "
        rf"to end that transaction, or end it with SELECT pg_terminate_backend\({holder.pid}\), then run the upgrade "
        r"again\. Changes already applied are kept; allow a longer wait with --lock-wait-total, "
        r"-x lock_wait_total= or OUTBOUND_SCHEMA_LOCK_WAIT_TOTAL\.",
        message,
    ), message
    assert "elsewhere" not in message  # the sibling database's session is not one
    assert "None" not in done.stderr and "LOCK TABLE" not in done.stderr
    assert elapsed < 30, "it gave up instead of queueing"
    assert by_count.returncode == 1 and "in 2 attempts over" in by_count.stderr, by_count.stderr
    assert "(its lock retries, 1, ran out before the lock wait total)" in " ".join(by_count.stderr.split())
    assert version(head_db) == ["46a"]
    columns = {c.name for c in catalog(head_db).tables["outbound_call_jobs"].columns}
    assert "dial_started_at" not in columns


@pytest.mark.waits
def test_a_query_shorter_than_the_lock_wait_total_lets_the_upgrade_finish(head_db: URL) -> None:
    """A report query holding the lock for a second, across several retries, under a total of a minute:
    no coin toss on how many retries fit in its time, the upgrade finishes (a default total of 5 min does the same for a
    query of a minute)."""
    assert cli_here("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    holder = hold_table_lock(head_db, JOBS)
    release = threading.Timer(1.0, holder.release)
    release.start()
    try:
        done = cli_here("upgrade", "--lock-timeout", "50ms", "--lock-wait-total", "1min", DATABASE_URL=plain(head_db))
    finally:
        release.join()
    assert done.returncode == 0, done.stderr
    found = RETRY.search(done.stderr)
    assert found and found.group(5) == "AccessShareLock", done.stderr
    assert version(head_db) == [HEAD]


@pytest.mark.waits
def test_a_lock_released_during_the_retries_lets_the_upgrade_finish(head_db: URL) -> None:
    assert cli_here("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    holder = hold_table_lock(head_db, JOBS)
    deploy = cli_forked("upgrade", "--lock-timeout", "50ms", DATABASE_URL=plain(head_db))  # a process of its own
    for line in deploy.stderr:  # the first lock timeout, then let the holder finish
        if "retrying" in line:
            break
    holder.release()
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
    holder = hold_table_lock(head_db, JOBS)
    deploy = cli_forked("upgrade", "--lock-timeout", "100ms", "--lock-retries", "2", DATABASE_URL=plain(head_db))
    worst = 0.0
    engine = create_engine(head_db, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as writer:
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and deploy.poll() is None:
                start = time.monotonic()
                writer.execute(text("INSERT INTO outbound_call_jobs (run_id, lead_id) VALUES (1, 1)"))
                worst = max(worst, time.monotonic() - start)
                # A write every 2 ms still meets each 100 ms lock attempt about 50 times; back to back,
                # the writer made some 6,000 inserts, seconds of CPU that the other tests wanted.
                time.sleep(0.002)
    finally:
        holder.release()
        deploy.communicate(timeout=120)
        engine.dispose()
    # 100 ms of queueing behind one attempt, plus scheduling slack on a busy CI machine.
    assert worst < 0.5, f"a writer stalled {worst * 1000:.0f} ms"
    assert backends(head_db, "state = 'active' AND wait_event_type = 'Lock'") == 0
