"""The old hand-rolled script's SQL, exactly as the specification quotes it, and databases built with it.

A database built with these statements is what production holds; our
revisions and models are compared against it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL

from tests.helpers import connected, rows

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


#: A default an old row cannot be told from: it was evaluated when its column was added.
_CLOCK = re.compile(r"now\(\)|CURRENT_|timestamp\(\)|nextval\(", re.I)


def assert_rows_kept(url: URL, before: dict[str, list[dict[str, Any]]], **new_columns: Any) -> None:
    """Every row of ``before`` is still in ``url``'s tables with its values, but in the columns a revision
    has dropped since; a column added since holds its ``new_columns`` value if given, else its default
    (NULL without one; a default read from the clock, any value but NULL)."""
    after = rows(url)
    defaults = _column_defaults(url)
    for table, old_rows in before.items():
        assert len(after[table]) == len(old_rows)
        added = after[table][0].keys() - old_rows[0].keys() if old_rows else set()
        for old, new in zip(old_rows, after[table], strict=True):
            assert {k: new[k] for k in old if k in new} == {k: v for k, v in old.items() if k in new}
            for column in added:
                if column in new_columns:
                    assert new[column] == new_columns[column], (table, column)
                elif defaults[table].get(column, "") is None:
                    assert new[column] is not None, (table, column)
                else:
                    assert new[column] == defaults[table].get(column), (table, column)


def _column_defaults(url: URL) -> dict[str, dict[str, Any]]:
    """Each column's default, as its value (None for one read from the clock); no key: no default."""
    found: dict[str, dict[str, Any]] = {}
    with connected(url) as conn:
        listed = conn.execute(
            text(
                "SELECT c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d "
                "JOIN pg_attribute a ON (a.attrelid, a.attnum) = (d.adrelid, d.adnum) "
                "JOIN pg_class c ON c.oid = d.adrelid WHERE c.relname IN ('outbound_call_runs', 'outbound_call_jobs')"
            )
        ).all()
        for table, column, expression in listed:
            value = None if _CLOCK.search(expression) else conn.scalar(text(f"SELECT {expression}"))
            found.setdefault(table, {})[column] = value
    return {table: found.get(table, {}) for table in ("outbound_call_runs", "outbound_call_jobs")}
