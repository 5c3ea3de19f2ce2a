"""The base of every kind of catalog object, and what every kind shares: names, one-line definitions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    from outbound_schema.catalog.objects import Snapshot

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]


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
