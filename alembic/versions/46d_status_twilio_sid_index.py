"""46d: index on outbound_call_jobs (status, twilio_call_sid), to clean up stuck jobs fast.

Legacy migration 46d. Frozen: fixes go forward in a new revision.
"""

from outbound_schema import steps
from outbound_schema.steps import Index, Step

revision = "46d"
down_revision = "46c"
branch_labels = None
depends_on = None

STEP = Step(
    revision="46d",
    indexes=(Index("idx_outbound_call_jobs_status_twilio_sid", "outbound_call_jobs", ("status", "twilio_call_sid")),),
)


def upgrade() -> None:
    steps.upgrade(STEP)


def downgrade() -> None:
    steps.downgrade(STEP)
