"""Long statements say what they are doing: progress while they run, who they wait on (never that
session's SQL), the running migration in `status` from another shell, a redrawn line on a terminal."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import re
import select
import struct
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL

from outbound_schema import progress
from outbound_schema.progress import Progress, Reporter, Session
from outbound_schema.settings import PROGRESS_INTERVAL
from tests.helpers import (
    HEAD,
    cli_forked,
    cli_forked_on_terminal,
    cli_here,
    connected,
    plain,
    python_forked,
    revisions_after,
    version,
)

INTERVAL = {PROGRESS_INTERVAL.env: "0.2"}
SECRET = "personal-data-4711"  # in the writer's SQL: must never be shown
WRITER_APP = "dialer-worker"
BUILD_46D = "46d: create index idx_outbound_call_jobs_status_twilio_sid"
COLUMNS = 100  # the test terminal's width


@dataclass
class Writer:
    """A worker's transaction that has written to the jobs table and stays open."""

    engine: Engine
    conn: Connection
    pid: int

    def finish(self) -> None:
        self.conn.commit()
        self.conn.close()
        self.engine.dispose()


@pytest.fixture
def at_46c(head_db: URL) -> URL:
    assert cli_here("downgrade", "46c", DATABASE_URL=plain(head_db)).returncode == 0
    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        conn.execute(text("INSERT INTO outbound_call_runs (business_id) VALUES (1)"))
        conn.execute(text("INSERT INTO outbound_call_jobs (run_id, lead_id) SELECT id, 1 FROM outbound_call_runs"))
        conn.commit()
    return head_db


@pytest.fixture
def writer(at_46c: URL) -> Iterator[Writer]:
    engine = create_engine(at_46c, connect_args={"application_name": WRITER_APP})
    conn = engine.connect()
    conn.execute(text(f"UPDATE outbound_call_jobs SET dial_lock_token = '{SECRET}'"))
    held = Writer(engine, conn, int(conn.scalar(text("SELECT pg_backend_pid()")) or 0))
    yield held
    if not conn.closed:
        held.finish()


def reader(url: URL) -> URL:
    """A role with pg_read_all_data and no pg_read_all_stats (a monitoring login, say)."""
    with connected(url) as conn:
        conn.execute(text("DROP ROLE IF EXISTS progress_reader"))
        conn.execute(text("CREATE ROLE progress_reader LOGIN PASSWORD 'pw' IN ROLE pg_read_all_data"))
        conn.commit()
    return url.set(username="progress_reader", password="pw")


def status_json(url: URL) -> dict[str, object]:
    done = cli_here("status", "--format", "json", DATABASE_URL=plain(url))
    assert done.returncode in (0, 1), done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def wait_for_running(url: URL, pid: int, seconds: float = 30) -> dict[str, object]:
    """``status --format json`` until it shows the migration waiting on ``pid``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        running = status_json(url)["running"]
        report = running.get("progress") if isinstance(running, dict) else None
        if report and any(s["pid"] == pid for s in report["waiting_for"]):
            return running  # type: ignore[return-value]
        time.sleep(0.1)
    raise AssertionError(f"status never showed the migration waiting on {pid}")


@pytest.mark.waits
def test_a_waiting_build_names_who_it_waits_on_and_status_shows_it(at_46c: URL, writer: Writer) -> None:
    deploy = cli_forked("upgrade", DATABASE_URL=plain(at_46c), **INTERVAL)
    try:
        running = wait_for_running(at_46c, writer.pid)
        # From another shell: which process, which revision and statement, for how long, the same progress.
        report = running["progress"]
        assert isinstance(report, dict)
        assert report["statement"] == BUILD_46D  # cut in application_name, named again from the build
        assert report["phase"].startswith("waiting for")
        assert [s["application"] for s in report["waiting_for"]] == [WRITER_APP]
        assert [s["state"] for s in report["waiting_for"]] == ["idle in transaction"]
        assert running["pid"] != writer.pid and running["connected_s"] >= 0
        # A role that may read the data but not other sessions' activity sees that one runs, not what.
        hidden = cli_here("status", DATABASE_URL=plain(reader(at_46c)))
        assert f"server process {running['pid']} (user " in hidden.stdout and progress.HIDDEN in hidden.stdout
        text_status = cli_here("status", DATABASE_URL=plain(at_46c))
        (line,) = [line for line in text_status.stdout.splitlines() if line.startswith("running:")]
        assert f"server process {running['pid']}" in line and BUILD_46D[:40] in line
        assert f"waiting on pid {writer.pid} (user " in line and SECRET not in text_status.stdout
        assert f"state:    migrating: 46d -> {' -> '.join(revisions_after('46d'))} in progress" in text_status.stdout
        assert status_json(at_46c)["state"] == "migrating"
        time.sleep(1)  # a few readings
    finally:
        writer.finish()
    _, stderr = deploy.communicate(timeout=120)
    assert deploy.returncode == 0, stderr
    assert version(at_46c) == [HEAD]

    lines = [line for line in stderr.splitlines() if line.startswith(f"{BUILD_46D}:")]
    waiting = [line for line in lines if f"waiting on pid {writer.pid} " in line]
    assert len(waiting) >= 2, stderr  # one every interval while it waits
    assert re.search(
        rf"waiting on pid {writer.pid} \(user \w+, application '{WRITER_APP}', idle in transaction, "
        r"in its transaction for [\d.]+ s, since [\d:]+\)\. It goes on by itself once that transaction ends; .*"
        rf"SELECT pg_terminate_backend\({writer.pid}\)",
        waiting[0],
    ), waiting[0]
    assert re.fullmatch(rf"{BUILD_46D}: done in [\d.]+ s", lines[-1]), lines[-1]
    assert SECRET not in stderr and "UPDATE" not in stderr
    after = status_json(at_46c)
    assert after["running"] is None and after["state"] == "at_head"


@pytest.mark.waits
def test_quiet_upgrades_print_no_progress(at_46c: URL, writer: Writer) -> None:
    # To 46d, whose build waits: a later revision may have its say in a warning, which -q keeps.
    deploy = cli_forked("upgrade", "46d", "-q", DATABASE_URL=plain(at_46c), **INTERVAL)
    try:
        wait_for_running(at_46c, writer.pid)
        time.sleep(0.5)
    finally:
        writer.finish()
    _, stderr = deploy.communicate(timeout=120)
    assert deploy.returncode == 0 and stderr == "", stderr


@pytest.mark.waits
def test_on_a_terminal_one_line_is_redrawn(at_46c: URL, writer: Writer) -> None:
    """The program on a real terminal (a pty, its output and error): the line is redrawn in place, not
    repeated. Forked, not started anew: the terminal it writes to decides, not how it was started."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    deploy = cli_forked_on_terminal(follower, "upgrade", DATABASE_URL=plain(at_46c), **INTERVAL)
    os.close(follower)
    screen = b""
    try:
        wait_for_running(at_46c, writer.pid)
        time.sleep(1)
    finally:
        writer.finish()
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        try:
            chunk = os.read(leader, 65536) if ready else b""
        except OSError:  # the program closed the terminal
            chunk = b""
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert deploy.wait(timeout=60) == 0, screen.decode(errors="replace")
    shown = screen.decode(errors="replace")
    redraws = re.findall(rf"\r\x1b\[K{re.escape(BUILD_46D)}: (?:\[[#.]{{20}}\] )?waiting for [^\r\n]*", shown)
    assert len(redraws) >= 2, shown  # redrawn in place: no newline between readings
    assert all(len(redraw) - len("\r\x1b[K") < COLUMNS for redraw in redraws), redraws  # never wraps
    # Who blocks, and what to do, once in full on a line of its own above the redrawn one.
    advice = re.findall(rf"{re.escape(BUILD_46D)}: waiting on pid {writer.pid} [^\r\n]*\r?\n", shown)
    assert len(advice) == 1 and f"SELECT pg_terminate_backend({writer.pid})" in advice[0], shown
    assert re.search(rf"\r\x1b\[K{re.escape(BUILD_46D)}: done in [\d.]+ s\r?\n", shown), shown


@pytest.mark.waits
def test_status_shows_a_statement_backing_off_for_a_lock_and_who_holds_it(head_db: URL) -> None:
    """Between the short attempts of a statement whose lock is held (its session idle), status from another
    process says what it waits for, held by whom, and what to do: not "between statements"."""
    from tests.test_ddl import HOLDER_APP, hold_table_lock

    assert cli_here("downgrade", "46a", DATABASE_URL=plain(head_db)).returncode == 0
    holder = hold_table_lock(head_db, "outbound_call_jobs")
    deploy = cli_forked("upgrade", "--lock-timeout", "50ms", "--lock-wait-total", "1min", DATABASE_URL=plain(head_db))
    try:
        deadline, running = time.monotonic() + 30, None
        while time.monotonic() < deadline:  # an attempt (50 ms) or the back-off between two (0.5 s and more)
            found = status_json(head_db)["running"]
            if isinstance(found, dict) and (found["progress"] or {}).get("attempts"):
                running = found
                break
            time.sleep(0.05)
        assert running is not None, "status never showed the migration between attempts"
        report = running["progress"]
        assert report["statement"] == "46b: add column outbound_call_jobs.dial_started_at"
        assert report["phase"] == "waiting for a lock on outbound_call_jobs"
        assert report["lock_on"] == ["outbound_call_jobs"] and report["attempts"] >= 1 and report["queued"] == 0
        (held,) = report["waiting_for"]
        assert (held["pid"], held["application"], held["state"]) == (holder.pid, HOLDER_APP, "idle in transaction")
        assert held["holding"] == "AccessShareLock" and report["seconds"] >= 0
        lines: list[str] = []
        for _ in range(100):  # the text, at a moment between two attempts
            shown = cli_here("status", DATABASE_URL=plain(head_db)).stdout
            lines = [line for line in shown.splitlines() if line.startswith("running:")]
            if lines and "attempt" in lines[0]:
                break
        (line,) = lines
        assert re.search(
            r"46b: add column outbound_call_jobs\.dial_started_at: waiting for a lock on outbound_call_jobs held by "
            rf"pid {holder.pid} \(user \w+, application '{HOLDER_APP}', idle in transaction, in its transaction for "
            r"[\d.]+ s, since [\d:]+, holding AccessShareLock\); none queued behind it; \d+ attempts? of at most the "
            r"lock timeout each in [\d.]+ s, the next by itself\. It goes on by itself once that transaction ends; .*"
            rf"SELECT pg_terminate_backend\({holder.pid}\)",
            line,
        ), line
        assert "between statements" not in line and "None" not in line
    finally:
        holder.release()
    _, stderr = deploy.communicate(timeout=120)
    assert deploy.returncode == 0, stderr
    assert version(head_db) == [HEAD]


def test_a_lock_wait_says_in_words_what_it_does_not_know() -> None:
    hidden = Session(4242, "metabase", "Metabase", None, None, "client backend", "AccessShareLock")
    assert hidden.describe() == (
        "pid 4242 (user metabase, application 'Metabase', its state hidden from this role (grant it "
        "pg_read_all_stats to see it), holding AccessShareLock)"
    )
    assert Session(77, None, "", "active", None, "autovacuum worker").describe() == (
        "pid 77 (autovacuum worker, no application name, active, in no transaction)"
    )
    waiting = Progress(12.0, "waiting for a lock on t", waiting_for=(hidden,), lock_on=("t",), queued=2, attempts=5)
    assert waiting.describe().startswith(
        "waiting for a lock on t held by pid 4242 (user metabase, application 'Metabase', its state hidden "
        "from this role (grant it pg_read_all_stats to see it), holding AccessShareLock); 2 sessions queued "
        "behind it; 5 attempts of at most the lock timeout each in 12 s, the next by itself. It goes on by itself"
    )
    assert "SELECT pg_terminate_backend(4242)" in waiting.describe() and "None" not in waiting.describe()
    mark = progress.lock_wait_mark("47a: executed /* a */ comment", ["t"], 3, 1.5)
    assert mark.count("*/") == 1 and mark.endswith(" */")


def test_a_reading_with_a_share_shows_it_and_a_bar(caplog: pytest.LogCaptureFixture) -> None:
    reading = Progress(72.0, "building index: scanning table", 41_000, 100_000, "blocks", (), BUILD_46D)
    assert reading.describe() == "building index: scanning table, 41% (41,000 of 100,000 blocks), 1 min 12 s"
    terminal = _Terminal()
    with caplog.at_level(logging.INFO, logger="outbound_schema.progress"):
        Reporter(terminal).update(BUILD_46D, reading)
    assert terminal.getvalue() == f"\r\x1b[K{BUILD_46D}: [########............] {reading.describe()}"
    waiting = Progress(
        3.0, "waiting for writers before build", 0, 1, "transactions", (Session(7, "app", "w", "idle", 9.5),)
    )
    assert (
        "waiting on pid 7 (user app, application 'w', idle, in its transaction for 9.5 s, since " in waiting.describe()
    )
    assert json.loads(json.dumps(reading.to_json()))["share"] == 0.41


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    reading = Progress(6.0, "running")
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="outbound_schema.progress"):
        Reporter(stream).update("47a: alter column", reading)
    assert stream.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == ["47a: alter column: running, 6.0 s"]


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "99999"])
def test_a_bad_progress_interval_is_one_paragraph(head_db: URL, raw: str) -> None:
    done = cli_here("upgrade", DATABASE_URL=plain(head_db), **{PROGRESS_INTERVAL.env: raw})
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"The progress interval '{raw}'" in done.stderr and done.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(
    ("phase", "unit"),
    [
        ("waiting for writers before build", "transactions"),
        ("building index: scanning table", "blocks"),
        ("building index: sorting live tuples", None),
        ("building index: loading tuples in tree", "tuples"),
        ("waiting for writers before validation", "transactions"),
        ("index validation: scanning index", "blocks"),
        ("index validation: scanning table", "blocks"),
        ("waiting for old snapshots", "transactions"),
    ],
)
def test_each_phase_reads_its_own_counters(phase: str, unit: str | None) -> None:
    """PostgreSQL leaves a phase's counters standing into the next: a wait must not show 100% of blocks."""
    assert progress._phase_unit(phase) == unit


def test_the_end_of_a_statement_never_waits_for_its_watcher() -> None:
    @contextmanager
    def slow_to_connect() -> Iterator[None]:
        time.sleep(5)  # a pooler queueing the progress connection, say
        yield

    started = time.monotonic()
    with progress.Watch(slow_to_connect, 1, "47a: x", 0.05, Reporter(io.StringIO())):
        time.sleep(0.1)
    assert time.monotonic() - started < 2


def test_a_statement_shorter_than_the_interval_starts_no_thread_and_no_connection() -> None:
    """An upgrade runs hundreds of short statements: the watcher's thread and connection start only once a
    statement outlasts the interval, one process-wide alarm timing them all."""
    connected: list[bool] = []

    @contextmanager
    def connect() -> Iterator[None]:
        connected.append(True)
        yield

    for label in ("47a: short", "47a: shorter"):
        with progress.Watch(connect, 1, label, 0.5, Reporter(io.StringIO())):
            assert not any(t.name == f"outbound-schema progress {label}" for t in threading.enumerate())
    assert connected == []


@pytest.mark.waits
def test_no_thread_of_ours_outlives_the_statements_for_long(monkeypatch: pytest.MonkeyPatch) -> None:
    """The alarm's thread ends a moment after the last statement: a process forked after its migrations (a
    server preloading its application) forks no thread of ours (Python 3.12+ warns of that)."""
    monkeypatch.setattr(progress, "ALARM_IDLE_S", 0.1)

    def ours() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "outbound-schema progress"]

    with progress.Watch(contextmanager(lambda: iter([None])), 1, "47a: short", 5.0, Reporter(io.StringIO())):
        assert ours()
    deadline = time.monotonic() + 5
    while ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ours()


def test_a_forked_child_times_its_statements_with_an_alarm_of_its_own() -> None:
    """The alarm's thread does not survive a fork: a child of a process that has run a migration (a server
    preloading its application, say) starts its own."""
    code = """
import os, threading, time, warnings
from outbound_schema import progress

# Forking a process that runs a thread is the case in point (Python 3.12+ warns of it): said once, here.
warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)

fired = threading.Event()
progress._alarm.at(time.monotonic(), fired.set)
assert fired.wait(2), "the parent's alarm"
pid = os.fork()
if pid == 0:
    again = threading.Event()
    progress._alarm.at(time.monotonic(), again.set)
    os._exit(0 if again.wait(2) else 3)
print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
    child = python_forked(code)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0 and out.strip() == "child exit 0", out + err


@pytest.mark.waits
def test_a_reading_late_in_a_transaction_is_of_now(head_db: URL) -> None:
    """PostgreSQL keeps what it read of every session's activity until the transaction ends: a reading after
    another in the same transaction (status finds the migration, then reads it) still shows what runs now."""
    with connected(head_db) as busy, psycopg.connect(plain(head_db.set(drivername="postgresql"))) as watcher:
        pid = int(busy.scalar(text("SELECT pg_backend_pid()")) or 0)
        assert progress.read(watcher, pid) is None  # idle; the watcher's transaction stays open
        sleeper = threading.Thread(target=lambda: busy.execute(text("SELECT pg_sleep(0.5)")))
        sleeper.start()
        try:
            with connected(head_db) as look:  # a transaction each time: sees the sleep start
                while look.scalar(text(f"SELECT state FROM pg_stat_activity WHERE pid = {pid}")) != "active":
                    look.rollback()
                    time.sleep(0.01)
            reading = progress.read(watcher, pid)
            assert watcher.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            assert reading is not None and reading.phase == "running", reading
        finally:
            sleeper.join()


def test_a_hosts_connection_gets_its_name_back(at_46c: URL, writer: Writer) -> None:
    """The connection names each statement while it runs, for status; a host's connection goes back as it came."""
    from alembic import command

    from outbound_schema.config import alembic_config

    engine = create_engine(at_46c, connect_args={"application_name": "host-app"})
    try:
        with engine.connect() as conn:
            config = alembic_config(at_46c)
            config.attributes["connection"] = conn
            seen = []

            def watch_then_release() -> None:
                try:
                    seen.append(wait_for_running(at_46c, writer.pid))
                finally:  # seen or not, the build may finish: the assertion below tells which
                    writer.finish()

            watcher = threading.Thread(target=watch_then_release)
            watcher.start()
            try:
                command.upgrade(config, "head")
            finally:  # a failed upgrade too: the watcher ends, in this test, with the writer let go
                watcher.join()
            assert seen and seen[0]["progress"]["statement"] == BUILD_46D
            assert conn.scalar(text("SHOW application_name")) == "host-app"
    finally:
        engine.dispose()
