"""The revision history: what a version table's heads mean, and how new revisions are named."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from outbound_schema.errors import OutboundSchemaError

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

#: Our revision ids: the legacy script's migration number and step letter (40a, 46d), and after them
#: one number per new revision (47a, 48a, ...).
REVISION_ID = re.compile(r"^(\d+)([a-z]*)$")


def applied_revisions(script: ScriptDirectory, heads: Iterable[str]) -> set[str]:
    """The revisions a version table at ``heads`` says are applied: the heads we know and their ancestors.

    Unknown heads (a host's own, in a shared version table) are ignored.
    """
    known = {rev.revision for rev in script.walk_revisions()}
    return {rev.revision for head in heads if head in known for rev in script.iterate_revisions(head, "base")}


def order_key(revision: str) -> tuple[int, str] | None:
    match = REVISION_ID.match(revision)
    return (int(match.group(1)), match.group(2)) if match else None


def next_revision_id(heads: Iterable[str]) -> str | None:
    """The id a new revision on top of ``heads`` gets: ``47a`` after ``46d``; None if the heads are not ours."""
    keys = [order_key(head) for head in heads]
    if not keys or any(key is None for key in keys):
        return None
    return f"{max(key[0] for key in keys if key is not None) + 1}a"


def superseded_rows(current: Iterable[str], applied: Callable[[list[str]], set[str]]) -> list[str]:
    """Rows of a version table that another row's revision already includes.

    Our history has no branches, so the table holds one row; a row that precedes another (``40a``
    beside ``46d``) was left by a script run twice and would make every reading of it wrong.
    ``applied`` gives the revisions a list of heads means are applied.
    """
    rows = sorted(set(current))
    return [row for row in rows if any(row in applied([other]) for other in rows if other != row)]


def version_rows_error(version_table: str, current: Iterable[str], superseded: list[str]) -> OutboundSchemaError:
    rows = ", ".join(sorted(set(current)))
    extra = ", ".join(f"'{row}'" for row in superseded)
    return OutboundSchemaError(
        f"The version table {version_table} holds the rows {rows} where it should hold one: {', '.join(superseded)} "
        "came before another row's revision, as an offline script run twice by an older outbound-schema leaves it. "
        "Nothing was changed. Delete the earlier row(s) "
        f"(DELETE FROM {version_table} WHERE version_num IN ({extra})), then run `outbound-schema check` to see "
        "that the tables match the remaining revision.",
        exit_code=2,
    )


def check_rows(version_table: str, rows: Iterable[object]) -> None:
    """Refuse a version table holding a row that names no revision (NULL, or blank): no reading of the
    database's revision can be trusted then, and a run would record its own row beside it."""
    rows = list(rows)
    blank = [row for row in rows if row is None or not str(row).strip()]
    if not blank:
        return
    shown = ", ".join("NULL" if row is None else repr(str(row)) for row in blank)
    others = sorted(str(row) for row in rows if row not in blank)
    beside = f" beside {', '.join(others)}" if others else ""
    raise OutboundSchemaError(
        f"The version table {version_table} holds a row that names no revision ({shown}){beside}: a hand-made "
        "change or an interrupted script left it, and the database's revision cannot be read. Nothing was "
        f"changed. Delete it (DELETE FROM {version_table} WHERE version_num IS NULL OR btrim(version_num) = ''), "
        "then run `outbound-schema check` to see that the tables match the remaining revision.",
        exit_code=2,
    )
