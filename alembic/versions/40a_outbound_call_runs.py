"""40a: create outbound_call_runs, one dialing campaign run, and its indexes.

Legacy migration 40a: the old script's CREATE TABLE and CREATE INDEX, with the
names PostgreSQL gave them. Frozen: fixes go forward in a new revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "40a"
down_revision = None
branch_labels = ("outbound_schema",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_call_runs",
        sa.Column("id", sa.Integer(), nullable=False),  # SERIAL, owning outbound_call_runs_id_seq
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("outbound_list_id", sa.Integer(), nullable=True),
        sa.Column("concurrency", sa.Integer(), server_default=sa.text("3"), nullable=True),
        sa.Column("total_leads", sa.Integer(), server_default=sa.text("0"), nullable=True),
        sa.Column("queued_count", sa.Integer(), server_default=sa.text("0"), nullable=True),
        sa.Column("in_progress_count", sa.Integer(), server_default=sa.text("0"), nullable=True),
        sa.Column("completed_count", sa.Integer(), server_default=sa.text("0"), nullable=True),
        sa.Column("failed_count", sa.Integer(), server_default=sa.text("0"), nullable=True),
        sa.Column("status", sa.String(length=32), server_default=sa.text("'running'"), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=True),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["business_id"], ["business.id"], name="outbound_call_runs_business_id_fkey"),
        sa.ForeignKeyConstraint(
            ["outbound_list_id"], ["outbound_lead_lists.id"], name="outbound_call_runs_outbound_list_id_fkey"
        ),
        sa.PrimaryKeyConstraint("id", name="outbound_call_runs_pkey"),
    )
    op.create_index("idx_outbound_call_runs_business_id", "outbound_call_runs", ["business_id"])
    op.create_index("idx_outbound_call_runs_status", "outbound_call_runs", ["status"])
    op.create_index("idx_outbound_call_runs_created_at", "outbound_call_runs", ["created_at"])


def downgrade() -> None:
    op.drop_table("outbound_call_runs")  # with its indexes, constraints and sequence
