"""Tables and their columns: each attribute a ``Setting``, written, read back and compared from it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from outbound_schema.catalog.kind import IDENT, CatalogKind, CatalogObject, _list, one_line, unquote
from outbound_schema.keywords import neutral, quote

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    from outbound_schema.catalog.objects import Snapshot

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]


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


#: A column option's default, as ``ALTER COLUMN ... SET`` puts it back (STORAGE: the type's, from the column).
_OPTION_DEFAULTS = {"STATISTICS": "STATISTICS -1", "COMPRESSION": "COMPRESSION DEFAULT"}


def _option_name(option: str) -> str:
    """STATISTICS, STORAGE, COMPRESSION, or "(" for the attribute options (n_distinct, ...)."""
    return "(" if option.startswith("(") else option.split(" ", 1)[0]


def _option_names(options: str) -> list[str]:
    """The names in ``(n_distinct=100, n_distinct_inherited=-1)``."""
    return [item.split("=", 1)[0].strip() for item in options.strip("()").split(",") if item.strip()]


def _options_differ(want: ColumnInfo, have: ColumnInfo) -> str:
    """Each per-column setting that differs, with the expected one and the ALTER COLUMN that sets it."""
    wanted = {_option_name(o): o for o in want.options}
    found = {_option_name(o): o for o in have.options}
    alter = f"ALTER TABLE {quote(want.table or have.table)} ALTER COLUMN {quote(want.name)}"
    said, fixes = [], []
    for name in dict.fromkeys([*found, *wanted]):
        is_, expected = found.get(name), wanted.get(name)
        if is_ == expected:
            continue
        if name == "(":
            extra = [o for o in _option_names(is_ or "") if o not in _option_names(expected or "")]
            said.append(f"has SET {is_ or '(none)'}, expected {expected or 'none'}")
            if extra:
                fixes.append(f"{alter} RESET ({', '.join(extra)})")
            if expected:
                fixes.append(f"{alter} SET {expected}")
            continue
        if expected is None:
            if name == "STORAGE":
                expected = f"STORAGE {have.type_storage or 'EXTENDED'}"
                said.append(f"has SET {is_}, expected {expected} (its type's)")
            else:
                expected = _OPTION_DEFAULTS.get(name, f"{name} DEFAULT")
                said.append(f"has SET {is_}, expected {expected} (the default)")
        else:
            said.append(f"has {f'SET {is_}' if is_ else f'no SET {name}'}, expected SET {expected}")
        fixes.append(f"{alter} SET {expected}")
    return "; ".join(said) + (f" ({'; '.join(fixes)})" if fixes else "")


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
    #: Not compared, not in the file: the table it is a column of (set when listed), and its type's own
    #: storage (read from a live catalog: what ``SET STORAGE`` puts back), for the words of a difference.
    table: str = field(default="", compare=False, repr=False)
    type_storage: str = field(default="", compare=False, repr=False)

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
            lambda want, have: _options_differ(want, have),
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
        """From the catalog query's columns: its settings', then its type's storage."""
        return cls(name, **_loaded(cls.SETTINGS, raw[:-1]), type_storage=str(raw[-1]))

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


def _storage_fix(want: TableInfo, have: TableInfo) -> str:
    """The ALTER TABLE that gives ``have`` the storage parameters of ``want``."""
    names = {option.split("=", 1)[0]: option for option in want.options}
    extra = [o.split("=", 1)[0] for o in have.options if o.split("=", 1)[0] not in names]
    missing = [o for o in want.options if o not in have.options]
    actions = ([f"RESET ({', '.join(extra)})"] if extra else []) + ([f"SET ({', '.join(missing)})"] if missing else [])
    return f"ALTER TABLE {quote(want.name)} {', '.join(actions)}"


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
                else f"is logged, expected UNLOGGED (ALTER TABLE {quote(want.name)} SET UNLOGGED)"
            ),
        ),
        Setting(
            ("options",),
            lambda table: f"WITH ({', '.join(table.options)})" if table.options else "no storage parameters",
            lambda want, have: (
                f"has storage parameters {_list(have.options)}, expected {_list(want.options)} "
                f"({_storage_fix(want, have)})"
            ),
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
                else "has row-level security disabled, expected enabled: its policies are not applied "
                f"(ALTER TABLE {quote(want.name)} ENABLE ROW LEVEL SECURITY)"
            ),
            written=_Flag("ENABLE ROW LEVEL SECURITY"),
            written_at=3,
        ),
        Setting(
            ("force_row_security",),
            lambda table: "row security forced" if table.force_row_security else None,
            lambda want, have: (
                "forces row-level security on its owner too, expected NO FORCE: the owner now reads and writes "
                "only the rows a policy allows, none without one "
                f"(ALTER TABLE {quote(want.name)} NO FORCE ROW LEVEL SECURITY)"
                if have.force_row_security
                else "no longer forces row-level security on its owner, expected FORCE "
                f"(ALTER TABLE {quote(want.name)} FORCE ROW LEVEL SECURITY)"
            ),
            written=_Flag("FORCE ROW LEVEL SECURITY"),
            written_at=4,
        ),
        Setting(
            ("replica_identity",),
            lambda table: None if table.replica_identity == "DEFAULT" else f"replica identity {table.replica_identity}",
            lambda want, have: (
                f"has REPLICA IDENTITY {have.replica_identity}, expected {want.replica_identity}: logical "
                "replication and change capture send other old-row values (or refuse updates and deletes) "
                f"(ALTER TABLE {quote(want.name)} REPLICA IDENTITY {want.replica_identity})"
            ),
            written=_Value("REPLICA IDENTITY", "DEFAULT"),
            written_at=2,
        ),
        Setting(
            ("parents",),
            lambda table: f"inherits from {', '.join(table.parents)}" if table.parents else None,
            lambda want, have: (
                f"inherits from {_list(have.parents)}, expected {_list(want.parents)} ("
                + "; ".join(
                    [f"ALTER TABLE {quote(want.name)} NO INHERIT {p}" for p in have.parents if p not in want.parents]
                    + [f"ALTER TABLE {quote(want.name)} INHERIT {p}" for p in want.parents if p not in have.parents]
                )
                + ")"
            ),
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
                + "".join(
                    f" (ALTER TABLE {child} NO INHERIT {quote(want.name)})"
                    for child in have.children
                    if child not in want.children
                )
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
                column = column if column.table == name else replace(column, table=name)
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
