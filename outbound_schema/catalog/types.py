"""The types our columns are of (enums, domains) and the functions our triggers run."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from outbound_schema.catalog.kind import IDENT, CatalogKind, one_line
from outbound_schema.keywords import literal

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]


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
