"""46b: outbound_call_jobs.dial_started_at, when a dial attempt began (finds stuck jobs).

Legacy migration 46b. Frozen: fixes go forward in a new revision.
"""

from outbound_schema import steps
from outbound_schema.steps import AddColumn, Column, Step

revision = "46b"
down_revision = "46a"
branch_labels = None
depends_on = None

STEP = Step(
    revision="46b",
    add_columns=(AddColumn("outbound_call_jobs", Column("dial_started_at", "timestamp without time zone")),),
)


def upgrade() -> None:
    steps.upgrade(STEP)


def downgrade() -> None:
    steps.downgrade(STEP)
