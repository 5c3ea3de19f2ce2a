"""For services that gate their start-up on the schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from outbound_schema.config import VERSION_TABLE, alembic_config
from outbound_schema.revisions import applied_revisions, check_rows, order_key


@contextmanager
def _connection(bind: Engine | Connection) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as connection:
            yield connection


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this installed version of outbound-schema knows."""
    head = _script().get_current_head()
    assert head is not None
    return head


def current_revisions(bind: Engine | Connection, *, version_table: str = VERSION_TABLE) -> set[str]:
    """The revisions the database's version table records (empty if it has none)."""
    with _connection(bind) as connection:
        context = MigrationContext.configure(connection, opts={"version_table": version_table})
        heads = context.get_current_heads()
        check_rows(version_table, heads)
        return set(heads)


def is_at_head(bind: Engine | Connection, *, version_table: str = VERSION_TABLE) -> bool:
    """Whether the database is migrated to this library's head revision (or a revision built on it,
    such as a host's merge of our branch).

    ``version_table`` is ours by default; pass the host's (``"alembic_version"``)
    when our revisions run inside the host's own Alembic history. A revision this
    installed version does not know (a newer release migrated the database) is not
    its head: gate a service's start-up on :func:`is_migrated` instead, which
    accepts it.
    """
    script = _script()
    return script.get_current_head() in applied_revisions(script, current_revisions(bind, version_table=version_table))


def is_migrated(bind: Engine | Connection, *, version_table: str = VERSION_TABLE) -> bool:
    """Whether the database holds everything this installed version's models need: its head revision,
    or a newer one that a later release of outbound-schema applied.

    This is the start-up gate for rolling deploys: while a new release rolls out,
    instances of the previous one keep starting against the database its
    migration has moved on. That is safe because revisions only add to the schema
    in the same release; dropping or renaming something is refused unless a
    revision allows it explicitly, once no running release maps it (see the
    README's "Changing the schema"). A newer revision is recognised by its id
    (``47a`` comes after ``46d``): revisions are numbered in order.
    """
    script = _script()
    head = script.get_current_head()
    current = current_revisions(bind, version_table=version_table)
    if head in applied_revisions(script, current):
        return True
    known = {rev.revision for rev in script.walk_revisions()}
    head_key = order_key(head or "")
    newer = [order_key(rev) for rev in current - known]
    return head_key is not None and any(key is not None and key > head_key for key in newer)
