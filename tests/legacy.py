"""The old hand-rolled script's SQL, exactly as the specification quotes it.

A database built with these statements is what production holds; our
revisions and models are compared against it.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

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
