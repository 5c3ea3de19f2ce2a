"""What a live database holds for our tables, read from PostgreSQL's catalog.

The snapshot is plain data (tuples and dicts of strings), so two databases can
be compared with ``==`` and a difference printed readably. Definitions come
from PostgreSQL's own deparsers (``format_type``, ``pg_get_expr``,
``pg_get_constraintdef``, ``pg_get_indexdef``, ``pg_get_triggerdef``,
``pg_get_ruledef``), so they mean what the server means, whatever SQL created
the objects. Nothing here names a schema: our tables are found through the
session's ``search_path``, as every query of the dialer finds them, and only
objects of those tables are read (never the host application's, never another
schema's).

The queries run on a SQLAlchemy connection (migrations) or a plain psycopg one
(``outbound-schema check``, which imports no SQLAlchemy); both hand the SQL to
psycopg as written.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from outbound_schema.keywords import literal, neutral, quote

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]

#: The host application's tables that our foreign keys reference. We never
#: create, alter, drop or compare them in a real database.
HOST_TABLES: tuple[str, ...] = ("business", "leads", "call_log", "outbound_lead_lists")


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    nullable: bool
    default: str | None  # for a generated column, its expression
    collation: str | None = None  # only when it differs from the type's default collation
    identity: str | None = None  # "ALWAYS" or "BY DEFAULT" for an identity column
    generated: str | None = None  # "STORED" or "VIRTUAL" for a generated column
    #: Per-column settings that differ from the type's: "STATISTICS 1000", "STORAGE EXTERNAL",
    #: "COMPRESSION lz4", "(n_distinct=100)", as ``ALTER COLUMN ... SET`` takes them.
    options: tuple[str, ...] = ()

    def definition(self) -> str:
        """Type, collation, nullability and default, as in CREATE TABLE."""
        parts = [self.type]
        if self.collation is not None:
            parts.append(f"COLLATE {self.collation}")
        if not self.nullable:
            parts.append("NOT NULL")
        if self.generated is not None:
            parts.append(f"GENERATED ALWAYS AS ({self.default}) {self.generated}")
        elif self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.identity is not None:
            parts.append(f"GENERATED {self.identity} AS IDENTITY")
        return " ".join(parts)

    def describe(self) -> str:
        described = self.definition()
        if self.nullable:  # say it: "integer NULL" reads better than "integer"
            at = len(self.type) + (len(f" COLLATE {self.collation}") if self.collation else 0)
            described = f"{described[:at]} NULL{described[at:]}"
        if self.options:
            described += f", SET {', '.join(self.options)}"
        return described


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
    #: The tables whose triggers enforcing it are disabled (ALTER TABLE ... DISABLE TRIGGER ALL);
    #: only a live database can say so, the expected schema always enforces.
    disabled_on: tuple[str, ...] = ()

    @property
    def enforced(self) -> bool:
        return not self.disabled_on

    @property
    def validated(self) -> bool:
        return not self.definition.endswith(" NOT VALID")

    def shape(self) -> tuple[str, str, str]:
        """What the constraint is, whatever its name and whether it has been validated yet."""
        return (self.table, self.kind, self.definition.removesuffix(" NOT VALID"))

    def describe(self) -> str:
        described = f"{self.definition} on {self.table}"
        return described if self.enforced else f"{described}, NOT ENFORCED (its triggers are disabled)"


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
    unlogged: bool = False

    def options(self) -> dict[str, object]:
        """Everything but the name and the owner, by the words ALTER SEQUENCE uses."""
        return {
            "AS": self.type,
            "START WITH": self.start,
            "INCREMENT BY": self.increment,
            "MINVALUE": self.minimum,
            "MAXVALUE": self.maximum,
            "CACHE": self.cache,
            "CYCLE": self.cycle,
            "UNLOGGED": self.unlogged,
        }

    def describe(self) -> str:
        owner = f"owned by {self.owned_by}" if self.owned_by else "owned by no column"
        options = f"start {self.start}, increment {self.increment}"
        if (self.minimum, self.maximum, self.cache, self.cycle) != _default_sequence_options(self.type, self.increment):
            options += f", min {self.minimum}, max {self.maximum}, cache {self.cache}{', cycle' if self.cycle else ''}"
        return f"{'UNLOGGED ' if self.unlogged else ''}{self.type} sequence {owner}, {options}"


def _default_sequence_options(type_: str, increment: int) -> tuple[int, int, int, bool]:
    maximum = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}.get(type_, 0)
    return (1, maximum, 1, False) if increment > 0 else (-maximum - 1, -1, 1, False)


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    table: str
    permissive: bool
    command: str  # ALL, SELECT, INSERT, UPDATE, DELETE
    roles: tuple[str, ...]  # quoted role names, or ("PUBLIC",)
    using: str | None
    check: str | None

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"

    @property
    def definition(self) -> str:
        kind = "PERMISSIVE" if self.permissive else "RESTRICTIVE"
        text = f"CREATE POLICY {quote(self.name)} ON {quote(self.table)} AS {kind} FOR {self.command}"
        text += f" TO {', '.join(self.roles)}"
        if self.using is not None:
            text += f" USING ({self.using})"
        if self.check is not None:
            text += f" WITH CHECK ({self.check})"
        return text

    def shape(self) -> tuple[str, bool, str, tuple[str, ...], str | None, str | None]:
        return (self.table, self.permissive, self.command, self.roles, self.using, self.check)

    def describe(self) -> str:
        return self.definition.split(" AS ", 1)[1]


#: pg_trigger.tgenabled and pg_rewrite.ev_enabled: how ALTER TABLE sets each state.
FIRING = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}


@dataclass(frozen=True)
class _Fires:
    """A trigger or a rule: a definition on a table, and whether it fires (as ALTER TABLE sets it)."""

    name: str
    table: str
    definition: str  # as PostgreSQL deparses it, the table named without its schema
    enabled: str = "O"  # a key of FIRING

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"

    def body(self) -> str:
        """The definition after its name: what it does, whatever it is called."""
        raise NotImplementedError

    def shape(self) -> tuple[str, str, str]:
        return (self.table, self.body(), self.enabled)

    def describe(self) -> str:
        state = "" if self.enabled == "O" else f", {FIRING[self.enabled].lower()}d"
        return f"{self.definition.removeprefix('CREATE ').removesuffix(';')}{state}"


@dataclass(frozen=True)
class TriggerInfo(_Fires):
    """A user trigger (constraint triggers of foreign keys are their constraint's); pg_get_triggerdef."""

    def body(self) -> str:
        return self.definition.split(f" {quote(self.name)} ", 1)[-1]


@dataclass(frozen=True)
class RuleInfo(_Fires):
    """A rewrite rule; pg_get_ruledef, on one line up to its actions."""

    def body(self) -> str:
        return self.definition.split(" AS ", 1)[-1]


def _arguments_at(head: str) -> int:
    """Where the argument list starts in ``name(args)``, the name possibly quoted (and holding "(")."""
    at, quoted = 0, False
    while at < len(head):
        if head[at] == '"':
            quoted = not quoted
        elif head[at] == "(" and not quoted:
            return at
        at += 1
    raise ValueError(f"not a function head: {head[:80]!r}")


@dataclass(frozen=True)
class TypeInfo:
    """An enum or a domain one of our columns is of (directly, or as the elements of an array)."""

    name: str  # as format_type prints it: quoted where needed, qualified where the search path misses it
    definition: str  # CREATE TYPE "x" AS ENUM ('a', 'b') / CREATE DOMAIN "x" AS ..., as the file holds it
    labels: tuple[str, ...] | None = None  # an enum's labels, in their order; None for a domain

    @property
    def table(self) -> str:
        return ""  # a type of the schema, not of one table

    def shape(self) -> str:
        return self.definition.split(f" {self.name} AS ", 1)[1]

    def describe(self) -> str:
        if self.labels is not None:
            return f"enum of {', '.join(self.labels)}" if self.labels else "enum of no labels"
        return f"domain over {self.shape()}"


@dataclass(frozen=True)
class FunctionInfo:
    """A function the triggers of our tables run: what they do is in its body."""

    name: str  # as the definition names it: x, "X" or, off the search path, other.x
    definition: str  # pg_get_functiondef, the schema left out if the search path finds it

    @classmethod
    def of(cls, definition: str) -> FunctionInfo:
        head = definition.removeprefix("CREATE OR REPLACE FUNCTION ")
        return cls(head[: _arguments_at(head)], definition)

    @property
    def table(self) -> str:
        return ""

    def shape(self) -> str:
        return self.definition.strip()

    def describe(self) -> str:
        header = self.definition.strip().splitlines()[0].removeprefix("CREATE OR REPLACE FUNCTION ")
        return f"{header}, {len(self.definition.strip().splitlines())} lines"


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: tuple[ColumnInfo, ...]
    unlogged: bool = False
    options: tuple[str, ...] = ()  # storage parameters, as reloptions holds them ("fillfactor=70")
    row_security: bool = False
    force_row_security: bool = False
    replica_identity: str = "DEFAULT"  # DEFAULT, FULL, NOTHING or USING INDEX <name>
    parents: tuple[str, ...] = ()  # tables it inherits from (its rows show in theirs)
    children: tuple[str, ...] = ()  # tables inheriting from it, partitions included (their rows show in its)

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)

    def settings(self) -> tuple[object, ...]:
        """The table's own options, apart from its columns."""
        return (
            self.unlogged,
            self.options,
            self.row_security,
            self.force_row_security,
            self.replica_identity,
            self.parents,
            self.children,
        )

    def describe(self) -> str:
        parts = ["UNLOGGED" if self.unlogged else "logged"]
        parts.append(f"WITH ({', '.join(self.options)})" if self.options else "no storage parameters")
        parts.append(
            "row security forced" if self.force_row_security else f"row security {'on' if self.row_security else 'off'}"
        )
        if self.replica_identity != "DEFAULT":
            parts.append(f"replica identity {self.replica_identity}")
        if self.parents:
            parts.append(f"inherits from {', '.join(self.parents)}")
        if self.children:
            parts.append(f"inherited by {', '.join(self.children)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Snapshot:
    tables: dict[str, TableInfo] = field(default_factory=dict)
    indexes: dict[str, IndexInfo] = field(default_factory=dict)
    constraints: dict[str, ConstraintInfo] = field(default_factory=dict)
    sequences: dict[str, SequenceInfo] = field(default_factory=dict)
    # Keyed by "table.name": their names are unique per table only.
    policies: dict[str, PolicyInfo] = field(default_factory=dict)
    triggers: dict[str, TriggerInfo] = field(default_factory=dict)
    rules: dict[str, RuleInfo] = field(default_factory=dict)
    types: dict[str, TypeInfo] = field(default_factory=dict)  # enums and domains our columns are of
    functions: dict[str, FunctionInfo] = field(default_factory=dict)  # those our triggers run


def fetch(connection: Queryable, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (psycopg's %(name)s parameters) on either kind of connection."""
    if hasattr(connection, "exec_driver_sql"):
        return [tuple(row) for row in connection.exec_driver_sql(sql, params)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_OIDS = "CAST(CAST(%(oids)s AS text[]) AS oid[])"

_TABLES = f"""
    SELECT c.relname, c.relpersistence = 'u',
           coalesce(c.reloptions, '{{}}') || ARRAY(SELECT 'toast.' || option FROM pg_class toast,
               unnest(toast.reloptions) AS option WHERE toast.oid = c.reltoastrelid),
           c.relrowsecurity,
           c.relforcerowsecurity,
           CASE c.relreplident WHEN 'f' THEN 'FULL' WHEN 'n' THEN 'NOTHING'
               WHEN 'i' THEN 'USING INDEX ' || coalesce((SELECT quote_ident(i.relname) FROM pg_index x
                   JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid AND x.indisreplident), '?')
               ELSE 'DEFAULT' END,
           ARRAY(SELECT inhparent::regclass::text COLLATE "C" FROM pg_inherits WHERE inhrelid = c.oid ORDER BY 1),
           ARRAY(SELECT inhrelid::regclass::text COLLATE "C" FROM pg_inherits WHERE inhparent = c.oid ORDER BY 1)
    FROM pg_class c WHERE c.oid = ANY({_OIDS})
"""

_COLUMNS = f"""
    SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
           -- PostgreSQL 18's NOT NULL ... NOT VALID leaves attnotnull set, yet older rows may hold NULL.
           NOT a.attnotnull OR EXISTS (SELECT FROM pg_constraint n WHERE n.conrelid = a.attrelid
               AND n.contype = 'n' AND NOT n.convalidated AND n.conkey = ARRAY[a.attnum]),
           pg_get_expr(d.adbin, d.adrelid),
           CASE WHEN a.attcollation <> t.typcollation THEN
               (SELECT quote_ident(collname) FROM pg_collation WHERE oid = a.attcollation) END,
           CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END,
           CASE a.attgenerated WHEN 's' THEN 'STORED' WHEN 'v' THEN 'VIRTUAL' END,
           ARRAY_REMOVE(ARRAY[
               CASE WHEN coalesce(a.attstattarget, -1) >= 0 THEN 'STATISTICS ' || a.attstattarget END,
               CASE WHEN a.attstorage <> t.typstorage THEN 'STORAGE ' || CASE a.attstorage
                   WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL' WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END END,
               CASE a.attcompression WHEN 'p' THEN 'COMPRESSION pglz' WHEN 'l' THEN 'COMPRESSION lz4' END,
               CASE WHEN a.attoptions IS NOT NULL THEN '(' || array_to_string(a.attoptions, ', ') || ')' END
           ], NULL)
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.oid = ANY({_OIDS}) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname, a.attnum
"""

_INDEXES = f"""
    SELECT i.relname, t.relname, ix.indisunique, pg_get_indexdef(ix.indexrelid),
           ix.indisvalid,
           (SELECT conname FROM pg_constraint WHERE conindid = ix.indexrelid AND conrelid = ix.indrelid LIMIT 1),
           -- The names as this server quotes them in the definition (its keywords, not ours).
           quote_ident(i.relname), quote_ident(n.nspname) || '.' || quote_ident(t.relname), quote_ident(t.relname)
    FROM pg_index ix
    JOIN pg_class i ON i.oid = ix.indexrelid
    JOIN pg_class t ON t.oid = ix.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE ix.indrelid = ANY({_OIDS})
"""

# PostgreSQL 18's NOT NULL entries are read per column; a CONSTRAINT TRIGGER ('t') is read as a trigger.
_CONSTRAINTS = f"""
    SELECT con.conname, c.relname, con.contype, pg_get_constraintdef(con.oid),
           ARRAY(SELECT DISTINCT tg.tgrelid::regclass::text COLLATE "C" FROM pg_trigger tg
                 WHERE tg.tgconstraint = con.oid AND tg.tgenabled = 'D' ORDER BY 1)
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
    WHERE con.conrelid = ANY({_OIDS}) AND con.contype NOT IN ('n', 't')
"""

# Sequences owned by a column of our tables, and those our columns' defaults draw from.
_SEQUENCES = f"""
    WITH ours AS (
        SELECT dep.objid AS seq FROM pg_depend dep
        WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
          AND dep.deptype IN ('a', 'i') AND dep.refobjid = ANY({_OIDS})
        UNION
        SELECT dep.refobjid FROM pg_attrdef d
        JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
             AND dep.refclassid = 'pg_class'::regclass
        WHERE d.adrelid = ANY({_OIDS})
    )
    SELECT s.relname, format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax,
           q.seqcache, q.seqcycle,
           (SELECT t.relname || '.' || a.attname FROM pg_depend dep
            JOIN pg_class t ON t.oid = dep.refobjid
            JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
            WHERE dep.classid = 'pg_class'::regclass AND dep.objid = s.oid
              AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i') LIMIT 1),
           s.relpersistence = 'u'
    FROM ours JOIN pg_class s ON s.oid = ours.seq AND s.relkind = 'S'
    JOIN pg_sequence q ON q.seqrelid = s.oid
"""

_POLICIES = f"""
    SELECT p.polname, c.relname, p.polpermissive,
           CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
           CASE WHEN p.polroles = '{{0}}' THEN ARRAY['PUBLIC']
                ELSE ARRAY(SELECT quote_ident(rolname) COLLATE "C" FROM pg_roles WHERE oid = ANY(p.polroles)
                           ORDER BY 1) END,
           pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
    FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
    WHERE p.polrelid = ANY({_OIDS})
"""

# The table as pg_get_triggerdef and pg_get_ruledef name it (schema-qualified), to be named without it.
# With the function each trigger runs (PostgreSQL's own, in pg_catalog, cannot change), named without
# its schema where the search path finds it.
_TRIGGERS = f"""
    SELECT tg.tgname, c.relname, pg_get_triggerdef(tg.oid), tg.tgenabled,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname),
           CASE WHEN fn.nspname <> 'pg_catalog' THEN pg_get_functiondef(p.oid) END,
           CASE WHEN pg_function_is_visible(p.oid) THEN quote_ident(fn.nspname) || '.' END
    FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_proc p ON p.oid = tg.tgfoid JOIN pg_namespace fn ON fn.oid = p.pronamespace
    WHERE tg.tgrelid = ANY({_OIDS}) AND NOT tg.tgisinternal
"""

_RULES = f"""
    SELECT r.rulename, c.relname, pg_get_ruledef(r.oid), r.ev_enabled,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname)
    FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE r.ev_class = ANY({_OIDS}) AND r.rulename <> '_RETURN'
"""


# Enums and domains our columns are of, directly or as an array's elements (wherever on the search path).
_TYPES = f"""
    WITH RECURSIVE used(oid) AS (  -- our columns' types, and what they are built on: an array's elements,
        SELECT a.atttypid FROM pg_attribute a   -- a domain's base type, all the way down
        WHERE a.attrelid = ANY({_OIDS}) AND a.attnum > 0 AND NOT a.attisdropped
        UNION
        SELECT under.oid FROM used JOIN pg_type t ON t.oid = used.oid,
               LATERAL (VALUES (t.typelem), (t.typbasetype)) AS under(oid)
        WHERE under.oid <> 0
    )
    SELECT format_type(t.oid, NULL), t.typtype,
           ARRAY(SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
           format_type(t.typbasetype, t.typtypmod),
           CASE WHEN t.typcollation <> bt.typcollation THEN
               (SELECT quote_ident(collname) FROM pg_collation WHERE oid = t.typcollation) END,
           t.typdefault, t.typnotnull,
           ARRAY(SELECT 'CONSTRAINT ' || quote_ident(c.conname) || ' ' || pg_get_constraintdef(c.oid)
                 FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname COLLATE "C")
    FROM pg_type t LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
    WHERE t.typtype IN ('e', 'd') AND t.oid IN (SELECT oid FROM used)
    ORDER BY 1
"""


def type_definition(
    name: str,
    kind: str,
    labels: Sequence[str],
    base: str,
    collation: str | None,
    default: str | None,
    not_null: bool,
    checks: Sequence[str],
) -> str:
    """The statement that creates the type ``name`` (as format_type prints it: quoted, and qualified
    only when the search path does not find it), as the expected-schema file holds it."""
    if kind == "e":
        return f"CREATE TYPE {name} AS ENUM ({', '.join(literal(label) for label in labels)})"
    parts = [f"CREATE DOMAIN {name} AS {base}"]
    if collation:
        parts.append(f"COLLATE {collation}")
    if default is not None:
        parts.append(f"DEFAULT {neutral(default)}")
    if not_null:
        parts.append("NOT NULL")
    parts.extend(neutral(check) for check in checks)
    return " ".join(parts)


def table_oids(connection: Queryable, tables: Sequence[str]) -> dict[str, int]:
    """OIDs of those of ``tables`` that exist on the search path (tables, partitioned tables)."""
    rows = fetch(
        connection,
        "SELECT name, c.oid FROM unnest(CAST(%(names)s AS text[])) AS name "
        "JOIN pg_class c ON c.oid = to_regclass(quote_ident(name)) WHERE c.relkind IN ('r', 'p')",
        {"names": list(tables)},
    )
    return {name: int(oid) for name, oid in rows}


def existing_relations(connection: Queryable, names: Sequence[str], kinds: str = "rpivmSfc") -> set[str]:
    """Which of ``names`` are taken, on the search path, by a relation of one of ``kinds`` (pg_class.relkind)."""
    rows = fetch(
        connection,
        "SELECT name FROM unnest(CAST(%(names)s AS text[])) AS name "
        "JOIN pg_class c ON c.oid = to_regclass(quote_ident(name)) WHERE strpos(%(kinds)s, c.relkind::text) > 0",
        {"names": list(names), "kinds": kinds},
    )
    return {row[0] for row in rows}


def tables_in_current_schema(connection: Queryable, *, excluding: Sequence[str]) -> list[str]:
    """Every table of the schema new tables are created in, but ``excluding``."""
    rows = fetch(
        connection,
        "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(current_schema()) "
        "AND relkind IN ('r', 'p') AND NOT relname = ANY(CAST(%(excluding)s AS text[])) ORDER BY relname",
        {"excluding": list(excluding)},
    )
    return [row[0] for row in rows]


def _unqualified(definition: str, qualified: str, table: str) -> str:
    """A trigger's or rule's definition naming ``table`` as the search path finds it, without its schema
    (and a rule's on one line, as a trigger's is: pg_get_ruledef breaks the line before ON)."""
    one_line = definition.replace(" AS\n    ON ", " AS ON ", 1)
    return neutral(re.sub(rf"(?<= ){re.escape(qualified)}(?=\s)", quote(table).replace("\\", r"\\"), one_line, count=1))


def _index_using(definition: str, index: str, tables: tuple[str, str]) -> str:
    """What follows ``USING`` in pg_get_indexdef's ``CREATE [UNIQUE] INDEX name ON [ONLY] table USING ...``,
    found by skipping the names themselves (either may hold the words " USING "), as the server quoted
    them: ``index`` and the table, schema-qualified or not."""
    head = f"INDEX {index} ON "
    at = definition.find(head)
    rest = definition[at + len(head) :].removeprefix("ONLY ") if at >= 0 else definition
    for name in tables:
        if rest.startswith(f"{name} USING "):
            return rest[len(name) + len(" USING ") :]
    return rest.split(" USING ", 1)[1]


def snapshot(connection: Queryable, tables: Sequence[str]) -> Snapshot:
    """Read everything that defines those of ``tables`` that exist, and their sequences.

    Our tables are those the expected-schema files name (``ExpectedSchemas.tables()``).
    """
    oids = table_oids(connection, tables)
    params = {"oids": [str(oid) for oid in oids.values()]}
    columns: dict[str, list[ColumnInfo]] = {name: [] for name in oids}
    for table, name, type_, nullable, default, collation, identity, generated, options in fetch(
        connection, _COLUMNS, params
    ):
        default = None if default is None else neutral(default)
        columns[table].append(
            ColumnInfo(name, type_, nullable, default, collation, identity, generated, tuple(options))
        )
    snap = Snapshot()
    for name, unlogged, options, rls, force_rls, identity, parents, children in fetch(connection, _TABLES, params):
        snap.tables[name] = TableInfo(
            name,
            tuple(columns[name]),
            unlogged,
            tuple(sorted(options)),
            rls,
            force_rls,
            identity,
            tuple(parents),
            tuple(children),
        )
    for name, table, unique, definition, valid, owner, quoted, qualified, bare in fetch(connection, _INDEXES, params):
        keys = _index_using(definition, quoted, (qualified, bare))
        snap.indexes[name] = IndexInfo(name, table, unique, neutral(keys), valid, owner)
    for name, table, kind, definition, disabled_on in fetch(connection, _CONSTRAINTS, params):
        snap.constraints[name] = ConstraintInfo(name, table, kind, neutral(definition), tuple(disabled_on))
    for row in fetch(connection, _SEQUENCES, params):
        name, type_, start, increment, minimum, maximum, cache, cycle, owner, unlogged = row
        snap.sequences[name] = SequenceInfo(
            name, type_, int(start), int(increment), owner, int(minimum), int(maximum), int(cache), cycle, unlogged
        )
    for name, table, permissive, command, roles, using, check in fetch(connection, _POLICIES, params):
        using, check = (None if e is None else neutral(e) for e in (using, check))
        policy = PolicyInfo(name, table, permissive, command, tuple(roles), using, check)
        snap.policies[policy.key] = policy
    for name, table, definition, enabled, qualified, function, visible_schema in fetch(connection, _TRIGGERS, params):
        trigger = TriggerInfo(name, table, _unqualified(definition, qualified, table), enabled)
        snap.triggers[trigger.key] = trigger
        if function is not None:
            if visible_schema:  # named as the search path finds it; one it does not find keeps its schema
                function = function.replace(f"FUNCTION {visible_schema}", "FUNCTION ", 1)
            runs = FunctionInfo.of(function.rstrip("\n"))
            snap.functions[runs.name] = runs
    for name, table, definition, enabled, qualified in fetch(connection, _RULES, params):
        rule = RuleInfo(name, table, _unqualified(definition, qualified, table), enabled)
        snap.rules[rule.key] = rule
    for name, kind, labels, base, collation, default, not_null, checks in fetch(connection, _TYPES, params):
        definition = type_definition(name, kind, labels, base, collation, default, not_null, checks)
        snap.types[name] = TypeInfo(name, definition, tuple(labels) if kind == "e" else None)
    return snap


@dataclass(frozen=True)
class SequencePosition:
    """Where a sequence feeding a unique column stands against the values that column already holds."""

    sequence: str
    column: str  # "table.column"
    increment: int
    next_value: int  # what nextval() returns next
    largest: int | None  # the column's largest value (smallest, for a descending sequence); None: empty
    #: Row-level security hides rows of the table from this role: ``largest`` was not read.
    hidden: bool = False

    @property
    def behind(self) -> bool:
        """Whether the next value is one the column may already hold: the next insert would fail."""
        if self.largest is None or self.hidden:
            return False
        return self.next_value <= self.largest if self.increment > 0 else self.next_value >= self.largest


# Sequences that feed (by default or as identity) a column that is by itself the key of a unique index.
# A sequence behind such a column makes the next insert fail; elsewhere a repeated value is allowed.
_FED_UNIQUE_COLUMNS = f"""
    WITH fed AS (
        SELECT dep.refobjid AS seq, d.adrelid AS rel, d.adnum AS col FROM pg_attrdef d
        JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
             AND dep.refclassid = 'pg_class'::regclass
        WHERE d.adrelid = ANY({_OIDS})
        UNION
        SELECT dep.objid, dep.refobjid, dep.refobjsubid FROM pg_depend dep
        WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
          AND dep.deptype = 'i' AND dep.refobjid = ANY({_OIDS})
    )
    SELECT s.relname, c.relname || '.' || a.attname,
           (SELECT q.seqincrement FROM pg_sequence q WHERE q.seqrelid = s.oid),
           (SELECT quote_ident(nspname) FROM pg_namespace WHERE oid = s.relnamespace) || '.' || quote_ident(s.relname),
           (SELECT quote_ident(nspname) FROM pg_namespace WHERE oid = c.relnamespace) || '.' || quote_ident(c.relname),
           quote_ident(a.attname),
           c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))
               AND NOT (SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user)
    -- The one-row lookups (increment, schemas) as subqueries, not joins: joined, the planner weighed
    -- the orders of eight relations, 8 ms of server time on every check; so, 2.5-5 ms.
    FROM fed
    JOIN pg_class s ON s.oid = fed.seq AND s.relkind = 'S'
    JOIN pg_class c ON c.oid = fed.rel
    JOIN pg_attribute a ON a.attrelid = fed.rel AND a.attnum = fed.col
    WHERE EXISTS (SELECT FROM pg_index x WHERE x.indrelid = fed.rel AND x.indisunique AND x.indisvalid
                  AND x.indnkeyatts = 1 AND x.indkey[0] = fed.col AND x.indpred IS NULL)
    ORDER BY 1, 2
"""


def sequence_positions(connection: Queryable, tables: Sequence[str]) -> list[SequencePosition]:
    """For each sequence feeding a unique column of ``tables``: its next value and the column's largest.

    Needs only SELECT on the sequences and tables (``pg_read_all_data`` will do); the largest value
    comes from the unique index, so this reads one index entry per column, not the table.
    """
    params = {"oids": [str(oid) for oid in table_oids(connection, tables).values()]}
    fed = fetch(connection, _FED_UNIQUE_COLUMNS, params)
    positions = []
    for sequence, column, increment, seq_sql, table_sql, column_sql, hidden in fed:
        extreme = "max" if increment > 0 else "min"
        largest_sql = "NULL" if hidden else f"(SELECT {extreme}({column_sql}) FROM {table_sql})"
        sql = _literal_percent(f"SELECT last_value, is_called, {largest_sql} FROM {seq_sql}")
        last, called, largest = fetch(connection, sql, {})[0]
        next_value = int(last) + int(increment) if called else int(last)
        largest = None if largest is None else int(largest)
        positions.append(SequencePosition(sequence, column, int(increment), next_value, largest, hidden))
    return positions


@dataclass(frozen=True)
class Resolution:
    """Where the search path finds a name: the schemas on it holding a relation so named, in its order."""

    name: str
    schemas: tuple[str, ...]

    @property
    def schema(self) -> str | None:
        """The schema whose relation every unqualified query of that name uses."""
        return self.schemas[0] if self.schemas else None


def resolve(connection: Queryable, names: Sequence[str]) -> tuple[list[str], dict[str, Resolution]]:
    """The session's search path (its schemas that exist) and where on it each of ``names`` is found.

    Reads only the names of relations in schemas on the search path.
    """
    rows = fetch(
        connection,
        "SELECT current_schemas(false), name, ARRAY("
        "  SELECT p.nspname FROM unnest(current_schemas(false)) WITH ORDINALITY AS p(nspname, position)"
        "  JOIN pg_namespace n ON n.nspname = p.nspname"
        "  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = name ORDER BY p.position)"
        " FROM unnest(CAST(%(names)s AS text[])) AS name",
        {"names": list(names)},
    )
    path = list(rows[0][0]) if rows else []
    return path, {name: Resolution(name, tuple(schemas)) for _, name, schemas in rows}


# Spellings PostgreSQL keeps apart that mean one default.

#: Each is the transaction's start time: now() is transaction_timestamp(), and CURRENT_TIMESTAMP calls it.
_TRANSACTION_START = re.compile(r"^\(*(?:now\(\)|transaction_timestamp\(\)|CURRENT_TIMESTAMP)\)*$")
#: LOCALTIMESTAMP is that time as a timestamp without time zone: the same value in such a column.
_LOCAL_TRANSACTION_START = re.compile(r"^\(*LOCALTIMESTAMP\)*$")
_CAST_SUFFIX = re.compile(r"^(.*)::(?P<type>[a-z][a-z0-9_ ]*(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?)$", re.S)
#: A literal with casts and nothing else: evaluating it has no effect, so the server may compare two.
_CONSTANT = re.compile(
    r"^\(*(?:'(?:[^']|'')*'|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|true|false|NULL)\)*"
    r"(?:::[a-z][a-z0-9_ ]*(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?\)*)*$"
)


#: That time in UTC: timezone('utc', now()), which PostgreSQL 16 and later print as written, either
#: as a call or as now() AT TIME ZONE 'utc' (15 prints both as the call); the zone's name in any case.
_TRANSACTION_START_UTC = re.compile(
    r"^\(*(?:timezone\('(?:utc|etc/utc)'::text, \(*(?P<a>[^)]*\)?)\)*\)"
    r"|\(*(?P<b>now\(\)|transaction_timestamp\(\)|CURRENT_TIMESTAMP)\)* AT TIME ZONE '(?:utc|etc/utc)'::text)\)*$",
    re.I,
)


def _canonical_default(default: str, column_type: str) -> str:
    cast = _CAST_SUFFIX.match(default)
    bare = cast.group(1) if cast and cast.group("type") == column_type else default
    if _TRANSACTION_START.match(bare):
        return "CURRENT_TIMESTAMP"
    utc = _TRANSACTION_START_UTC.match(bare)
    if utc and _TRANSACTION_START.match(utc.group("a") or utc.group("b") or ""):
        return "CURRENT_TIMESTAMP AT TIME ZONE 'UTC'"
    if column_type == "timestamp without time zone" and _LOCAL_TRANSACTION_START.match(bare):
        return "CURRENT_TIMESTAMP"
    return default


def align_defaults(connection: Queryable, expected: Iterable[Snapshot], found: Snapshot) -> Snapshot:
    """``found`` with each column default that means what an ``expected`` one means spelled as that one.

    ``now()``, ``transaction_timestamp()`` and ``CURRENT_TIMESTAMP`` are one default; so are
    ``'x'::text`` and ``'x'::character varying`` on a varchar column, which the server compares as
    values (literals and casts only, so evaluating them has no effect). The drift check and the
    take-over then judge by equality, and agree.
    """
    wanted: dict[tuple[str, str, str], set[str]] = {}
    for snap in expected:
        for table in snap.tables.values():
            for column in table.columns:
                if column.default is not None and column.generated is None:
                    wanted.setdefault((table.name, column.name, column.type), set()).add(column.default)
    to_compare: list[tuple[str, str, str]] = []
    for table in found.tables.values():
        for column in table.columns:
            have = column.default
            for want in wanted.get((table.name, column.name, column.type), set()) - {have}:
                if have is not None and column.generated is None and _CONSTANT.match(have) and _CONSTANT.match(want):
                    to_compare.append((column.type, want, have))
    equal = {pair for pair in to_compare if _equal_constants(connection, *pair)}

    def spelled(table: str, column: ColumnInfo) -> ColumnInfo:
        have = column.default
        if have is None or column.generated is not None:
            return column
        for want in sorted(wanted.get((table, column.name, column.type), ())):
            canonical = _canonical_default(want, column.type) == _canonical_default(have, column.type)
            if canonical or (column.type, want, have) in equal:
                return replace(column, default=want)
        return column

    tables = {
        name: replace(table, columns=tuple(spelled(name, c) for c in table.columns))
        for name, table in found.tables.items()
    }
    return replace(found, tables=tables)


def _equal_constants(connection: Queryable, type_: str, a: str, b: str) -> bool:
    """Whether the constants ``a`` and ``b`` are one value of ``type_``; False when either is not one
    (out of range, say), so a default that cannot be cast is reported, not a failed check."""
    sql = _literal_percent(f"SELECT CAST(({a}) AS {type_}) IS NOT DISTINCT FROM CAST(({b}) AS {type_})")
    try:
        with _savepoint(connection):
            return bool(fetch(connection, sql, {})[0][0])
    except _database_errors():
        return False


@contextmanager
def _savepoint(connection: Queryable) -> Iterator[None]:
    if hasattr(connection, "begin_nested"):
        with connection.begin_nested():
            yield
    else:
        with connection.transaction():
            yield


def _database_errors() -> tuple[type[Exception], ...]:
    import psycopg

    errors: list[type[Exception]] = [psycopg.Error]
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import DBAPIError

        errors.append(DBAPIError)
    return tuple(errors)


def _literal_percent(sql: str) -> str:
    """``sql`` built from names and literals, for a parameterised execute: its % signs are not placeholders."""
    return sql.replace("%", "%%")
