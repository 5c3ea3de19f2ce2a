"""h1: the host application's tables."""

import sqlalchemy as sa
from alembic import op

revision = "h1"
down_revision = None
branch_labels = ("host",)
depends_on = None


def upgrade() -> None:
    op.create_table("business", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))
    op.create_table("leads", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))
    op.create_table("call_log", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table("outbound_lead_lists", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    for table in ("outbound_lead_lists", "call_log", "leads", "business"):
        op.drop_table(table)
