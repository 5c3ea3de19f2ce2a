"""The refusals: what each operation may do on a live database, decided from the revisions and the
committed expected-schema files alone (no database), the same online and offline.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alembic.ddl import base
from alembic.ddl.postgresql import PostgresqlColumnType
from alembic.script import Script
from sqlalchemy import CheckConstraint, Computed, Identity
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.schema import (
    AddConstraint,
    CreateTable,
    DropConstraint,
    DropTable,
    PrimaryKeyConstraint,
    UniqueConstraint,
)

from outbound_schema.catalog import Snapshot
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.safety import alembic_api
from outbound_schema.safety.operations import handler_for, referenced, sql_of, table_of

log = logging.getLogger("outbound_schema.migrate")

#: The module-level name a revision allows refused operations with.
ALLOW_UNSAFE = "allow_unsafe"

#: Functions whose value changes per row: as a column default they make ADD COLUMN rewrite the table.
VOLATILE_FUNCTIONS = frozenset(
    {
        "random",
        "random_normal",
        "clock_timestamp",
        "timeofday",
        "gen_random_uuid",
        "gen_random_bytes",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
        "nextval",
        "setval",
        "txid_current",
        "pg_current_xact_id",
    }
)

_NOT_NULL_CHECK = re.compile(r'^[\s(]*"?(\w+)"?\s+IS\s+NOT\s+NULL[\s)]*$', re.IGNORECASE)

#: The squawk rule each operation refused by default trips, named in the offline script's ignore comment for that
#: statement alone when a revision allows the operation (add_column's NOT NULL without a default says its own).
SQUAWK_RULES = {
    "drop_column": "ban-drop-column",
    "drop_table": "ban-drop-table",
    "rename_column": "renaming-column",
    "rename_table": "renaming-table",
    "alter_column_type": "changing-column-type",
    "set_not_null": "adding-not-nullable-field",
    "add_column": "adding-field-with-default",
}


def _type_parts(type_text: str) -> tuple[str, tuple[int, ...]] | None:
    """A type name and its modifiers, for the types whose changes need no rewrite; None for others."""
    name = " ".join(type_text.lower().replace("varchar", "character varying").split())
    name = name.replace("decimal", "numeric").replace("varbit", "bit varying")
    match = re.fullmatch(r"(character varying|numeric|bit varying|text)\s*(?:\(([\d,\s]+)\))?", name)
    if not match:
        return None
    modifiers = tuple(int(m) for m in match.group(2).split(",")) if match.group(2) else ()
    return match.group(1), modifiers


def rewrites(old: str, new: str) -> bool:
    """Whether changing a column from type ``old`` to ``new`` makes PostgreSQL rewrite its table.

    No rewrite: the same type, a longer (or no) varchar limit, varchar to text and
    text to unlimited varchar, a numeric of more precision and the same scale, a
    longer bit varying. Anything else is taken to rewrite.
    """
    if " ".join(old.lower().split()) == " ".join(new.lower().split()):
        return False
    before, after = _type_parts(old), _type_parts(new)
    if before is None or after is None:
        return True
    (old_name, old_mod), (new_name, new_mod) = before, after
    if old_name in ("character varying", "text") and new_name in ("character varying", "text"):
        if new_name == "text" or not new_mod:
            return False
        return old_name == "text" or not old_mod or new_mod[0] < old_mod[0]
    if old_name == new_name == "bit varying":
        return bool(new_mod) and (not old_mod or new_mod[0] < old_mod[0])
    if old_name == new_name == "numeric":
        if not new_mod:
            return False
        if not old_mod or len(new_mod) != len(old_mod):
            return True
        same_scale = old_mod[1:] == new_mod[1:]
        return not (same_scale and new_mod[0] >= old_mod[0])
    return True


@dataclass
class Rules:
    """What one revision may do, checked operation by operation as it plans (and again as it runs)."""

    revision: str
    upgrading: bool
    before: Snapshot | None  # the catalog the revision starts from, from the expected-schema files
    allowed: Mapping[str, str]
    new_tables: set[str] = field(default_factory=set)
    new_columns: set[str] = field(default_factory=set)
    not_null_checks: set[str] = field(default_factory=set)
    refusals: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    drops: list[tuple[str, str | None]] = field(default_factory=list)
    #: The squawk rules the statement being checked trips although it runs safely here, each with why: the
    #: offline script's ignore comment for that statement alone.
    lint: list[tuple[str, str]] = field(default_factory=list)
    not_null_check_names: dict[str, str] = field(default_factory=dict)  # a CHECK (col IS NOT NULL): its table.col
    made_not_null: set[str] = field(default_factory=set)
    #: What the operations act on, for the privilege check before the run: each table an operation changes
    #: (or creates), the tables it creates, and the tables their new foreign keys point at.
    tables: set[str] = field(default_factory=set)
    creates: set[str] = field(default_factory=set)
    references: set[str] = field(default_factory=set)

    def forbid(self, message: str) -> None:
        """A refusal no opt-out lifts: the revision must be written otherwise."""
        self.refusals.append(f"{self.revision}: {message}")

    def refuse(self, key: str, message: str, *, squawk: str | None = None) -> None:
        if key in self.allowed:
            self.used.add(key)
            rule = squawk or SQUAWK_RULES.get(key.split()[0])
            if rule:
                self.lint.append((rule, f"allow_unsafe of {self.revision}: {self.allowed[key]}"))
            return
        self.refusals.append(
            f"{self.revision}: {message} To do it anyway, knowing why it is safe here, allow it in the revision "
            f'with allow_unsafe = {{"{key}": "<why it is safe>"}}; docs/changing-the-schema.md shows '
            "the expand/contract steps."
        )

    def existing_table(self, table: str) -> bool:
        """Whether ``table`` may hold rows: it is not one this revision created (under any name since)."""
        return table not in self.new_tables

    def mapped_column(self, table: str, column: str) -> bool:
        """Whether the previous release may use ``column``: it is not one this revision added."""
        return table not in self.new_tables and f"{table}.{column}" not in self.new_columns

    def check(self, construct: Any) -> None:
        if (table := table_of(construct)) is not None:
            self.tables.add(table)
        if isinstance(construct, CreateTable):
            self.creates.add(str(construct.element.name))
        if isinstance(construct, CreateTable | AddConstraint):
            self.references.update(referenced(construct.element))
        rule = handler_for(_RULES, construct)
        if rule is not None:
            rule(self, construct)

    def _create_table(self, construct: CreateTable) -> None:
        table = construct.element
        self.new_tables.add(table.name)
        self.new_columns.update(f"{table.name}.{c.name}" for c in table.columns)

    def _rename_table(self, construct: base.RenameTable) -> None:
        if self.upgrading and self.existing_table(construct.table_name):
            self.refuse(
                f"rename_table {construct.table_name}",
                f"op.rename_table renames {construct.table_name} to {construct.new_table_name}, and services "
                "still running the previous release query it by its old name: they fail from that moment. "
                "Safe alternative (expand/contract): create the new table, write to both from a release, "
                "copy the rows, move reads, and drop the old table in a later revision.",
            )
        if not self.existing_table(construct.table_name):
            self.new_tables.add(str(construct.new_table_name))

    def _nullable(self, construct: base.ColumnNullable) -> None:
        if not construct.nullable:
            self._set_not_null(construct.table_name, construct.column_name)

    def _add_column(self, construct: base.AddColumn) -> None:
        table, column = construct.table_name, construct.column
        self.new_columns.add(f"{table}.{column.name}")
        if not self.existing_table(table):
            return
        target = f"{table}.{column.name}"
        key = alembic_api.inline_key(construct)
        if key is not None:
            self.forbid(
                f"op.add_column adds {target} with its {key} "
                "inline, which builds or checks it under an ACCESS EXCLUSIVE lock on a table that holds rows. Add "
                "the column alone, then op.create_foreign_key (added NOT VALID and validated without blocking "
                "writes) or op.create_index(..., unique=True)."
            )
            return
        default = column.server_default
        if column.identity is not None or isinstance(default, Identity | Computed) or column.computed is not None:
            self.refuse(
                f"add_column {target}",
                f"op.add_column adds {target} as an identity or generated column, which makes PostgreSQL "
                f"rewrite {table} under an ACCESS EXCLUSIVE lock, blocking the dialer for as long as that takes. "
                "Safe alternative: add a plain nullable column, fill it in batches, then attach the "
                "sequence or trigger that maintains it.",
            )
            return
        if default is not None:
            expression = sql_of(default.arg) if not isinstance(default.arg, str) else default.arg  # type: ignore[attr-defined]
            called = {name.lower() for name in re.findall(r'"?([A-Za-z_][A-Za-z0-9_]*)"?\s*\(', expression)}
            if called & VOLATILE_FUNCTIONS:
                self.refuse(
                    f"add_column {target}",
                    f"op.add_column adds {target} with the volatile default {expression}, which makes "
                    f"PostgreSQL rewrite {table} under an ACCESS EXCLUSIVE lock (a constant or stable default "
                    "needs none since PostgreSQL 11), blocking the dialer for as long as the rewrite takes. Safe "
                    "alternative: add the column without that default, set it afterwards with "
                    "op.alter_column(server_default=...), which applies to new rows only, and fill existing "
                    "rows in batches.",
                )
                return
        if not column.nullable and default is None:
            self.refuse(
                f"add_column {target}",
                f"op.add_column adds {target} as NOT NULL without a default, which PostgreSQL refuses on a "
                f"table holding rows, and {table} holds rows in production. Safe alternative: give it a constant "
                "server_default (added without a rewrite), or add it nullable, fill it, and make it NOT NULL "
                "through a validated CHECK (see set_not_null in docs/changing-the-schema.md).",
                squawk="adding-required-field",
            )

    def _drop(self, table: str, column: str | None) -> None:
        target = f"{table}.{column}" if column else table
        if not self.upgrading:
            self.drops.append((table, column))
            return
        existed = self.mapped_column(table, column) if column else self.existing_table(table)
        if not existed:
            return
        what = f"column {target}" if column else f"table {table}"
        self.refuse(
            f"drop_column {target}" if column else f"drop_table {table}",
            f"op.drop_{'column' if column else 'table'} drops the {what}, which services still running the "
            "previous release may read or write: their queries fail from the moment it is gone, and its data "
            "is lost. Safe alternative (expand/contract): release a version that no longer uses it, deploy it "
            "everywhere, then drop it in a later revision.",
        )

    def _rename_column(self, construct: base.ColumnName) -> None:
        table, old, new = construct.table_name, construct.column_name, construct.newname
        if self.upgrading and self.mapped_column(table, old):
            self.refuse(
                f"rename_column {table}.{old}",
                f"op.alter_column renames {table}.{old} to {new}, and services still running the previous "
                "release use the old name: their queries fail from that moment. Safe alternative "
                "(expand/contract): add the new column, write both from a release, fill it in batches, move "
                "reads to it, and drop the old column in a later revision.",
            )
        self.new_columns.add(f"{table}.{new}")

    def _change_type(self, construct: base.ColumnType | PostgresqlColumnType) -> None:
        table, column = construct.table_name, construct.column_name
        if not self.existing_table(table):
            self.lint.append(("changing-column-type", f"{table} is new in {self.revision}: empty, unused"))
            return
        new = sql_of(construct.type_)
        # What the committed files say the column is wins over what the revision says it was.
        old = self._before_column(table, column, "type")
        if old is None and construct.existing_type is not None:
            old = sql_of(construct.existing_type)
        using = getattr(construct, "using", None)
        if old is not None and not rewrites(old, new) and using is None:
            self.lint.append(("changing-column-type", f"{old} to {new} rewrites nothing and breaks no reader"))
            return
        change = f"from {old} to {new}" if old else f"to {new} from a type this revision does not state"
        self.refuse(
            f"alter_column_type {table}.{column}",
            f"op.alter_column changes {table}.{column} {change}{' with USING' if using is not None else ''}, "
            f"which rewrites {table} and rebuilds its indexes under an ACCESS EXCLUSIVE lock (only a longer or "
            "unlimited varchar, varchar to text, or more numeric precision avoid it). Safe alternative "
            "(expand/contract): add a column of the new type, write both from a release, fill it in batches, "
            "move reads to it, then drop the old column in a later revision.",
        )

    def _before_column(self, table: str, column: str, attribute: str) -> Any:
        info = self.before.tables.get(table) if self.before is not None else None
        found = info.column(column) if info is not None else None
        return getattr(found, attribute) if found is not None else None

    def _set_not_null(self, table: str, column: str) -> None:
        self.made_not_null.add(f"{table}.{column}")
        safe = f"a validated CHECK ({column} IS NOT NULL) proves it without a scan"
        if not self.existing_table(table):
            self.lint.append(("adding-not-nullable-field", f"{table} is new in {self.revision}: empty, unused"))
            return
        if f"{table}.{column}" in self.not_null_checks:
            self.lint.append(("adding-not-nullable-field", safe))
            return
        if self._before_column(table, column, "nullable") is False:
            self.lint.append(("adding-not-nullable-field", "it is NOT NULL already: nothing to scan for"))
            return
        if self._before_not_null_check(table, column):
            self.lint.append(("adding-not-nullable-field", safe))
            return
        self.refuse(
            f"set_not_null {table}.{column}",
            f"op.alter_column(nullable=False) on {table}.{column} makes PostgreSQL scan all of {table} under an "
            "ACCESS EXCLUSIVE lock to prove it holds no NULL, blocking the dialer for as long as the scan takes. "
            f"Safe alternative: op.create_check_constraint('{table}_{column}_not_null', '{table}', "
            f"'{column} IS NOT NULL') first (outbound-schema adds it NOT VALID and validates it without blocking "
            "writes), then alter_column(nullable=False), which uses that constraint instead of scanning, then "
            "drop the constraint.",
        )

    def _before_not_null_check(self, table: str, column: str) -> bool:
        """Whether a validated CHECK (column IS NOT NULL) is on ``table`` before this revision."""
        return any(
            _validated_not_null(c, table) == column
            for c in (self.before.constraints.values() if self.before is not None else ())
        )

    def _drop_constraint(self, name: str, table: str) -> None:
        """Dropping the CHECK (col IS NOT NULL) of the set_not_null path takes no guarantee away once the column is
        NOT NULL, which squawk's ban-drop-constraint cannot know (other drops stay flagged)."""
        target = self.not_null_check_names.get(name)
        found = self.before.constraints.get(name) if self.before is not None else None
        if target is None and found is not None and (column := _validated_not_null(found, table)) is not None:
            target = f"{table}.{column}"
        if target is None:
            return
        column = target.split(".", 1)[1]
        if target in self.made_not_null or self._before_column(table, column, "nullable") is False:
            self.lint.append(("ban-drop-constraint", f"{target} is NOT NULL, which guarantees what this CHECK did"))

    def _add_constraint(self, constraint: Any) -> None:
        table = constraint.table.name
        if isinstance(constraint, CheckConstraint):
            column = not_null_column(sql_of(constraint.sqltext))
            if column is not None:
                self.not_null_checks.add(f"{table}.{column}")
                self.not_null_check_names[str(constraint.name)] = f"{table}.{column}"
        if constraint.name is None:
            self.forbid(
                f"a {type(constraint).__name__} on {table} has no name, so it cannot be validated separately, "
                "found again when the revision is rerun, or dropped by a downgrade. Give it an explicit name."
            )
            return
        if not isinstance(constraint, UniqueConstraint | PrimaryKeyConstraint | ExcludeConstraint):
            return
        if not self.existing_table(table):
            return
        operation = {
            UniqueConstraint: "create_unique_constraint",
            PrimaryKeyConstraint: "create_primary_key",
            ExcludeConstraint: "create_exclude_constraint",
        }[type(constraint)]
        columns = ", ".join(f"'{c.name}'" for c in constraint.columns)
        self.refuse(
            f"{operation} {table}.{constraint.name}",
            f"op.{operation} adds {constraint.name} to {table}, which builds its index under an ACCESS "
            "EXCLUSIVE lock, blocking the dialer for as long as the build takes. Safe alternative: "
            f"op.create_index('{constraint.name}', '{table}', [{columns}], unique=True), which outbound-schema "
            "builds CONCURRENTLY, then, if a constraint is needed, op.execute('ALTER TABLE "
            f"{table} ADD CONSTRAINT {constraint.name} "
            f"{'PRIMARY KEY' if operation == 'create_primary_key' else 'UNIQUE'} USING INDEX {constraint.name}').",
        )


def not_null_column(expression: str) -> str | None:
    match = _NOT_NULL_CHECK.match(expression)
    return match.group(1) if match else None


def _validated_not_null(constraint: Any, table: str) -> str | None:
    """The column a validated CHECK (column IS NOT NULL) on ``table`` is about, from an expected-schema file."""
    if constraint.table != table or constraint.kind != "c" or constraint.definition.endswith("NOT VALID"):
        return None
    return not_null_column(constraint.definition.removeprefix("CHECK "))


def allowances(revision: Script) -> dict[str, str]:
    allowed = getattr(revision.module, ALLOW_UNSAFE, {})
    if not isinstance(allowed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in allowed.items()
    ):
        raise OutboundSchemaError(
            f"Revision {revision.revision}'s {ALLOW_UNSAFE} must be a dict from an operation (as the refusal "
            'names it, e.g. "drop_column outbound_call_jobs.call_sid") to the reason it is safe, a non-empty '
            f"string; it is {allowed!r}. Nothing was changed."
        )
    return allowed


#: What each construct an operation causes means for the rules, by its type.
_RULES: dict[type, Callable[[Rules, Any], None]] = {
    CreateTable: Rules._create_table,
    base.AddColumn: Rules._add_column,
    base.DropColumn: lambda rules, c: rules._drop(c.table_name, c.column.name),
    DropTable: lambda rules, c: rules._drop(c.element.name, None),
    base.ColumnName: Rules._rename_column,
    base.RenameTable: Rules._rename_table,
    base.ColumnType: Rules._change_type,
    PostgresqlColumnType: Rules._change_type,
    base.ColumnNullable: Rules._nullable,
    AddConstraint: lambda rules, c: rules._add_constraint(c.element),
    DropConstraint: lambda rules, c: rules._drop_constraint(str(c.element.name), str(c.element.table.name)),
}
