"""Reading a live catalog: the queries, the snapshot, the sequences' positions, the search path."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from outbound_schema.catalog.behaviour import PolicyInfo, RuleInfo, TriggerInfo
from outbound_schema.catalog.defaults import align_defaults
from outbound_schema.catalog.objects import Snapshot
from outbound_schema.catalog.relations import ConstraintInfo, IndexInfo, SequenceInfo
from outbound_schema.catalog.tables import ColumnInfo, TableInfo
from outbound_schema.catalog.types import FunctionInfo, TypeInfo
from outbound_schema.keywords import literal, neutral, quote
from outbound_schema.query import _literal_percent, fetch

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]


_OIDS = "CAST(CAST(%(oids)s AS text[]) AS oid[])"

# The relations of a snapshot, read one catalog at a time (no joins but a column's type, no sub-queries) and put
# together here. A new session plans its statements with its caches cold: planning the same reads as joins
# and sub-queries over several catalogs cost the server twice as much (a snapshot of head in a new session:
# 11 ms of server time as five statements, 6 as these; CONTRIBUTING, "Fast.").
_CLASSES = f"""
    SELECT oid, relname, relpersistence = 'u', coalesce(reloptions, '{{}}'), reltoastrelid, relrowsecurity,
           relforcerowsecurity, relreplident, relhasrules, quote_ident(relname), relnamespace::regnamespace::text,
           relowner
    FROM pg_class WHERE oid = ANY({_OIDS})
"""

_ATTRIBUTES = f"""
    SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attcollation, t.typcollation,
           a.attnotnull, a.attgenerated, a.attidentity, a.attstattarget, a.attstorage, t.typstorage,
           a.attcompression, a.attoptions, a.atttypid, quote_ident(a.attname)
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = ANY({_OIDS}) AND a.attnum > 0 AND NOT a.attisdropped
"""

_DEFAULTS = f"SELECT oid, adrelid, adnum, pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = ANY({_OIDS})"

_INDEXES = f"""
    SELECT indexrelid, indrelid, indisunique, pg_get_indexdef(indexrelid), indisvalid, indisreplident,
           indnkeyatts = 1 AND indpred IS NULL, indkey[0]  -- then whether it is a plain key of one column
    FROM pg_index WHERE indrelid = ANY({_OIDS})
"""

# PostgreSQL 18's NOT NULL entries ('n') are read for the columns; a CONSTRAINT TRIGGER ('t') is read as a trigger.
_CONSTRAINTS = f"""
    SELECT oid, conname, conrelid, contype, pg_get_constraintdef(oid), conindid, convalidated, conkey
    FROM pg_constraint WHERE conrelid = ANY({_OIDS})
"""

# What hangs off the tables in pg_class: the sequences a column owns ('a') or an identity uses ('i'), the
# indexes, the TOAST table.
_DEPENDENTS = f"""
    SELECT objid, refobjid, refobjsubid, deptype::text FROM pg_depend
    WHERE classid = 'pg_class'::regclass AND refclassid = 'pg_class'::regclass AND deptype IN ('a', 'i')
      AND refobjid = ANY({_OIDS})
"""

_INHERITANCE = f"""
    SELECT inhrelid, inhparent, inhparent::regclass::text, inhrelid::regclass::text FROM pg_inherits
    WHERE inhrelid = ANY({_OIDS}) OR inhparent = ANY({_OIDS})
"""

# Whether the policies' and triggers' queries have anything to read.
_WITH_POLICIES = f"SELECT polrelid FROM pg_policy WHERE polrelid = ANY({_OIDS})"
_WITH_TRIGGERS = f"SELECT tgrelid FROM pg_trigger WHERE tgrelid = ANY({_OIDS}) AND NOT tgisinternal"

# Then what those rows name: the relations (indexes, sequences, TOAST tables), the sequences the defaults
# draw from, the triggers enforcing a constraint that do not fire as ENABLE leaves them ('O'), collations.
_RELATIONS = f"""
    SELECT oid, relname, quote_ident(relname), relkind::text, relpersistence = 'u', reloptions,
           relnamespace::regnamespace::text
    FROM pg_class WHERE oid = ANY({_OIDS})
"""

_DRAWN_FROM = f"""
    SELECT objid, refobjid FROM pg_depend
    WHERE classid = 'pg_attrdef'::regclass AND objid = ANY({_OIDS}) AND refclassid = 'pg_class'::regclass
"""

_NOT_FIRING = f"""
    SELECT tgconstraint, tgrelid::regclass::text || ':' || tgenabled::text FROM pg_trigger
    WHERE tgconstraint = ANY({_OIDS}) AND tgenabled <> 'O'
"""

_COLLATIONS = f"SELECT oid, quote_ident(collname) FROM pg_collation WHERE oid = ANY({_OIDS})"

_SEQUENCES = f"""
    SELECT seqrelid, format_type(seqtypid, NULL), seqstart, seqincrement, seqmin, seqmax, seqcache, seqcycle
    FROM pg_sequence WHERE seqrelid = ANY({_OIDS})
"""

# The column owning a sequence our defaults draw from that no column of ours owns.
_SEQUENCE_OWNERS = f"""
    SELECT dep.objid, t.relname || '.' || a.attname FROM pg_depend dep
    JOIN pg_class t ON t.oid = dep.refobjid
    JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
    WHERE dep.classid = 'pg_class'::regclass AND dep.objid = ANY({_OIDS})
      AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
"""

_STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN"}  # else EXTENDED
_REPLICA_IDENTITY = {"f": "FULL", "n": "NOTHING"}  # 'i': USING INDEX, else DEFAULT
_GENERATED = {"s": "STORED", "v": "VIRTUAL"}
_IDENTITY = {"a": "ALWAYS", "d": "BY DEFAULT"}
_COMPRESSION = {"p": "COMPRESSION pglz", "l": "COMPRESSION lz4"}

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


#: Types below this OID are PostgreSQL's bootstrap catalog's (FirstUnpinnedObjectId, 15 to 18): no enum or
#: domain among them, nor an array of one. Columns of those alone leave the types query nothing to read.
_FIRST_UNPINNED_OID = 12000

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


def _found(connection: Queryable, names: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Each of ``names`` a relation on the search path has: its OID and relkind. Two statements without a
    join: one joining the names to pg_class cost a new session's server twice their time."""
    rows = fetch(
        connection,
        "SELECT name, CAST(to_regclass(quote_ident(name)) AS oid) FROM unnest(CAST(%(names)s AS text[])) AS name",
        {"names": list(names)},
    )
    oids = {name: int(oid) for name, oid in rows if oid is not None}
    if not oids:
        return {}
    kinds = dict(
        fetch(connection, f"SELECT oid, relkind::text FROM pg_class WHERE oid = ANY({_OIDS})", _ids(oids.values()))
    )
    return {name: (oid, kinds[oid]) for name, oid in oids.items() if oid in kinds}


def table_oids(connection: Queryable, tables: Sequence[str]) -> dict[str, int]:
    """OIDs of those of ``tables`` that exist on the search path (tables, partitioned tables)."""
    return {name: oid for name, (oid, kind) in _found(connection, tables).items() if kind in ("r", "p")}


def existing_relations(connection: Queryable, names: Sequence[str], kinds: str = "rpivmSfc") -> set[str]:
    """Which of ``names`` are taken, on the search path, by a relation of one of ``kinds`` (pg_class.relkind)."""
    return {name for name, (_, kind) in _found(connection, names).items() if kind in kinds}


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


#: How long one catalog read may queue for a lock (pg_get_expr and friends take ACCESS SHARE on the table
#: they deparse), and how long, in all, the reads keep trying. A read queued behind an ALTER TABLE that
#: itself queues behind a long transaction would otherwise wait, silent, for as long as that transaction.
_T = TypeVar("_T")
READ_LOCK_TIMEOUT_MS = 1000
READ_LOCK_WAIT_TOTAL_S = 300.0
_LOCK_NOT_AVAILABLE = "55P03"

log = logging.getLogger("outbound_schema.catalog")


def patiently(connection: Queryable, tables: Sequence[str], read: Callable[[], _T]) -> _T:
    """``read()`` with each try's lock waits bounded: when a lock is not granted in time the try is rolled
    back (reads only), the sessions holding or queued for it are named in a warning, and it is tried
    again, until :data:`READ_LOCK_WAIT_TOTAL_S`; then one paragraph, nothing changed."""
    from outbound_schema.errors import OutboundSchemaError
    from outbound_schema.progress import ending, lock_wait, lock_wait_sql, queued_behind, sessions

    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        fetch(connection, "SELECT set_config('lock_timeout', %(ms)s, true)", {"ms": f"{READ_LOCK_TIMEOUT_MS}ms"})
        try:
            return read()
        except Exception as exc:
            if _sqlstate(exc) != _LOCK_NOT_AVAILABLE:
                raise
            connection.rollback()
        wait = lock_wait(fetch(connection, lock_wait_sql("CAST(%(tables)s AS text[])"), {"tables": list(tables)}))
        connection.rollback()
        waited = time.monotonic() - started
        who = f"held by {sessions(wait.holders)}; {queued_behind(wait.queued)}" if wait.holders else "since let go"
        if waited >= READ_LOCK_WAIT_TOTAL_S:
            raise OutboundSchemaError(
                f"Reading the catalog of {', '.join(tables)} waited {waited:.0f} s for locks that other sessions "
                f"hold or queue for ({who}); nothing was changed. {ending(wait.holders)} then run the command "
                "again.",
                exit_code=2,
            )
        log.warning(
            "reading the catalog waits for a lock on %s (attempt %d, %.0f s so far): %s",
            ", ".join(tables),
            attempt,
            waited,
            who,
        )
        time.sleep(min(2.0 ** min(attempt, 4) / 4, 4.0))


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, psycopg's or SQLAlchemy's wrapping of it."""
    original = getattr(exc, "orig", None) or exc
    state = getattr(original, "sqlstate", None)
    return str(state) if state else None


def snapshot(connection: Queryable, tables: Sequence[str]) -> Snapshot:
    """Read everything that defines those of ``tables`` that exist, and their sequences.

    Our tables are those the expected-schema files name (``ExpectedSchemas.tables()``).
    """
    return patiently(connection, tables, lambda: _snapshot(connection, table_oids(connection, tables)))


def _in_c_order(texts: Iterable[str]) -> list[str]:
    """Sorted as ``ORDER BY ... COLLATE "C"`` sorts: by their bytes."""
    return sorted(texts, key=lambda text: text.encode())


def _ids(values: Iterable[int]) -> dict[str, list[str]]:
    return {"oids": [str(value) for value in dict.fromkeys(values)]}


@dataclass(frozen=True)
class _Fed:
    """A sequence that feeds (by default or as identity) a column that is by itself the key of a unique index:
    behind that column, it makes the next insert fail."""

    sequence: int
    table: int
    column: int  # its attnum
    name: str
    column_name: str  # "table.column"
    increment: int
    sequence_sql: str  # schema-qualified and quoted, as a statement names each
    table_sql: str
    column_sql: str
    row_security: bool
    forced_row_security: bool
    owner: int


# The rows of the statements above, by name.


class _Class(NamedTuple):  # _CLASSES
    oid: int
    name: str
    unlogged: bool
    options: list[str]
    toast: int
    row_security: bool
    forced_row_security: bool
    replica_identity: str
    has_rules: bool
    quoted: str
    schema: str  # quoted
    owner: int


class _Attribute(NamedTuple):  # _ATTRIBUTES
    table: int
    number: int
    name: str
    type: str
    collation: int
    type_collation: int
    not_null: bool
    generated: str
    identity: str
    statistics: int | None
    storage: str
    type_storage: str
    compression: str
    options: list[str] | None
    type_oid: int
    quoted: str


class _Default(NamedTuple):  # _DEFAULTS
    oid: int
    table: int
    column: int
    expression: str


class _Index(NamedTuple):  # _INDEXES
    oid: int
    table: int
    unique: bool
    definition: str
    valid: bool
    replica_identity: bool
    single_key: bool  # one key column, no predicate
    key: int


class _Constraint(NamedTuple):  # _CONSTRAINTS
    oid: int
    name: str
    table: int
    kind: str
    definition: str
    enforced_index: int  # conindid
    validated: bool
    keys: list[int] | None


class _Relation(NamedTuple):  # _RELATIONS
    name: str
    quoted: str
    kind: str
    unlogged: bool
    options: list[str] | None
    schema: str  # quoted


@dataclass
class _Rows:
    """What the statements read, by OID where rows name each other."""

    classes: dict[int, _Class]
    attributes: list[_Attribute]  # by table and number
    defaults: list[_Default]
    indexes: list[_Index]
    constraints: list[_Constraint]
    dependents: dict[int, tuple[int, int, str]]  # relation -> (table, column, 'a' owned or 'i' identity)
    inheritance: list[tuple[Any, ...]]  # (child, parent, the parent's name, the child's)
    relations: dict[int, _Relation]
    drawn_from: list[tuple[int, int]]  # (default, relation)
    not_firing: dict[int, set[str]]  # constraint -> {"table:state"}
    collations: dict[int, str]
    sequences: list[tuple[Any, ...]]  # _SEQUENCES
    owned_elsewhere: dict[int, str]  # a sequence no column of ours owns -> "table.column" that does

    @cached_property
    def column_names(self) -> dict[tuple[int, int], str]:
        return {(a.table, a.number): a.name for a in self.attributes}

    def column_name(self, table: int, column: int) -> str | None:
        return self.column_names.get((table, column))

    def owner(self, sequence: int) -> str | None:
        """The column owning ``sequence``, as "table.column"."""
        if sequence not in self.dependents:
            return self.owned_elsewhere.get(sequence)
        table, column, _ = self.dependents[sequence]
        column_name = self.column_name(table, column)
        return f"{self.classes[table].name}.{column_name}" if table in self.classes and column_name else None


def _rows(connection: Queryable, oids: dict[str, int]) -> _Rows:
    """The statements, each reading the catalog as it is when it runs: what a concurrent change drops between
    two of them is left out, as a moment later it would be."""
    params = _ids(oids.values())
    classes = {row[0]: _Class(*row) for row in fetch(connection, _CLASSES, params)}
    attributes = sorted((_Attribute(*row) for row in fetch(connection, _ATTRIBUTES, params)), key=lambda a: a[:2])
    defaults = [_Default(*row) for row in fetch(connection, _DEFAULTS, params)]
    indexes = [_Index(*row) for row in fetch(connection, _INDEXES, params)]
    constraints = [_Constraint(*row) for row in fetch(connection, _CONSTRAINTS, params)]
    dependents = {objid: (table, column, kind) for objid, table, column, kind in fetch(connection, _DEPENDENTS, params)}
    inheritance = fetch(connection, _INHERITANCE, params)

    named = [*(index.oid for index in indexes), *dependents, *(c.toast for c in classes.values() if c.toast)]
    relations = {row[0]: _Relation(*row[1:]) for row in fetch(connection, _RELATIONS, _ids(named))} if named else {}
    # Each default's own table is among what it depends on: not a relation it draws from.
    drawn = fetch(connection, _DRAWN_FROM, _ids(d.oid for d in defaults)) if defaults else []
    drawn_from = [(default, relation) for default, relation in drawn if relation not in classes]
    enforced = [c.oid for c in constraints if c.kind in ("f", "p", "u", "x")]  # the kinds that may have triggers
    not_firing: dict[int, set[str]] = {}
    for constraint, state in fetch(connection, _NOT_FIRING, _ids(enforced)) if enforced else ():
        not_firing.setdefault(constraint, set()).add(state)
    collated = {a.collation for a in attributes if a.collation != a.type_collation}
    collations = dict(fetch(connection, _COLLATIONS, _ids(collated))) if collated else {}

    # The sequences: those a column of ours owns, then those our defaults draw from.
    sequences = [oid for oid in dependents if oid in relations and relations[oid].kind == "S"]
    sequences += [oid for _, oid in drawn_from if oid not in sequences]
    unnamed = [oid for oid in sequences if oid not in relations]
    if unnamed:
        relations.update({row[0]: _Relation(*row[1:]) for row in fetch(connection, _RELATIONS, _ids(unnamed))})
    settings = fetch(connection, _SEQUENCES, _ids(sequences)) if sequences else []
    others = [row[0] for row in settings if row[0] not in dependents]
    owned_elsewhere = dict(fetch(connection, _SEQUENCE_OWNERS, _ids(others))) if others else {}
    return _Rows(
        classes,
        attributes,
        defaults,
        indexes,
        constraints,
        dependents,
        inheritance,
        relations,
        drawn_from,
        not_firing,
        collations,
        settings,
        owned_elsewhere,
    )


def _columns(found: _Rows) -> dict[int, list[ColumnInfo]]:
    # PostgreSQL 18's NOT NULL ... NOT VALID leaves attnotnull set, yet older rows may hold NULL.
    invalid_not_null = {(c.table, tuple(c.keys or ())) for c in found.constraints if c.kind == "n" and not c.validated}
    expressions = {(d.table, d.column): d.expression for d in found.defaults}
    columns: dict[int, list[ColumnInfo]] = {oid: [] for oid in found.classes}
    for a in found.attributes:
        if a.table not in found.classes:
            continue
        options = [
            f"STATISTICS {a.statistics}" if a.statistics is not None and a.statistics >= 0 else None,
            f"STORAGE {_STORAGE.get(a.storage, 'EXTENDED')}" if a.storage != a.type_storage else None,
            _COMPRESSION.get(a.compression),
            f"({', '.join(a.options)})" if a.options is not None else None,
        ]
        settings = (  # as ColumnInfo.SETTINGS, then the type's storage
            a.type,
            found.collations.get(a.collation) if a.collation != a.type_collation else None,
            not a.not_null or (a.table, (a.number,)) in invalid_not_null,
            expressions.get((a.table, a.number)),
            _GENERATED.get(a.generated),
            _IDENTITY.get(a.identity),
            [words for words in options if words is not None],
            _STORAGE.get(a.type_storage, "EXTENDED"),
        )
        columns[a.table].append(ColumnInfo.from_row(a.name, settings))
    return columns


def _tables(found: _Rows) -> list[TableInfo]:
    columns = _columns(found)
    replica_index = {
        i.table: found.relations[i.oid].quoted for i in found.indexes if i.replica_identity and i.oid in found.relations
    }
    tables = []
    for oid, table in found.classes.items():
        toast = found.relations.get(table.toast)
        if table.replica_identity == "i":
            replica = f"USING INDEX {replica_index.get(oid, '?')}"
        else:
            replica = _REPLICA_IDENTITY.get(table.replica_identity, "DEFAULT")
        settings = (  # as TableInfo.SETTINGS
            table.unlogged,
            [*table.options, *(f"toast.{option}" for option in (toast.options if toast else None) or ())],
            table.row_security,
            table.forced_row_security,
            replica,
            _in_c_order(parent for child, _, parent, _ in found.inheritance if child == oid),
            _in_c_order(child for _, parent, _, child in found.inheritance if parent == oid),
        )
        tables.append(TableInfo.from_row(table.name, columns[oid], settings))
    return tables


def _indexes(found: _Rows) -> list[IndexInfo]:
    # The constraint an index enforces: its own (a primary key, unique or exclusion constraint) first.
    enforcing: dict[tuple[int, int], str] = {}
    for c in sorted(found.constraints, key=lambda c: c.kind not in ("p", "u", "x")):
        enforcing.setdefault((c.enforced_index, c.table), c.name)
    indexes = []
    for index in found.indexes:
        table, relation = found.classes.get(index.table), found.relations.get(index.oid)
        if table is None or relation is None:
            continue
        # The names as this server quotes them in the definition (its keywords, not ours).
        keys = _index_using(index.definition, relation.quoted, (f"{table.schema}.{table.quoted}", table.quoted))
        constraint = enforcing.get((index.oid, index.table))
        indexes.append(IndexInfo(relation.name, table.name, index.unique, neutral(keys), index.valid, constraint))
    return indexes


def _constraints(found: _Rows) -> list[ConstraintInfo]:
    constraints = []
    for c in found.constraints:
        if c.kind in ("n", "t") or c.table not in found.classes:
            continue
        firing = tuple((entry[:-2], entry[-1]) for entry in _in_c_order(found.not_firing.get(c.oid, ())))  # "table:D"
        constraints.append(ConstraintInfo(c.name, found.classes[c.table].name, c.kind, neutral(c.definition), firing))
    return constraints


def _sequences(found: _Rows) -> list[SequenceInfo]:
    sequences = []
    for oid, type_, start, increment, minimum, maximum, cache, cycle in found.sequences:
        if (relation := found.relations.get(oid)) is None:
            continue
        owner = found.owner(oid)
        sequences.append(
            SequenceInfo(
                relation.name,
                type_,
                int(start),
                int(increment),
                owner,
                int(minimum),
                int(maximum),
                int(cache),
                cycle,
                relation.unlogged,
            )
        )
    return sequences


def _feeding(found: _Rows) -> list[_Fed]:
    """The sequences feeding, by default or as identity, a column that is the key of a valid unique index of
    that one column, with no predicate."""
    unique_keys = {(i.table, i.key) for i in found.indexes if i.unique and i.valid and i.single_key}
    default_of = {d.oid: (d.table, d.column) for d in found.defaults}
    feeding = {(sequence, *default_of[default]) for default, sequence in found.drawn_from if default in default_of}
    feeding |= {
        (sequence, table, column) for sequence, (table, column, kind) in found.dependents.items() if kind == "i"
    }
    increments = {row[0]: int(row[3]) for row in found.sequences}
    quoted_columns = {(a.table, a.number): a.quoted for a in found.attributes}
    fed = []
    for sequence, table_oid, column in feeding:
        table, relation = found.classes.get(table_oid), found.relations.get(sequence)
        column_name = found.column_name(table_oid, column)
        if (
            (table_oid, column) not in unique_keys
            or sequence not in increments
            or None in (table, relation, column_name)
        ):
            continue
        assert table is not None and relation is not None
        fed.append(
            _Fed(
                sequence,
                table_oid,
                column,
                relation.name,
                f"{table.name}.{column_name}",
                increments[sequence],
                f"{relation.schema}.{relation.quoted}",
                f"{table.schema}.{table.quoted}",
                quoted_columns[(table_oid, column)],
                table.row_security,
                table.forced_row_security,
                table.owner,
            )
        )
    return sorted(fed, key=lambda f: (f.name.encode(), f.column_name.encode()))


def _snapshot(connection: Queryable, oids: dict[str, int]) -> Snapshot:
    return _read(connection, oids)[0]


def _read(connection: Queryable, oids: dict[str, int]) -> tuple[Snapshot, list[_Fed]]:
    """The snapshot of the tables of ``oids``, and the sequences feeding their unique columns."""
    if not oids:
        # None of the tables exists (a first install): every query below reads only what hangs off them.
        # Skipped, a new session spares the server its catalog queries planned with its caches cold.
        return Snapshot(), []
    params = _ids(oids.values())
    found = _rows(connection, oids)
    snap = Snapshot()
    for relation in [*_tables(found), *_indexes(found), *_constraints(found), *_sequences(found)]:
        snap.add(relation)
    # Each query a new session plans and runs costs the server a millisecond or two, and most schemas have
    # no rules, policies, triggers of their own or types past PostgreSQL's built-in ones: those queries run
    # only where the tables show some.
    rules = any(table.has_rules for table in found.classes.values())
    policies = bool(fetch(connection, _WITH_POLICIES, params))
    triggers = bool(fetch(connection, _WITH_TRIGGERS, params))
    user_types = any(a.type_oid >= _FIRST_UNPINNED_OID for a in found.attributes if a.table in found.classes)
    for name, table, permissive, command, roles, using, check in (
        fetch(connection, _POLICIES, params) if policies else ()
    ):
        using, check = (None if e is None else neutral(e) for e in (using, check))
        snap.add(PolicyInfo(name, table, permissive, command, tuple(roles), using, check))
    for name, table, definition, enabled, qualified, function, visible_schema in (
        fetch(connection, _TRIGGERS, params) if triggers else ()
    ):
        snap.add(TriggerInfo(name, table, _unqualified(definition, qualified, table), enabled))
        if function is not None:
            if visible_schema:  # named as the search path finds it; one it does not find keeps its schema
                function = function.replace(f"FUNCTION {visible_schema}", "FUNCTION ", 1)
            snap.add(FunctionInfo.of(function.rstrip("\n")))
    for name, table, definition, enabled, qualified in fetch(connection, _RULES, params) if rules else ():
        snap.add(RuleInfo(name, table, _unqualified(definition, qualified, table), enabled))
    types = fetch(connection, _TYPES, params) if user_types else []
    for name, kind, labels, base, collation, default, not_null, checks in types:
        definition = type_definition(name, kind, labels, base, collation, default, not_null, checks)
        snap.add(TypeInfo(name, definition, tuple(labels) if kind == "e" else None))
    return snap, _feeding(found)


def read(connection: Queryable, tables: Sequence[str], expected: Iterable[Snapshot]) -> Snapshot:
    """The live catalog of ``tables``, each default spelled as ``expected`` spells it where it means the same
    (see :func:`align_defaults`): what the drift check and the take-over compare."""
    return patiently(
        connection,
        tables,
        lambda: align_defaults(connection, expected, _snapshot(connection, table_oids(connection, tables))),
    )


@dataclass(frozen=True)
class Survey:
    """Everything the drift check reads from the database, in one pass."""

    snapshot: Snapshot  # as :func:`read` gives it
    positions: list[SequencePosition]
    search_path: list[str]
    resolutions: dict[str, Resolution]  # where the search path finds each of our tables and the version table


def survey(
    connection: Queryable,
    tables: Sequence[str],
    expected: Snapshot,
    version_table: str,
    *,
    excluding: Callable[[dict[str, Resolution]], Iterable[str]] = lambda _found: (),
) -> Survey:
    """What the check compares; of the tables ``excluding`` names, given where the search path finds each
    (tables found where they do not belong), only where they are."""

    def read() -> Survey:
        path, resolutions = resolve(connection, [*tables, version_table])
        left_out = set(excluding(resolutions))
        oids = table_oids(connection, [table for table in tables if table not in left_out])
        found, fed = _read(connection, oids)
        return Survey(align_defaults(connection, [expected], found), _positions(connection, fed), path, resolutions)

    return patiently(connection, tables, read)


@dataclass(frozen=True)
class SequencePosition:
    """Where a sequence feeding a unique column stands against the values that column already holds."""

    sequence: str
    column: str  # "table.column"
    increment: int
    next_value: int | None  # what nextval() returns next; None: this role may not read it (see ``grant``)
    largest: int | None  # the column's largest value (smallest, for a descending sequence); None: empty
    #: Row-level security hides rows of the table from this role: ``largest`` was not read.
    hidden: bool = False
    #: What this role lacks to read the position, as the GRANT that gives it; None when it was read.
    grant: str | None = None

    @property
    def behind(self) -> bool:
        """Whether the next value is one the column may already hold: the next insert would fail."""
        if self.largest is None or self.hidden or self.next_value is None:
            return False
        return self.next_value <= self.largest if self.increment > 0 else self.next_value >= self.largest


# What this role may read of each sequence and column (else: the GRANT it needs), and whether it owns each
# table (row-level security does not apply to a table's owner, unless forced).
_ACCESS = """
    SELECT f.sequence, f.rel, f.col, has_sequence_privilege(f.sequence, 'SELECT'),
           has_column_privilege(f.rel, f.col, 'SELECT'), pg_has_role(f.owner, 'USAGE'), quote_ident(current_user)
    FROM unnest(CAST(CAST(%(sequences)s AS text[]) AS oid[]), CAST(CAST(%(tables)s AS text[]) AS oid[]),
                CAST(CAST(%(columns)s AS text[]) AS int2[]), CAST(CAST(%(owners)s AS text[]) AS oid[]))
         AS f(sequence, rel, col, owner)
"""

_BYPASSES_ROW_SECURITY = "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user"


def _positions(connection: Queryable, fed: list[_Fed]) -> list[SequencePosition]:
    """For each sequence feeding a unique column: its next value and the column's largest.

    Needs only SELECT on the sequences and tables (``pg_read_all_data`` will do); the largest value
    comes from the unique index, so this reads one index entry per column, not the table.
    """
    if not fed:
        return []
    params = {
        "sequences": [str(f.sequence) for f in fed],
        "tables": [str(f.table) for f in fed],
        "columns": [str(f.column) for f in fed],
        "owners": [str(f.owner) for f in fed],
    }
    access = {(int(s), int(t), int(c)): rest for s, t, c, *rest in fetch(connection, _ACCESS, params)}
    secured = any(f.row_security for f in fed)
    bypasses = secured and bool(fetch(connection, _BYPASSES_ROW_SECURITY, {})[0][0])
    positions = []
    for f in fed:
        sequence_readable, column_readable, owns, role = access[(f.sequence, f.table, f.column)]
        hidden = f.row_security and (f.forced_row_security or not owns) and not bypasses
        if not (sequence_readable and column_readable):
            grant = "; ".join(
                ([] if sequence_readable else [f"GRANT SELECT ON SEQUENCE {f.sequence_sql} TO {role}"])
                + ([] if column_readable else [f"GRANT SELECT ({f.column_sql}) ON {f.table_sql} TO {role}"])
            )
            positions.append(SequencePosition(f.name, f.column_name, f.increment, None, None, hidden, grant))
            continue
        extreme = "max" if f.increment > 0 else "min"
        largest_sql = "NULL" if hidden else f"(SELECT {extreme}({f.column_sql}) FROM {f.table_sql})"
        sql = _literal_percent(f"SELECT last_value, is_called, {largest_sql} FROM {f.sequence_sql}")
        last, called, largest = fetch(connection, sql, {})[0]
        next_value = int(last) + f.increment if called else int(last)
        largest = None if largest is None else int(largest)
        positions.append(SequencePosition(f.name, f.column_name, f.increment, next_value, largest, hidden))
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
