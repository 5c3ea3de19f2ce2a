"""What an operation is, for messages and routing: its table, a short name, and what it changed.

Every per-construct decision of the safety layer (these messages, the rules, the implementation) goes
through a table keyed by the construct's type, as Alembic's own ``implementation_for`` registry does:
:func:`handler_for` finds the entry for a construct's class or the nearest of its bases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from alembic.ddl import base
from alembic.ddl.postgresql import PostgresqlColumnType
from sqlalchemy import TextClause
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import (
    AddConstraint,
    CreateIndex,
    CreateTable,
    DropConstraint,
    DropIndex,
    DropTable,
    ForeignKeyConstraint,
)

from outbound_schema.keywords import quote

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_H = TypeVar("_H")


def handler_for(table: Mapping[type, _H], construct: object) -> _H | None:
    """The entry of ``table`` for ``construct``'s class, or for the nearest of its bases that has one."""
    for cls in type(construct).__mro__:
        if cls in table:
            return table[cls]
    return None


def sql_of(element: Any) -> str:
    """An expression, type or statement as PostgreSQL's dialect writes it."""
    return str(element.compile(dialect=_DIALECT))


def table_of(construct: Any) -> str | None:
    if isinstance(construct, base.AlterTable):
        return construct.table_name
    element = getattr(construct, "element", None)
    table = getattr(element, "table", None)
    if table is not None:
        return str(table.name)
    name = getattr(element, "name", None)
    return str(name) if isinstance(construct, CreateTable | DropTable) and name else None


def qualified(name: str, schema: str | None) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def referenced(constraint_or_table: Any) -> list[str]:
    keys = getattr(constraint_or_table, "foreign_keys", ())
    if isinstance(constraint_or_table, ForeignKeyConstraint):
        keys = constraint_or_table.elements
    return list(dict.fromkeys(fk.target_fullname.rsplit(".", 1)[0].rsplit(".", 1)[-1] for fk in keys))


def _column(construct: Any) -> str:
    return f"{table_of(construct)}.{construct.column_name}"


#: A short name for each change, for labels and messages: 'add column outbound_call_jobs.attempts'.
_NAMES: dict[type, Callable[[Any], str]] = {
    base.AddColumn: lambda c: f"add column {table_of(c)}.{c.column.name}",
    base.DropColumn: lambda c: f"drop column {table_of(c)}.{c.column.name}",
    base.AlterColumn: lambda c: f"alter column {_column(c)}",
    CreateIndex: lambda c: f"create index {c.element.name}",
    DropIndex: lambda c: f"drop index {c.element.name}",
    AddConstraint: lambda c: f"add constraint {c.element.name} on {table_of(c)}",
    DropConstraint: lambda c: f"drop constraint {c.element.name} on {table_of(c)}",
    CreateTable: lambda c: f"create table {table_of(c)}",
    DropTable: lambda c: f"drop table {table_of(c)}",
    base.RenameTable: lambda c: f"rename table {table_of(c)}",
    TextClause: lambda _c: "execute",
}


def describe(construct: Any) -> str:
    """A short name for the change, for messages: 'add column outbound_call_jobs.attempts'."""
    name = handler_for(_NAMES, construct)
    return name(construct) if name is not None else type(construct).__name__


def _default_set(construct: Any) -> str:
    default = construct.default
    if default is None:
        return f"dropped the default of {_column(construct)}"
    shown = getattr(getattr(default, "arg", default), "text", getattr(default, "arg", default))
    return f"set the default of {_column(construct)} to {shown}"


def _executed(construct: TextClause) -> str:
    statement = " ".join(construct.text.split())
    return f"executed {statement[:80]}{'...' if len(statement) > 80 else ''}"


#: What each change did, in the past tense, for the deploy log.
_DONE: dict[type, Callable[[Any], str]] = {
    base.ColumnNullable: lambda c: f"{'dropped' if c.nullable else 'set'} NOT NULL on {_column(c)}",
    base.ColumnDefault: _default_set,
    base.ColumnType: lambda c: f"changed the type of {_column(c)} to {sql_of(c.type_)}",
    PostgresqlColumnType: lambda c: f"changed the type of {_column(c)} to {sql_of(c.type_)}",
    base.ColumnName: lambda c: f"renamed column {_column(c)} to {c.newname}",
    base.ColumnComment: lambda c: f"set the comment of {_column(c)}",
    base.AddColumn: lambda c: f"added column {table_of(c)}.{c.column.name}",
    base.DropColumn: lambda c: f"dropped column {table_of(c)}.{c.column.name}",
    DropTable: lambda c: f"dropped table {table_of(c)}",
    DropConstraint: lambda c: f"dropped constraint {c.element.name} on {table_of(c)}",
    base.RenameTable: lambda c: f"renamed table {table_of(c)} to {c.new_table_name}",
    TextClause: _executed,
}


def did(construct: Any) -> str:
    """What a statement changed, in the past tense: 'set NOT NULL on outbound_call_jobs.status'."""
    done = handler_for(_DONE, construct)
    return done(construct) if done is not None else describe(construct)
