"""Drop outbound_call_jobs.call_sid: the contract step of expand/contract.

A day-2 revision as a user writes it (the ids are filled in by .ci/day2.sh). No release maps
call_sid any more (twilio_call_sid replaced it), so dropping it breaks no running service; the
opt-out says so, greppably.
"""

import sqlalchemy as sa
from alembic import op

revision = "next"
down_revision = "head"
branch_labels = None
depends_on = None

allow_unsafe = {"drop_column outbound_call_jobs.call_sid": "no release maps call_sid: twilio_call_sid replaced it"}


def upgrade() -> None:
    op.drop_index("idx_outbound_call_jobs_call_sid", table_name="outbound_call_jobs")
    op.drop_column("outbound_call_jobs", "call_sid")


def downgrade() -> None:
    op.add_column("outbound_call_jobs", sa.Column("call_sid", sa.String(length=64), nullable=True))
    op.create_index("idx_outbound_call_jobs_call_sid", "outbound_call_jobs", ["call_sid"], unique=False)
