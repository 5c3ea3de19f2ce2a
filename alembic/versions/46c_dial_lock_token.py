"""46c: outbound_call_jobs.dial_lock_token and its index, for atomic locking between workers.

Legacy migration 46c. Frozen: fixes go forward in a new revision.
"""

from outbound_schema import steps
from outbound_schema.steps import AddColumn, Column, Index, Step

revision = "46c"
down_revision = "46b"
branch_labels = None
depends_on = None

STEP = Step(
    revision="46c",
    add_columns=(AddColumn("outbound_call_jobs", Column("dial_lock_token", "character varying(64)")),),
    indexes=(Index("idx_outbound_call_jobs_lock_token", "outbound_call_jobs", ("dial_lock_token",)),),
)


def upgrade() -> None:
    steps.upgrade(STEP)


def downgrade() -> None:
    steps.downgrade(STEP)
