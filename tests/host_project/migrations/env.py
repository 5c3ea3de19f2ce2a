"""The host application's own env.py.

It knows nothing of outbound-schema's revisions. It runs its migrations
through outbound-schema's ``run_migrations``: with our revisions as a branch of
this history, that is what applies their safety layer (and the take-over of
legacy databases) to them; the host's own revisions run as plain Alembic runs
them. It also takes the migration lock, so rolling deploys of the host run one
migration at a time.
"""

import os

from alembic import context
from sqlalchemy import create_engine

from outbound_schema.environment import run_migrations

config = context.config
url = os.environ["DATABASE_URL"]

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, transaction_per_migration=True)
    run_migrations(context)
else:
    engine = create_engine(url)
    with engine.connect() as connection:
        # outbound-schema's revisions commit each change on its own (CONCURRENTLY
        # index builds): a host that includes them migrates one revision per transaction.
        context.configure(connection=connection, transaction_per_migration=True)
        run_migrations(context)
    engine.dispose()
