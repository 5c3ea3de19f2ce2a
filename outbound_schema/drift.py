"""The schema-drift check: a live database against the expected schema of its revision.

Reads PostgreSQL's catalog once (a handful of queries) and compares every
object of our tables with the committed expected-schema file
(``outbound_schema.expected``) of the revision the database is at (of head
when it is untracked, or at a revision this library does not know). The test
suite proves head's file equal to the models, so a green check means the
database holds what the code expects.

Everything about our tables that changes how they behave is compared: columns
(type, collation, nullability, default, identity, generation, per-column
settings), table settings (logged or not, storage parameters, row-level
security, replica identity, inheritance), every constraint (definition with
its actions and deferrability, NOT VALID, triggers disabled), indexes
(definition, validity), sequences (options, ownership, and whether one feeding
a unique column has fallen behind its values), policies, triggers and rules,
the enums and domains the columns are of (labels, definition) and the
functions the triggers run (their whole definition); then where the search
path finds our tables, and where the version table stands. Comments, grants
and owners are not compared: they do not change what the tables hold or do.
Nothing of the host application's tables, nor of schemas off the search path,
is read.

The check needs no SQLAlchemy and no Alembic at run time: it reads the
revision graph from the revision files (``outbound_schema.history``) and talks
to PostgreSQL through psycopg, with SELECT privileges only (a role with
``pg_read_all_data`` will do).

The JSON report (``--format json``) has this shape, stable within ``format`` 1::

    {"format": 1, "status": "ok" | "drift" | "ahead" | "error", "database": "<masked URL>",
     "revision": {"state": "at_head" | "behind" | "ahead" | "unknown" | "untracked",
                  "current": ["46d"], "head": "46d", "pending": [], "compared_with": "46d",
                  "newer": [{"revision": ..., "parents": [...], "action": ..., "applied_at": ...,
                             "duration_ms": ..., "release": ..., "host": ...}]  (ahead only)},
     "objects": [{"kind": "table" | "column" | "constraint" | "index" | "sequence" | "position"
                          | "policy" | "trigger" | "rule" | "search_path" | "revision",
                  "name": "...",
                  "verdict": "ok" | "missing" | "different" | "extra" | "invalid" | "renamed" | "disabled"
                             | "behind" | "ahead" | "unknown" | "untracked" | "shadowed" | "elsewhere"
                             | "unjudged",
                  "expected": "..." | null, "found": "..." | null,
                  "detail": "what differs, in words, and what to do" | null}],
     "summary": {"ok": 40, "drift": 0, "not_judged": 0 (ahead only)}}

Exit codes: 0 ok, and ``ahead`` (a newer release migrated the database: the objects of this release's
head are compared, and what differs is reported ``unjudged``, since a later revision this release does
not have may have made it so; the newer release's check judges it); 1 drift; 2 could not check.

On error: ``{"format": 1, "status": "error", "error": "<message>"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from outbound_schema.catalog import (
    ColumnInfo,
    ConstraintInfo,
    FunctionInfo,
    IndexInfo,
    PolicyInfo,
    Resolution,
    RuleInfo,
    SequenceInfo,
    SequencePosition,
    Snapshot,
    TableInfo,
    TriggerInfo,
    TypeInfo,
    align_defaults,
    resolve,
    sequence_positions,
    snapshot,
)
from outbound_schema.config import VERSION_TABLE
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.expected import SNAPSHOT_COMMAND, load_file
from outbound_schema.history import History
from outbound_schema.keywords import literal, quote
from outbound_schema.standing import Standing, stand

if TYPE_CHECKING:
    from outbound_schema.catalog import Queryable

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Verdict:
    kind: str
    name: str
    verdict: str
    expected: str | None = None
    found: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def line(self) -> str:
        if self.ok:
            return f"✅ {self.kind} {self.name}: {self.found}"
        if self.verdict in NOT_JUDGED:
            return f"⚠️ {self.kind} {self.name}: {self.detail}"
        return f"❌ {self.kind} {self.name}: {self.detail}"


@dataclass
class Report:
    database: str
    revision: Standing
    objects: list[Verdict]

    @property
    def drift(self) -> list[Verdict]:
        return [v for v in self.objects if not v.ok and v.verdict not in NOT_JUDGED]

    @property
    def not_judged(self) -> list[Verdict]:
        return [v for v in self.objects if v.verdict in NOT_JUDGED]

    @property
    def status(self) -> str:
        return "drift" if self.drift else "ahead" if self.not_judged else "ok"

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "status": self.status,
                "database": self.database,
                "revision": {
                    "state": self.revision.state,
                    "current": list(self.revision.current),
                    "head": self.revision.head,
                    "pending": list(self.revision.pending),
                    "compared_with": self.revision.compared_with,
                    # ahead only: the revisions past this release's head, as the schema history records them
                    **({"newer": [entry.to_json() for entry in self.revision.newer]} if self.revision.newer else {}),
                },
                "objects": [asdict(v) for v in self.objects],
                "summary": {
                    "ok": len(self.objects) - len(self.drift) - len(self.not_judged),
                    "drift": len(self.drift),
                    **({"not_judged": len(self.not_judged)} if self.not_judged else {}),
                },
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
        elif self.not_judged:
            lines.append(
                f"AHEAD: the database is past this release's {against}; {len(self.not_judged)} of "
                f"{len(self.objects)} objects could not be judged, the others match it"
            )
        else:
            lines.append(f"OK: all {len(self.objects)} objects match {against}")
        return "\n".join(lines)


# What differs, in words an operator acts on.


def _table_detail(want: TableInfo, have: TableInfo) -> str:
    said = []
    on = quote(want.name)
    if have.unlogged != want.unlogged:
        said.append(
            f"is UNLOGGED: PostgreSQL empties it after a crash and does not replicate it to standbys "
            f"(ALTER TABLE {on} SET LOGGED makes it durable again)"
            if have.unlogged
            else "is logged, expected UNLOGGED"
        )
    if have.options != want.options:
        said.append(f"has storage parameters {_list(have.options)}, expected {_list(want.options)}")
    if have.row_security != want.row_security:
        said.append(
            "has row-level security enabled: every role but the owner and BYPASSRLS roles now reads and writes "
            f"only the rows a policy allows, none without one (ALTER TABLE {on} DISABLE ROW LEVEL SECURITY)"
            if have.row_security
            else "has row-level security disabled, expected enabled: its policies are not applied"
        )
    if have.force_row_security != want.force_row_security:
        said.append(
            "forces row-level security on its owner too"
            if have.force_row_security
            else "no longer forces row-level security on its owner"
        )
    if have.replica_identity != want.replica_identity:
        said.append(
            f"has REPLICA IDENTITY {have.replica_identity}, expected {want.replica_identity}: logical "
            "replication and change capture send other old-row values (or refuse updates and deletes)"
        )
    if have.parents != want.parents:
        said.append(f"inherits from {_list(have.parents)}, expected {_list(want.parents)}")
    if have.children != want.children:
        said.append(
            f"is inherited by {_list(have.children)}, expected {_list(want.children)}: "
            "queries on it also read the rows of its children"
        )
    return "; ".join(said)


def _list(items: Iterable[str]) -> str:
    listed = ", ".join(items)
    return f"({listed})" if listed else "none"


def _column_detail(want: ColumnInfo, have: ColumnInfo) -> str:
    said = []
    if have.type != want.type:
        said.append(f"has type {have.type}, expected {want.type}")
    if have.collation != want.collation:
        said.append(
            f"has collation {have.collation or 'default'}, expected {want.collation or 'the default'}: "
            "sorting, comparisons and the indexes on it follow the collation"
        )
    if have.nullable != want.nullable:
        said.append(
            "allows NULL, expected NOT NULL"
            if have.nullable
            else "is NOT NULL, expected to allow NULL: writes that leave it empty now fail"
        )
    if (have.generated, have.identity) != (want.generated, want.identity):
        said.append(f"is {_generation(have)}, expected {_generation(want)}")
    elif have.default != want.default:
        if have.default is None:
            said.append(f"has no default, expected DEFAULT {want.default}: inserts that omit it store NULL")
        elif want.default is None:
            said.append(f"has DEFAULT {have.default}, expected none")
        else:
            said.append(f"has DEFAULT {have.default}, expected DEFAULT {want.default}")
    if have.options != want.options:
        said.append(f"has SET {_list(have.options)}, expected {_list(want.options)}")
    return "; ".join(said)


def _generation(column: ColumnInfo) -> str:
    if column.generated:
        return f"generated ALWAYS AS ({column.default}) {column.generated}"
    if column.identity:
        return f"an identity column GENERATED {column.identity}"
    return f"a plain column{f' with DEFAULT {column.default}' if column.default else ''}"


_CLAUSES = (
    ("ON UPDATE", re.compile(r" ON UPDATE (NO ACTION|RESTRICT|CASCADE|SET NULL|SET DEFAULT)(?: \([^)]*\))?")),
    ("ON DELETE", re.compile(r" ON DELETE (NO ACTION|RESTRICT|CASCADE|SET NULL|SET DEFAULT)(?: \([^)]*\))?")),
    ("MATCH", re.compile(r" MATCH (FULL|PARTIAL|SIMPLE)")),
    ("deferrability", re.compile(r" (DEFERRABLE(?: INITIALLY DEFERRED)?)")),
)
_DEFAULT_CLAUSE = {
    "ON UPDATE": "ON UPDATE NO ACTION",
    "ON DELETE": "ON DELETE NO ACTION",
    "MATCH": "MATCH SIMPLE",
    "deferrability": "NOT DEFERRABLE",
}


def _constraint_detail(want: ConstraintInfo, have: ConstraintInfo) -> str:
    if (have.table, have.kind) != (want.table, want.kind):
        return f"is {have.describe()}, expected {want.describe()}"
    cores, clauses = [], []
    for definition in (want.shape()[2], have.shape()[2]):
        found = {}
        for label, pattern in _CLAUSES:
            match = pattern.search(definition)
            if match:
                found[label] = match.group(0).strip()
                definition = definition.replace(match.group(0), "", 1)
        cores.append(definition)
        clauses.append(found)
    if cores[0] != cores[1]:
        return f"is {have.definition}, expected {want.definition}"
    said = [
        f"is {clauses[1].get(label, _DEFAULT_CLAUSE[label])}, expected {clauses[0].get(label, _DEFAULT_CLAUSE[label])}"
        for label, _ in _CLAUSES
        if clauses[0].get(label) != clauses[1].get(label)
    ]
    return "; ".join(said)


def _sequence_detail(want: SequenceInfo, have: SequenceInfo) -> str:
    said = []
    if have.owned_by != want.owned_by:
        if have.owned_by is None:
            said.append(
                f"is no longer owned by {want.owned_by}: it still exists and feeds its default, but dropping that "
                f"column or table would leave it behind (ALTER SEQUENCE {quote(want.name)} OWNED BY {want.owned_by})"
            )
        else:
            said.append(f"is owned by {have.owned_by}, expected {want.owned_by or 'no column'}")
    expected, found = want.options(), have.options()
    for option, value in found.items():
        if value != expected[option]:
            if option == "CYCLE":
                said.append(
                    "cycles: past its maximum it starts again and hands out values already used"
                    if value
                    else "does not cycle, expected CYCLE"
                )
            elif option == "UNLOGGED":
                said.append(
                    "is UNLOGGED: after a crash it restarts and hands out values already used"
                    if value
                    else "is logged, expected UNLOGGED"
                )
            else:
                said.append(f"has {option} {value}, expected {expected[option]}")
    return "; ".join(said)


def _policy_detail(want: PolicyInfo, have: PolicyInfo) -> str:
    said = []
    if have.permissive != want.permissive:
        said.append(
            f"is {'PERMISSIVE' if have.permissive else 'RESTRICTIVE'}, expected "
            f"{'PERMISSIVE' if want.permissive else 'RESTRICTIVE'}"
        )
    if have.command != want.command:
        said.append(f"applies to {have.command}, expected {want.command}")
    if have.roles != want.roles:
        said.append(f"applies to roles {', '.join(have.roles)}, expected {', '.join(want.roles)}")
    if have.using != want.using:
        said.append(f"lets rows be seen USING ({have.using}), expected ({want.using})")
    if have.check != want.check:
        said.append(f"lets rows be written WITH CHECK ({have.check}), expected ({want.check})")
    return "; ".join(said)


def _firing_detail(have_enabled: str, want_enabled: str, fired: str) -> str:
    if have_enabled == "D":
        return f"is disabled: {fired}"
    state = {"O": "enabled", "R": "enabled for replication sessions only", "A": "enabled even during replication"}
    return f"is {state[have_enabled]}, expected {state.get(want_enabled, 'disabled')}"


def _trigger_detail(want: TriggerInfo, have: TriggerInfo) -> str:
    if have.shape()[:2] != want.shape()[:2]:
        return f"is {have.describe()}, expected {want.describe()}"
    return _firing_detail(have.enabled, want.enabled, "it no longer fires")


def _rule_detail(want: RuleInfo, have: RuleInfo) -> str:
    if have.shape()[:2] != want.shape()[:2]:
        return f"is {have.describe()}, expected {want.describe()}"
    return _firing_detail(have.enabled, want.enabled, "it no longer rewrites queries")


def _type_detail(want: TypeInfo, have: TypeInfo) -> str:
    if want.labels is None or have.labels is None:
        return f"is {have.describe()}, expected {want.describe()}"
    added = [label for label in have.labels if label not in want.labels]
    lacking = [label for label in want.labels if label not in have.labels]
    said = []
    if added:
        said.append(f"accepts {_labels(added)}, which no revision added (ALTER TYPE … ADD VALUE)")
    if lacking:
        said.append(f"lacks {_labels(lacking)}, which the revisions created")
    if not said:
        said.append(f"orders its labels {', '.join(have.labels)}, expected {', '.join(want.labels)} (it sorts by them)")
    return "; ".join(said)


def _labels(labels: Iterable[str]) -> str:
    return ", ".join(literal(label) for label in labels)


def _function_detail(want: FunctionInfo, have: FunctionInfo) -> str:
    theirs, ours = have.shape().splitlines(), want.shape().splitlines()
    at = next((n for n, (a, b) in enumerate(zip(theirs, ours, strict=False)) if a != b), min(len(theirs), len(ours)))
    found = theirs[at].strip() if at < len(theirs) else "(its end)"
    wanted = ours[at].strip() if at < len(ours) else "(its end)"
    return (
        f"was replaced since the revisions created it (CREATE OR REPLACE FUNCTION): line {at + 1} is `{found}`, "
        f"expected `{wanted}`; the triggers that run it now do what it does"
    )


# The comparison.


class _Described(Protocol):
    def describe(self) -> str: ...


class _OnTable(_Described, Protocol):
    @property
    def table(self) -> str: ...


_T = TypeVar("_T", bound=_Described)
_O = TypeVar("_O", bound=_OnTable)


def _on(objects: Mapping[str, _O], tables: set[str]) -> dict[str, _O]:
    return {key: obj for key, obj in objects.items() if obj.table in tables}


def compare(expected: Snapshot, found: Snapshot) -> Iterator[Verdict]:
    """One verdict per expected object, then one per extra object on our tables.

    Give ``found`` through :func:`outbound_schema.catalog.align_defaults` first: defaults spelled
    differently that mean the same are then equal.
    """
    live = set(found.tables)
    yield from _compare_tables(expected, found)

    yield from _compare_named(
        "constraint",
        _on(expected.constraints, live),
        found.constraints,
        ConstraintInfo.shape,
        _constraint_detail,
        problem=_constraint_problem,
    )
    yield from _compare_named(
        "index",
        _on(expected.indexes, live),
        found.indexes,
        IndexInfo.shape,
        lambda want, have: f"is {have.describe()}, expected {want.describe()}",
        # Indexes that enforce a constraint (primary keys, unique constraints) are reported as constraints.
        reportable=lambda index: index.constraint is None,
        problem=_index_problem,
    )
    yield from _compare_named(
        "sequence",
        # A sequence owned by one of our tables goes with it; one owned elsewhere (a host table) stays.
        {k: v for k, v in expected.sequences.items() if _owner(v) not in set(expected.tables) - live},
        found.sequences,
        lambda sequence: sequence,
        _sequence_detail,
        renames=False,
    )
    yield from _compare_named(
        "policy", _on(expected.policies, live), found.policies, PolicyInfo.shape, _policy_detail, renames=False
    )
    yield from _compare_named(
        "trigger", _on(expected.triggers, live), found.triggers, TriggerInfo.shape, _trigger_detail, renames=False
    )
    yield from _compare_named(
        "rule", _on(expected.rules, live), found.rules, RuleInfo.shape, _rule_detail, renames=False
    )
    if live:  # what our columns and triggers use, read through them
        yield from _compare_named("type", expected.types, found.types, TypeInfo.shape, _type_detail, renames=False)
        yield from _compare_named(
            "function", expected.functions, found.functions, FunctionInfo.shape, _function_detail, renames=False
        )


def _constraint_problem(constraint: ConstraintInfo) -> tuple[str, str] | None:
    on, name = quote(constraint.table), quote(constraint.name)
    if not constraint.enforced:
        return (
            "disabled",
            f"is not enforced: the triggers that enforce it are disabled on {', '.join(constraint.disabled_on)} "
            "(ALTER TABLE … DISABLE TRIGGER ALL), so rows written meanwhile were never checked. Re-enable them ("
            + "; ".join(f"ALTER TABLE {table} ENABLE TRIGGER ALL" for table in constraint.disabled_on)
            + "), then find the rows that break it",
        )
    if not constraint.validated:
        return (
            "invalid",
            f"is NOT VALID: new rows are checked but the rows that existed when it was added never were "
            f"(ALTER TABLE {on} VALIDATE CONSTRAINT {name} checks them without blocking writes)",
        )
    return None


def _index_problem(index: IndexInfo) -> tuple[str, str] | None:
    if index.valid:
        return None
    return (
        "invalid",
        "is INVALID, left by a concurrent build that failed or was interrupted: queries do not use it, yet "
        f"every write maintains it. Drop it (DROP INDEX CONCURRENTLY {quote(index.name)}) and build it again "
        f"({index.definition.replace('INDEX', 'INDEX CONCURRENTLY', 1)})",
    )


def _owner(sequence: SequenceInfo) -> str | None:
    return sequence.owned_by.split(".")[0] if sequence.owned_by else None


def _compare_tables(expected: Snapshot, found: Snapshot) -> Iterator[Verdict]:
    for name, table in expected.tables.items():
        live = found.tables.get(name)
        if live is None:
            yield Verdict("table", name, "missing", table.describe(), None, f"missing; expected {table.describe()}")
            continue
        if live.settings() != table.settings():
            detail = _table_detail(table, live)
            yield Verdict("table", name, "different", table.describe(), live.describe(), detail)
        else:
            yield Verdict("table", name, "ok", found=live.describe())
        for column in table.columns:
            qualified = f"{name}.{column.name}"
            have = live.column(column.name)
            if have is None:
                detail = f"missing; expected {column.describe()}"
                yield Verdict("column", qualified, "missing", column.describe(), None, detail)
            elif have != column:
                detail = _column_detail(column, have)
                yield Verdict("column", qualified, "different", column.describe(), have.describe(), detail)
            else:
                yield Verdict("column", qualified, "ok", found=have.describe())
        for extra in live.columns:
            if table.column(extra.name) is None:
                detail = f"extra, not created by any revision: {extra.describe()}"
                yield Verdict("column", f"{name}.{extra.name}", "extra", None, extra.describe(), detail)
    for name, live in found.tables.items():
        if name not in expected.tables:
            yield Verdict("table", name, "extra", None, live.describe(), f"extra: {live.describe()}")


def _compare_named(
    kind: str,
    expected: Mapping[str, _T],
    found: Mapping[str, _T],
    shape: Callable[[_T], object],
    detail: Callable[[_T, _T], str],
    *,
    renames: bool = True,
    reportable: Callable[[_T], bool] = lambda _: True,
    problem: Callable[[_T], tuple[str, str] | None] = lambda _: None,
) -> Iterator[Verdict]:
    """Missing, renamed (same shape under another name), different, invalid or ok; then the extras."""
    extras = {key: obj for key, obj in found.items() if key not in expected and reportable(obj)}
    for key, want in expected.items():
        name = _display(kind, key)
        have = found.get(key)
        if have is None:
            twin = next(
                (k for k, o in extras.items() if renames and shape(o) == shape(want) and problem(o) is None), None
            )
            if twin is not None:
                twin_obj = extras.pop(twin)
                twin_name = _display(kind, twin)
                said = f"found under another name, {twin_name}: {twin_obj.describe()}"
                yield Verdict(kind, name, "renamed", want.describe(), f"{twin_name}: {twin_obj.describe()}", said)
            else:
                yield Verdict(kind, name, "missing", want.describe(), None, f"missing; expected {want.describe()}")
        elif shape(have) != shape(want):
            yield Verdict(kind, name, "different", want.describe(), have.describe(), detail(want, have))
        elif (trouble := problem(have)) is not None and problem(want) is None:
            yield Verdict(kind, name, trouble[0], want.describe(), have.describe(), trouble[1])
        else:
            yield Verdict(kind, name, "ok", found=have.describe())
    for key, extra in extras.items():
        said = f"extra, not created by any revision: {extra.describe()}"
        yield Verdict(kind, _display(kind, key), "extra", None, extra.describe(), said)


def _display(kind: str, key: str) -> str:
    """Policies, triggers and rules are keyed "table.name" (their names are unique per table only):
    shown as "name on table"."""
    if kind not in ("policy", "trigger", "rule"):
        return key
    table, _, name = key.partition(".")
    return f"{name} on {table}"


def position_verdicts(positions: Iterable[SequencePosition]) -> Iterator[Verdict]:
    for position in positions:
        up, extreme = ("up to", "max") if position.increment > 0 else ("down to", "min")
        found = f"next value {position.next_value}; {position.column} holds values {up} {position.largest}"
        if position.hidden:
            found = (
                f"next value {position.next_value}; not compared with {position.column}: row-level security "
                "hides rows from this role (check as the table's owner or a BYPASSRLS role to compare)"
            )
        elif position.largest is None:
            found = f"next value {position.next_value}; {position.column} is empty"
        if not position.behind:
            yield Verdict("position", position.sequence, "ok", found=found)
            continue
        table, column = position.column.split(".", 1)
        target = f"(SELECT {extreme}({quote(column)}) FROM {quote(table)})"
        fix = f"SELECT setval({literal(quote(position.sequence))}, {target})"
        detail = (
            f"is behind its column: it would hand out {position.next_value}, but {position.column} already "
            f"holds values {up} {position.largest}, so the next insert that takes the default fails on the "
            f"unique key. Move it past them: {fix}"
        )
        yield Verdict("position", position.sequence, "behind", None, found, detail)


def search_path_verdicts(path: list[str], found: Mapping[str, Resolution], version_table: str) -> Iterator[Verdict]:
    """Whether the search path finds our tables where our version table is, each in one place only."""
    home_of_version = found[version_table].schema if version_table in found else None
    schemas = [r.schema for r in found.values() if r.schema is not None]
    home = home_of_version or (max(set(schemas), key=schemas.count) if schemas else None)
    shown_path = ", ".join(path) or "(no existing schema)"
    trouble = False
    for name, resolution in found.items():
        if len(resolution.schemas) > 1:
            trouble = True
            hidden = ", ".join(f"{schema}.{name}" for schema in resolution.schemas[1:])
            detail = (
                f"resolves to {resolution.schema}.{name}, which hides {hidden} further down the search_path "
                f"({shown_path}): the dialer, upgrades and this check all use {resolution.schema}'s. Drop or "
                "rename the one that is not ours, or fix the search_path"
            )
            yield Verdict("search_path", name, "shadowed", home, ", ".join(resolution.schemas), detail)
        elif resolution.schema is not None and home is not None and resolution.schema != home:
            trouble = True
            at_home = [other for other, r in found.items() if r.schema == home]
            detail = (
                f"resolves to schema {resolution.schema}, while {' and '.join(at_home)} "
                f"{'is' if len(at_home) == 1 else 'are'} in {home} (search_path: {shown_path}): "
                "move it beside them (ALTER TABLE ... SET SCHEMA) or fix the search_path"
            )
            yield Verdict("search_path", name, "elsewhere", home, resolution.schema, detail)
    if not trouble:
        where = f"schema {home}" if home else "no schema yet"
        yield Verdict("search_path", shown_path, "ok", found=f"our tables resolve to {where}")


# Where the version table stands.

#: Verdicts that say what this release cannot judge, not that anything drifted.
NOT_JUDGED = frozenset({"ahead", "unjudged"})


def _revision_verdict(state: Standing, version_table: str) -> Verdict:
    expected = f"{state.head} (head)"
    current = ", ".join(state.current)
    if state.state == "at_head":
        return Verdict("revision", version_table, "ok", expected, f"{current} (head)")
    found = {
        "untracked": f"no {version_table} table: the database was never migrated by outbound-schema",
        "behind": f"{current}, behind head; pending {' -> '.join(state.pending)}",
        "ahead": state.summary(),
        "unknown": f"{current}, not a revision of outbound-schema",
    }[state.state]
    todo = {
        "untracked": "`outbound-schema upgrade` takes over the tables already there and records the revision",
        "behind": "`outbound-schema upgrade` applies the pending revisions",
        "ahead": "this release judges the objects of its own head only; the check of the release that applied "
        "the later revisions judges the rest",
        "unknown": "find out which tool wrote that revision before migrating",
    }[state.state]
    return Verdict("revision", version_table, state.state, expected, found, f"{found}; expected {expected}: {todo}")


def _not_judged(verdict: Verdict, state: Standing) -> Verdict:
    """Ahead of this release, a difference from its head may be a later revision's change: said, not judged."""
    if verdict.ok:
        return verdict
    later = ", ".join(entry.revision for entry in state.newer)
    detail = f"{verdict.detail}; not judged: revision(s) {later}, which this release does not have, may have made it so"
    return Verdict(verdict.kind, verdict.name, "unjudged", verdict.expected, verdict.found, detail)


def check(connection: Queryable, history: History, database: str, version_table: str = VERSION_TABLE) -> Report:
    """Compare the database behind ``connection`` with the expected schema of its revision; changes nothing."""
    state = stand(connection, history, version_table)
    want = load_file(history.schema_file(state.compared_with))
    if want is None:
        raise OutboundSchemaError(
            f"There is no expected-schema file for revision {state.compared_with}, so the database cannot be "
            f"compared with it. Generate it with `{SNAPSHOT_COMMAND}` (from the repository that holds the "
            "revisions) and commit it.",
            exit_code=2,
        )
    tables: dict[str, None] = {}
    for revision in history.managed():
        snap = load_file(history.schema_file(revision))
        tables.update(dict.fromkeys(snap.tables if snap else ()))
    found = align_defaults(connection, [want], snapshot(connection, list(tables)))
    objects = list(compare(want, found))
    objects.extend(position_verdicts(sequence_positions(connection, list(tables))))
    path, resolutions = resolve(connection, [*tables, version_table])
    objects.extend(search_path_verdicts(path, resolutions, version_table))
    if state.state == "ahead":
        objects = [_not_judged(verdict, state) for verdict in objects]
    objects.append(_revision_verdict(state, version_table))
    return Report(database, state, objects)
