"""Policies, triggers and rules: what runs on our tables' rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from outbound_schema.catalog.kind import IDENT, one_line, unquote
from outbound_schema.catalog.relations import _OfTable
from outbound_schema.keywords import quote

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    from outbound_schema.catalog.objects import Snapshot

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]


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
