"""40b: create outbound_call_jobs, one lead to dial within a run, and its indexes.

Legacy migration 40b. Frozen: fixes go forward in a new revision.
"""

from outbound_schema import steps
from outbound_schema.steps import Column, Index, Step, Table

revision = "40b"
down_revision = "40a"
branch_labels = None
depends_on = None

TIMESTAMP = "timestamp without time zone"

STEP = Step(
    revision="40b",
    tables=(
        Table(
            "outbound_call_jobs",
            (
                Column("id", "integer", nullable=False, serial=True),
                Column("run_id", "integer", nullable=False, references="outbound_call_runs"),
                Column("lead_id", "integer", nullable=False, references="leads"),
                Column("call_log_id", "integer", references="call_log"),
                Column("status", "character varying(32)", default="'queued'::character varying"),
                Column("error_message", "text"),
                Column("call_sid", "character varying(64)"),
                Column("created_at", TIMESTAMP, default="CURRENT_TIMESTAMP"),
                Column("started_at", TIMESTAMP),
                Column("completed_at", TIMESTAMP),
            ),
        ),
    ),
    indexes=(
        Index("idx_outbound_call_jobs_run_id", "outbound_call_jobs", ("run_id",)),
        Index("idx_outbound_call_jobs_lead_id", "outbound_call_jobs", ("lead_id",)),
        Index("idx_outbound_call_jobs_status", "outbound_call_jobs", ("status",)),
        Index("idx_outbound_call_jobs_call_sid", "outbound_call_jobs", ("call_sid",)),
    ),
)


def upgrade() -> None:
    steps.upgrade(STEP)


def downgrade() -> None:
    steps.downgrade(STEP)
