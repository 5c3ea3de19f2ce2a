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
from dataclasses import dataclass

from alembic import op
from alembic.runtime.migration import MigrationContext

from outbound_schema.catalog import ColumnInfo, ConstraintInfo, IndexInfo, SequenceInfo, snapshot
from outbound_schema.database import require_host_tables

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
        return f"CREATE TABLE {self.name} (\n    {body}\n)"


@dataclass(frozen=True)
class AddColumn:
    """A column a step adds to an existing table (always nullable, so no rewrite)."""

    table: str
    column: Column

    def ddl(self) -> str:
        return f"ALTER TABLE {self.table} ADD COLUMN {self.column.ddl()}"


@dataclass(frozen=True)
class Index:
    """A plain b-tree index, as every index of the legacy script is."""

    name: str
    table: str
    columns: tuple[str, ...]

    def ddl(self, *, concurrently: bool) -> str:
        how = "CONCURRENTLY " if concurrently else ""
        return f"CREATE INDEX {how}{self.name} ON {self.table} ({', '.join(self.columns)})"

    def matches(self, found: IndexInfo) -> bool:
        return (
            found.table == self.table
            and found.columns == self.columns
            and not found.unique
            and found.method == "btree"
            and found.predicate is None
        )


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


# Migration contexts whose preconditions were already checked in this process.
_checked: weakref.WeakSet[MigrationContext] = weakref.WeakSet()


def _preflight(context: MigrationContext) -> None:
    """Once per run, before the first step changes anything: refuse a database we cannot migrate."""
    if context in _checked:
        return
    require_host_tables(op.get_bind())
    _checked.add(context)


def upgrade(step: Step) -> None:
    """Create what ``step`` adds and the database lacks."""
    context = op.get_context()
    if context.as_sql:
        present_tables: set[str] = set()
        present_columns: set[tuple[str, str]] = set()
        present_indexes: set[str] = set()
    else:
        _preflight(context)
        snap = snapshot(op.get_bind(), step.touched_tables())
        present_tables = set(snap.tables)
        present_columns = {(t.name, c.name) for t in snap.tables.values() for c in t.columns}
        present_indexes = set(snap.indexes)

    created: set[str] = set()
    for table in step.tables:
        if table.name in present_tables:
            log.info("%s: table %s already present", step.revision, table.name)
            continue
        op.execute(table.ddl())
        created.add(table.name)
        log.info("%s: created table %s", step.revision, table.name)
    for add in step.add_columns:
        if (add.table, add.column.name) in present_columns:
            log.info("%s: column %s.%s already present", step.revision, add.table, add.column.name)
            continue
        op.execute(add.ddl())
        log.info("%s: added column %s.%s", step.revision, add.table, add.column.name)

    pending = [i for i in step.indexes if i.name not in present_indexes]
    for index in step.indexes:
        if index.name in present_indexes:
            log.info("%s: index %s already present", step.revision, index.name)
    # A table created just now, in this transaction, is empty and invisible to
    # others: a plain build is instant. Any other table may hold rows and be
    # written to by workers, so its indexes are built without blocking them.
    for index in (i for i in pending if i.table in created):
        op.execute(index.ddl(concurrently=False))
        log.info("%s: created index %s", step.revision, index.name)
    concurrent = [i for i in pending if i.table not in created]
    if concurrent:
        with context.autocommit_block():
            for index in concurrent:
                op.execute(index.ddl(concurrently=True))
                log.info("%s: created index %s concurrently", step.revision, index.name)


def downgrade(step: Step) -> None:
    """Remove what ``step`` added, newest first."""
    context = op.get_context()
    dropped_tables = {t.name for t in step.tables}
    on_kept_tables = [i for i in step.indexes if i.table not in dropped_tables]
    if on_kept_tables:
        with context.autocommit_block():
            for index in reversed(on_kept_tables):
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}")
    for add in reversed(step.add_columns):
        op.execute(f"ALTER TABLE {add.table} DROP COLUMN IF EXISTS {add.column.name}")
    for table in reversed(step.tables):
        # Its indexes, constraints and owned sequence go with it.
        op.execute(f"DROP TABLE IF EXISTS {table.name}")
    log.info("%s: reverted", step.revision)
