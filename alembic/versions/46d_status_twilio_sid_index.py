"""46d: index on outbound_call_jobs (status, twilio_call_sid), to clean up stuck jobs fast.

Legacy migration 46d. Frozen: fixes go forward in a new revision.
"""

from alembic import op

revision = "46d"
down_revision = "46c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("idx_outbound_call_jobs_status_twilio_sid", "outbound_call_jobs", ["status", "twilio_call_sid"])


def downgrade() -> None:
    op.drop_index("idx_outbound_call_jobs_status_twilio_sid", table_name="outbound_call_jobs")
