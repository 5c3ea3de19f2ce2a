"""The host application's own env.py: it knows nothing of outbound-schema."""

import os

from alembic import context
from sqlalchemy import create_engine

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
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
