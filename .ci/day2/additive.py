"""Dial attempts in a table of their own, one job per Twilio call, sane concurrency, status always set.

A day-2 revision as a user writes it with plain op.* (the ids are filled in by .ci/day2.sh): a new
table, a unique partial index, a CHECK, a column made NOT NULL the way the safety layer recommends
(a validated CHECK first), and a changed server default.
"""

import sqlalchemy as sa
from alembic import op

revision = "next"
down_revision = "head"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_call_attempts",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=32), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempted_at", sa.DateTime(), server_default=sa.text("timezone('utc', now())"), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["outbound_call_jobs.id"], name="outbound_call_attempts_job_id_fkey", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="outbound_call_attempts_pkey"),
    )
    op.create_index("idx_outbound_call_attempts_job_id", "outbound_call_attempts", ["job_id"], unique=False)
    op.create_index(
        "idx_outbound_call_jobs_twilio_call_sid_unique",
        "outbound_call_jobs",
        ["twilio_call_sid"],
        unique=True,
        postgresql_where=sa.text("twilio_call_sid IS NOT NULL"),
    )
    op.create_check_constraint(
        "outbound_call_runs_concurrency_check", "outbound_call_runs", "concurrency BETWEEN 1 AND 100"
    )
    op.create_check_constraint("outbound_call_jobs_status_not_null", "outbound_call_jobs", "status IS NOT NULL")
    op.alter_column("outbound_call_jobs", "status", existing_type=sa.String(length=32), nullable=False)
    op.drop_constraint("outbound_call_jobs_status_not_null", "outbound_call_jobs", type_="check")
    op.alter_column("outbound_call_runs", "total_leads", existing_type=sa.Integer(), server_default=sa.text("1"))


def downgrade() -> None:
    op.alter_column("outbound_call_runs", "total_leads", existing_type=sa.Integer(), server_default=sa.text("0"))
    op.alter_column("outbound_call_jobs", "status", existing_type=sa.String(length=32), nullable=True)
    op.drop_constraint("outbound_call_runs_concurrency_check", "outbound_call_runs", type_="check")
    op.drop_index(
        "idx_outbound_call_jobs_twilio_call_sid_unique",
        table_name="outbound_call_jobs",
        postgresql_where=sa.text("twilio_call_sid IS NOT NULL"),
    )
    op.drop_index("idx_outbound_call_attempts_job_id", table_name="outbound_call_attempts")
    op.drop_table("outbound_call_attempts")
