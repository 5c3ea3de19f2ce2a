"""46a: outbound_call_jobs.twilio_call_sid and its index, against duplicate dials.

Legacy migration 46a. Frozen: fixes go forward in a new revision.
"""

from outbound_schema import steps
from outbound_schema.steps import AddColumn, Column, Index, Step

revision = "46a"
down_revision = "40b"
branch_labels = None
depends_on = None

STEP = Step(
    revision="46a",
    add_columns=(AddColumn("outbound_call_jobs", Column("twilio_call_sid", "character varying(64)")),),
    indexes=(Index("idx_outbound_call_jobs_twilio_sid", "outbound_call_jobs", ("twilio_call_sid",)),),
)


def upgrade() -> None:
    steps.upgrade(STEP)


def downgrade() -> None:
    steps.downgrade(STEP)
