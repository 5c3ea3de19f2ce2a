"""The legacy script's migration steps as data, and how a revision applies one.

Each revision in ``alembic/versions`` declares its step as a frozen :class:`Step`
(the tables, columns and indexes the old script created, with PostgreSQL's own
names) and calls :func:`upgrade` / :func:`downgrade` on it. Declaring the step as
data is what lets the same definitions drive the DDL, the take-over of
databases the old script built, and the comparison with a live catalog.

Online, a step creates only what the database lacks: the old script was
idempotent and production databases hold any prefix of its work. Indexes on a
table that may already hold rows are built ``CONCURRENTLY`` outside the
migration's transaction, so dialer workers are not blocked while they build.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from alembic import context as environment
from alembic import op
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from outbound_schema.catalog import (
    ColumnInfo,
    ConstraintInfo,
    IndexInfo,
    SequenceInfo,
    Snapshot,
    existing_relations,
    snapshot,
)
from outbound_schema.config import LIMITS_ATTRIBUTE
from outbound_schema.database import require_host_tables
from outbound_schema.ddl import Limits, run_concurrently, run_in_transaction
from outbound_schema.errors import OutboundSchemaError

log = logging.getLogger("outbound_schema.migrate")


@dataclass(frozen=True)
class Column:
    """A column, with its type and default spelled as PostgreSQL prints them."""

    name: str
    type: str
    nullable: bool = True
    default: str | None = None
    references: str | None = None  # a table whose ``id`` this column refers to
    serial: bool = False

    def ddl(self) -> str:
        if self.serial:
            return f"{self.name} serial NOT NULL"
        parts = [self.name, self.type]
        if not self.nullable:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        return " ".join(parts)

    def expected(self, table: str) -> ColumnInfo:
        default = f"nextval('{table}_{self.name}_seq'::regclass)" if self.serial else self.default
        return ColumnInfo(self.name, self.type, self.nullable, default)

    def foreign_key(self, table: str) -> ConstraintInfo | None:
        if self.references is None:
            return None
        return ConstraintInfo(
            f"{table}_{self.name}_fkey", table, "f", f"FOREIGN KEY ({self.name}) REFERENCES {self.references}(id)"
        )

    def sequence(self, table: str) -> SequenceInfo | None:
        if not self.serial:
            return None
        return SequenceInfo(f"{table}_{self.name}_seq", "integer", 1, 1, f"{table}.{self.name}")


@dataclass(frozen=True)
class Table:
    """A table created by a step; its primary key is ``id``, named ``<table>_pkey``."""

    name: str
    columns: tuple[Column, ...]

    def primary_key(self) -> ConstraintInfo:
        return ConstraintInfo(f"{self.name}_pkey", self.name, "p", "PRIMARY KEY (id)")

    def constraints(self) -> list[ConstraintInfo]:
        fks = [fk for c in self.columns if (fk := c.foreign_key(self.name)) is not None]
        return [self.primary_key(), *fks]

    def ddl(self) -> str:
        lines = [c.ddl() for c in self.columns]
        lines += [f"CONSTRAINT {c.name} {c.definition}" for c in self.constraints()]
        body = ",\n    ".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body}\n)"


@dataclass(frozen=True)
class AddColumn:
    """A column a step adds to an existing table (always nullable, so no rewrite)."""

    table: str
    column: Column

    def ddl(self) -> str:
        return f"ALTER TABLE {self.table} ADD COLUMN IF NOT EXISTS {self.column.ddl()}"


@dataclass(frozen=True)
class Index:
    """A plain b-tree index, as every index of the legacy script is."""

    name: str
    table: str
    columns: tuple[str, ...]

    def ddl(self, *, concurrently: bool) -> str:
        how = "CONCURRENTLY " if concurrently else ""
        return f"CREATE INDEX {how}IF NOT EXISTS {self.name} ON {self.table} ({', '.join(self.columns)})"

    def describe(self) -> str:
        return f"btree on {self.table} ({', '.join(self.columns)})"

    @property
    def using(self) -> str:
        """As pg_get_indexdef prints what follows the table: method, keys (default order and operator class)."""
        return f"btree ({', '.join(self.columns)})"

    def expected(self) -> IndexInfo:
        definition = f"CREATE INDEX {self.name} ON {self.table} USING {self.using}"
        return IndexInfo(self.name, self.table, self.columns, False, "btree", None, True, definition)

    def matches(self, found: IndexInfo) -> bool:
        return found.table == self.table and not found.unique and found.using == self.using


ObjectState = Literal["present", "missing", "invalid", "conflict"]


@dataclass(frozen=True)
class Finding:
    """One object a step creates, and what the database holds under its name."""

    revision: str
    kind: Literal["table", "column", "index"]
    name: str
    state: ObjectState
    expected: str
    found: str | None = None

    def describe(self) -> str:
        if self.state == "present":
            return f"{self.kind} {self.name} present"
        if self.state == "missing":
            return f"{self.kind} {self.name} missing"
        if self.state == "invalid":
            return f"{self.kind} {self.name} INVALID, to be rebuilt"
        return f"{self.kind} {self.name}: expected {self.expected}; found {self.found or 'nothing'}"


StepState = Literal["applied", "present", "partial", "missing", "conflicting"]


@dataclass(frozen=True)
class StepReport:
    """Where the database stands on one step, object by object."""

    revision: str
    findings: tuple[Finding, ...]
    applied: bool = False

    @property
    def state(self) -> StepState:
        states = {f.state for f in self.findings}
        if "conflict" in states:
            return "conflicting"
        if self.applied:
            return "applied"
        if states <= {"present"}:
            return "present"
        if states <= {"missing"}:
            return "missing"
        return "partial"

    def conflicts(self) -> list[Finding]:
        return [f for f in self.findings if f.state == "conflict"]

    def to_do(self, state: ObjectState) -> list[Finding]:
        return [f for f in self.findings if f.state == state]


@dataclass(frozen=True)
class Step:
    """One step of the legacy script, applied by the revision of the same name."""

    revision: str
    tables: tuple[Table, ...] = ()
    add_columns: tuple[AddColumn, ...] = ()
    indexes: tuple[Index, ...] = ()

    def touched_tables(self) -> list[str]:
        names = [t.name for t in self.tables] + [a.table for a in self.add_columns] + [i.table for i in self.indexes]
        return list(dict.fromkeys(names))

    def relation_names(self) -> list[str]:
        """Names this step gives to relations other than its tables (indexes, sequences)."""
        sequences = [seq.name for t in self.tables for c in t.columns if (seq := c.sequence(t.name)) is not None]
        return [i.name for i in self.indexes] + sequences

    def assess(self, snap: Snapshot, taken: set[str], *, applied: bool = False) -> StepReport:
        """Compare what this step creates with ``snap``; ``taken`` holds relation names in use anywhere."""
        return StepReport(self.revision, tuple(self._findings(snap, taken)), applied)

    def _findings(self, snap: Snapshot, taken: set[str]) -> Iterator[Finding]:
        for table in self.tables:
            yield self._table_finding(table, snap)
        for add in self.add_columns:
            name = f"{add.table}.{add.column.name}"
            expected = add.column.expected(add.table)
            table_info = snap.tables.get(add.table)
            found = table_info.column(add.column.name) if table_info else None
            yield self._compare(
                "column", name, expected.describe(), found.describe() if found else None, found == expected
            )
        for index in self.indexes:
            info = snap.indexes.get(index.name)
            if info is None:
                state: ObjectState = "conflict" if index.name in taken else "missing"
                found_text = (
                    "another relation of that name, not an index on our tables" if index.name in taken else None
                )
                yield Finding(self.revision, "index", index.name, state, index.describe(), found_text)
            elif not info.valid:
                # Unusable and unused by PostgreSQL: rebuilding it loses nothing.
                yield Finding(self.revision, "index", index.name, "invalid", index.describe(), info.describe())
            else:
                yield self._compare("index", index.name, index.describe(), info.describe(), index.matches(info))

    def _compare(
        self, kind: Literal["column", "index"], name: str, expected: str, found: str | None, matches: bool
    ) -> Finding:
        if found is None:
            return Finding(self.revision, kind, name, "missing", expected)
        return Finding(self.revision, kind, name, "present" if matches else "conflict", expected, found)

    def _table_finding(self, table: Table, snap: Snapshot) -> Finding:
        info = snap.tables.get(table.name)
        if info is None:
            return Finding(self.revision, "table", table.name, "missing", "created by this step")
        differences: list[str] = []
        own = [c.name for c in table.columns]
        if [c.name for c in info.columns if c.name in own] != own:
            found_order = ", ".join(c.name for c in info.columns)
            differences.append(f"columns in the order ({', '.join(own)}), found ({found_order})")
        for column in table.columns:
            expected = column.expected(table.name)
            found = info.column(column.name)
            if found != expected:
                found_text = found.describe() if found else "missing"
                differences.append(f"column {column.name} {expected.describe()}, found {found_text}")
        for constraint in table.constraints():
            found_constraint = snap.constraints.get(constraint.name)
            if found_constraint != constraint:
                found_text = found_constraint.describe() if found_constraint else "missing"
                differences.append(f"constraint {constraint.name} {constraint.describe()}, found {found_text}")
        for column in table.columns:
            sequence = column.sequence(table.name)
            if sequence is not None and snap.sequences.get(sequence.name) != sequence:
                found_seq = snap.sequences.get(sequence.name)
                found_text = found_seq.describe() if found_seq else "missing"
                differences.append(f"sequence {sequence.name} {sequence.describe()}, found {found_text}")
        if not differences:
            return Finding(self.revision, "table", table.name, "present", "as created by this step")
        return Finding(
            self.revision, "table", table.name, "conflict", "as created by this step", "; ".join(differences)
        )


def assess(connection: Connection, steps: Iterable[Step], applied: Collection[str] = ()) -> list[StepReport]:
    """Where the database stands on each of ``steps``; reads the catalog, changes nothing."""
    steps = list(steps)
    tables = list(dict.fromkeys(name for step in steps for name in step.touched_tables()))
    snap = snapshot(connection, tables)
    taken = existing_relations(connection, [name for step in steps for name in step.relation_names()])
    return [step.assess(snap, taken, applied=step.revision in applied) for step in steps]


def steps_of(script: ScriptDirectory) -> list[Step]:
    """Every step of ours, from base to head; a host's own revisions in the same history have none."""
    revisions = reversed(list(script.walk_revisions()))
    return [step for rev in revisions if isinstance(step := getattr(rev.module, "STEP", None), Step)]


def applied_revisions(script: ScriptDirectory, heads: Iterable[str]) -> set[str]:
    """The revisions a version table at ``heads`` says are applied: the heads we know and their ancestors.

    Unknown heads (a host's own, in a shared version table) are ignored.
    """
    known = {rev.revision for rev in script.walk_revisions()}
    return {rev.revision for head in heads if head in known for rev in script.iterate_revisions(head, "base")}


def refuse_conflicts(reports: Iterable[StepReport]) -> None:
    conflicts = [f for report in reports if report.state == "conflicting" for f in report.conflicts()]
    if conflicts:
        details = "; ".join(f"[{f.revision}] {f.describe()}" for f in conflicts)
        raise OutboundSchemaError(
            "The database holds objects under outbound-schema's names whose definitions differ from "
            f"what the migrations create, so the upgrade was refused and nothing was changed: {details}. "
            "Find out where they came from (a hand-made change, another tool), then alter or drop them "
            "so that they match or are absent, and run the upgrade again; 'outbound-schema status' "
            "shows every step's state without changing anything."
        )


# Per migration run: the reports of the steps pending when it started.
_pending: weakref.WeakKeyDictionary[MigrationContext, dict[str, StepReport]] = weakref.WeakKeyDictionary()


def _preflight(context: MigrationContext) -> dict[str, StepReport]:
    """Once per run, before the first step changes anything: refuse a database we cannot migrate.

    Checks the host tables, then every step not yet recorded as applied, so that
    a conflict in a later step stops the run before an earlier one is applied.
    The reports stay valid for the run: each step's objects are its own, and the
    migration lock keeps other deploys out.
    """
    if context not in _pending:
        connection = op.get_bind()
        require_host_tables(connection)
        script = environment.script
        applied = applied_revisions(script, context.get_current_heads())
        reports = assess(connection, [step for step in steps_of(script) if step.revision not in applied])
        refuse_conflicts(reports)
        _pending[context] = {report.revision: report for report in reports}
    return _pending[context]


def _limits() -> Limits:
    limits = environment.config.attributes.get(LIMITS_ATTRIBUTE)
    return limits if isinstance(limits, Limits) else Limits()


def _refuse_invalid_offline(index: Index) -> None:
    """Offline nothing can be rebuilt conditionally: stop the script rather than keep an INVALID index."""
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass('"
        f"{index.name}') AND NOT indisvalid) THEN RAISE EXCEPTION 'index {index.name} is INVALID, left by an "
        f"interrupted build: run DROP INDEX CONCURRENTLY {index.name}; then run this script again'; "
        "END IF; END $$"
    )


def upgrade(step: Step) -> None:
    """Create what ``step`` adds and the database lacks; rebuild its INVALID indexes."""
    context = op.get_context()
    limits = _limits()
    # Offline there is no catalog to read: the script assumes the previous revision's
    # state, and every statement can run again (IF NOT EXISTS).
    report = step.assess(Snapshot(), set()) if context.as_sql else _preflight(context)[step.revision]
    for finding in report.findings:
        if finding.state == "present":
            log.info("%s: %s %s already present, kept", step.revision, finding.kind, finding.name)

    missing = {(f.kind, f.name) for f in report.to_do("missing")}
    invalid = {f.name for f in report.to_do("invalid")}
    new_tables = [t for t in step.tables if ("table", t.name) in missing]
    # Online, a table created just now is empty and invisible to others until its
    # transaction commits: its indexes are built in that transaction, instantly.
    # Offline the table may already exist (IF NOT EXISTS), so they are built CONCURRENTLY.
    built_with_table = set() if context.as_sql else {t.name for t in new_tables}
    # Each change commits on its own, outside the revision's transaction: a
    # crash between two of them leaves a state the next run completes.
    with context.autocommit_block():
        for table in new_tables:
            indexes = [i.ddl(concurrently=False) for i in step.indexes if i.table in built_with_table & {table.name}]
            targets = [c.references for c in table.columns if c.references]
            run_in_transaction(
                [table.ddl(), *indexes],
                limits,
                label=f"{step.revision}: create table {table.name}",
                tables=[table.name, *targets],
            )
            log.info("%s: created table %s", step.revision, table.name)
        for add in step.add_columns:
            name = f"{add.table}.{add.column.name}"
            if ("column", name) in missing:
                run_in_transaction([add.ddl()], limits, label=f"{step.revision}: add column {name}", tables=[add.table])
                log.info("%s: added column %s", step.revision, name)
        for index in step.indexes:
            if index.table in built_with_table:
                log.info("%s: created index %s", step.revision, index.name)
                continue
            if ("index", index.name) not in missing and index.name not in invalid:
                continue
            label = f"{step.revision}: index {index.name}"
            if index.name in invalid:
                run_concurrently(f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}", limits, label=label)
                log.info("%s: dropped INVALID index %s to rebuild it", step.revision, index.name)
            elif context.as_sql:
                _refuse_invalid_offline(index)
            run_concurrently(index.ddl(concurrently=True), limits, label=label)
            log.info("%s: created index %s concurrently", step.revision, index.name)

    if report.state == "present" and not context.as_sql:
        log.info("%s: found complete, recorded as applied without changes", step.revision)
    elif report.state == "partial":
        log.info("%s: found in part, completed", step.revision)


def _data_guard(step: Step, table: str, column: str | None, *, lock: bool) -> str:
    """A statement that raises when dropping ``table`` (or its ``column``) would destroy data.

    With ``lock`` it first takes the lock the drop will take, so that no row can
    arrive between the check and the drop.
    """
    what = f"column {table}.{column} holds values" if column else f"table {table} holds rows"
    exists = f"SELECT EXISTS (SELECT FROM {table}{f' WHERE {column} IS NOT NULL' if column else ''})"
    present = f"to_regclass('{table}') IS NOT NULL"
    if column:
        present += (
            f" AND EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('{table}')"
            f" AND attname = '{column}' AND NOT attisdropped)"
        )
    message = (
        f"Downgrading {step.revision} would destroy data ({what}), so it was refused and nothing of {step.revision} "
        "was reverted; revisions above it were reverted only where they held no data. Back the data up first, "
        "then downgrade again with --allow-data-loss (or -x allow_data_loss=true)."
    )
    lock_sql = f"EXECUTE 'LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE'; " if lock else ""
    return (
        f"DO $$ DECLARE found boolean; BEGIN IF {present} THEN {lock_sql}EXECUTE '{exists}' INTO found; "
        f"IF found THEN RAISE EXCEPTION '{message}'; END IF; END IF; END $$"
    )


def downgrade(step: Step) -> None:
    """Remove what ``step`` added, newest first; never drop data unless allowed."""
    context = op.get_context()
    limits = _limits()
    guard = not limits.allow_data_loss
    targets: list[tuple[str, str | None]] = [(a.table, a.column.name) for a in reversed(step.add_columns)]
    targets += [(t.name, None) for t in reversed(step.tables)]
    dropped_tables = {t.name for t in step.tables}
    with context.autocommit_block():
        if guard and targets:
            # Refuse before anything of this step is touched; the drops check again under their lock.
            checks = [_data_guard(step, table, column, lock=False) for table, column in targets]
            run_in_transaction(checks, limits, label=f"{step.revision}: data check", tables=[])
        for index in reversed(step.indexes):
            if index.table not in dropped_tables:
                statement = f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}"
                run_concurrently(statement, limits, label=f"{step.revision}: drop index {index.name}")
        for table, column in targets:
            drop = f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}" if column else f"DROP TABLE IF EXISTS {table}"
            statements = [_data_guard(step, table, column, lock=True), drop] if guard else [drop]
            # A dropped table takes its indexes, constraints and owned sequence with it.
            run_in_transaction(statements, limits, label=f"{step.revision}: drop {column or table}", tables=[table])
    log.info("%s: reverted", step.revision)
