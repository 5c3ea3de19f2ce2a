"""For services that gate their start-up on the schema.

These read the version table and the schema history (``outbound_schema.standing``) and the revision
graph from the revision files (``outbound_schema.history``): they load no Alembic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from outbound_schema.config import VERSION_TABLE, script_location
from outbound_schema.history import History
from outbound_schema.standing import Standing, read_versions, stand


@contextmanager
def _connection(bind: Engine | Connection) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as connection:
            yield connection


def _history() -> History:
    return History.read(script_location())


def head_revision() -> str:
    """The newest revision this installed version of outbound-schema knows."""
    heads = _history().heads()
    assert len(heads) == 1, heads
    return heads[0]


def current_revisions(bind: Engine | Connection, *, version_table: str = VERSION_TABLE) -> set[str]:
    """The revisions the database's version table records (empty if it has none)."""
    with _connection(bind) as connection:
        return set(read_versions(connection, version_table))


def standing(bind: Engine | Connection, *, version_table: str = VERSION_TABLE) -> Standing:
    """Where the database stands against this installed version: ``at_head``, ``behind``, ``ahead`` (a newer
    release migrated it), ``unknown`` or ``untracked`` (see :mod:`outbound_schema.standing`)."""
    with _connection(bind) as connection:
        return stand(connection, _history(), version_table)


def is_at_head(bind: Engine | Connection, *, version_table: str = VERSION_TABLE) -> bool:
    """Whether the database is migrated to this library's head revision.

    ``version_table`` is ours by default; pass the host's (``"alembic_version"``)
    when our revisions run inside the host's own Alembic history. A revision this
    installed version does not have (a newer release migrated the database) is not
    its head: gate a service's start-up on :func:`is_migrated` instead, which
    accepts it.
    """
    return standing(bind, version_table=version_table).state == "at_head"


def is_migrated(bind: Engine | Connection, *, version_table: str = VERSION_TABLE) -> bool:
    """Whether the database holds everything this installed version's models need: its head revision,
    or a newer one that a later release of outbound-schema applied on top of it.

    This is the start-up gate for rolling deploys and release rollbacks: while a new
    release rolls out, or after it is rolled back, instances of this release keep
    starting against the database its migration has moved on. That is safe because
    revisions only add to the schema in the same release; dropping or renaming
    something is refused unless a revision allows it explicitly, once no running
    release maps it (see docs/changing-the-schema.md). A newer revision is
    recognised by the schema history the newer release recorded, which leads from it
    back to this release's head.
    """
    return standing(bind, version_table=version_table).migrated
