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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from outbound_schema.keywords import literal, neutral, quote

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]

#: The host application's tables that our foreign keys reference. We never
#: create, alter, drop or compare them in a real database.
HOST_TABLES: tuple[str, ...] = ("business", "leads", "call_log", "outbound_lead_lists")


# Each kind of object is described once, by its class: what it is (its fields), how it is keyed,
# compared and said in one line, how the expected-schema file writes it and reads it back, and how
# the drift check words a difference. ``KINDS`` lists them by kind; the file (outbound_schema.expected),
# the drift check and the take-over all go through it. A table's or a column's attributes are each
# a ``Setting``: adding one is a field, its Setting and a column of the catalog query.

#: A name as the file writes it: quoted, or bare.
IDENT = r'(?:"(?:[^"]|"")*"|[^\s".(),;]+)'


def unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def one_line(definition: str) -> str:
    """A definition on one line of the file, however PostgreSQL laid it out (a CASE, a subquery):
    line breaks and backslashes escaped as \\n, \\r and \\\\; the file's reader undoes exactly that."""
    return definition.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _list(items: Iterable[str]) -> str:
    listed = ", ".join(items)
    return f"({listed})" if listed else "none"


#: What a drift verdict other than ok, different or missing says: the verdict, and its detail.
Problem = tuple[str, str]


class CatalogKind:
    """What every kind of object says about itself; each class below is one kind."""

    KIND: ClassVar[str]
    FIELD: ClassVar[str]  # the Snapshot dict holding them
    #: The file's statements that create one (matched against a whole statement).
    STATEMENTS: ClassVar[tuple[re.Pattern[str], ...]] = ()
    #: The kinds written, listed and compared as parts of each object of this one (a table's columns).
    PARTS: ClassVar[tuple[str, ...]] = ()
    #: One missing under its name and found under another with the same value is reported "renamed".
    RENAMES: ClassVar[bool] = False
    #: Its name is a relation's (pg_class): another relation may have taken it.
    RELATION: ClassVar[bool] = False
    #: Of the schema, not of one table, read through our tables: compared only when one of them exists.
    THROUGH_TABLES: ClassVar[bool] = False
    #: May belong to no table of ours (a sequence owned by none, or by a host table): written after them.
    LOOSE: ClassVar[bool] = False
    EXTRA: ClassVar[str] = "extra, not created by any revision: "

    name: str

    @property
    def key(self) -> str:
        return self.name

    def on(self) -> str:
        """The table it belongs to ("" for none of ours)."""
        return ""

    def value(self) -> object:
        """What it is, for comparison; its key says which one it is."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def differences(self, have: Any) -> str:
        """What differs in ``have``, found under this one's key, in words an operator acts on."""
        return f"is {have.describe()}, expected {self.describe()}"

    def problem(self) -> Problem | None:
        """What is wrong with it as it is, whatever the revisions say (an INVALID index)."""
        return None

    @property
    def finished(self) -> bool:
        """False for an object a run started and did not finish: an INVALID index, a NOT VALID constraint."""
        return True

    def listed(self) -> bool:
        """Whether it is an object of its own (not another's part, like a constraint's index)."""
        return True

    def statements(self) -> list[str]:
        """Its lines in the file."""
        raise NotImplementedError

    @classmethod
    def members(cls, snap: Snapshot, every: bool = False) -> Iterator[CatalogObject]:
        for key, obj in getattr(snap, cls.FIELD).items():
            if every or obj.listed():
                yield CatalogObject(cls.KIND, key, obj.on(), obj.value(), obj)

    @classmethod
    def shown(cls, key: str) -> str:
        """Its key as reports show it."""
        return key

    @classmethod
    def from_statement(cls, match: re.Match[str], lines: Iterator[str]) -> CatalogKind:
        raise NotImplementedError

    @classmethod
    def from_action(cls, snap: Snapshot, table: str, action: str) -> bool:
        """Apply ``ALTER TABLE table action`` of the file if it is about this kind; whether it was."""
        return False

    @classmethod
    def parsed(cls, snap: Snapshot) -> None:
        """Complete the objects of this kind once the whole file is read."""


# A table's or a column's attributes, and how the file writes each as ALTER TABLE actions.


@dataclass(frozen=True)
class _Flag:
    words: str  # written when on

    def actions(self, value: bool) -> list[str]:
        return [self.words] if value else []

    def read(self, value: bool, action: str) -> bool | None:
        return True if action == self.words else None


@dataclass(frozen=True)
class _Value:
    words: str  # written with the value, unless it is the default
    default: str

    def actions(self, value: str) -> list[str]:
        return [] if value == self.default else [f"{self.words} {value}"]

    def read(self, value: str, action: str) -> str | None:
        return action.removeprefix(f"{self.words} ") if action.startswith(f"{self.words} ") else None


@dataclass(frozen=True)
class _Each:
    words: str  # written with each item

    def actions(self, value: tuple[str, ...]) -> list[str]:
        return [f"{self.words} {item}" for item in value]

    def read(self, value: tuple[str, ...], action: str) -> tuple[str, ...] | None:
        return (*value, action.removeprefix(f"{self.words} ")) if action.startswith(f"{self.words} ") else None


def _as_read(*values: Any) -> tuple[Any, ...]:
    return values


def _tupled(value: Sequence[str]) -> tuple[tuple[str, ...]]:
    return (tuple(value),)


@dataclass(frozen=True)
class Setting:
    """One attribute of a table or a column (or a few said together), described once."""

    fields: tuple[str, ...]  # compared as they are
    text: Callable[[Any], str | None]  # its words in the one-line description; None: nothing to say
    differs: Callable[[Any, Any], str]  # (expected, found), when its fields differ: what differs, and why it matters
    #: Its words in the column's line of the file (a column's); None: it has none.
    clause: Callable[[Any], str | None] | None = None
    #: Undoing ``clause``: the line's end -> (what comes before, its fields' values).
    take: Callable[[str], tuple[str, tuple[Any, ...]]] | None = None
    written: _Flag | _Value | _Each | None = None  # its ALTER TABLE actions in the file
    written_at: int = 0  # their place among the table's actions (the files stay as they have been written)
    load: Callable[..., tuple[Any, ...]] = _as_read  # the catalog query's columns -> its fields' values
    sep: str = " "  # before its words in a column's description

    def values(self, obj: object) -> tuple[Any, ...]:
        return tuple(getattr(obj, f) for f in self.fields)

    def actions(self, obj: object) -> list[str]:
        return [] if self.written is None else self.written.actions(getattr(obj, self.fields[0]))

    def read(self, obj: _O, action: str) -> _O | None:
        """``obj`` with ``action`` of the file applied, if it is this setting's."""
        if self.written is None:
            return None
        value = self.written.read(getattr(obj, self.fields[0]), action)
        return None if value is None else replace(obj, **{self.fields[0]: value})  # type: ignore[type-var]


_O = TypeVar("_O")


def _loaded(settings: Sequence[Setting], raw: Sequence[Any]) -> dict[str, Any]:
    """The fields of ``settings`` from the catalog query's columns, in the settings' order."""
    values: dict[str, Any] = {}
    at = 0
    for setting in settings:
        values.update(zip(setting.fields, setting.load(*raw[at : at + len(setting.fields)]), strict=True))
        at += len(setting.fields)
    return values


def _generation(column: ColumnInfo) -> str:
    if column.generated:
        return f"generated ALWAYS AS ({column.default}) {column.generated}"
    if column.identity:
        return f"an identity column GENERATED {column.identity}"
    return f"a plain column{f' with DEFAULT {column.default}' if column.default else ''}"


def _generation_clause(column: ColumnInfo) -> str | None:
    parts = []
    if column.generated is not None:
        parts.append(f"GENERATED ALWAYS AS ({column.default}) {column.generated}")
    elif column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if column.identity is not None:
        parts.append(f"GENERATED {column.identity} AS IDENTITY")
    return " ".join(parts) or None


_IDENTITY = re.compile(r" GENERATED (ALWAYS|BY DEFAULT) AS IDENTITY$", re.S)
_GENERATED = re.compile(r" GENERATED ALWAYS AS \((.*)\) (STORED|VIRTUAL)$", re.S)


def _take_generation(rest: str) -> tuple[str, tuple[str | None, str | None, str | None]]:
    identity = generated = default = None
    if found := _IDENTITY.search(rest):
        identity, rest = found.group(1), rest[: found.start()]
    if found := _GENERATED.search(rest):
        default, generated, rest = found.group(1), found.group(2), rest[: found.start()]
    elif " DEFAULT " in rest:
        rest, default = rest.split(" DEFAULT ", 1)
    return rest, (default, generated, identity)


def _generation_differs(want: ColumnInfo, have: ColumnInfo) -> str:
    if (have.generated, have.identity) != (want.generated, want.identity):
        return f"is {_generation(have)}, expected {_generation(want)}"
    if have.default is None:
        return f"has no default, expected DEFAULT {want.default}: inserts that omit it store NULL"
    if want.default is None:
        return f"has DEFAULT {have.default}, expected none"
    return f"has DEFAULT {have.default}, expected DEFAULT {want.default}"


def _take_collation(rest: str) -> tuple[str, tuple[str | None]]:
    if " COLLATE " in rest:
        rest, collation = rest.split(" COLLATE ", 1)
        return rest, (collation,)
    return rest, (None,)


def _collation(column: ColumnInfo) -> str | None:
    return None if column.collation is None else f"COLLATE {column.collation}"


def _type(column: ColumnInfo) -> str:
    return column.type


@dataclass(frozen=True)
class ColumnInfo(CatalogKind):
    KIND = "column"
    FIELD = ""  # its table's

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

    #: In the order of the column's line in the file (CREATE TABLE's), and of the catalog query.
    SETTINGS: ClassVar[tuple[Setting, ...]] = (
        Setting(
            ("type",),
            _type,
            lambda want, have: f"has type {have.type}, expected {want.type}",
            clause=_type,
            take=lambda rest: ("", (rest,)),
        ),
        Setting(
            ("collation",),
            _collation,
            lambda want, have: (
                f"has collation {have.collation or 'default'}, expected {want.collation or 'the default'}: "
                "sorting, comparisons and the indexes on it follow the collation"
            ),
            clause=_collation,
            take=_take_collation,
        ),
        Setting(
            ("nullable",),
            lambda column: "NULL" if column.nullable else "NOT NULL",  # said: "integer NULL" reads better
            lambda want, have: (
                "allows NULL, expected NOT NULL"
                if have.nullable
                else "is NOT NULL, expected to allow NULL: writes that leave it empty now fail"
            ),
            clause=lambda column: None if column.nullable else "NOT NULL",
            take=lambda rest: (rest.removesuffix(" NOT NULL"), (not rest.endswith(" NOT NULL"),)),
        ),
        Setting(
            ("default", "generated", "identity"),
            _generation_clause,
            _generation_differs,
            clause=_generation_clause,
            take=_take_generation,
            load=lambda default, generated, identity: (
                None if default is None else neutral(default),
                generated,
                identity,
            ),
        ),
        Setting(
            ("options",),
            lambda column: f"SET {', '.join(column.options)}" if column.options else None,
            lambda want, have: f"has SET {_list(have.options)}, expected {_list(want.options)}",
            written=_Each("SET"),
            load=_tupled,
            sep=", ",
        ),
    )

    def value(self) -> tuple[Any, ...]:
        return _VALUES[type(self)](self)

    def definition(self) -> str:
        """Type, collation, nullability and default, as in CREATE TABLE."""
        clauses = (setting.clause(self) for setting in self.SETTINGS if setting.clause is not None)
        return " ".join(clause for clause in clauses if clause)

    def describe(self) -> str:
        described = ""
        for setting in self.SETTINGS:
            if words := setting.text(self):
                described += f"{setting.sep if described else ''}{words}"
        return described

    def differences(self, have: ColumnInfo) -> str:
        return "; ".join(s.differs(self, have) for s in self.SETTINGS if s.values(have) != s.values(self))

    def line(self) -> str:
        return f"    {quote(self.name)} {one_line(self.definition())}"

    def actions(self) -> list[str]:
        return [f"ALTER COLUMN {quote(self.name)} {a}" for setting in self.SETTINGS for a in setting.actions(self)]

    @classmethod
    def from_row(cls, name: str, raw: Sequence[Any]) -> ColumnInfo:
        return cls(name, **_loaded(cls.SETTINGS, raw))

    @classmethod
    def from_line(cls, line: str) -> ColumnInfo:
        match = _COLUMN.match(line)
        if not match:
            raise ValueError(f"not a column: {line!r}")
        rest, values = match.group(2), dict[str, Any]()
        for setting in reversed(cls.SETTINGS):
            if setting.take is not None:
                rest, taken = setting.take(rest)
                values.update(zip(setting.fields, taken, strict=True))
        return cls(unquote(match.group(1)), **values)


_COLUMN = re.compile(rf"^    ({IDENT}) (.+?),?$", re.S)
_CREATE_TABLE = re.compile(rf"^CREATE (UNLOGGED )?TABLE ({IDENT}) \($", re.S)
_TABLE_END = re.compile(r"^\)(?: WITH \((.*)\))?;$", re.S)
_EMPTY_TABLE = re.compile(rf"^CREATE (UNLOGGED )?TABLE ({IDENT}) \(\)(?: WITH \((.*)\))?;$", re.S)
_ALTER_COLUMN = re.compile(rf"^ALTER COLUMN ({IDENT}) (.+)$", re.S)


def _storage_parameters(raw: str | None) -> tuple[str, ...]:
    return tuple(sorted(o.strip() for o in raw.split(","))) if raw else ()


@dataclass(frozen=True)
class TableInfo(CatalogKind):
    KIND = "table"
    FIELD = "tables"
    PARTS = ("column",)
    RELATION = True
    EXTRA = "extra: "
    STATEMENTS = (_EMPTY_TABLE, _CREATE_TABLE)

    name: str
    columns: tuple[ColumnInfo, ...]
    unlogged: bool = False
    options: tuple[str, ...] = ()  # storage parameters, as reloptions holds them ("fillfactor=70")
    row_security: bool = False
    force_row_security: bool = False
    replica_identity: str = "DEFAULT"  # DEFAULT, FULL, NOTHING or USING INDEX <name>
    parents: tuple[str, ...] = ()  # tables it inherits from (its rows show in theirs)
    children: tuple[str, ...] = ()  # tables inheriting from it, partitions included (their rows show in its)

    #: In the order of the description, of the file's ALTER TABLE actions and of the catalog query.
    #: Logged or not, and the storage parameters, are written in the CREATE TABLE statement itself.
    SETTINGS: ClassVar[tuple[Setting, ...]] = (
        Setting(
            ("unlogged",),
            lambda table: "UNLOGGED" if table.unlogged else "logged",
            lambda want, have: (
                "is UNLOGGED: PostgreSQL empties it after a crash and does not replicate it to standbys "
                f"(ALTER TABLE {quote(want.name)} SET LOGGED makes it durable again)"
                if have.unlogged
                else "is logged, expected UNLOGGED"
            ),
        ),
        Setting(
            ("options",),
            lambda table: f"WITH ({', '.join(table.options)})" if table.options else "no storage parameters",
            lambda want, have: f"has storage parameters {_list(have.options)}, expected {_list(want.options)}",
            load=lambda options: (tuple(sorted(options)),),
        ),
        Setting(
            ("row_security",),
            lambda table: None if table.force_row_security else f"row security {'on' if table.row_security else 'off'}",
            lambda want, have: (
                "has row-level security enabled: every role but the owner and BYPASSRLS roles now reads and "
                "writes only the rows a policy allows, none without one "
                f"(ALTER TABLE {quote(want.name)} DISABLE ROW LEVEL SECURITY)"
                if have.row_security
                else "has row-level security disabled, expected enabled: its policies are not applied"
            ),
            written=_Flag("ENABLE ROW LEVEL SECURITY"),
            written_at=3,
        ),
        Setting(
            ("force_row_security",),
            lambda table: "row security forced" if table.force_row_security else None,
            lambda want, have: (
                "forces row-level security on its owner too"
                if have.force_row_security
                else "no longer forces row-level security on its owner"
            ),
            written=_Flag("FORCE ROW LEVEL SECURITY"),
            written_at=4,
        ),
        Setting(
            ("replica_identity",),
            lambda table: None if table.replica_identity == "DEFAULT" else f"replica identity {table.replica_identity}",
            lambda want, have: (
                f"has REPLICA IDENTITY {have.replica_identity}, expected {want.replica_identity}: logical "
                "replication and change capture send other old-row values (or refuse updates and deletes)"
            ),
            written=_Value("REPLICA IDENTITY", "DEFAULT"),
            written_at=2,
        ),
        Setting(
            ("parents",),
            lambda table: f"inherits from {', '.join(table.parents)}" if table.parents else None,
            lambda want, have: f"inherits from {_list(have.parents)}, expected {_list(want.parents)}",
            written=_Each("INHERIT"),
            written_at=1,
            load=_tupled,
        ),
        Setting(  # not in the file: the tables naming it their parent
            ("children",),
            lambda table: f"inherited by {', '.join(table.children)}" if table.children else None,
            lambda want, have: (
                f"is inherited by {_list(have.children)}, expected {_list(want.children)}: "
                "queries on it also read the rows of its children"
            ),
            load=_tupled,
        ),
    )

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)

    def on(self) -> str:
        return self.name

    def settings(self) -> tuple[Any, ...]:
        """The table's own settings, apart from its columns."""
        return _VALUES[type(self)](self)

    value = settings

    def describe(self) -> str:
        return ", ".join(words for setting in self.SETTINGS if (words := setting.text(self)))

    def differences(self, have: TableInfo) -> str:
        return "; ".join(s.differs(self, have) for s in self.SETTINGS if s.values(have) != s.values(self))

    def statements(self) -> list[str]:
        on = quote(self.name)
        options = f" WITH ({', '.join(self.options)})" if self.options else ""
        head = f"CREATE {'UNLOGGED ' if self.unlogged else ''}TABLE {on} ("
        body = [column.line() for column in self.columns]
        lines = [head, ",\n".join(body), f"){options};"] if body else [f"{head}){options};"]
        actions = [a for column in self.columns for a in column.actions()]
        actions += [a for s in sorted(self.SETTINGS, key=lambda s: s.written_at) for a in s.actions(self)]
        return lines + [f"ALTER TABLE {on} {action};" for action in actions]

    @classmethod
    def members(cls, snap: Snapshot, every: bool = False) -> Iterator[CatalogObject]:
        for name, table in snap.tables.items():
            yield CatalogObject(cls.KIND, name, name, table.value(), table)
            for column in table.columns:
                yield CatalogObject(ColumnInfo.KIND, f"{name}.{column.name}", name, column.value(), column)

    @classmethod
    def from_row(cls, name: str, columns: Sequence[ColumnInfo], raw: Sequence[Any]) -> TableInfo:
        return cls(name, tuple(columns), **_loaded(cls.SETTINGS, raw))

    @classmethod
    def from_statement(cls, match: re.Match[str], lines: Iterator[str]) -> TableInfo:
        unlogged, name = bool(match.group(1)), unquote(match.group(2))
        if match.re is _EMPTY_TABLE:
            return cls(name, (), unlogged, _storage_parameters(match.group(3)))
        columns = []
        while not (end := _TABLE_END.match(body := next(lines))):
            columns.append(_column_line(body))
        return cls(name, tuple(columns), unlogged, _storage_parameters(end.group(1)))

    @classmethod
    def from_action(cls, snap: Snapshot, table: str, action: str) -> bool:
        found = snap.tables[table]
        if match := _ALTER_COLUMN.match(action):
            column, rest = unquote(match.group(1)), match.group(2)
            columns = [_read(c, c.SETTINGS, rest) if c.name == column else c for c in found.columns]
            kept = [c for c in columns if c is not None]
            if len(kept) < len(columns):
                return False
            snap.tables[table] = replace(found, columns=tuple(kept))
            return True
        if (changed := _read(found, cls.SETTINGS, action)) is not None:
            snap.tables[table] = changed
        return changed is not None

    @classmethod
    def parsed(cls, snap: Snapshot) -> None:
        """A table's children are the tables naming it their parent."""
        for table in list(snap.tables.values()):
            children = tuple(sorted(quote(t.name) for t in snap.tables.values() if quote(table.name) in t.parents))
            snap.tables[table.name] = replace(table, children=children)


#: Every setting's fields at once, by class: what a table or a column is.
_VALUES = {kind: attrgetter(*(f for s in kind.SETTINGS for f in s.fields)) for kind in (ColumnInfo, TableInfo)}
#: A column's line reads the same in every revision's file that holds it: read once.
_column_line = lru_cache(maxsize=4096)(ColumnInfo.from_line)


def _read(obj: _O, settings: Sequence[Setting], action: str) -> _O | None:
    """``obj`` (a table or a column) with ``action`` of the file applied; None if none of its settings reads it."""
    return next((changed for setting in settings if (changed := setting.read(obj, action)) is not None), None)


_INDEX = re.compile(rf"^CREATE (UNIQUE )?INDEX ({IDENT}) ON ({IDENT}) USING (.+);( -- INVALID)?$", re.S)


@dataclass(frozen=True)
class IndexInfo(CatalogKind):
    KIND = "index"
    FIELD = "indexes"
    RENAMES = True
    RELATION = True
    STATEMENTS = (_INDEX,)

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

    def on(self) -> str:
        return self.table

    def value(self) -> tuple[str, bool, str]:
        """What the index is, whatever its name and validity."""
        return (self.table, self.unique, self.using)

    def describe(self) -> str:
        keys = self.using[len(self.method) + 1 :]
        described = f"{'UNIQUE ' if self.unique else ''}{self.method} on {self.table} {keys}"
        return described if self.valid else f"{described}, INVALID (left by a failed concurrent build)"

    def problem(self) -> Problem | None:
        if self.valid:
            return None
        return (
            "invalid",
            "is INVALID, left by a concurrent build that failed or was interrupted: queries do not use it, yet "
            f"every write maintains it. Drop it (DROP INDEX CONCURRENTLY {quote(self.name)}) and build it again "
            f"({self.definition.replace('INDEX', 'INDEX CONCURRENTLY', 1)})",
        )

    @property
    def finished(self) -> bool:
        return self.valid

    def listed(self) -> bool:
        return self.constraint is None  # the constraint's own index is the constraint

    def statements(self) -> list[str]:
        return [f"{one_line(self.definition)};{'' if self.valid else ' -- INVALID'}"]

    @classmethod
    def from_statement(cls, match: re.Match[str], lines: Iterator[str]) -> IndexInfo:
        unique, index, on, using, invalid = match.groups()
        return cls(unquote(index), unquote(on), bool(unique), using, not invalid)


_ADD_CONSTRAINT = re.compile(rf"^ADD CONSTRAINT ({IDENT}) (.+)$", re.S)
_CONSTRAINT_KIND = {"PRIMARY KEY": "p", "FOREIGN KEY": "f", "UNIQUE": "u", "CHECK": "c", "EXCLUDE": "x"}
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


@dataclass(frozen=True)
class ConstraintInfo(CatalogKind):
    KIND = "constraint"
    FIELD = "constraints"
    RENAMES = True

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

    finished = validated  # added NOT VALID and not yet validated (a run stopped between the two)

    def on(self) -> str:
        return self.table

    def value(self) -> tuple[str, str, str]:
        """What the constraint is, whatever its name and whether it has been validated yet."""
        return (self.table, self.kind, self.definition.removesuffix(" NOT VALID"))

    def describe(self) -> str:
        described = f"{self.definition} on {self.table}"
        return described if self.enforced else f"{described}, NOT ENFORCED (its triggers are disabled)"

    def differences(self, have: ConstraintInfo) -> str:
        if (have.table, have.kind) != (self.table, self.kind):
            return f"is {have.describe()}, expected {self.describe()}"
        cores, clauses = [], []
        for definition in (self.value()[2], have.value()[2]):
            found = {}
            for label, pattern in _CLAUSES:
                match = pattern.search(definition)
                if match:
                    found[label] = match.group(0).strip()
                    definition = definition.replace(match.group(0), "", 1)
            cores.append(definition)
            clauses.append(found)
        if cores[0] != cores[1]:
            return f"is {have.definition}, expected {self.definition}"
        said = [
            f"is {clauses[1].get(label, _DEFAULT_CLAUSE[label])}, "
            f"expected {clauses[0].get(label, _DEFAULT_CLAUSE[label])}"
            for label, _ in _CLAUSES
            if clauses[0].get(label) != clauses[1].get(label)
        ]
        return "; ".join(said)

    def problem(self) -> Problem | None:
        if not self.enforced:
            return (
                "disabled",
                f"is not enforced: the triggers that enforce it are disabled on {', '.join(self.disabled_on)} "
                "(ALTER TABLE … DISABLE TRIGGER ALL), so rows written meanwhile were never checked. Re-enable them ("
                + "; ".join(f"ALTER TABLE {table} ENABLE TRIGGER ALL" for table in self.disabled_on)
                + "), then find the rows that break it",
            )
        if not self.validated:
            return (
                "invalid",
                f"is NOT VALID: new rows are checked but the rows that existed when it was added never were "
                f"(ALTER TABLE {quote(self.table)} VALIDATE CONSTRAINT {quote(self.name)} checks them without "
                "blocking writes)",
            )
        return None

    def statements(self) -> list[str]:
        return [f"ALTER TABLE {quote(self.table)} ADD CONSTRAINT {quote(self.name)} {one_line(self.definition)};"]

    @classmethod
    def from_action(cls, snap: Snapshot, table: str, action: str) -> bool:
        if not (match := _ADD_CONSTRAINT.match(action)):
            return False
        name, definition = unquote(match.group(1)), match.group(2)
        kind = next((k for prefix, k in _CONSTRAINT_KIND.items() if definition.startswith(prefix)), "?")
        snap.constraints[name] = cls(name, table, kind, definition)
        return True


_SEQUENCE = re.compile(
    rf"^CREATE (UNLOGGED )?SEQUENCE ({IDENT}) AS (.+) START WITH (-?\d+) INCREMENT BY (-?\d+) MINVALUE (-?\d+) "
    rf"MAXVALUE (-?\d+) CACHE (\d+) (NO )?CYCLE OWNED BY (NONE|{IDENT}\.{IDENT});$",
    re.S,
)
_OWNER = re.compile(rf"({IDENT})\.({IDENT})")


@dataclass(frozen=True)
class SequenceInfo(CatalogKind):
    KIND = "sequence"
    FIELD = "sequences"
    RELATION = True
    LOOSE = True
    STATEMENTS = (_SEQUENCE,)

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

    def on(self) -> str:
        """The table owning it goes with it; one owned elsewhere (a host table) or by none stays."""
        return self.owned_by.split(".")[0] if self.owned_by else ""

    def value(self) -> tuple[str | None, dict[str, object]]:
        return (self.owned_by, self.options())

    def describe(self) -> str:
        owner = f"owned by {self.owned_by}" if self.owned_by else "owned by no column"
        options = f"start {self.start}, increment {self.increment}"
        if (self.minimum, self.maximum, self.cache, self.cycle) != _default_sequence_options(self.type, self.increment):
            options += f", min {self.minimum}, max {self.maximum}, cache {self.cache}{', cycle' if self.cycle else ''}"
        return f"{'UNLOGGED ' if self.unlogged else ''}{self.type} sequence {owner}, {options}"

    def differences(self, have: SequenceInfo) -> str:
        said = []
        if have.owned_by != self.owned_by:
            if have.owned_by is None:
                said.append(
                    f"is no longer owned by {self.owned_by}: it still exists and feeds its default, but dropping "
                    f"that column or table would leave it behind "
                    f"(ALTER SEQUENCE {quote(self.name)} OWNED BY {self.owned_by})"
                )
            else:
                said.append(f"is owned by {have.owned_by}, expected {self.owned_by or 'no column'}")
        expected, found = self.options(), have.options()
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

    def statements(self) -> list[str]:
        owner = "NONE"
        if self.owned_by:
            table, column = self.owned_by.split(".", 1)
            owner = f"{quote(table)}.{quote(column)}"
        return [
            f"CREATE {'UNLOGGED ' if self.unlogged else ''}SEQUENCE {quote(self.name)} AS {self.type} "
            f"START WITH {self.start} INCREMENT BY {self.increment} MINVALUE {self.minimum} "
            f"MAXVALUE {self.maximum} CACHE {self.cache} {'' if self.cycle else 'NO '}CYCLE OWNED BY {owner};"
        ]

    @classmethod
    def from_statement(cls, match: re.Match[str], lines: Iterator[str]) -> SequenceInfo:
        unlogged, name, type_, start, increment, minimum, maximum, cache_, no_cycle, owner = match.groups()
        owned_by = None
        if owner != "NONE":
            if not (split := _OWNER.fullmatch(owner)):
                raise ValueError(f"not table.column: {owner!r}")
            owned_by = f"{unquote(split.group(1))}.{unquote(split.group(2))}"
        return cls(
            unquote(name),
            type_,
            int(start),
            int(increment),
            owned_by,
            int(minimum),
            int(maximum),
            int(cache_),
            not no_cycle,
            bool(unlogged),
        )


def _default_sequence_options(type_: str, increment: int) -> tuple[int, int, int, bool]:
    maximum = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}.get(type_, 0)
    return (1, maximum, 1, False) if increment > 0 else (-maximum - 1, -1, 1, False)


class _OfTable(CatalogKind):
    """Policies, triggers and rules: their names are unique per table only, so they are keyed "table.name"."""

    table: str

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"

    def on(self) -> str:
        return self.table

    @classmethod
    def shown(cls, key: str) -> str:
        table, _, name = key.partition(".")
        return f"{name} on {table}"


_POLICY = re.compile(rf"^CREATE POLICY ({IDENT}) ON ({IDENT}) AS (PERMISSIVE|RESTRICTIVE) FOR (\w+) TO (.+);$", re.S)


def _closing(text: str, opening: int) -> int:
    """The index of the parenthesis closing the one at ``opening``, skipping quoted text."""
    depth, quote_char = 0, ""
    for at in range(opening, len(text)):
        char = text[at]
        if quote_char:
            quote_char = "" if char == quote_char else quote_char
        elif char in "'\"":
            quote_char = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return at
    raise ValueError(f"unbalanced parentheses: {text!r}")


@dataclass(frozen=True)
class PolicyInfo(_OfTable):
    KIND = "policy"
    FIELD = "policies"
    STATEMENTS = (_POLICY,)

    name: str
    table: str
    permissive: bool
    command: str  # ALL, SELECT, INSERT, UPDATE, DELETE
    roles: tuple[str, ...]  # quoted role names, or ("PUBLIC",)
    using: str | None
    check: str | None

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

    def value(self) -> tuple[str, bool, str, tuple[str, ...], str | None, str | None]:
        return (self.table, self.permissive, self.command, self.roles, self.using, self.check)

    def describe(self) -> str:
        return self.definition.split(" AS ", 1)[1]

    def differences(self, have: PolicyInfo) -> str:
        said = []
        if have.permissive != self.permissive:
            said.append(
                f"is {'PERMISSIVE' if have.permissive else 'RESTRICTIVE'}, expected "
                f"{'PERMISSIVE' if self.permissive else 'RESTRICTIVE'}"
            )
        if have.command != self.command:
            said.append(f"applies to {have.command}, expected {self.command}")
        if have.roles != self.roles:
            said.append(f"applies to roles {', '.join(have.roles)}, expected {', '.join(self.roles)}")
        if have.using != self.using:
            said.append(f"lets rows be seen USING ({have.using}), expected ({self.using})")
        if have.check != self.check:
            said.append(f"lets rows be written WITH CHECK ({have.check}), expected ({self.check})")
        return "; ".join(said)

    def statements(self) -> list[str]:
        return [f"{one_line(self.definition)};"]

    @classmethod
    def from_statement(cls, match: re.Match[str], lines: Iterator[str]) -> PolicyInfo:
        name, table, kind, command, rest = match.groups()
        first = re.search(r" (USING|WITH CHECK) \(", rest)  # roles are names: the first clause starts here
        roles, rest = (rest[: first.start()], rest[first.start() :]) if first else (rest, "")
        clauses: dict[str, str] = {}
        while rest:
            clause = re.match(r" (USING|WITH CHECK) \(", rest)
            if not clause:
                raise ValueError(f"not a policy clause: {rest!r}")
            opening = clause.end() - 1
            closing = _closing(rest, opening)
            clauses[clause.group(1)], rest = rest[opening + 1 : closing], rest[closing + 1 :]
        return cls(
            unquote(name),
            unquote(table),
            kind == "PERMISSIVE",
            command,
            tuple(re.findall(IDENT, roles)),
            clauses.get("USING"),
            clauses.get("WITH CHECK"),
        )


#: pg_trigger.tgenabled and pg_rewrite.ev_enabled: how ALTER TABLE sets each state.
FIRING = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
_FIRED = {words: state for state, words in FIRING.items()}
_FIRING = re.compile(rf"^(DISABLE|ENABLE REPLICA|ENABLE ALWAYS) (TRIGGER|RULE) ({IDENT})$", re.S)
_STATES = {"O": "enabled", "R": "enabled for replication sessions only", "A": "enabled even during replication"}


@dataclass(frozen=True)
class _Fires(_OfTable):
    """A trigger or a rule: a definition on a table, and whether it fires (as ALTER TABLE sets it)."""

    WORD: ClassVar[str]  # as ALTER TABLE ... ENABLE / DISABLE names the kind
    END: ClassVar[str]  # what ends its statement in the file after the definition
    DOES: ClassVar[str]  # what it no longer does when disabled

    name: str
    table: str
    definition: str  # as PostgreSQL deparses it, the table named without its schema
    enabled: str = "O"  # a key of FIRING

    def body(self) -> str:
        """The definition after its name: what it does, whatever it is called."""
        raise NotImplementedError

    def value(self) -> tuple[str, str, str]:
        return (self.table, self.body(), self.enabled)

    def describe(self) -> str:
        state = "" if self.enabled == "O" else f", {FIRING[self.enabled].lower()}d"
        return f"{self.definition.removeprefix('CREATE ').removesuffix(';')}{state}"

    def differences(self, have: _Fires) -> str:
        if have.value()[:2] != self.value()[:2]:
            return f"is {have.describe()}, expected {self.describe()}"
        if have.enabled == "D":
            return f"is disabled: {self.DOES}"
        return f"is {_STATES[have.enabled]}, expected {_STATES.get(self.enabled, 'disabled')}"

    def statements(self) -> list[str]:
        lines = [f"{one_line(self.definition)}{self.END}"]
        if self.enabled != "O":
            lines.append(f"ALTER TABLE {quote(self.table)} {FIRING[self.enabled]} {self.WORD} {quote(self.name)};")
        return lines

    @classmethod
    def from_action(cls, snap: Snapshot, table: str, action: str) -> bool:
        match = _FIRING.match(action)
        if not match or match.group(2) != cls.WORD:
            return False
        objects: dict[str, _Fires] = getattr(snap, cls.FIELD)
        key = f"{table}.{unquote(match.group(3))}"
        objects[key] = replace(objects[key], enabled=_FIRED[match.group(1)])
        return True


@dataclass(frozen=True)
class TriggerInfo(_Fires):
    """A user trigger (constraint triggers of foreign keys are their constraint's); pg_get_triggerdef."""

    KIND = "trigger"
    FIELD = "triggers"
    WORD = "TRIGGER"
    END = ";"
    DOES = "it no longer fires"
    STATEMENTS = (re.compile(rf"^CREATE (?:CONSTRAINT )?TRIGGER ({IDENT}) .*? ON ({IDENT})\s.*;$", re.S),)

    def body(self) -> str:
        return self.definition.split(f" {quote(self.name)} ", 1)[-1]

    @classmethod
    def from_statement(cls, match: re.Match[str], lines: Iterator[str]) -> TriggerInfo:
        return cls(unquote(match.group(1)), unquote(match.group(2)), match.string.removesuffix(";"))


@dataclass(frozen=True)
class RuleInfo(_Fires):
    """A rewrite rule; pg_get_ruledef, on one line up to its actions (its own ";" ends it)."""

    KIND = "rule"
    FIELD = "rules"
    WORD = "RULE"
    END = ""
    DOES = "it no longer rewrites queries"
    STATEMENTS = (re.compile(rf"^CREATE RULE ({IDENT}) AS ON \w+ TO ({IDENT})\s.*;$", re.S),)

    def body(self) -> str:
        return self.definition.split(" AS ", 1)[-1]

    @classmethod
    def from_statement(cls, match: re.Match[str], lines: Iterator[str]) -> RuleInfo:
        return cls(unquote(match.group(1)), unquote(match.group(2)), match.string)


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


_ENUM = re.compile(rf"^CREATE TYPE ((?:{IDENT}\.)?{IDENT}) AS ENUM \((.*)\);$", re.S)
_DOMAIN = re.compile(rf"^CREATE DOMAIN ((?:{IDENT}\.)?{IDENT}) AS .+;$", re.S)
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def _labels(labels: Iterable[str]) -> str:
    return ", ".join(literal(label) for label in labels)


@dataclass(frozen=True)
class TypeInfo(CatalogKind):
    """An enum or a domain one of our columns is of (directly, or as the elements of an array)."""

    KIND = "type"
    FIELD = "types"
    THROUGH_TABLES = True
    STATEMENTS = (_ENUM, _DOMAIN)

    name: str  # as format_type prints it: quoted where needed, qualified where the search path misses it
    definition: str  # CREATE TYPE "x" AS ENUM ('a', 'b') / CREATE DOMAIN "x" AS ..., as the file holds it
    labels: tuple[str, ...] | None = None  # an enum's labels, in their order; None for a domain

    def value(self) -> str:
        return self.definition.split(f" {self.name} AS ", 1)[1]

    def describe(self) -> str:
        if self.labels is not None:
            return f"enum of {', '.join(self.labels)}" if self.labels else "enum of no labels"
        return f"domain over {self.value()}"

    def differences(self, have: TypeInfo) -> str:
        if self.labels is None or have.labels is None:
            return f"is {have.describe()}, expected {self.describe()}"
        added = [label for label in have.labels if label not in self.labels]
        lacking = [label for label in self.labels if label not in have.labels]
        said = []
        if added:
            said.append(f"accepts {_labels(added)}, which no revision added (ALTER TYPE … ADD VALUE)")
        if lacking:
            said.append(f"lacks {_labels(lacking)}, which the revisions created")
        if not said:
            said.append(
                f"orders its labels {', '.join(have.labels)}, expected {', '.join(self.labels)} (it sorts by them)"
            )
        return "; ".join(said)

    def statements(self) -> list[str]:
        return [f"{one_line(self.definition)};"]

    @classmethod
    def from_statement(cls, match: re.Match[str], lines: Iterator[str]) -> TypeInfo:
        definition = match.string.removesuffix(";")
        if match.re is _DOMAIN:
            return cls(match.group(1), definition)
        labels = tuple(label.replace("''", "'") for label in _LITERAL.findall(match.group(2)))
        return cls(match.group(1), definition, labels)


@dataclass(frozen=True)
class FunctionInfo(CatalogKind):
    """A function the triggers of our tables run: what they do is in its body."""

    KIND = "function"
    FIELD = "functions"
    THROUGH_TABLES = True
    STATEMENTS = (re.compile(r"^CREATE OR REPLACE FUNCTION .*;$", re.S),)

    name: str  # as the definition names it: x, "X" or, off the search path, other.x
    definition: str  # pg_get_functiondef, the schema left out if the search path finds it

    @classmethod
    def of(cls, definition: str) -> FunctionInfo:
        head = definition.removeprefix("CREATE OR REPLACE FUNCTION ")
        return cls(head[: _arguments_at(head)], definition)

    def value(self) -> str:
        return self.definition.strip()

    def describe(self) -> str:
        header = self.definition.strip().splitlines()[0].removeprefix("CREATE OR REPLACE FUNCTION ")
        return f"{header}, {len(self.definition.strip().splitlines())} lines"

    def differences(self, have: FunctionInfo) -> str:
        theirs, ours = have.value().splitlines(), self.value().splitlines()
        pairs = enumerate(zip(theirs, ours, strict=False))
        at = next((n for n, (a, b) in pairs if a != b), min(len(theirs), len(ours)))
        found = theirs[at].strip() if at < len(theirs) else "(its end)"
        wanted = ours[at].strip() if at < len(ours) else "(its end)"
        return (
            f"was replaced since the revisions created it (CREATE OR REPLACE FUNCTION): line {at + 1} is "
            f"`{found}`, expected `{wanted}`; the triggers that run it now do what it does"
        )

    def statements(self) -> list[str]:
        return [f"{one_line(self.definition)};"]

    @classmethod
    def from_statement(cls, match: re.Match[str], lines: Iterator[str]) -> FunctionInfo:
        return cls.of(match.string.removesuffix(";"))


#: Every kind, in the order the drift check reports them and the file writes them (a table's parts with it).
KINDS: dict[str, type[CatalogKind]] = {
    kind.KIND: kind
    for kind in (
        TableInfo,
        ColumnInfo,
        ConstraintInfo,
        IndexInfo,
        SequenceInfo,
        PolicyInfo,
        TriggerInfo,
        RuleInfo,
        TypeInfo,
        FunctionInfo,
    )
}


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

    def add(self, obj: CatalogKind) -> None:
        getattr(self, obj.FIELD)[obj.key] = obj


# The comparison the drift check and the take-over share.


@dataclass(frozen=True)
class CatalogObject:
    """One object of the expected or live catalog, comparable by what it is."""

    kind: str  # a key of KINDS
    name: str  # its key: "table.column" for a column, "table.name" for a policy, a trigger, a rule
    table: str  # the table it belongs to, "" for none of ours
    value: object  # what it is, whatever its name
    obj: Any  # the object itself, a CatalogKind of that kind

    @property
    def text(self) -> str:
        return str(self.obj.describe())

    @property
    def valid(self) -> bool:
        return bool(self.obj.finished)


def objects(snap: Snapshot, every: bool = False) -> dict[tuple[str, str], CatalogObject]:
    """Every object of ``snap`` by (kind, key), in KINDS' order (each table followed by its columns);
    ``every``: also those that are another's (a constraint's own index), listed apart from it by no one."""
    return {(o.kind, o.name): o for kind in KINDS.values() if kind.FIELD for o in kind.members(snap, every)}


def same(a: CatalogObject | None, b: CatalogObject | None) -> bool:
    """Whether ``a`` and ``b`` are one object as it is (None: absent), whatever their names."""
    if a is None or b is None:
        return a is b
    return (a.table, a.value) == (b.table, b.value)


def fetch(connection: Queryable, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (psycopg's %(name)s parameters) on either kind of connection."""
    if hasattr(connection, "exec_driver_sql"):
        return [tuple(row) for row in connection.exec_driver_sql(sql, params)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_OIDS = "CAST(CAST(%(oids)s AS text[]) AS oid[])"

_TABLES = f"""
    SELECT c.relname, c.relpersistence = 'u',  -- then as TableInfo.SETTINGS
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
    SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),  -- then as ColumnInfo.SETTINGS
           CASE WHEN a.attcollation <> t.typcollation THEN
               (SELECT quote_ident(collname) FROM pg_collation WHERE oid = a.attcollation) END,
           -- PostgreSQL 18's NOT NULL ... NOT VALID leaves attnotnull set, yet older rows may hold NULL.
           NOT a.attnotnull OR EXISTS (SELECT FROM pg_constraint n WHERE n.conrelid = a.attrelid
               AND n.contype = 'n' AND NOT n.convalidated AND n.conkey = ARRAY[a.attnum]),
           pg_get_expr(d.adbin, d.adrelid),
           CASE a.attgenerated WHEN 's' THEN 'STORED' WHEN 'v' THEN 'VIRTUAL' END,
           CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END,
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
    return _snapshot(connection, table_oids(connection, tables))


def _snapshot(connection: Queryable, oids: dict[str, int]) -> Snapshot:
    params = {"oids": [str(oid) for oid in oids.values()]}
    columns: dict[str, list[ColumnInfo]] = {name: [] for name in oids}
    for table, name, *raw in fetch(connection, _COLUMNS, params):
        columns[table].append(ColumnInfo.from_row(name, raw))
    snap = Snapshot()
    for name, *raw in fetch(connection, _TABLES, params):
        snap.add(TableInfo.from_row(name, columns[name], raw))
    for name, table, unique, definition, valid, owner, quoted, qualified, bare in fetch(connection, _INDEXES, params):
        keys = _index_using(definition, quoted, (qualified, bare))
        snap.add(IndexInfo(name, table, unique, neutral(keys), valid, owner))
    for name, table, kind, definition, disabled_on in fetch(connection, _CONSTRAINTS, params):
        snap.add(ConstraintInfo(name, table, kind, neutral(definition), tuple(disabled_on)))
    for row in fetch(connection, _SEQUENCES, params):
        name, type_, start, increment, minimum, maximum, cache, cycle, owner, unlogged = row
        snap.add(
            SequenceInfo(
                name, type_, int(start), int(increment), owner, int(minimum), int(maximum), int(cache), cycle, unlogged
            )
        )
    for name, table, permissive, command, roles, using, check in fetch(connection, _POLICIES, params):
        using, check = (None if e is None else neutral(e) for e in (using, check))
        snap.add(PolicyInfo(name, table, permissive, command, tuple(roles), using, check))
    for name, table, definition, enabled, qualified, function, visible_schema in fetch(connection, _TRIGGERS, params):
        snap.add(TriggerInfo(name, table, _unqualified(definition, qualified, table), enabled))
        if function is not None:
            if visible_schema:  # named as the search path finds it; one it does not find keeps its schema
                function = function.replace(f"FUNCTION {visible_schema}", "FUNCTION ", 1)
            snap.add(FunctionInfo.of(function.rstrip("\n")))
    for name, table, definition, enabled, qualified in fetch(connection, _RULES, params):
        snap.add(RuleInfo(name, table, _unqualified(definition, qualified, table), enabled))
    for name, kind, labels, base, collation, default, not_null, checks in fetch(connection, _TYPES, params):
        definition = type_definition(name, kind, labels, base, collation, default, not_null, checks)
        snap.add(TypeInfo(name, definition, tuple(labels) if kind == "e" else None))
    return snap


def read(connection: Queryable, tables: Sequence[str], expected: Iterable[Snapshot]) -> Snapshot:
    """The live catalog of ``tables``, each default spelled as ``expected`` spells it where it means the same
    (see :func:`align_defaults`): what the drift check and the take-over compare."""
    return align_defaults(connection, expected, snapshot(connection, tables))


@dataclass(frozen=True)
class Survey:
    """Everything the drift check reads from the database, in one pass."""

    snapshot: Snapshot  # as :func:`read` gives it
    positions: list[SequencePosition]
    search_path: list[str]
    resolutions: dict[str, Resolution]  # where the search path finds each of our tables and the version table


def survey(connection: Queryable, tables: Sequence[str], expected: Snapshot, version_table: str) -> Survey:
    oids = table_oids(connection, tables)
    found = align_defaults(connection, [expected], _snapshot(connection, oids))
    path, resolutions = resolve(connection, [*tables, version_table])
    return Survey(found, _positions(connection, oids), path, resolutions)


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


def _positions(connection: Queryable, oids: dict[str, int]) -> list[SequencePosition]:
    """For each sequence feeding a unique column of the tables of ``oids``: its next value and the column's largest.

    Needs only SELECT on the sequences and tables (``pg_read_all_data`` will do); the largest value
    comes from the unique index, so this reads one index entry per column, not the table.
    """
    fed = fetch(connection, _FED_UNIQUE_COLUMNS, {"oids": [str(oid) for oid in oids.values()]})
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
