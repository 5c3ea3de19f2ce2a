"""The schema-drift check: a live database against what the revisions and models say.

Reads PostgreSQL's catalog once (a handful of queries) and compares every
object of our two tables with the state the revisions build at head, which the
test suite proves equal to the models. Besides what Alembic's autogenerate
compares (columns, types, nullability, server defaults, indexes, foreign keys)
it catches what autogenerate misses: an index redefined under the same name,
an INVALID index, a constraint or index under another name, extra columns,
indexes and constraints, and where the version table stands.

The JSON report (``--format json``) has this shape, stable within ``format`` 1::

    {"format": 1, "status": "ok" | "drift" | "error", "database": "<masked URL>",
     "revision": {"state": "at_head" | "behind" | "ahead" | "unknown" | "untracked",
                  "current": ["46d"], "head": "46d", "pending": []},
     "objects": [{"kind": "table" | "column" | "constraint" | "index" | "sequence" | "revision",
                  "name": "...", "verdict": "ok" | "missing" | "different" | "extra" | "invalid" | "renamed"
                  | "behind" | "ahead" | "unknown" | "untracked",
                  "expected": "..." | null, "found": "..." | null}],
     "summary": {"ok": 40, "drift": 0}}

On error: ``{"format": 1, "status": "error", "error": "<message>"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol, TypeVar

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from outbound_schema.catalog import (
    ColumnInfo,
    ConstraintInfo,
    IndexInfo,
    Snapshot,
    TableInfo,
    snapshot,
)
from outbound_schema.config import VERSION_TABLE
from outbound_schema.steps import Step, applied_revisions, steps_of

FORMAT_VERSION = 1
_REVISION_ID = re.compile(r"^(\d+)([a-z]*)$")


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
        if self.drift:
            lines.append(f"DRIFT: {len(self.drift)} of {len(self.objects)} objects differ from the revisions at head")
        else:
            lines.append(f"OK: all {len(self.objects)} objects match the revisions at head")
        return "\n".join(lines)


def expected_snapshot(steps: Iterable[Step]) -> Snapshot:
    """The catalog the revisions build, as :func:`catalog.snapshot` would read it."""
    columns: dict[str, list[ColumnInfo]] = {}
    snap = Snapshot()
    for step in steps:
        for table in step.tables:
            columns[table.name] = [c.expected(table.name) for c in table.columns]
            for constraint in table.constraints():
                snap.constraints[constraint.name] = constraint
            for column in table.columns:
                if (sequence := column.sequence(table.name)) is not None:
                    snap.sequences[sequence.name] = sequence
        for add in step.add_columns:
            columns[add.table].append(add.column.expected(add.table))
        for index in step.indexes:
            snap.indexes[index.name] = index.expected()
    for name, cols in columns.items():
        snap.tables[name] = TableInfo(name, tuple(cols))
    return snap


def _index_shape(index: IndexInfo) -> tuple[object, ...]:
    return (index.table, index.unique, index.using)


def _constraint_shape(constraint: ConstraintInfo) -> tuple[str, str, str]:
    return (constraint.table, constraint.kind, constraint.definition)


def compare(expected: Snapshot, found: Snapshot) -> Iterator[Verdict]:
    """One verdict per expected object, then one per extra object on our tables."""
    live = set(found.tables)
    yield from _compare_tables(expected, found)
    yield from _compare_named(
        "constraint",
        {k: v for k, v in expected.constraints.items() if v.table in live},
        found.constraints,
        _constraint_shape,
    )
    yield from _compare_named(
        "index",
        {k: v for k, v in expected.indexes.items() if v.table in live},
        found.indexes,
        _index_shape,
        # Indexes that enforce a constraint (primary keys, unique constraints) are reported as constraints.
        reportable=lambda index: index.constraint is None,
        valid=lambda index: index.valid,
    )
    yield from _compare_named(
        "sequence",
        {k: v for k, v in expected.sequences.items() if v.owned_by.split(".")[0] in live},
        found.sequences,
        lambda sequence: sequence,
        renames=False,
    )


def _compare_tables(expected: Snapshot, found: Snapshot) -> Iterator[Verdict]:
    for name, table in expected.tables.items():
        live = found.tables.get(name)
        if live is None:
            yield Verdict("table", name, "missing", "created by the revisions")
            continue
        yield Verdict("table", name, "ok", found="present")
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


def _order_key(revision: str) -> tuple[int, str] | None:
    match = _REVISION_ID.match(revision)
    return (int(match.group(1)), match.group(2)) if match else None


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
    if not current:
        pending = [step.revision for step in steps_of(script)]
        return RevisionState("untracked", current, head, pending)
    unknown = [rev for rev in current if rev not in known]
    if unknown:
        keys = [_order_key(rev) for rev in unknown]
        head_key = _order_key(head)
        ahead = head_key is not None and all(k is not None and k > head_key for k in keys)
        return RevisionState("ahead" if ahead else "unknown", current, head)
    applied = applied_revisions(script, current)
    pending = [step.revision for step in steps_of(script) if step.revision not in applied]
    return RevisionState("behind" if pending else "at_head", current, head, pending)


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
    """Compare the database behind ``connection`` with the revisions at head; changes nothing."""
    steps = steps_of(script)
    tables = list(dict.fromkeys(t for step in steps for t in step.touched_tables()))
    found = snapshot(connection, tables)
    objects = list(compare(expected_snapshot(steps), found))
    state = revision_state(connection, script, version_table)
    objects.append(_revision_verdict(state, version_table))
    return Report(database, state, objects)
