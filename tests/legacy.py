"""The old hand-rolled script's SQL, exactly as the specification quotes it, and databases built with it.

A database built with these statements is what production holds; our
revisions and models are compared against it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL

LEGACY_STEPS: dict[str, tuple[str, ...]] = {
    "40a": (
        """CREATE TABLE outbound_call_runs (
    id SERIAL PRIMARY KEY,
    business_id INTEGER NOT NULL REFERENCES business(id),
    outbound_list_id INTEGER REFERENCES outbound_lead_lists(id),
    concurrency INTEGER DEFAULT 3,
    total_leads INTEGER DEFAULT 0,
    queued_count INTEGER DEFAULT 0,
    in_progress_count INTEGER DEFAULT 0,
    completed_count INTEGER DEFAULT 0,
    failed_count INTEGER DEFAULT 0,
    status VARCHAR(32) DEFAULT 'running',
    last_error TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    completed_at TIMESTAMP
)""",
        "CREATE INDEX idx_outbound_call_runs_business_id ON outbound_call_runs(business_id)",
        "CREATE INDEX idx_outbound_call_runs_status ON outbound_call_runs(status)",
        "CREATE INDEX idx_outbound_call_runs_created_at ON outbound_call_runs(created_at)",
    ),
    "40b": (
        """CREATE TABLE outbound_call_jobs (
    id SERIAL PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES outbound_call_runs(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    call_log_id INTEGER REFERENCES call_log(id),
    status VARCHAR(32) DEFAULT 'queued',
    error_message TEXT,
    call_sid VARCHAR(64),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    started_at TIMESTAMP,
    completed_at TIMESTAMP
)""",
        "CREATE INDEX idx_outbound_call_jobs_run_id ON outbound_call_jobs(run_id)",
        "CREATE INDEX idx_outbound_call_jobs_lead_id ON outbound_call_jobs(lead_id)",
        "CREATE INDEX idx_outbound_call_jobs_status ON outbound_call_jobs(status)",
        "CREATE INDEX idx_outbound_call_jobs_call_sid ON outbound_call_jobs(call_sid)",
    ),
    "46a": (
        "ALTER TABLE outbound_call_jobs ADD COLUMN twilio_call_sid VARCHAR(64) NULL",
        "CREATE INDEX idx_outbound_call_jobs_twilio_sid ON outbound_call_jobs(twilio_call_sid)",
    ),
    "46b": ("ALTER TABLE outbound_call_jobs ADD COLUMN dial_started_at TIMESTAMP NULL",),
    "46c": (
        "ALTER TABLE outbound_call_jobs ADD COLUMN dial_lock_token VARCHAR(64) NULL",
        "CREATE INDEX idx_outbound_call_jobs_lock_token ON outbound_call_jobs(dial_lock_token)",
    ),
    "46d": ("CREATE INDEX idx_outbound_call_jobs_status_twilio_sid ON outbound_call_jobs(status, twilio_call_sid)",),
}

REVISIONS: tuple[str, ...] = tuple(LEGACY_STEPS)


def apply_legacy(connection: Connection, through: str = "46d") -> None:
    """Run the old script's SQL for every step up to and including ``through``."""
    for revision in REVISIONS[: REVISIONS.index(through) + 1]:
        for statement in LEGACY_STEPS[revision]:
            connection.execute(text(statement))


RUNS = 3
JOBS = 300


def seed(conn: Connection, through: str | None) -> None:
    """Host rows, and runs and jobs with values in every column the given step has."""
    for table, count in (("business", 2), ("leads", 50), ("call_log", 5), ("outbound_lead_lists", 1)):
        conn.execute(text(f"INSERT INTO {table} (id) SELECT generate_series(1, {count})"))
    reached = REVISIONS.index(through) if through else -1
    if reached >= 0:
        conn.execute(
            text(
                "INSERT INTO outbound_call_runs (business_id, outbound_list_id, concurrency, total_leads, status,"
                " created_at) SELECT 1 + i % 2, 1, i, 100 * i, 'completed', TIMESTAMP '2025-01-01' + i * INTERVAL"
                f" '1 day' FROM generate_series(1, {RUNS}) AS i"
            )
        )
    if reached >= 1:
        conn.execute(
            text(
                "INSERT INTO outbound_call_jobs (run_id, lead_id, call_log_id, status, call_sid, created_at)"
                " SELECT 1 + i % 3, 1 + i % 50, CASE WHEN i % 2 = 0 THEN 1 + i % 5 END,"
                " (ARRAY['queued','dialing','completed','failed'])[1 + i % 4], 'CA' || md5(i::text),"
                f" TIMESTAMP '2025-02-01' + i * INTERVAL '1 minute' FROM generate_series(1, {JOBS}) AS i"
            )
        )
    extra = {
        2: "twilio_call_sid = 'CA' || md5(id::text)",
        3: "dial_started_at = created_at",
        4: "dial_lock_token = 'w1'",
    }
    for step, assignment in extra.items():
        if reached >= step:
            conn.execute(text(f"UPDATE outbound_call_jobs SET {assignment} WHERE id % 3 = 0"))


def legacy_db(url: URL, through: str | None, *, extra_sql: tuple[str, ...] = (), seed_after: bool = False) -> None:
    """Build what the old script left: its SQL through ``through``, rows, then ``extra_sql``."""
    engine = create_engine(url)
    with engine.begin() as conn:
        if through:
            apply_legacy(conn, through=through)
        if not seed_after:
            seed(conn, through)
        for statement in extra_sql:
            conn.execute(text(statement))
        if seed_after:
            seed(conn, through)
    engine.dispose()


def assert_rows_kept(
    before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]], **new_columns: Any
) -> None:
    """Every row is still there with its values; columns added since hold ``new_columns``' values, else NULL."""
    for table, old_rows in before.items():
        assert len(after[table]) == len(old_rows)
        for old, new in zip(old_rows, after[table], strict=True):
            assert {k: new[k] for k in old} == old
            assert all(new[k] == new_columns.get(k) for k in new.keys() - old.keys())
