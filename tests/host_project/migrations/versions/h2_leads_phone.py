"""h2: a later change of the host's own."""

import sqlalchemy as sa
from alembic import op

revision = "h2"
down_revision = "h1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leads", sa.Column("phone", sa.Text))


def downgrade() -> None:
    op.drop_column("leads", "phone")
