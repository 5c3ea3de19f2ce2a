"""46c: outbound_call_jobs.dial_lock_token and its index, for atomic locking between workers.

Legacy migration 46c. Frozen: fixes go forward in a new revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "46c"
down_revision = "46b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbound_call_jobs", sa.Column("dial_lock_token", sa.String(length=64), nullable=True))
    op.create_index("idx_outbound_call_jobs_lock_token", "outbound_call_jobs", ["dial_lock_token"])


def downgrade() -> None:
    op.drop_index("idx_outbound_call_jobs_lock_token", table_name="outbound_call_jobs")
    op.drop_column("outbound_call_jobs", "dial_lock_token")
