"""47a: timestamp defaults in UTC whatever the writer's session time zone.

The timestamp columns are TIMESTAMP WITHOUT TIME ZONE holding UTC. Their
default, CURRENT_TIMESTAMP, is converted to the *session's* TimeZone when it is
stored, so a writer whose session is not in UTC (a service that forgot to set
it, or any writer behind a pooler that drops the startup options carrying it)
stamped local times. timezone('utc', now()) is the same instant in UTC for
every session. Changing a default rewrites nothing and locks only briefly.
"""

import sqlalchemy as sa
from alembic import op

revision = "47a"
down_revision = "46d"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("outbound_call_runs", "created_at"),
    ("outbound_call_runs", "updated_at"),
    ("outbound_call_jobs", "created_at"),
)


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.alter_column(table, column, server_default=sa.text("timezone('utc', now())"))


def downgrade() -> None:
    for table, column in _COLUMNS:
        op.alter_column(table, column, server_default=sa.text("CURRENT_TIMESTAMP"))
