"""Taking over databases the old script built: any state, conflicts, crashes. (Concurrent deploys and the
migration lock are tests/test_locking.py's.)

Every database here holds rows; they are compared before and after.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outbound_schema.config import VERSION_TABLE
from tests.helpers import (
    BIN,
    HEAD,
    backends,
    catalog,
    catalog_text,
    cli_here,
    connected,
    expected_text,
    file_nodes,
    plain,
    rows,
    version,
    wait_for,
)
from tests.legacy import LEGACY_STEPS, REVISIONS, assert_rows_kept, legacy_db


@pytest.mark.parametrize("through", [None, *REVISIONS], ids=["nothing", *REVISIONS])
def test_takeover_from_every_legacy_prefix(host_db: URL, through: str | None) -> None:
    legacy_db(host_db, through)
    before, nodes = rows(host_db), file_nodes(host_db)

    done = cli_here("upgrade", DATABASE_URL=plain(host_db))

    assert done.returncode == 0, done.stderr
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)
    assert version(host_db) == [HEAD]
    assert_rows_kept(host_db, before)
    assert {t: n for t, n in file_nodes(host_db).items() if t in nodes} == nodes, "a table was rewritten"
    reached = REVISIONS.index(through) + 1 if through else 0
    for revision in REVISIONS[:reached]:
        assert f"{revision}: found complete, recorded as applied without changes" in done.stderr
    for revision in REVISIONS[reached:]:
        assert f"{revision}: created" in done.stderr or f"{revision}: added" in done.stderr
        assert f"{revision}: found complete" not in done.stderr

    again = cli_here("upgrade", DATABASE_URL=plain(host_db))
    assert again.returncode == 0 and "Running upgrade" not in again.stderr


def test_takeover_of_a_database_at_head_that_lost_its_version_table(head_db: URL) -> None:
    """Whatever head is: every revision is found complete and recorded, nothing else changes."""
    legacy_db(head_db, None)  # host rows only: our tables are head's
    with connected(head_db) as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        conn.commit()
    before, nodes = rows(head_db), file_nodes(head_db)

    status = cli_here("status", DATABASE_URL=plain(head_db))
    assert "CONFLICTING" not in status.stdout, status.stdout
    done = cli_here("upgrade", DATABASE_URL=plain(head_db))

    assert done.returncode == 0, done.stderr
    for revision in REVISIONS:
        assert f"{revision}: found complete, recorded as applied without changes" in done.stderr
    assert catalog_text(head_db, HEAD) == expected_text(HEAD)
    assert version(head_db) == [HEAD]
    assert rows(head_db) == before and file_nodes(head_db) == nodes


HALF_DONE = {
    "46a column without its index": ("46a", ("DROP INDEX idx_outbound_call_jobs_twilio_sid",), "46a"),
    "40b missing an index": ("46d", ("DROP INDEX idx_outbound_call_jobs_call_sid",), "40b"),
    "46c column only": (
        "46c",
        ("DROP INDEX idx_outbound_call_jobs_lock_token",),
        "46c",
    ),
    "46d index INVALID": (
        "46d",
        # The state a failed CREATE INDEX CONCURRENTLY leaves (the crash test makes it for real).
        (
            "UPDATE pg_index SET indisvalid = false "
            "WHERE indexrelid = 'idx_outbound_call_jobs_status_twilio_sid'::regclass",
        ),
        "46d",
    ),
}


@pytest.mark.parametrize("case", HALF_DONE)
def test_takeover_completes_a_half_done_step(host_db: URL, case: str) -> None:
    through, damage, partial_step = HALF_DONE[case]
    legacy_db(host_db, through, extra_sql=damage)
    before, nodes = rows(host_db), file_nodes(host_db)

    status = cli_here("status", DATABASE_URL=plain(host_db))
    assert f"{partial_step}  partly present: upgrade will complete it" in status.stdout
    done = cli_here("upgrade", DATABASE_URL=plain(host_db))

    assert done.returncode == 0, done.stderr
    assert f"{partial_step}: found in part, completed" in done.stderr
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)
    assert_rows_kept(host_db, before)
    assert file_nodes(host_db) == nodes


CONFLICTS = {
    "index on the wrong column": (
        "46a",
        (
            "DROP INDEX idx_outbound_call_jobs_twilio_sid",
            "CREATE INDEX idx_outbound_call_jobs_twilio_sid ON outbound_call_jobs (call_sid)",
        ),
        [
            "index idx_outbound_call_jobs_twilio_sid",
            "expected btree on outbound_call_jobs (twilio_call_sid)",
            "found btree on outbound_call_jobs (call_sid)",
        ],
    ),
    "index in descending order": (
        "46a",
        (
            "DROP INDEX idx_outbound_call_jobs_twilio_sid",
            "CREATE INDEX idx_outbound_call_jobs_twilio_sid ON outbound_call_jobs (twilio_call_sid DESC)",
        ),
        ["index idx_outbound_call_jobs_twilio_sid", "found btree on outbound_call_jobs (twilio_call_sid DESC)"],
    ),
    "dial_lock_token as TEXT": (
        "46b",
        ("ALTER TABLE outbound_call_jobs ADD COLUMN dial_lock_token TEXT",),
        ["column outbound_call_jobs.dial_lock_token", "expected character varying(64) NULL", "found text NULL"],
    ),
    "dial_lock_token NOT NULL": (
        "46c",
        (
            "UPDATE outbound_call_jobs SET dial_lock_token = 'w0' WHERE dial_lock_token IS NULL",
            "ALTER TABLE outbound_call_jobs ALTER COLUMN dial_lock_token SET NOT NULL",
        ),
        [
            "column outbound_call_jobs.dial_lock_token",
            "expected character varying(64) NULL",
            "found character varying(64) NOT NULL",
        ],
    ),
    "a missing foreign key": (
        "46d",
        ("ALTER TABLE outbound_call_jobs DROP CONSTRAINT outbound_call_jobs_lead_id_fkey",),
        [
            "constraint outbound_call_jobs_lead_id_fkey",
            "expected FOREIGN KEY (lead_id) REFERENCES leads(id) on outbound_call_jobs",
            "table outbound_call_jobs exists without it, and 40b creates that table whole",
        ],
    ),
    "our index name on another table": (
        "46b",
        ("CREATE INDEX idx_outbound_call_jobs_lock_token ON business (id)",),
        ["index idx_outbound_call_jobs_lock_token", "found another relation of that name"],
    ),
}


@pytest.mark.parametrize("case", CONFLICTS)
def test_conflicting_objects_are_refused_and_nothing_changes(host_db: URL, case: str) -> None:
    through, sql, expected_text = CONFLICTS[case]
    legacy_db(host_db, through, extra_sql=sql)
    before_catalog, before_rows = catalog(host_db), rows(host_db)

    done = cli_here("upgrade", DATABASE_URL=plain(host_db))

    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "refused and nothing was changed" in message and "Traceback" not in done.stderr
    for fragment in expected_text:
        assert fragment in message
    assert catalog(host_db) == before_catalog
    assert rows(host_db) == before_rows
    assert version(host_db) is None, "the version table must not be created or advanced"

    status = cli_here("status", DATABASE_URL=plain(host_db))
    assert status.returncode == 1
    assert "CONFLICTING" in status.stdout and expected_text[0] in status.stdout


def test_conflict_in_a_later_step_blocks_the_earlier_ones(host_db: URL) -> None:
    """Tracked at 40b, with a wrong 46c column: 46a and 46b must not be applied either."""
    legacy_db(host_db, "40b")
    assert cli_here("upgrade", "40b", DATABASE_URL=plain(host_db)).returncode == 0
    with connected(host_db) as conn:
        conn.execute(text("ALTER TABLE outbound_call_jobs ADD COLUMN dial_lock_token TEXT"))
        conn.commit()
    before = catalog(host_db)
    done = cli_here("upgrade", DATABASE_URL=plain(host_db))
    assert done.returncode == 1 and "[46c] column outbound_call_jobs.dial_lock_token" in done.stderr
    assert catalog(host_db) == before
    assert version(host_db) == ["40b"]


def test_status_shows_each_step_without_changing_anything(host_db: URL) -> None:
    legacy_db(host_db, "46a")
    assert cli_here("upgrade", "40b", DATABASE_URL=plain(host_db)).returncode == 0
    with connected(host_db) as conn:
        conn.execute(text("ALTER TABLE outbound_call_jobs ADD COLUMN dial_started_at TIMESTAMP"))
        conn.execute(text("ALTER TABLE outbound_call_jobs ADD COLUMN dial_lock_token VARCHAR(64)"))
        conn.commit()
    before = catalog(host_db)

    status = cli_here("status", DATABASE_URL=plain(host_db))

    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert "version:  40b" in lines
    assert "  40a  applied" in lines and "  40b  applied" in lines
    assert "  46a  present, untracked: upgrade will record it without changes" in lines
    assert "  46b  present, untracked: upgrade will record it without changes" in lines
    assert "  46c  partly present: upgrade will complete it" in lines
    assert "        column outbound_call_jobs.dial_lock_token present" in lines
    assert "        index idx_outbound_call_jobs_lock_token missing" in lines
    assert "  46d  missing: upgrade will apply it" in lines
    assert catalog(host_db) == before and version(host_db) == ["40b"]


@pytest.mark.heavy
def test_a_killed_upgrade_converges_on_the_next_run(host_db: URL) -> None:
    legacy_db(host_db, "46b")
    before = rows(host_db)
    # An open snapshot makes CREATE INDEX CONCURRENTLY wait after it has made its
    # (still INVALID) index: the moment to kill the deploy.
    blocker_engine = create_engine(host_db)
    blocker = blocker_engine.connect()
    blocker.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    blocker.execute(text("SELECT 1"))
    # The installed program, as a process: what kill -9 stops is a real deploy.
    deploy = subprocess.Popen(
        [str(BIN / "outbound-schema"), "upgrade"],
        env={**os.environ, "DATABASE_URL": plain(host_db)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    building = (
        "query LIKE 'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_outbound_call_jobs_lock_token%' "
        "AND wait_event IS NOT NULL"
    )
    try:
        wait_for(lambda: backends(host_db, building) == 1)
        deploy.send_signal(signal.SIGKILL)
        deploy.wait()
        # The server notices its client is gone (client_connection_check_interval).
        wait_for(lambda: backends(host_db, "application_name LIKE 'outbound-schema%'") == 0, seconds=30)
    finally:
        blocker.close()
        blocker_engine.dispose()
    with connected(host_db) as conn:
        valid = conn.scalar(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_outbound_call_jobs_lock_token'::regclass")
        )
    assert valid is False, "the kill should have left an INVALID index behind"
    assert version(host_db) == ["46b"]

    done = cli_here("upgrade", DATABASE_URL=plain(host_db))

    assert done.returncode == 0, done.stderr
    assert "dropped INVALID index idx_outbound_call_jobs_lock_token to rebuild it" in done.stderr
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)
    assert version(host_db) == [HEAD]
    assert_rows_kept(host_db, before)


def test_legacy_steps_cover_every_revision() -> None:
    assert tuple(LEGACY_STEPS) == REVISIONS
