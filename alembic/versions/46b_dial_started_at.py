"""46b: outbound_call_jobs.dial_started_at, when a dial attempt began (finds stuck jobs).

Legacy migration 46b. Frozen: fixes go forward in a new revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "46b"
down_revision = "46a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbound_call_jobs", sa.Column("dial_started_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbound_call_jobs", "dial_started_at")
