"""The host application's own env.py.

It knows nothing of outbound-schema's revisions; it only borrows its migration
lock, so that rolling deploys of the host run one migration at a time (with our
revisions as a branch of this history, our own env.py and its lock are not used).
"""

import os

from alembic import context
from sqlalchemy import create_engine

from outbound_schema.locking import migration_lock

config = context.config
url = os.environ["DATABASE_URL"]

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    with engine.connect() as connection:
        # outbound-schema's revisions commit each change on its own (CONCURRENTLY
        # index builds): a host that includes them migrates one revision per transaction.
        context.configure(connection=connection, transaction_per_migration=True)
        with migration_lock(connection, wait_seconds=600), context.begin_transaction():
            context.run_migrations()
    engine.dispose()
