"""What a live database holds for our tables, read from PostgreSQL's catalog.

The snapshot is plain data (tuples and dicts of strings), so two databases can
be compared with ``==`` and a difference printed readably. Definitions come
from PostgreSQL's own deparsers (``format_type``, ``pg_get_expr``,
``pg_get_constraintdef``, ``pg_get_indexdef``), so they mean what the server
means, whatever SQL created the objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

OUR_TABLES: tuple[str, ...] = ("outbound_call_runs", "outbound_call_jobs")

#: The host application's tables that our foreign keys reference. We never
#: create, alter, drop or compare them in a real database.
HOST_TABLES: tuple[str, ...] = ("business", "leads", "call_log", "outbound_lead_lists")


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    nullable: bool
    default: str | None

    def describe(self) -> str:
        text = f"{self.type} {'NULL' if self.nullable else 'NOT NULL'}"
        return text if self.default is None else f"{text} DEFAULT {self.default}"


@dataclass(frozen=True)
class IndexInfo:
    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool
    method: str
    predicate: str | None
    valid: bool
    definition: str  # as pg_get_indexdef prints it
    constraint: str | None = None  # the constraint this index enforces, if any

    @property
    def using(self) -> str:
        """Everything that defines the index after its table: method, keys with their order,
        operator classes and collations, INCLUDE columns, predicate."""
        return self.definition.split(" USING ", 1)[1]

    def describe(self) -> str:
        keys = self.using[len(self.method) + 1 :]
        text = f"{'UNIQUE ' if self.unique else ''}{self.method} on {self.table} {keys}"
        return text if self.valid else f"{text}, INVALID (left by a failed concurrent build)"


@dataclass(frozen=True)
class ConstraintInfo:
    name: str
    table: str
    kind: str  # p, f, u, c, x
    definition: str

    def describe(self) -> str:
        return f"{self.definition} on {self.table}"


@dataclass(frozen=True)
class SequenceInfo:
    name: str
    type: str
    start: int
    increment: int
    owned_by: str

    def describe(self) -> str:
        return f"{self.type} sequence owned by {self.owned_by}, start {self.start}, increment {self.increment}"


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: tuple[ColumnInfo, ...]

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Snapshot:
    tables: dict[str, TableInfo] = field(default_factory=dict)
    indexes: dict[str, IndexInfo] = field(default_factory=dict)
    constraints: dict[str, ConstraintInfo] = field(default_factory=dict)
    sequences: dict[str, SequenceInfo] = field(default_factory=dict)


_COLUMNS = text(
    """
    SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
           pg_get_expr(d.adbin, d.adrelid)
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.oid = ANY(CAST(:oids AS oid[])) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname, a.attnum
    """
)

_INDEXES = text(
    """
    SELECT i.relname, t.relname, ix.indisunique, am.amname,
           pg_get_expr(ix.indpred, ix.indrelid), ix.indisvalid,
           pg_get_indexdef(ix.indexrelid),
           ARRAY(SELECT CASE WHEN k.attnum = 0 THEN pg_get_indexdef(ix.indexrelid, k.ord::int, true)
                             ELSE (SELECT attname FROM pg_attribute
                                   WHERE attrelid = ix.indrelid AND attnum = k.attnum) END
                 FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                 WHERE k.ord <= ix.indnkeyatts ORDER BY k.ord),
           (SELECT conname FROM pg_constraint WHERE conindid = ix.indexrelid AND conrelid = ix.indrelid LIMIT 1)
    FROM pg_index ix
    JOIN pg_class i ON i.oid = ix.indexrelid
    JOIN pg_class t ON t.oid = ix.indrelid
    JOIN pg_am am ON am.oid = i.relam
    WHERE ix.indrelid = ANY(CAST(:oids AS oid[]))
    """
)

_CONSTRAINTS = text(
    """
    SELECT con.conname, c.relname, con.contype, pg_get_constraintdef(con.oid)
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
    WHERE con.conrelid = ANY(CAST(:oids AS oid[]))
      AND con.contype <> 'n'  -- PostgreSQL 18's NOT NULL entries: nullability is read per column
    """
)

_SEQUENCES = text(
    """
    SELECT s.relname, format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement,
           t.relname || '.' || a.attname
    FROM pg_depend dep
    JOIN pg_class s ON s.oid = dep.objid AND s.relkind = 'S'
    JOIN pg_sequence q ON q.seqrelid = s.oid
    JOIN pg_class t ON t.oid = dep.refobjid
    JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
    WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
      AND dep.deptype IN ('a', 'i') AND dep.refobjid = ANY(CAST(:oids AS oid[]))
    """
)


def table_oids(connection: Connection, tables: Sequence[str]) -> dict[str, int]:
    """OIDs of those of ``tables`` that exist on the search path."""
    rows = connection.execute(
        text(
            "SELECT name, to_regclass(name)::oid FROM unnest(CAST(:names AS text[])) AS name "
            "WHERE to_regclass(name) IS NOT NULL"
        ),
        {"names": list(tables)},
    )
    return {name: int(oid) for name, oid in rows}


def existing_relations(connection: Connection, names: Sequence[str], kinds: str = "rpivmSfc") -> set[str]:
    """Which of ``names`` are taken, on the search path, by a relation of one of ``kinds`` (pg_class.relkind)."""
    rows = connection.execute(
        text(
            "SELECT name FROM unnest(CAST(:names AS text[])) AS name "
            "JOIN pg_class c ON c.oid = to_regclass(name) WHERE strpos(:kinds, c.relkind::text) > 0"
        ),
        {"names": list(names), "kinds": kinds},
    )
    return {row[0] for row in rows}


def snapshot(connection: Connection, tables: Sequence[str] = OUR_TABLES) -> Snapshot:
    """Read columns, indexes, constraints and owned sequences of ``tables``."""
    oids = table_oids(connection, tables)
    params = {"oids": list(oids.values())}
    columns: dict[str, list[ColumnInfo]] = {name: [] for name in oids}
    for table, name, type_, nullable, default in connection.execute(_COLUMNS, params):
        columns[table].append(ColumnInfo(name, type_, nullable, default))
    snap = Snapshot(tables={name: TableInfo(name, tuple(cols)) for name, cols in columns.items()})
    for name, table, unique, method, predicate, valid, definition, cols, owner in connection.execute(_INDEXES, params):
        snap.indexes[name] = IndexInfo(name, table, tuple(cols), unique, method, predicate, valid, definition, owner)
    for name, table, kind, definition in connection.execute(_CONSTRAINTS, params):
        snap.constraints[name] = ConstraintInfo(name, table, kind, definition)
    for name, type_, start, increment, owner in connection.execute(_SEQUENCES, params):
        snap.sequences[name] = SequenceInfo(name, type_, int(start), int(increment), owner)
    return snap
