"""Where a database stands: one reading of its version table and schema history, in one vocabulary.

States, for the revision a database is at against this release's history:

- ``untracked``: no version row of ours (a database the old script built, or an empty one);
- ``at_head``: at this release's head;
- ``behind``: at a revision of this release before head (``pending`` lists what an upgrade applies);
- ``ahead``: at a revision this release does not have, which the schema history traces back to this
  release's head: a newer release migrated the database, and this one is its rollback;
- ``unknown``: at a revision on no line of this release's history.

The schema history (:data:`HISTORY_TABLE`) is what tells ``ahead`` from ``unknown``, as Flyway's
schema history does for ``ignoreFutureMigrations``: every run records each revision it applies or
reverts, with its parents, when, how long it took, which release applied it and from which host. A
release that does not have a revision's file still finds, in that table, where the revision comes from.

This module reads, never writes, and imports neither Alembic nor SQLAlchemy: the read-only commands
and a service's start-up gate use it on whatever connection they hold (``catalog.fetch``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from outbound_schema.config import VERSION_TABLE
from outbound_schema.history import History
from outbound_schema.keywords import quote
from outbound_schema.query import fetch
from outbound_schema.revisions import check_rows, superseded_rows, version_rows_error

if TYPE_CHECKING:
    from outbound_schema.query import Queryable

#: The schema history: one row per revision applied or reverted, on the version table's search path.
HISTORY_TABLE = "outbound_schema_history"

State = Literal["untracked", "at_head", "behind", "ahead", "unknown"]

#: The history table as every release creates it (IF NOT EXISTS: a run, or a script run twice, finds it).
HISTORY_DDL = (
    f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} ("
    "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "revision TEXT NOT NULL, "
    "parents TEXT[] NOT NULL, "
    "action TEXT NOT NULL, "
    "applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), "
    "duration_ms BIGINT, "
    "release TEXT, "
    "host TEXT, "
    "applied_by TEXT NOT NULL DEFAULT current_user)"
)


@dataclass(frozen=True)
class Applied:
    """One row of the schema history."""

    revision: str
    parents: tuple[str, ...]
    action: str  # applied, adopted (found complete), completed (found in part), reverted
    applied_at: datetime
    duration_ms: int | None
    release: str | None
    host: str | None

    def describe(self) -> str:
        by = f"release {self.release}" if self.release else "an unnamed release"
        where = f" from host {self.host}" if self.host else ""
        return f"{self.revision} {self.action} by {by} on {self.applied_at:%Y-%m-%d %H:%M:%S %Z}{where}"

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "parents": list(self.parents),
            "action": self.action,
            "applied_at": self.applied_at.isoformat(),
            "duration_ms": self.duration_ms,
            "release": self.release,
            "host": self.host,
        }


@dataclass(frozen=True)
class Standing:
    state: State
    current: tuple[str, ...]  # the version rows of ours
    head: str  # this release's head (heads joined by ", " in a history with several)
    pending: tuple[str, ...] = ()  # behind or untracked: what an upgrade to head applies, in order
    newer: tuple[Applied, ...] = field(default=())  # ahead: the revisions beyond head, from head up

    @property
    def compared_with(self) -> str:
        """The revision whose expected schema the database should hold (head's, past this release's)."""
        return self.current[0] if self.state in ("at_head", "behind") and len(self.current) == 1 else self.head

    @property
    def migrated(self) -> bool:
        """Whether the database holds everything this release's models need."""
        return self.state in ("at_head", "ahead")

    def summary(self) -> str:
        current = ", ".join(self.current)
        if self.state == "at_head":
            return f"at {current} (head)"
        if self.state == "behind":
            return f"at {current}, behind head {self.head}; pending {' -> '.join(self.pending)}"
        if self.state == "untracked":
            return "untracked: no revision of outbound-schema is recorded"
        if self.state == "ahead":
            return f"at {current}, ahead of this release's head {self.head}: " + "; ".join(
                entry.describe() for entry in self.newer
            )
        return f"at {current}, a revision on no line of this release's history (head {self.head})"

    def unknown_error_text(self, *, planning: bool = False) -> str:
        current = ", ".join(self.current)
        if planning:
            done, verb = "Nothing was planned: upgrade refuses to run from there.", "Plan with"
        else:
            done, verb = "Nothing was changed.", "Run"
        return (
            f"The database is at revision {current}, which is on no line of this release's history (head "
            f"{self.head}), and no row of its schema history ({HISTORY_TABLE}) leads from it to this release's "
            "head: another tool, a branch of the migrations this release does not have, or a hand-made "
            f"version row put it there. {done} {verb} the release whose migrations hold that "
            "revision, or, if the row is wrong, correct it (`outbound-schema check` compares the tables "
            "with a revision once it is right)."
        )


def read_versions(connection: Queryable, version_table: str = VERSION_TABLE) -> list[str]:
    """The version table's rows, sorted; empty when there is no such table."""
    exists = fetch(connection, "SELECT to_regclass(%(name)s) IS NOT NULL", {"name": quote(version_table)})[0][0]
    if not exists:
        return []
    rows = [row[0] for row in fetch(connection, f"SELECT version_num FROM {quote(version_table)}", {})]
    check_rows(version_table, rows)
    return sorted(str(row) for row in rows)  # whatever type a hand-made table holds


def read_history(connection: Queryable, *, limit: int | None = None) -> list[Applied]:
    """The schema history, oldest first (the last ``limit`` rows); empty when there is no such table."""
    exists = fetch(connection, "SELECT to_regclass(%(name)s) IS NOT NULL", {"name": HISTORY_TABLE})[0][0]
    if not exists:
        return []
    rows = fetch(
        connection,
        "SELECT * FROM (SELECT id, revision, parents, action, applied_at, duration_ms, release, host "
        f"FROM {HISTORY_TABLE} ORDER BY id DESC LIMIT %(limit)s) AS last ORDER BY id",
        {"limit": limit},
    )
    return [
        Applied(str(rev), tuple(parents or ()), str(action), at, duration, release, host)
        for _id, rev, parents, action, at, duration, release, host in rows
    ]


def judge(
    current: Sequence[str],
    history: History,
    applied: Iterable[Applied] = (),
    version_table: str = VERSION_TABLE,
) -> Standing:
    """Where a database whose version table holds ``current`` stands, its schema history being ``applied``."""
    heads = history.heads()
    head = heads[0] if len(heads) == 1 else ", ".join(heads)
    known = set(history.revisions)
    if version_table != VERSION_TABLE:
        # A host's version table also records the host's own heads: only ours count, and a newer
        # release's revision of ours is one the schema history knows.
        ours = {entry.revision for entry in applied}
        current = [rev for rev in current if rev in known or rev in ours]
    current = tuple(sorted(current))
    managed = history.managed()
    if not current:
        return Standing("untracked", current, head, tuple(managed))
    unknown = [rev for rev in current if rev not in known]
    if unknown:
        entries = {entry.revision: entry for entry in applied if entry.action != "reverted"}
        newer = _lineage(unknown, entries, known)
        if newer is not None and newer[0] and set(heads) <= history.applied(newer[0]):
            return Standing("ahead", current, head, newer=tuple(newer[1]))
        return Standing("unknown", current, head)
    superseded = superseded_rows(current, history.applied)
    if superseded:
        raise version_rows_error(version_table, current, superseded)
    done = history.applied(current)
    pending = tuple(rev for rev in managed if rev not in done)
    return Standing("behind" if pending else "at_head", current, head, pending)


def _lineage(
    unknown: Sequence[str], entries: Mapping[str, Applied], known: set[str]
) -> tuple[set[str], list[Applied]] | None:
    """The ``known`` revisions the schema history leads ``unknown`` back to, and the rows on the way
    (oldest first); None where a revision on the way has no row."""
    reached: set[str] = set()
    on_the_way: dict[str, Applied] = {}
    stack = list(unknown)
    while stack:
        rev = stack.pop()
        if rev in on_the_way:
            continue
        entry = entries.get(rev)
        if entry is None:
            return None
        on_the_way[rev] = entry
        for parent in entry.parents:
            if parent in known:
                reached.add(parent)
            else:
                stack.append(parent)
    return reached, sorted(on_the_way.values(), key=lambda entry: entry.applied_at)


def stand(connection: Queryable, history: History, version_table: str = VERSION_TABLE) -> Standing:
    """Read the version table and the schema history on ``connection``, and judge them."""
    current = read_versions(connection, version_table)
    known = set(history.revisions)
    beyond = [rev for rev in current if rev not in known]
    return judge(current, history, read_history(connection) if beyond else (), version_table)
