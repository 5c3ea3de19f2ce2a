"""The revision history: what a version table's heads mean, and how new revisions are named."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

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
