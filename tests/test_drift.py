"""The drift check against real databases: each class of drift injected, detected and named.

The objects drifted are those of 47a (call_sid, the legacy indexes), in a database at 47a whatever head
is: the check compares a database with its own revision's file, and calls it behind head besides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from outbound_schema.config import VERSION_TABLE
from tests.helpers import HEAD, REPO, alembic_here, check_both_ways, cli_here, inject, plain

JOBS = "outbound_call_jobs"
RUNS = "outbound_call_runs"


def check_json(url: URL) -> tuple[int, dict[str, object]]:
    done = cli_here("check", "--format", "json", DATABASE_URL=plain(url))
    return done.returncode, json.loads(done.stdout)


def test_a_database_at_head_has_no_drift(head_db: URL) -> None:
    done = cli_here("check", DATABASE_URL=plain(head_db))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("OK: all ")
    assert (
        "✅ index idx_outbound_call_jobs_status_twilio_sid: btree on outbound_call_jobs (status, twilio_call_sid)"
        in lines
    )
    assert f"✅ revision outbound_schema_version: {HEAD} (head)" in lines
    assert not [line for line in lines if line.startswith("❌")]

    code, report = check_json(head_db)
    assert code == 0
    assert report["format"] == 1 and report["status"] == "ok"
    assert report["revision"] == {
        "state": "at_head",
        "current": [HEAD],
        "head": HEAD,
        "pending": [],
        "compared_with": HEAD,
    }
    objects = report["objects"]
    assert isinstance(objects, list) and all(o["verdict"] == "ok" for o in objects)
    assert {o["kind"] for o in objects} == {
        "table",
        "column",
        "constraint",
        "index",
        "sequence",
        "position",
        "search_path",
        "revision",
    }
    assert report["summary"] == {"ok": len(objects), "drift": 0}


DRIFT = {
    "missing column": (
        [f"ALTER TABLE {JOBS} DROP COLUMN dial_started_at"],
        "column",
        f"{JOBS}.dial_started_at",
        "missing",
    ),
    "extra column": ([f"ALTER TABLE {JOBS} ADD COLUMN notes text"], "column", f"{JOBS}.notes", "extra"),
    "length": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN call_sid TYPE varchar(128)"],
        "column",
        f"{JOBS}.call_sid",
        "different",
    ),
    "type": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN dial_lock_token TYPE text"],
        "column",
        f"{JOBS}.dial_lock_token",
        "different",
    ),
    "nullability": ([f"ALTER TABLE {RUNS} ALTER COLUMN status SET NOT NULL"], "column", f"{RUNS}.status", "different"),
    "server default": (
        [f"ALTER TABLE {RUNS} ALTER COLUMN concurrency SET DEFAULT 5"],
        "column",
        f"{RUNS}.concurrency",
        "different",
    ),
    "dropped default": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN created_at DROP DEFAULT"],
        "column",
        f"{JOBS}.created_at",
        "different",
    ),
    "missing table": ([f"DROP TABLE {JOBS}"], "table", JOBS, "missing"),
    "missing index": (
        ["DROP INDEX idx_outbound_call_runs_status"],
        "index",
        "idx_outbound_call_runs_status",
        "missing",
    ),
    "index on other columns": (
        [
            "DROP INDEX idx_outbound_call_jobs_twilio_sid",
            f"CREATE INDEX idx_outbound_call_jobs_twilio_sid ON {JOBS} (call_sid)",
        ],
        "index",
        "idx_outbound_call_jobs_twilio_sid",
        "different",
    ),
    "index column order": (
        [
            "DROP INDEX idx_outbound_call_jobs_status_twilio_sid",
            f"CREATE INDEX idx_outbound_call_jobs_status_twilio_sid ON {JOBS} (twilio_call_sid, status)",
        ],
        "index",
        "idx_outbound_call_jobs_status_twilio_sid",
        "different",
    ),
    "index predicate": (
        [
            "DROP INDEX idx_outbound_call_jobs_status",
            f"CREATE INDEX idx_outbound_call_jobs_status ON {JOBS} (status) WHERE status = 'queued'",
        ],
        "index",
        "idx_outbound_call_jobs_status",
        "different",
    ),
    "index method": (
        [
            "DROP INDEX idx_outbound_call_jobs_call_sid",
            f"CREATE INDEX idx_outbound_call_jobs_call_sid ON {JOBS} USING hash (call_sid)",
        ],
        "index",
        "idx_outbound_call_jobs_call_sid",
        "different",
    ),
    "index sort order": (
        [
            "DROP INDEX idx_outbound_call_jobs_status",
            f"CREATE INDEX idx_outbound_call_jobs_status ON {JOBS} (status DESC)",
        ],
        "index",
        "idx_outbound_call_jobs_status",
        "different",
    ),
    "index operator class": (
        [
            "DROP INDEX idx_outbound_call_jobs_call_sid",
            f"CREATE INDEX idx_outbound_call_jobs_call_sid ON {JOBS} (call_sid varchar_pattern_ops)",
        ],
        "index",
        "idx_outbound_call_jobs_call_sid",
        "different",
    ),
    "index with INCLUDE": (
        [
            "DROP INDEX idx_outbound_call_jobs_run_id",
            f"CREATE INDEX idx_outbound_call_jobs_run_id ON {JOBS} (run_id) INCLUDE (status)",
        ],
        "index",
        "idx_outbound_call_jobs_run_id",
        "different",
    ),
    "unique index": (
        [
            "DROP INDEX idx_outbound_call_jobs_lock_token",
            f"CREATE UNIQUE INDEX idx_outbound_call_jobs_lock_token ON {JOBS} (dial_lock_token)",
        ],
        "index",
        "idx_outbound_call_jobs_lock_token",
        "different",
    ),
    "invalid index": (
        ["UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx_outbound_call_jobs_lead_id'::regclass"],
        "index",
        "idx_outbound_call_jobs_lead_id",
        "invalid",
    ),
    "extra index": ([f"CREATE INDEX ix_jobs_error ON {JOBS} (error_message)"], "index", "ix_jobs_error", "extra"),
    "renamed index": (
        ["ALTER INDEX idx_outbound_call_runs_created_at RENAME TO ix_outbound_call_runs_created_at"],
        "index",
        "idx_outbound_call_runs_created_at",
        "renamed",
    ),
    "missing foreign key": (
        [f"ALTER TABLE {JOBS} DROP CONSTRAINT outbound_call_jobs_call_log_id_fkey"],
        "constraint",
        "outbound_call_jobs_call_log_id_fkey",
        "missing",
    ),
    "renamed foreign key": (
        [f"ALTER TABLE {JOBS} RENAME CONSTRAINT outbound_call_jobs_lead_id_fkey TO fk_jobs_lead"],
        "constraint",
        "outbound_call_jobs_lead_id_fkey",
        "renamed",
    ),
    "foreign key to another table": (
        [
            f"ALTER TABLE {JOBS} DROP CONSTRAINT outbound_call_jobs_lead_id_fkey",
            f"ALTER TABLE {JOBS} ADD CONSTRAINT outbound_call_jobs_lead_id_fkey "
            "FOREIGN KEY (lead_id) REFERENCES business(id)",
        ],
        "constraint",
        "outbound_call_jobs_lead_id_fkey",
        "different",
    ),
    "renamed primary key": (
        [f"ALTER TABLE {RUNS} RENAME CONSTRAINT outbound_call_runs_pkey TO runs_pk"],
        "constraint",
        "outbound_call_runs_pkey",
        "renamed",
    ),
    "extra check constraint": (
        [f"ALTER TABLE {RUNS} ADD CONSTRAINT concurrency_positive CHECK (concurrency > 0)"],
        "constraint",
        "concurrency_positive",
        "extra",
    ),
    "unknown revision": (
        [f"UPDATE {VERSION_TABLE} SET version_num = 'ae1027a6acf'"],
        "revision",
        VERSION_TABLE,
        "unknown",
    ),
    "untracked": ([f"DROP TABLE {VERSION_TABLE}"], "revision", VERSION_TABLE, "untracked"),
}


@pytest.mark.parametrize("case", DRIFT)
def test_each_class_of_drift_is_detected_and_named(db_at_47a: URL, case: str) -> None:
    statements, kind, name, verdict = DRIFT[case]
    inject(db_at_47a, *statements)

    code, report, lines = check_both_ways(db_at_47a)

    assert code == 1 and report["status"] == "drift"
    drifted = [o for o in report["objects"] if o["verdict"] != "ok"]  # type: ignore[union-attr]
    assert {"kind": kind, "name": name, "verdict": verdict} in [
        {k: o[k] for k in ("kind", "name", "verdict")} for o in drifted
    ], drifted
    assert any(line.startswith(f"❌ {kind} {name}") for line in lines)
    assert lines[-1].startswith("DRIFT: ")


def test_a_constraint_is_reported_once_not_again_as_its_index(db_at_47a: URL) -> None:
    inject(
        db_at_47a,
        f"ALTER TABLE {RUNS} RENAME CONSTRAINT outbound_call_runs_pkey TO runs_pk",
        f"ALTER TABLE {JOBS} ADD CONSTRAINT jobs_call_sid_key UNIQUE (call_sid)",
    )
    _, report = check_json(db_at_47a)
    drifted = [
        (o["kind"], o["name"], o["verdict"])
        for o in report["objects"]
        if o["verdict"] != "ok" and o["kind"] != "revision"
    ]  # type: ignore[union-attr]
    assert sorted(drifted) == [
        ("constraint", "jobs_call_sid_key", "extra"),
        ("constraint", "outbound_call_runs_pkey", "renamed"),
    ]


def test_host_and_foreign_tables_are_never_reported(head_db: URL) -> None:
    inject(
        head_db,
        "ALTER TABLE business ADD COLUMN name text",
        "CREATE INDEX ix_leads_id ON leads (id)",
        "CREATE TABLE unrelated (id int)",
    )
    code, report = check_json(head_db)
    assert code == 0, report
    names = " ".join(str(o["name"]) for o in report["objects"])  # type: ignore[union-attr]
    for foreign in ("business", "leads", "call_log", "outbound_lead_lists", "unrelated"):
        assert f" {foreign}" not in f" {names}"


def test_could_not_check_exits_2(head_db: URL) -> None:
    for url in ("postgresql://u:pw@127.0.0.1:1/db", "mysql://u:pw@host/db"):
        done = cli_here("check", "--format", "json", DATABASE_URL=url)
        assert done.returncode == 2
        assert json.loads(done.stdout)["status"] == "error"
        assert "could not check" in done.stderr and ":pw@" not in done.stderr


def test_nothing_to_check_without_a_url(tmp_path: Path) -> None:
    for command in (("check",), ("status", "--check")):
        done = cli_here(*command, cwd=tmp_path)
        assert done.returncode == 2
        assert "No database URL is configured" in done.stderr
    assert not (tmp_path / ".outbound-schema").exists()


def test_no_permission_exits_2(head_db: URL) -> None:
    inject(
        head_db,
        "DROP ROLE IF EXISTS outbound_reader",
        "CREATE ROLE outbound_reader LOGIN PASSWORD 'reader-pw'",
        f"REVOKE ALL ON {VERSION_TABLE} FROM PUBLIC",
    )
    try:
        reader = plain(head_db.set(username="outbound_reader", password="reader-pw"))
        done = cli_here("check", DATABASE_URL=reader)
        assert done.returncode == 2
        assert "permission denied" in done.stderr and "SELECT privilege" in done.stderr
        status = cli_here("status", "--check", DATABASE_URL=reader)
        assert status.returncode == 2 and "permission denied" in status.stderr
        assert "Traceback" not in status.stderr
    finally:
        inject(head_db, "DROP ROLE outbound_reader")


def test_alembic_check_from_the_repository(head_db: URL) -> None:
    clean = alembic_here("-x", f"url={plain(head_db)}", "check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "No new upgrade operations detected." in clean.stdout + clean.stderr

    inject(head_db, f"ALTER TABLE {RUNS} ALTER COLUMN concurrency SET DEFAULT 5")
    drifted = alembic_here("-x", f"url={plain(head_db)}", "check")
    assert drifted.returncode != 0
    assert "modify_default" in drifted.stdout + drifted.stderr


def test_autogenerate_writes_no_empty_revision(head_db: URL) -> None:
    versions = REPO / "alembic" / "versions"
    before = set(versions.glob("*.py"))
    try:
        done = alembic_here("-x", f"url={plain(head_db)}", "revision", "--autogenerate", "-m", "noop")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no revision file generated" in done.stdout
    finally:
        created: set[Path] = set(versions.glob("*.py")) - before
        for path in created:
            path.unlink()
    assert not created
