"""What a live database holds for our tables, read from PostgreSQL's catalog.

The snapshot is plain data (tuples and dicts of strings), so two databases can
be compared with ``==`` and a difference printed readably. Definitions come
from PostgreSQL's own deparsers (``format_type``, ``pg_get_expr``,
``pg_get_constraintdef``, ``pg_get_indexdef``), so they mean what the server
means, whatever SQL created the objects. Nothing here names a schema: our
tables are found through the session's ``search_path``, as every query of the
dialer finds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

#: The host application's tables that our foreign keys reference. We never
#: create, alter, drop or compare them in a real database.
HOST_TABLES: tuple[str, ...] = ("business", "leads", "call_log", "outbound_lead_lists")


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    nullable: bool
    default: str | None
    collation: str | None = None  # only when it differs from the type's default collation

    def describe(self) -> str:
        parts = [self.type]
        if self.collation is not None:
            parts.append(f"COLLATE {self.collation}")
        parts.append("NULL" if self.nullable else "NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        return " ".join(parts)


@dataclass(frozen=True)
class IndexInfo:
    name: str
    table: str
    unique: bool
    #: Everything that defines the index after its table, as pg_get_indexdef prints it:
    #: method, keys with their order, operator classes and collations, INCLUDE, predicate.
    using: str
    valid: bool = True
    constraint: str | None = None  # the constraint this index enforces, if any

    @property
    def method(self) -> str:
        return self.using.split(" ", 1)[0]

    @property
    def definition(self) -> str:
        unique = "UNIQUE " if self.unique else ""
        return f"CREATE {unique}INDEX {quote(self.name)} ON {quote(self.table)} USING {self.using}"

    def shape(self) -> tuple[str, bool, str]:
        """What the index is, whatever its name and validity."""
        return (self.table, self.unique, self.using)

    def describe(self) -> str:
        keys = self.using[len(self.method) + 1 :]
        described = f"{'UNIQUE ' if self.unique else ''}{self.method} on {self.table} {keys}"
        return described if self.valid else f"{described}, INVALID (left by a failed concurrent build)"


@dataclass(frozen=True)
class ConstraintInfo:
    name: str
    table: str
    kind: str  # p, f, u, c, x
    definition: str  # as pg_get_constraintdef prints it, NOT VALID and DEFERRABLE included

    @property
    def validated(self) -> bool:
        return not self.definition.endswith(" NOT VALID")

    def shape(self) -> tuple[str, str, str]:
        """What the constraint is, whatever its name and whether it has been validated yet."""
        return (self.table, self.kind, self.definition.removesuffix(" NOT VALID"))

    def describe(self) -> str:
        return f"{self.definition} on {self.table}"


@dataclass(frozen=True)
class SequenceInfo:
    name: str
    type: str
    start: int
    increment: int
    owned_by: str | None  # "table.column", or None when no column owns it
    minimum: int = 1
    maximum: int = 2147483647
    cache: int = 1
    cycle: bool = False

    def describe(self) -> str:
        owner = f"owned by {self.owned_by}" if self.owned_by else "owned by no column"
        options = f"start {self.start}, increment {self.increment}"
        if (self.minimum, self.maximum, self.cache, self.cycle) != _default_sequence_options(self.type, self.increment):
            options += f", min {self.minimum}, max {self.maximum}, cache {self.cache}{', cycle' if self.cycle else ''}"
        return f"{self.type} sequence {owner}, {options}"


def _default_sequence_options(type_: str, increment: int) -> tuple[int, int, int, bool]:
    maximum = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}.get(type_, 0)
    return (1, maximum, 1, False) if increment > 0 else (-maximum - 1, -1, 1, False)


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: tuple[ColumnInfo, ...]
    unlogged: bool = False
    options: tuple[str, ...] = ()  # storage parameters, as reloptions holds them ("fillfactor=70")
    row_security: bool = False
    force_row_security: bool = False

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)

    def settings(self) -> tuple[bool, tuple[str, ...], bool, bool]:
        """The table's own options, apart from its columns."""
        return (self.unlogged, self.options, self.row_security, self.force_row_security)

    def describe(self) -> str:
        parts = ["UNLOGGED" if self.unlogged else "logged"]
        parts.append(f"WITH ({', '.join(self.options)})" if self.options else "no storage parameters")
        parts.append(
            "row security forced" if self.force_row_security else f"row security {'on' if self.row_security else 'off'}"
        )
        return ", ".join(parts)


@dataclass(frozen=True)
class Snapshot:
    tables: dict[str, TableInfo] = field(default_factory=dict)
    indexes: dict[str, IndexInfo] = field(default_factory=dict)
    constraints: dict[str, ConstraintInfo] = field(default_factory=dict)
    sequences: dict[str, SequenceInfo] = field(default_factory=dict)


_KEYWORDS: frozenset[str] | None = None


def quote(name: str) -> str:
    """An identifier as PostgreSQL's quote_ident would print it."""
    global _KEYWORDS
    if _KEYWORDS is None:
        from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS

        _KEYWORDS = frozenset(RESERVED_WORDS)
    if name.isidentifier() and name == name.lower() and name.isascii() and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


_TABLES = text(
    """
    SELECT c.relname, c.relpersistence = 'u', coalesce(c.reloptions, '{}'), c.relrowsecurity, c.relforcerowsecurity
    FROM pg_class c WHERE c.oid = ANY(CAST(:oids AS oid[]))
    """
)

_COLUMNS = text(
    """
    SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
           pg_get_expr(d.adbin, d.adrelid),
           CASE WHEN a.attcollation <> t.typcollation THEN
               (SELECT quote_ident(collname) FROM pg_collation WHERE oid = a.attcollation) END
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.oid = ANY(CAST(:oids AS oid[])) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname, a.attnum
    """
)

_INDEXES = text(
    """
    SELECT i.relname, t.relname, ix.indisunique,
           substr(pg_get_indexdef(ix.indexrelid), strpos(pg_get_indexdef(ix.indexrelid), ' USING ') + 7),
           ix.indisvalid,
           (SELECT conname FROM pg_constraint WHERE conindid = ix.indexrelid AND conrelid = ix.indrelid LIMIT 1)
    FROM pg_index ix
    JOIN pg_class i ON i.oid = ix.indexrelid
    JOIN pg_class t ON t.oid = ix.indrelid
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

# Sequences owned by a column of our tables, and those our columns' defaults draw from.
_SEQUENCES = text(
    """
    WITH ours AS (
        SELECT dep.objid AS seq FROM pg_depend dep
        WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
          AND dep.deptype IN ('a', 'i') AND dep.refobjid = ANY(CAST(:oids AS oid[]))
        UNION
        SELECT dep.refobjid FROM pg_attrdef d
        JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
             AND dep.refclassid = 'pg_class'::regclass
        WHERE d.adrelid = ANY(CAST(:oids AS oid[]))
    )
    SELECT s.relname, format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax,
           q.seqcache, q.seqcycle,
           (SELECT t.relname || '.' || a.attname FROM pg_depend dep
            JOIN pg_class t ON t.oid = dep.refobjid
            JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
            WHERE dep.classid = 'pg_class'::regclass AND dep.objid = s.oid
              AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i') LIMIT 1)
    FROM ours JOIN pg_class s ON s.oid = ours.seq AND s.relkind = 'S'
    JOIN pg_sequence q ON q.seqrelid = s.oid
    """
)


def table_oids(connection: Connection, tables: Sequence[str]) -> dict[str, int]:
    """OIDs of those of ``tables`` that exist on the search path (tables, partitioned tables)."""
    rows = connection.execute(
        text(
            "SELECT name, c.oid FROM unnest(CAST(:names AS text[])) AS name "
            "JOIN pg_class c ON c.oid = to_regclass(quote_ident(name)) WHERE c.relkind IN ('r', 'p')"
        ),
        {"names": list(tables)},
    )
    return {name: int(oid) for name, oid in rows}


def existing_relations(connection: Connection, names: Sequence[str], kinds: str = "rpivmSfc") -> set[str]:
    """Which of ``names`` are taken, on the search path, by a relation of one of ``kinds`` (pg_class.relkind)."""
    rows = connection.execute(
        text(
            "SELECT name FROM unnest(CAST(:names AS text[])) AS name "
            "JOIN pg_class c ON c.oid = to_regclass(quote_ident(name)) WHERE strpos(:kinds, c.relkind::text) > 0"
        ),
        {"names": list(names), "kinds": kinds},
    )
    return {row[0] for row in rows}


def tables_in_current_schema(connection: Connection, *, excluding: Sequence[str]) -> list[str]:
    """Every table of the schema new tables are created in, but ``excluding``."""
    rows = connection.scalars(
        text(
            "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(current_schema()) "
            "AND relkind IN ('r', 'p') AND NOT relname = ANY(CAST(:excluding AS text[])) ORDER BY relname"
        ),
        {"excluding": list(excluding)},
    )
    return list(rows)


def snapshot(connection: Connection, tables: Sequence[str]) -> Snapshot:
    """Read the options, columns, indexes, constraints and sequences of those of ``tables`` that exist.

    Our tables are those the expected-schema files name (``ExpectedSchemas.tables()``).
    """
    oids = table_oids(connection, tables)
    params = {"oids": list(oids.values())}
    columns: dict[str, list[ColumnInfo]] = {name: [] for name in oids}
    for table, name, type_, nullable, default, collation in connection.execute(_COLUMNS, params):
        columns[table].append(ColumnInfo(name, type_, nullable, default, collation))
    snap = Snapshot()
    for name, unlogged, options, rls, force_rls in connection.execute(_TABLES, params):
        snap.tables[name] = TableInfo(name, tuple(columns[name]), unlogged, tuple(sorted(options)), rls, force_rls)
    for name, table, unique, using, valid, owner in connection.execute(_INDEXES, params):
        snap.indexes[name] = IndexInfo(name, table, unique, using, valid, owner)
    for name, table, kind, definition in connection.execute(_CONSTRAINTS, params):
        snap.constraints[name] = ConstraintInfo(name, table, kind, definition)
    for name, type_, start, increment, minimum, maximum, cache, cycle, owner in connection.execute(_SEQUENCES, params):
        snap.sequences[name] = SequenceInfo(
            name, type_, int(start), int(increment), owner, int(minimum), int(maximum), int(cache), bool(cycle)
        )
    return snap
