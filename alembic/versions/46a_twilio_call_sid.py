"""46a: outbound_call_jobs.twilio_call_sid and its index, against duplicate dials.

Legacy migration 46a. Frozen: fixes go forward in a new revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "46a"
down_revision = "40b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbound_call_jobs", sa.Column("twilio_call_sid", sa.String(length=64), nullable=True))
    op.create_index("idx_outbound_call_jobs_twilio_sid", "outbound_call_jobs", ["twilio_call_sid"])


def downgrade() -> None:
    op.drop_index("idx_outbound_call_jobs_twilio_sid", table_name="outbound_call_jobs")
    op.drop_column("outbound_call_jobs", "twilio_call_sid")
