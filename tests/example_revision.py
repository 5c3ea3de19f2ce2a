"""Dial attempts per job, a CHECK on the job status, and an index of the queued jobs.

An example of the next revision, kept for the tests and never part of the real
history: tests/test_next_revision.py puts it on top of head in a copy of the
migrations (its id and down_revision are filled in then) and takes it through
everything a real one goes through. It is written as `alembic revision
--autogenerate` writes revisions, plus the CHECK, which autogenerate does not
detect; nothing in it is specific to outbound-schema.
"""

import sqlalchemy as sa
from alembic import op

revision = "next"
down_revision = "head"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbound_call_jobs", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.create_check_constraint(
        "outbound_call_jobs_status_check",
        "outbound_call_jobs",
        "status IN ('queued', 'dialing', 'completed', 'failed')",
    )
    op.create_index(
        "idx_outbound_call_jobs_queued",
        "outbound_call_jobs",
        ["run_id"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index(
        "idx_outbound_call_jobs_queued", table_name="outbound_call_jobs", postgresql_where=sa.text("status = 'queued'")
    )
    op.drop_constraint("outbound_call_jobs_status_check", "outbound_call_jobs", type_="check")
    op.drop_column("outbound_call_jobs", "attempts")
