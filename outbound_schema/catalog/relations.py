"""Indexes, constraints and sequences."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from outbound_schema.catalog.kind import IDENT, CatalogKind, Problem, one_line, unquote
from outbound_schema.keywords import quote

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    from outbound_schema.catalog.objects import Snapshot

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]


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
#: pg_trigger.tgenabled of an enforcing trigger other than "O", in words.
_TRIGGER_STATES = {"D": "disabled", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
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
    #: The tables whose triggers enforcing it do not fire as they should, with their pg_trigger.tgenabled:
    #: "D" (ALTER TABLE ... DISABLE TRIGGER ALL), "R" (ENABLE REPLICA: they fire only in sessions with
    #: session_replication_role = replica), "A" (ENABLE ALWAYS: they fire in those sessions too). Only a live
    #: database can say so; the expected schema always enforces, as ENABLE leaves them ("O").
    firing: tuple[tuple[str, str], ...] = ()

    @property
    def disabled_on(self) -> tuple[str, ...]:
        """The tables whose enforcing triggers do not fire in ordinary sessions (DISABLE, ENABLE REPLICA)."""
        return tuple(table for table, state in self.firing if state in "DR")

    @property
    def enforced(self) -> bool:
        return not self.firing

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
        states = [f"its triggers are {_TRIGGER_STATES[state]} on {table}" for table, state in self.firing]
        if self.disabled_on:
            return f"{described}, NOT ENFORCED ({'; '.join(states)})"
        return f"{described}{''.join(f', {state}' for state in states)}"

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
        if self.firing:
            tables = sorted({table for table, _ in self.firing})
            fix = "; ".join(f"ALTER TABLE {table} ENABLE TRIGGER ALL" for table in tables)
            disabled = [table for table, state in self.firing if state == "D"]
            replica = [table for table, state in self.firing if state == "R"]
            always = [table for table, state in self.firing if state == "A"]
            said = []
            if disabled:
                said.append(
                    f"the triggers that enforce it are disabled on {', '.join(disabled)} "
                    "(ALTER TABLE ... DISABLE TRIGGER ALL)"
                )
            if replica:
                said.append(
                    f"the triggers that enforce it are set ENABLE REPLICA on {', '.join(replica)} "
                    "(ALTER TABLE ... ENABLE REPLICA TRIGGER, by name): they fire only in sessions with "
                    "session_replication_role = replica, never on the dialer's writes"
                )
            if always:
                said.append(
                    f"the triggers that enforce it are set ENABLE ALWAYS on {', '.join(always)} "
                    "(ALTER TABLE ... ENABLE ALWAYS TRIGGER, by name): they also fire in sessions with "
                    "session_replication_role = replica, where logical replication and restores expect "
                    "them not to"
                )
            expected = "expected its triggers ENABLE (fired by every ordinary session, not under replica)"
            if disabled or replica:
                return (
                    "disabled",
                    f"is not enforced: {'; '.join(said)}, so rows written meanwhile were never checked; "
                    f"{expected}. Re-enable them ({fix}), then find the rows that break it",
                )
            return ("different", f"is enforced where it should not be: {'; '.join(said)}; {expected} ({fix})")
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
        said, options, fixes = [], [], []
        name = quote(self.name)
        if have.owned_by != self.owned_by:
            owner = _owner(self.owned_by)
            if have.owned_by is None:
                said.append(
                    f"is no longer owned by {self.owned_by}: it still exists and feeds its default, but dropping "
                    f"that column or table would leave it behind "
                    f"(ALTER SEQUENCE {name} OWNED BY {owner})"
                )
            else:
                said.append(f"is owned by {have.owned_by}, expected {self.owned_by or 'no column'}")
                fixes.append(f"ALTER SEQUENCE {name} OWNED BY {owner}")
        expected, found = self.options(), have.options()
        for option, value in found.items():
            if value == expected[option]:
                continue
            if option == "CYCLE":
                said.append(
                    "cycles: past its maximum it starts again and hands out values already used; expected NO CYCLE"
                    if value
                    else "does not cycle, expected CYCLE"
                )
                options.append("CYCLE" if expected[option] else "NO CYCLE")
            elif option == "UNLOGGED":
                said.append(
                    "is UNLOGGED: after a crash it restarts and hands out values already used; expected logged"
                    if value
                    else "is logged, expected UNLOGGED"
                )
                fixes.append(f"ALTER SEQUENCE {name} SET {'UNLOGGED' if expected[option] else 'LOGGED'}")
            else:
                said.append(f"has {option} {value}, expected {expected[option]}")
                options.append(f"{option} {expected[option]}")
        if options:
            fixes.insert(0, f"ALTER SEQUENCE {name} {' '.join(options)}")
        return "; ".join(said) + (f" ({'; '.join(fixes)})" if fixes else "")

    def statements(self) -> list[str]:
        owner = _owner(self.owned_by)
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


def _owner(owned_by: str | None) -> str:
    """``table.column`` (or NONE) as ALTER SEQUENCE ... OWNED BY takes it."""
    if not owned_by:
        return "NONE"
    table, column = owned_by.split(".", 1)
    return f"{quote(table)}.{quote(column)}"


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
