"""Before anything changes, and sessions that last: a hot standby refused, missing privileges named with
their fixes (outbound_schema.session, outbound_schema.safety.privileges); the migration's sessions outlive a
role's idle timeouts, and a session ended under a run says what ended it."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from outbound_schema.config import LOCK_KEY
from outbound_schema.database import engine_for
from outbound_schema.errors import connection_lost
from outbound_schema.standing import HISTORY_TABLE
from tests import session_server
from tests.conftest import TEMPLATE_HEAD, TEMPLATE_HOST, Databases
from tests.helpers import (
    HEAD,
    alembic_here,
    catalog,
    cli_forked,
    cli_here,
    connected,
    inject,
    plain,
    tables,
    version,
    wait_for,
)
from tests.provision import Server
from tests.standby import standby_of
from tests.test_ddl import Holder, granted, hold_table_lock

MIGRATOR = "outbound_migrator"  # may log in, owns nothing, may create nothing
IDLER = "outbound_idler"  # a superuser whose sessions time out fast in the databases it is told to
PASSWORD = "pw-preflight-7"


def _role(pg_server: Server, name: str, attributes: str) -> str:
    def make() -> str:
        with connected(pg_server.url) as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}):
                conn.execute(text(f"CREATE ROLE {name} LOGIN {attributes} PASSWORD '{PASSWORD}'"))
            conn.commit()
        return name

    return session_server.once(name, make)


@pytest.fixture(scope="session")
def migrator(pg_server: Server) -> str:
    return _role(pg_server, MIGRATOR, "NOSUPERUSER")


@pytest.fixture(scope="session")
def idler(pg_server: Server) -> str:
    return _role(pg_server, IDLER, "SUPERUSER")


@pytest.fixture
def reader(pg_server: Server, legacy_head_db: URL) -> Iterator[str]:
    """A role of the test's own that may log in and owns nothing. The test makes it a member of
    pg_read_all_data, a grant of the whole server: the run's other tests, and the next run on a server given
    by URL, must not find it on a role they share. What it came to own in the test's database goes with it."""
    name = f"outbound_reader_{uuid.uuid4().hex[:8]}"
    inject(pg_server.url, f"CREATE ROLE {name} LOGIN NOSUPERUSER PASSWORD '{PASSWORD}'")
    yield name
    inject(legacy_head_db, f"DROP OWNED BY {name}")
    inject(pg_server.url, f"DROP ROLE {name}")


def _as(url: URL, role: str) -> str:
    return plain(url.set(username=role, password=PASSWORD))


def _fixes(message: str) -> list[str]:
    """The first statement in each parenthesis of a refusal: the GRANT or ALTER ... OWNER that fixes it."""
    return [m.group(1) for m in re.finditer(r"\(((?:GRANT|ALTER TABLE) [^;)]*)", message)]


def _no_public_create(url: URL) -> None:
    """As PostgreSQL 15+ makes every database: the public schema's CREATE not for everyone."""
    inject(url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")


def _history_rows(url: URL) -> int | None:
    with connected(url) as conn:
        if conn.scalar(text("SELECT to_regclass(:t)"), {"t": HISTORY_TABLE}) is None:
            return None
        return int(conn.scalar(text(f"SELECT count(*) FROM {HISTORY_TABLE}")) or 0)


def test_a_role_that_may_create_nothing_is_refused_before_anything_changes(host_db: URL, migrator: str) -> None:
    _no_public_create(host_db)
    before = tables(host_db)
    started = time.monotonic()
    done = cli_here("upgrade", DATABASE_URL=_as(host_db, migrator))
    print(f"[{time.monotonic() - started:.2f} s] exit {done.returncode}\n{done.stderr}")
    assert done.returncode == 2, done.stderr
    message = done.stderr
    assert f"The role {migrator} lacks privileges this migration needs, so it changed nothing" in message
    assert f"GRANT CREATE ON SCHEMA public TO {migrator}" in message
    assert "outbound_call_jobs, outbound_call_runs, outbound_schema_version and outbound_schema_history" in message
    assert f"GRANT REFERENCES ON business, call_log, leads, outbound_lead_lists TO {migrator}" in message
    assert PASSWORD not in message
    assert tables(host_db) == before and version(host_db) is None and _history_rows(host_db) is None
    # The same refusal under Alembic's own command line.
    through_alembic = alembic_here("upgrade", "head", DATABASE_URL=_as(host_db, migrator))
    assert through_alembic.returncode != 0 and f"GRANT CREATE ON SCHEMA public TO {migrator}" in through_alembic.stderr
    assert tables(host_db) == before
    # The fixes named are the fixes: with them, the upgrade goes through.
    inject(host_db, *_fixes(message))
    again = cli_here("upgrade", DATABASE_URL=_as(host_db, migrator))
    assert again.returncode == 0, again.stderr
    assert version(host_db) == [HEAD]


def test_a_role_owning_no_table_is_refused_before_anything_is_recorded(legacy_head_db: URL, reader: str) -> None:
    _no_public_create(legacy_head_db)
    before, recorded, history = catalog(legacy_head_db), version(legacy_head_db), _history_rows(legacy_head_db)
    # Not even where the database stands can be read: said before anything is locked.
    unread = cli_here("upgrade", DATABASE_URL=_as(legacy_head_db, reader))
    print(f"exit {unread.returncode}\n{unread.stderr}")
    assert unread.returncode == 2, unread.stderr
    assert f"may not read outbound_schema_version and {HISTORY_TABLE}" in unread.stderr
    # A role that reads everything (as check and status may), owning nothing.
    inject(legacy_head_db, f"GRANT pg_read_all_data TO {reader}")
    started = time.monotonic()
    done = cli_here("upgrade", DATABASE_URL=_as(legacy_head_db, reader))
    print(f"[{time.monotonic() - started:.2f} s] exit {done.returncode}\n{done.stderr}")
    assert done.returncode == 2, done.stderr
    message = done.stderr
    assert "ownership of table outbound_call_runs (owned by " in message
    assert f"ALTER TABLE outbound_call_runs OWNER TO {reader}" in message
    assert f"GRANT SELECT, INSERT, UPDATE, DELETE ON outbound_schema_version TO {reader}" in message
    assert f"GRANT SELECT, INSERT ON {HISTORY_TABLE} TO {reader}" in message
    assert catalog(legacy_head_db) == before
    assert version(legacy_head_db) == recorded and _history_rows(legacy_head_db) == history
    inject(legacy_head_db, *_fixes(message))
    again = cli_here("upgrade", DATABASE_URL=_as(legacy_head_db, reader))
    assert again.returncode == 0, again.stderr
    assert version(legacy_head_db) == [HEAD]


@pytest.mark.heavy
def test_a_hot_standby_is_refused_and_read_on(pg_server: Server, databases: Databases) -> None:
    """A real streaming standby, from pg_basebackup -R: upgrades and downgrades are refused naming it,
    before anything is locked; status and check read it."""
    with standby_of(pg_server, TEMPLATE_HEAD, TEMPLATE_HOST) as standby:
        at_head, untracked = plain(standby.database(standby.at_head)), plain(standby.database(standby.untracked))
        with connected(standby.database(standby.at_head)) as conn:
            assert conn.scalar(text("SELECT pg_is_in_recovery()"))
        for args, url in (
            (("upgrade",), at_head),
            (("upgrade",), untracked),
            (("downgrade", "-1"), at_head),
        ):
            started = time.monotonic()
            done = cli_here(*args, DATABASE_URL=url)
            print(f"{' '.join(args)} [{time.monotonic() - started:.2f} s] exit {done.returncode}\n{done.stderr}")
            assert done.returncode == 2, done.stderr
            assert "is a hot standby" in done.stderr and "Run the migration against the primary" in done.stderr
            assert "Nothing was locked, set or changed" in done.stderr
            assert "read-only transaction" not in done.stderr
        through_alembic = alembic_here("upgrade", "head", DATABASE_URL=untracked)
        assert through_alembic.returncode != 0 and "is a hot standby" in through_alembic.stderr
        status = cli_here("status", "--check", DATABASE_URL=at_head)
        assert status.returncode == 0 and "state:    at head" in status.stdout, status.stdout + status.stderr
        check = cli_here("check", DATABASE_URL=at_head)
        assert check.returncode == 0, check.stdout + check.stderr
        behind = cli_here("status", DATABASE_URL=untracked)
        assert behind.returncode == 0 and "untracked" in behind.stdout, behind.stdout + behind.stderr


def _timing_out(url: URL, role: str) -> None:
    """Sessions of ``role`` in ``url``'s database end after 300 ms idle, in or out of a transaction (and,
    on PostgreSQL 17+, after a transaction of 300 ms): shorter than an upgrade's first back-off."""
    database = url.database
    settings = ["idle_session_timeout", "idle_in_transaction_session_timeout"]
    with connected(url) as conn:
        if int(conn.scalar(text("SHOW server_version_num")) or 0) >= 170000:
            settings.append("transaction_timeout")
    inject(url, *(f"ALTER ROLE {role} IN DATABASE \"{database}\" SET {name} = '300ms'" for name in settings))


def _hold(url: URL, table: str) -> Holder:
    """Another session holding ACCESS SHARE on ``table`` (granted before this returns) until released: DDL
    on it waits, retries, backs off."""
    holder = hold_table_lock(url, table)
    wait_for(lambda: granted(url, holder.pid), seconds=10)
    return holder


@pytest.mark.waits
def test_sessions_outlive_a_role_s_idle_timeouts(legacy_head_db: URL, idler: str) -> None:
    _timing_out(legacy_head_db, idler)
    as_idler = engine_for(legacy_head_db.set(username=idler, password=PASSWORD), isolation_level="AUTOCOMMIT")
    with as_idler.connect() as conn:
        assert conn.scalar(text("SHOW idle_session_timeout")) == "300ms"  # in force for the role, as given
        from outbound_schema.safety.impl import _monitor

        connect = _monitor(conn)
        assert connect is not None
        with connect() as watcher:  # the progress watcher's session
            time.sleep(0.6)
            assert watcher.execute("SHOW idle_session_timeout").fetchone() == ("0",)
    as_idler.dispose()
    holder = _hold(legacy_head_db, "outbound_call_runs")
    release = threading.Timer(1.0, holder.release)
    release.start()
    started = time.monotonic()
    done = cli_here("upgrade", DATABASE_URL=_as(legacy_head_db, idler))
    took = time.monotonic() - started
    release.join()
    print(f"[{took:.2f} s] exit {done.returncode}\n{done.stderr}")
    assert done.returncode == 0, done.stderr
    assert "lock not granted" in done.stderr and took > 1.0  # it waited, idle, longer than the timeouts
    assert version(legacy_head_db) == [HEAD]


@pytest.mark.waits
def test_a_session_ended_by_an_administrator_says_so(legacy_head_db: URL) -> None:
    holder = _hold(legacy_head_db, "outbound_call_runs")  # released once the deploy has ended
    deploy = cli_forked("upgrade", DATABASE_URL=plain(legacy_head_db))
    try:
        assert deploy.stderr is not None
        for line in deploy.stderr:
            if "lock not granted" in line:  # it backs off between retries, holding the migration lock
                break
        with connected(legacy_head_db) as conn:
            pid = conn.scalar(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = ("
                    "SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid)"
                ),
                {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF},
            )
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        started = time.monotonic()
        _out, err = deploy.communicate(timeout=60)
    finally:
        holder.release()
    print(f"[{time.monotonic() - started:.2f} s after pg_terminate_backend] exit {deploy.returncode}\n{err}")
    assert deploy.returncode == 1
    assert "The server ended the session by an administrator command" in err
    assert "57P01: terminating connection due to administrator command" in err
    assert "Check that the server is up and reachable" not in err
    assert version(legacy_head_db) == ["46d"]


def test_lost_connections_are_told_apart() -> None:
    said = "nothing of the revision that failed was recorded"
    idle = connection_lost("57P05", "terminating connection due to idle-session timeout", said)
    assert idle is not None and "idle_session_timeout" in idle and "ALTER ROLE" in idle
    in_transaction = connection_lost("25P03", "terminating connection due to idle-in-transaction timeout", said)
    assert in_transaction is not None and "idle_in_transaction_session_timeout" in in_transaction
    network = connection_lost("", "server closed the connection unexpectedly", said)
    assert network is not None and "network" in network and "reachable" in network
    assert connection_lost("42P01", "relation does not exist", said) is None
