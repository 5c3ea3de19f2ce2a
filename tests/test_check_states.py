"""Where a database stands is no drift: behind head, ahead, a migration running now; and what a role may
not read is named with the GRANT that lets it, not a failed check."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outbound_schema.config import LOCK_KEY
from outbound_schema.settings import PROGRESS_INTERVAL
from tests.helpers import (
    HEAD,
    cli_forked,
    cli_here,
    connected,
    expected_schema,
    inject,
    plain,
    revisions_after,
    version,
)

JOBS = "outbound_call_jobs"
RUNS = "outbound_call_runs"
BUILT_BY_46D = "idx_outbound_call_jobs_status_twilio_sid"


def check(url: URL) -> tuple[int, dict[str, object]]:
    done = cli_here("check", "--format", "json", DATABASE_URL=plain(url))
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def not_ok(report: dict[str, object]) -> list[dict[str, str]]:
    objects = report["objects"]
    assert isinstance(objects, list)
    return [o for o in objects if o["verdict"] != "ok"]


def test_behind_head_is_its_own_state_not_drift(legacy_head_db: URL) -> None:
    """At 46d, behind head: its objects match 46d's file, so it is behind (exit 0), and drift is still drift."""
    code, report = check(legacy_head_db)
    assert (code, report["status"]) == (0, "behind"), not_ok(report)
    assert [(o["kind"], o["verdict"]) for o in not_ok(report)] == [("revision", "behind")]
    assert report["summary"] == {"ok": len(report["objects"]) - 1, "drift": 0, "not_judged": 1}  # type: ignore[arg-type]
    text_report = cli_here("check", DATABASE_URL=plain(legacy_head_db))
    assert text_report.returncode == 0
    lines = text_report.stdout.splitlines()
    assert lines[-1].startswith(f"BEHIND: the database is at 46d, behind head {HEAD}; pending ")
    assert [line for line in lines if line.startswith("⚠️ revision")], lines
    assert not [line for line in lines if line.startswith("❌")]

    inject(legacy_head_db, f"CREATE INDEX ix_runs_extra ON {RUNS} (status)")
    code, report = check(legacy_head_db)
    assert (code, report["status"]) == (1, "drift")


@pytest.fixture
def reader(head_db: URL) -> Iterator[URL]:
    """A role granted SELECT on every table, as ``GRANT SELECT ON ALL TABLES`` gives it: not on the sequences."""
    inject(
        head_db,
        "DROP ROLE IF EXISTS table_reader",
        "CREATE ROLE table_reader LOGIN PASSWORD 'reader-pw'",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO table_reader",
    )
    yield head_db.set(username="table_reader", password="reader-pw")
    inject(head_db, "DROP OWNED BY table_reader", "DROP ROLE table_reader")


def test_a_role_without_select_on_the_sequences_gets_a_full_check(head_db: URL, reader: URL) -> None:
    code, report = check(reader)
    assert (code, report["status"]) == (0, "ok"), report
    unread = not_ok(report)
    # Head's sequences, whatever tables head has: one position each that this role may not read.
    sequences = sorted(expected_schema().sequences)
    assert sequences
    grants = [f"GRANT SELECT ON SEQUENCE public.{sequence} TO table_reader" for sequence in sequences]
    assert [(o["kind"], o["name"], o["verdict"]) for o in unread] == [
        ("position", sequence, "unread") for sequence in sequences
    ]
    for o, grant in zip(unread, grants, strict=True):
        assert o["detail"].endswith(f"Let it: {grant}"), o["detail"]
    assert {o["kind"] for o in report["objects"]} >= {"table", "column", "constraint", "index", "sequence"}  # type: ignore[union-attr]
    text_lines = cli_here("check", DATABASE_URL=plain(reader)).stdout.splitlines()
    assert text_lines[-1].endswith(f"{len(sequences)} could not be read by this role (the ⚠️ lines say what to grant)")

    inject(head_db, *grants)  # exactly as printed
    code, report = check(reader)
    assert (code, report["status"], not_ok(report)) == (0, "ok", [])


def hold_lock(url: URL) -> tuple[int, object]:
    """Take the migration lock as a running migration does, between two statements; (its pid, the release)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    conn = engine.connect()
    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
    pid = int(conn.scalar(text("SELECT pg_backend_pid()")) or 0)

    def release() -> None:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})  # now: a closed session frees it later
        conn.close()
        engine.dispose()

    return pid, release


def test_a_held_migration_lock_is_said_and_drift_elsewhere_still_fails(head_db: URL) -> None:
    pid, release = hold_lock(head_db)
    try:
        code, report = check(head_db)
        assert (code, report["status"]) == (0, "migrating"), not_ok(report)
        running = report["running"]
        assert isinstance(running, dict) and running["pid"] == pid and running["revisions"] == [HEAD]
        lines = cli_here("check", DATABASE_URL=plain(head_db)).stdout.splitlines()
        assert lines[1].startswith(f"running: migration running: server process {pid} ")
        assert lines[-1].startswith(f"MIGRATING: server process {pid} holds the migration lock, applying {HEAD}; ")

        inject(head_db, f"CREATE INDEX ix_runs_extra ON {RUNS} (status)")  # no revision's: drift, migration or not
        code, report = check(head_db)
        assert (code, report["status"]) == (1, "drift")
        assert [(o["name"], o["verdict"]) for o in not_ok(report)] == [("ix_runs_extra", "extra")]
    finally:
        release()  # type: ignore[operator]
    assert check(head_db)[1]["running"] is None


@pytest.mark.waits
def test_check_during_a_deploys_index_build(head_db: URL) -> None:
    """46d builds its index CONCURRENTLY; a worker's open transaction holds the build, INVALID, meanwhile.
    ``check`` then names the migration and judges nothing of the revisions it applies: exit 0."""
    assert cli_here("downgrade", "46c", DATABASE_URL=plain(head_db)).returncode == 0
    inject(head_db, "INSERT INTO business (id) VALUES (1)", "INSERT INTO leads (id) VALUES (1)")
    inject(head_db, f"INSERT INTO {RUNS} (business_id) VALUES (1)")
    inject(head_db, f"INSERT INTO {JOBS} (run_id, lead_id) VALUES (1, 1)")
    worker = create_engine(head_db)
    held = worker.connect()
    held.execute(text(f"UPDATE {JOBS} SET status = 'queued'"))
    deploy = cli_forked("upgrade", DATABASE_URL=plain(head_db), **{PROGRESS_INTERVAL.env: "0.2"})
    try:
        deadline = time.monotonic() + 60
        while True:
            with connected(head_db) as conn:
                building = conn.scalar(
                    text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
                    {"name": BUILT_BY_46D},
                )
            if building:
                break
            assert time.monotonic() < deadline, "the index build never started"
            time.sleep(0.1)

        code, report = check(head_db)
        assert (code, report["status"]) == (0, "migrating"), not_ok(report)
        running = report["running"]
        assert isinstance(running, dict) and running["revisions"] == ["46d", *revisions_after("46d")]
        index = [o for o in not_ok(report) if o["name"] == BUILT_BY_46D]
        assert [(o["kind"], o["verdict"]) for o in index] == [("index", "migrating")]
        assert "INVALID" in index[0]["found"] and "server process" in index[0]["detail"]
        assert {o["verdict"] for o in not_ok(report)} == {"migrating"}
        text_report = cli_here("check", DATABASE_URL=plain(head_db))
        assert text_report.returncode == 0
        lines = text_report.stdout.splitlines()
        assert lines[1].startswith(f"running: migration running: server process {running['pid']} ")
        migrating = f"MIGRATING: server process {running['pid']} holds the migration lock, applying 46d"
        assert lines[-1].startswith(migrating)
        assert not [line for line in lines if line.startswith("❌")]
    finally:
        held.commit()
        held.close()
        worker.dispose()
    _, stderr = deploy.communicate(timeout=120)
    assert deploy.returncode == 0, stderr
    assert version(head_db) == [HEAD]
    code, report = check(head_db)
    assert (code, report["status"], report["running"]) == (0, "ok", None)
