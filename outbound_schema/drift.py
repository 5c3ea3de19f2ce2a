"""The schema-drift check: a live database against the expected schema of its revision.

Reads PostgreSQL's catalog once (a handful of queries) and compares every
object of our tables with the committed expected-schema file
(``outbound_schema.expected``) of the revision the database is at (of head
when it is untracked, or at a revision this library does not know). The test
suite proves head's file equal to the models, so a green check means the
database holds what the code expects. Besides what Alembic's autogenerate
compares (columns, types, nullability, server defaults, indexes, foreign
keys) it catches what autogenerate misses: an index redefined under the same
name, an INVALID index, a constraint or index under another name, extra
tables, columns, indexes and constraints, table options (unlogged, storage
parameters, row security), column collations, sequence options, and where the
version table stands.

The JSON report (``--format json``) has this shape, stable within ``format`` 1::

    {"format": 1, "status": "ok" | "drift" | "error", "database": "<masked URL>",
     "revision": {"state": "at_head" | "behind" | "ahead" | "unknown" | "untracked",
                  "current": ["46d"], "head": "46d", "pending": [], "compared_with": "46d"},
     "objects": [{"kind": "table" | "column" | "constraint" | "index" | "sequence" | "revision",
                  "name": "...", "verdict": "ok" | "missing" | "different" | "extra" | "invalid" | "renamed"
                  | "behind" | "ahead" | "unknown" | "untracked",
                  "expected": "..." | null, "found": "..." | null}],
     "summary": {"ok": 40, "drift": 0}}

On error: ``{"format": 1, "status": "error", "error": "<message>"}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol, TypeVar

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from outbound_schema.catalog import ConstraintInfo, IndexInfo, Snapshot, snapshot
from outbound_schema.config import VERSION_TABLE
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.expected import SNAPSHOT_COMMAND, ExpectedSchemas
from outbound_schema.revisions import applied_revisions, order_key

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Verdict:
    kind: str
    name: str
    verdict: str
    expected: str | None = None
    found: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def line(self) -> str:
        mark = "✅" if self.ok else "❌"
        if self.ok:
            return f"{mark} {self.kind} {self.name}: {self.found}"
        if self.verdict == "missing":
            return f"{mark} {self.kind} {self.name}: missing; expected {self.expected}"
        if self.verdict == "extra":
            return f"{mark} {self.kind} {self.name}: extra, not created by any revision: {self.found}"
        if self.verdict == "renamed":
            return f"{mark} {self.kind} {self.name}: found under another name: {self.found}"
        if self.kind == "revision":
            return f"{mark} revision {self.name}: {self.found}; expected {self.expected}"
        return f"{mark} {self.kind} {self.name}: {self.verdict}; expected {self.expected}; found {self.found}"


@dataclass
class RevisionState:
    state: str
    current: list[str]
    head: str
    pending: list[str] = field(default_factory=list)
    compared_with: str = ""  # the revision whose expected schema the objects were compared with


@dataclass
class Report:
    database: str
    revision: RevisionState
    objects: list[Verdict]

    @property
    def drift(self) -> list[Verdict]:
        return [v for v in self.objects if not v.ok]

    @property
    def status(self) -> str:
        return "drift" if self.drift else "ok"

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "status": self.status,
                "database": self.database,
                "revision": asdict(self.revision),
                "objects": [asdict(v) for v in self.objects],
                "summary": {"ok": len(self.objects) - len(self.drift), "drift": len(self.drift)},
            },
            indent=2,
            ensure_ascii=False,
        )

    def to_text(self) -> str:
        lines = [f"database: {self.database}", *(v.line() for v in self.objects)]
        compared = self.revision.compared_with
        against = f"revision {compared}{' (head)' if compared == self.revision.head else ''}"
        if self.drift:
            lines.append(f"DRIFT: {len(self.drift)} of {len(self.objects)} objects differ from {against}")
        else:
            lines.append(f"OK: all {len(self.objects)} objects match {against}")
        return "\n".join(lines)


def compare(expected: Snapshot, found: Snapshot) -> Iterator[Verdict]:
    """One verdict per expected object, then one per extra object on our tables."""
    live = set(found.tables)
    yield from _compare_tables(expected, found)
    yield from _compare_named(
        "constraint",
        {k: v for k, v in expected.constraints.items() if v.table in live},
        found.constraints,
        ConstraintInfo.shape,
        valid=lambda constraint: constraint.validated,
    )
    yield from _compare_named(
        "index",
        {k: v for k, v in expected.indexes.items() if v.table in live},
        found.indexes,
        IndexInfo.shape,
        # Indexes that enforce a constraint (primary keys, unique constraints) are reported as constraints.
        reportable=lambda index: index.constraint is None,
        valid=lambda index: index.valid,
    )
    yield from _compare_named(
        "sequence",
        {k: v for k, v in expected.sequences.items() if not v.owned_by or v.owned_by.split(".")[0] in live},
        found.sequences,
        lambda sequence: sequence,
        renames=False,
    )


def _compare_tables(expected: Snapshot, found: Snapshot) -> Iterator[Verdict]:
    for name, table in expected.tables.items():
        live = found.tables.get(name)
        if live is None:
            yield Verdict("table", name, "missing", table.describe())
            continue
        if live.settings() != table.settings():
            yield Verdict("table", name, "different", table.describe(), live.describe())
        else:
            yield Verdict("table", name, "ok", found=live.describe())
        for column in table.columns:
            qualified = f"{name}.{column.name}"
            have = live.column(column.name)
            if have is None:
                yield Verdict("column", qualified, "missing", column.describe())
            elif have != column:
                yield Verdict("column", qualified, "different", column.describe(), have.describe())
            else:
                yield Verdict("column", qualified, "ok", found=have.describe())
        for extra in live.columns:
            if table.column(extra.name) is None:
                yield Verdict("column", f"{name}.{extra.name}", "extra", found=extra.describe())
    for name, live in found.tables.items():
        if name not in expected.tables:
            yield Verdict("table", name, "extra", found=live.describe())


class _Described(Protocol):
    def describe(self) -> str: ...


_T = TypeVar("_T", bound=_Described)


def _compare_named(
    kind: str,
    expected: Mapping[str, _T],
    found: Mapping[str, _T],
    shape: Callable[[_T], object],
    *,
    renames: bool = True,
    reportable: Callable[[_T], bool] = lambda _: True,
    valid: Callable[[_T], bool] = lambda _: True,
) -> Iterator[Verdict]:
    """Missing, renamed (same shape under another name), different, invalid or ok; then the extras."""
    extras = {name: obj for name, obj in found.items() if name not in expected and reportable(obj)}
    for name, want in expected.items():
        have = found.get(name)
        if have is None:
            twin = (
                next((n for n, o in extras.items() if shape(o) == shape(want) and valid(o)), None) if renames else None
            )
            if twin is not None:
                yield Verdict(kind, name, "renamed", want.describe(), f"{twin}: {extras.pop(twin).describe()}")
            else:
                yield Verdict(kind, name, "missing", want.describe())
        elif shape(have) != shape(want):
            yield Verdict(kind, name, "different", want.describe(), have.describe())
        elif not valid(have):
            yield Verdict(kind, name, "invalid", want.describe(), have.describe())
        else:
            yield Verdict(kind, name, "ok", found=have.describe())
    for name, extra in extras.items():
        yield Verdict(kind, name, "extra", found=extra.describe())


def revision_state(
    connection: Connection, script: ScriptDirectory, version_table: str = VERSION_TABLE
) -> RevisionState:
    heads = script.get_heads()
    head = heads[0] if len(heads) == 1 else ", ".join(heads)
    context = MigrationContext.configure(connection, opts={"version_table": version_table})
    current = sorted(context.get_current_heads())
    known = {rev.revision for rev in script.walk_revisions()}
    if version_table != VERSION_TABLE:
        # A host's version table also records the host's own heads: only ours count.
        current = [rev for rev in current if rev in known]
    ours = [rev.revision for rev in ExpectedSchemas(script).managed()]
    if not current:
        return RevisionState("untracked", current, head, ours, head)
    unknown = [rev for rev in current if rev not in known]
    if unknown:
        keys = [order_key(rev) for rev in unknown]
        head_key = order_key(head)
        ahead = head_key is not None and all(k is not None and k > head_key for k in keys)
        return RevisionState("ahead" if ahead else "unknown", current, head, [], head)
    applied = applied_revisions(script, current)
    pending = [rev for rev in ours if rev not in applied]
    compared = current[0] if len(current) == 1 else head
    return RevisionState("behind" if pending else "at_head", current, head, pending, compared)


def _revision_verdict(state: RevisionState, version_table: str) -> Verdict:
    expected = f"{state.head} (head)"
    current = ", ".join(state.current)
    if state.state == "at_head":
        return Verdict("revision", version_table, "ok", expected, f"{current} (head)")
    found = {
        "untracked": f"no {version_table} table: the database was never migrated by outbound-schema",
        "behind": f"{current}, behind head; pending {' -> '.join(state.pending)}",
        "ahead": f"{current}, ahead of head: a newer outbound-schema migrated this database",
        "unknown": f"{current}, not a revision of outbound-schema",
    }[state.state]
    return Verdict("revision", version_table, state.state, expected, found)


def check(connection: Connection, script: ScriptDirectory, database: str, version_table: str = VERSION_TABLE) -> Report:
    """Compare the database behind ``connection`` with the expected schema of its revision; changes nothing."""
    expected = ExpectedSchemas(script)
    state = revision_state(connection, script, version_table)
    want = expected.at(state.compared_with)
    if want is None:
        raise OutboundSchemaError(
            f"There is no expected-schema file for revision {state.compared_with}, so the database cannot be "
            f"compared with it. Generate it with `{SNAPSHOT_COMMAND}` (from the repository that holds the "
            "revisions) and commit it.",
            exit_code=2,
        )
    found = snapshot(connection, expected.tables())
    objects = list(compare(want, found))
    objects.append(_revision_verdict(state, version_table))
    return Report(database, state, objects)
