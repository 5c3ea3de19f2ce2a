"""40b: create outbound_call_jobs, one lead to dial within a run, and its indexes.

Legacy migration 40b: the old script's CREATE TABLE and CREATE INDEX, with the
names PostgreSQL gave them. Frozen: fixes go forward in a new revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "40b"
down_revision = "40a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_call_jobs",
        sa.Column("id", sa.Integer(), nullable=False),  # SERIAL, owning outbound_call_jobs_id_seq
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("call_log_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), server_default=sa.text("'queued'"), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["outbound_call_runs.id"], name="outbound_call_jobs_run_id_fkey"),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="outbound_call_jobs_lead_id_fkey"),
        sa.ForeignKeyConstraint(["call_log_id"], ["call_log.id"], name="outbound_call_jobs_call_log_id_fkey"),
        sa.PrimaryKeyConstraint("id", name="outbound_call_jobs_pkey"),
    )
    op.create_index("idx_outbound_call_jobs_run_id", "outbound_call_jobs", ["run_id"])
    op.create_index("idx_outbound_call_jobs_lead_id", "outbound_call_jobs", ["lead_id"])
    op.create_index("idx_outbound_call_jobs_status", "outbound_call_jobs", ["status"])
    op.create_index("idx_outbound_call_jobs_call_sid", "outbound_call_jobs", ["call_sid"])


def downgrade() -> None:
    op.drop_table("outbound_call_jobs")  # with its indexes, constraints and sequence
