"""Contract: outbound_call_jobs.call_sid (and its index), which no release maps any more.

An example of a contract step, kept for the tests and never part of the real history: tests/test_contract.py
and tests/test_offline_rerun.py put it on top of a copy of the migrations as they stood at 47a (its id and
down_revision are filled in then). It drops what 40b created, with the opt-out the safety layer asks for, as
docs/changing-the-schema.md's expand/contract example does.
"""

import sqlalchemy as sa
from alembic import op

revision = "next"
down_revision = "head"
branch_labels = None
depends_on = None

allow_unsafe = {"drop_column outbound_call_jobs.call_sid": "no release maps call_sid since the one before"}


def upgrade() -> None:
    op.drop_index("idx_outbound_call_jobs_call_sid", table_name="outbound_call_jobs")
    op.drop_column("outbound_call_jobs", "call_sid")


def downgrade() -> None:
    op.add_column("outbound_call_jobs", sa.Column("call_sid", sa.String(64), nullable=True))
    op.create_index("idx_outbound_call_jobs_call_sid", "outbound_call_jobs", ["call_sid"])
