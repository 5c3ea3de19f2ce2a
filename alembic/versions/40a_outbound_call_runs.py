"""40a: create outbound_call_runs, one dialing campaign run, and its indexes.

Legacy migration 40a. Frozen: fixes go forward in a new revision.
"""

from outbound_schema import steps
from outbound_schema.steps import Column, Index, Step, Table

revision = "40a"
down_revision = None
branch_labels = ("outbound_schema",)
depends_on = None

TIMESTAMP = "timestamp without time zone"

STEP = Step(
    revision="40a",
    tables=(
        Table(
            "outbound_call_runs",
            (
                Column("id", "integer", nullable=False, serial=True),
                Column("business_id", "integer", nullable=False, references="business"),
                Column("outbound_list_id", "integer", references="outbound_lead_lists"),
                Column("concurrency", "integer", default="3"),
                Column("total_leads", "integer", default="0"),
                Column("queued_count", "integer", default="0"),
                Column("in_progress_count", "integer", default="0"),
                Column("completed_count", "integer", default="0"),
                Column("failed_count", "integer", default="0"),
                Column("status", "character varying(32)", default="'running'::character varying"),
                Column("last_error", "text"),
                Column("created_at", TIMESTAMP, default="CURRENT_TIMESTAMP"),
                Column("updated_at", TIMESTAMP, default="CURRENT_TIMESTAMP"),
                Column("completed_at", TIMESTAMP),
            ),
        ),
    ),
    indexes=(
        Index("idx_outbound_call_runs_business_id", "outbound_call_runs", ("business_id",)),
        Index("idx_outbound_call_runs_status", "outbound_call_runs", ("status",)),
        Index("idx_outbound_call_runs_created_at", "outbound_call_runs", ("created_at",)),
    ),
)


def upgrade() -> None:
    steps.upgrade(STEP)


def downgrade() -> None:
    steps.downgrade(STEP)
