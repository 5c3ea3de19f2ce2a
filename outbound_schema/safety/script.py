"""The offline script's shape: version-table statements that can run again, each revision's block guarded
by the version table (psql \\if), and squawk told what runs safely.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from alembic.runtime.migration import MigrationContext, RevisionStep
from sqlalchemy import text
from sqlalchemy.schema import (
    CreateTable,
    DropTable,
)
from sqlalchemy.sql.dml import Insert, UpdateBase

from outbound_schema.keywords import literal, quote
from outbound_schema.safety import alembic_api
from outbound_schema.safety.operations import qualified

log = logging.getLogger("outbound_schema.migrate")


def is_version_table(construct: Any, version_table: str) -> bool:
    element = getattr(construct, "element", None)
    if isinstance(construct, CreateTable | DropTable) and element is not None:
        return bool(element.name == version_table)
    table = getattr(construct, "table", None)
    return isinstance(construct, UpdateBase) and getattr(table, "name", None) == version_table


def rerunnable_version_change(construct: Any, version_table: str) -> Any | None:
    """The offline script's version-table statements, so that the script can run again.

    After a failure at any statement, or after a shorter script, a second run must end at the
    target with one version row: the table is created if absent, and the first revision's row is
    inserted only into an empty table (the UPDATEs that follow match only the row they move on).

    None for the ``DROP TABLE`` of the version table that Alembic before 1.19 ends a downgrade to base
    with: the script leaves the table there, empty, as an online downgrade does and as Alembic 1.19+
    writes the script (dropped, the blocks of a second run would find nothing recorded, and the run
    would fail at the DROP TABLE).
    """
    if isinstance(construct, DropTable) and is_version_table(construct, version_table):
        return None
    if isinstance(construct, CreateTable) and not construct.if_not_exists:
        return CreateTable(construct.element, if_not_exists=True)
    if isinstance(construct, Insert):
        table = construct.table
        rendered = str(construct.compile(compile_kwargs={"literal_binds": True}))
        value = re.search(r"VALUES \((.+)\)", rendered)
        if value is not None:
            return text(
                f"INSERT INTO {quote(table.name)} (version_num) SELECT {value.group(1)} "
                f"WHERE NOT EXISTS (SELECT FROM {quote(table.name)})"
            )
    return construct


def skip_when_done(step: RevisionStep, context: MigrationContext) -> str:
    """psql meta-commands opening a revision's block of the offline script (``\\endif`` closes it), so that
    the script runs again after a failure at any statement: a block runs only where the version table
    does not record it as done. Done for an upgrade: the table holds the revision or one after it (a later
    block may drop what this one creates); for a downgrade: the table no longer holds it. No DO block or
    transaction could hold the block: CREATE INDEX CONCURRENTLY runs in neither. The version table may not
    exist yet: the first block creates it."""
    table = qualified(context.version_table, context.version_table_schema)
    revision = step.revision.revision
    if step.is_upgrade:
        done = alembic_api.descendants(step)
        said = f"{revision}: runs unless {table} records it or a later revision (the script can run again)"
        pending = f"NOT EXISTS (SELECT FROM {table} WHERE version_num IN ({', '.join(map(literal, done))}))"
    else:
        said = f"{revision}: reverted only while {table} records it (the script can run again)"
        pending = f"EXISTS (SELECT FROM {table} WHERE version_num = {literal(revision)})"
    return "\n".join(
        (
            f"-- {said}",
            f"SELECT to_regclass({literal(table)}) IS NOT NULL AS outbound_schema_tracked, "
            f"{'true' if step.is_upgrade else 'false'} AS outbound_schema_pending \\gset",
            "\\if :outbound_schema_tracked",
            f"SELECT {pending} AS outbound_schema_pending \\gset",
            "\\endif",
            "\\if :outbound_schema_pending",
        )
    )


def squawk_ignore(lint: Sequence[tuple[str, str]]) -> str:
    """squawk's ignore comment for the next statement alone: the rules it trips, and why it is safe here."""
    rules = ", ".join(dict.fromkeys(rule for rule, _ in lint))
    why = " ".join("; ".join(dict.fromkeys(reason for _, reason in lint)).split())  # one line
    return f"-- squawk-ignore {rules} -- {why}\n"
