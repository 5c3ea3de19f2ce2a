"""Safety underneath every revision: Alembic's own ``op.*`` operations, made safe on a live database.

Revisions are ordinary Alembic revisions (``op.add_column``, ``op.create_index``,
``op.execute`` ...). Installed into a migration run (``outbound_schema.environment``),
:class:`SafeImpl` takes the place of Alembic's PostgreSQL implementation, the way
django-pg-zero-downtime-migrations takes the place of Django's schema editor: every
statement an operation causes passes through it, and

- each DDL statement runs in its own short transaction under ``lock_timeout`` and
  ``statement_timeout``, retried with back-off when the lock is not granted
  (``outbound_schema.ddl``);
- ``create_index`` on a table that already existed is built ``CONCURRENTLY``, and an
  INVALID leftover of an interrupted build is dropped and rebuilt; a CHECK or foreign
  key on such a table is added ``NOT VALID`` and then validated without blocking writes;
- every operation is idempotent online (it creates only what is missing), so a
  revision that died halfway completes when run again;
- operations that would rewrite or long-lock a table that already exists, or break
  services still running the previous release, are refused before anything of the run
  changes, with the safe alternative named. A revision allows one explicitly, and
  greppably, with a module-level ``allow_unsafe = {"<operation> <object>": "<why>"}``;
- a downgrade never drops a column holding values or a table holding rows unless
  ``--allow-data-loss`` is given.

Before the first change of a run, every revision of the run is *planned*: its
``upgrade()`` (or ``downgrade()``) runs against a recorder with no database, so
refusals are found up front, online and offline alike, deterministically (they
depend on the revisions and the committed expected-schema files, never on the data).
Only revisions whose script directory keeps expected-schema files are ours; a host
application's own revisions, in a history that includes ours, run as plain Alembic runs
them.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from alembic import op as op_module
from alembic.ddl import base
from alembic.ddl.postgresql import PostgresqlColumnType, PostgresqlImpl
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import Script
from sqlalchemy import CheckConstraint, Computed, Connection, Identity, TextClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import (
    AddConstraint,
    CreateIndex,
    CreateTable,
    DropConstraint,
    DropIndex,
    DropTable,
    ForeignKeyConstraint,
    PrimaryKeyConstraint,
    UniqueConstraint,
)
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.util import immutabledict

from outbound_schema import progress
from outbound_schema.catalog import HOST_TABLES, Snapshot
from outbound_schema.ddl import Call, DDLRunner, Limits, SessionGuard, Statement
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.expected import ExpectedSchemas, foreign_tables, is_managed
from outbound_schema.keywords import literal, quote
from outbound_schema.locking import BACKEND_KEY, same_session_guard
from outbound_schema.revisions import applied_revisions, check_rows, superseded_rows, version_rows_error
from outbound_schema.standing import HISTORY_DDL, HISTORY_TABLE

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

_VIOLATIONS = {"23514", "23503", "23502"}  # check, foreign key, not null
_OUTSIDE_TRANSACTIONS = re.compile(
    r"(CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|DROP\s+INDEX\s+CONCURRENTLY|REINDEX\s+(\(.*?\)\s*)?\w+\s+CONCURRENTLY"
    r"|REFRESH\s+MATERIALIZED\s+VIEW\s+CONCURRENTLY|VACUUM)\b",
    re.IGNORECASE,
)
_LEADING_COMMENTS = re.compile(r"^(\s+|--[^\n]*\n?|/\*.*?\*/)*", re.DOTALL)
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


# What each operation may do: the refusals.


_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _sql(element: Any) -> str:
    return str(element.compile(dialect=_DIALECT))


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
            f'with allow_unsafe = {{"{key}": "<why it is safe>"}}; the README\'s "Changing the schema" shows '
            "the expand/contract steps."
        )

    def existing_table(self, table: str) -> bool:
        """Whether ``table`` may hold rows: it is not one this revision created (under any name since)."""
        return table not in self.new_tables

    def mapped_column(self, table: str, column: str) -> bool:
        """Whether the previous release may use ``column``: it is not one this revision added."""
        return table not in self.new_tables and f"{table}.{column}" not in self.new_columns

    def check(self, construct: Any) -> None:
        if isinstance(construct, CreateTable):
            table = construct.element
            self.new_tables.add(table.name)
            self.new_columns.update(f"{table.name}.{c.name}" for c in table.columns)
        elif isinstance(construct, base.AddColumn):
            self._add_column(construct)
        elif isinstance(construct, base.DropColumn):
            self._drop(construct.table_name, construct.column.name)
        elif isinstance(construct, DropTable):
            self._drop(construct.element.name, None)
        elif isinstance(construct, base.ColumnName):
            self._rename_column(construct)
        elif isinstance(construct, base.RenameTable):
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
        elif isinstance(construct, base.ColumnType | PostgresqlColumnType):
            self._change_type(construct)
        elif isinstance(construct, base.ColumnNullable) and not construct.nullable:
            self._set_not_null(construct.table_name, construct.column_name)
        elif isinstance(construct, AddConstraint):
            self._add_constraint(construct.element)
        elif isinstance(construct, DropConstraint):
            self._drop_constraint(str(construct.element.name), str(construct.element.table.name))

    def _add_column(self, construct: base.AddColumn) -> None:
        table, column = construct.table_name, construct.column
        self.new_columns.add(f"{table}.{column.name}")
        if not self.existing_table(table):
            return
        target = f"{table}.{column.name}"
        if construct.inline_primary_key or construct.inline_references:
            key = "primary key" if construct.inline_primary_key else "foreign key"
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
            expression = _sql(default.arg) if not isinstance(default.arg, str) else default.arg  # type: ignore[attr-defined]
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
                "through a validated CHECK (see set_not_null in the README).",
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
        new = _sql(construct.type_)
        # What the committed files say the column is wins over what the revision says it was.
        old = self._before_column(table, column, "type")
        if old is None and construct.existing_type is not None:
            old = _sql(construct.existing_type)
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
            column = _not_null_column(_sql(constraint.sqltext))
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


def runs_outside_transactions(sql: str) -> bool:
    """Whether a statement of ``op.execute`` cannot run in a transaction block (by its leading words)."""
    return bool(_OUTSIDE_TRANSACTIONS.match(_LEADING_COMMENTS.sub("", sql, count=1)))


def raise_format(message: str) -> str:
    """``message`` as the format string of PL/pgSQL's RAISE, where % stands for an argument."""
    return literal(message.replace("%", "%%"))


def sql_text(statement: str) -> TextClause:
    """A statement this layer writes, as text: its colons are SQL's, never bind parameters."""
    return text(statement.replace(":", "\\:"))


def _not_null_column(expression: str) -> str | None:
    match = _NOT_NULL_CHECK.match(expression)
    return match.group(1) if match else None


def _validated_not_null(constraint: Any, table: str) -> str | None:
    """The column a validated CHECK (column IS NOT NULL) on ``table`` is about, from an expected-schema file."""
    if constraint.table != table or constraint.kind != "c" or constraint.definition.endswith("NOT VALID"):
        return None
    return _not_null_column(constraint.definition.removeprefix("CHECK "))


def _allowances(revision: Script) -> dict[str, str]:
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


# The implementation that runs the operations.


#: Where a server connection keeps its :func:`_monitor` (in SQLAlchemy's ``Connection.info``, which is the
#: DBAPI connection's).
MONITOR_KEY = "outbound_schema.progress_monitor"


def _monitor(connection: Connection) -> Callable[[], AbstractContextManager[Any]] | None:
    """A way to open a second connection to the server and database the migration's connection is on,
    with its parameters (TLS ones included), for progress readings."""
    from outbound_schema import dsn
    from outbound_schema.database import target_of

    info = getattr(connection.connection.dbapi_connection, "info", None)
    if info is None or not hasattr(info, "get_parameters"):
        return None
    params = {"application_name": "outbound-schema progress", "connect_timeout": 3}
    target = dsn.following(info, target_of(connection.engine), **params)

    def connect() -> AbstractContextManager[Any]:
        # Autocommit: a transaction left open here would hold a snapshot the index build waits for.
        return target.connect(autocommit=True)

    return connect


def _is_version_table(construct: Any, version_table: str) -> bool:
    element = getattr(construct, "element", None)
    if isinstance(construct, CreateTable | DropTable) and element is not None:
        return bool(element.name == version_table)
    table = getattr(construct, "table", None)
    return isinstance(construct, UpdateBase) and getattr(table, "name", None) == version_table


def _rerunnable_version_change(construct: Any) -> Any:
    """The offline script's version-table statements, so that the script can run again.

    After a failure at any statement, or after a shorter script, a second run must end at the
    target with one version row: the table is created if absent, and the first revision's row is
    inserted only into an empty table (the UPDATEs that follow match only the row they move on).
    """
    if isinstance(construct, CreateTable) and not construct.if_not_exists:
        return CreateTable(construct.element, if_not_exists=True)
    if isinstance(construct, Insert):
        table = construct.table
        rendered = str(construct.compile(compile_kwargs={"literal_binds": True}))
        value = re.search(r"VALUES \((.+)\)", rendered)
        if value is not None:
            return text(
                f"INSERT INTO {quote(table.name)} (version_num) SELECT {value.group(1)} "
                f"WHERE NOT EXISTS (SELECT FROM {quote(table.name)})"
            )
    return construct


def skip_when_done(step: RevisionStep, context: MigrationContext) -> str:
    """psql meta-commands opening a revision's block of the offline script (``\\endif`` closes it), so that
    the script runs again after a failure at any statement: a block runs only where the version table
    does not record it as done. Done for an upgrade: the table holds the revision or one after it (a later
    block may drop what this one creates); for a downgrade: the table no longer holds it. No DO block or
    transaction could hold the block: CREATE INDEX CONCURRENTLY runs in neither. The version table may not
    exist yet: the first block creates it."""
    table = _qualified(context.version_table, context.version_table_schema)
    revision = step.revision.revision
    if step.is_upgrade:
        done = [r.revision for r in step.revision_map._get_descendant_nodes([step.revision])]
        said = f"{revision}: runs unless {table} records it or a later revision (the script can run again)"
        pending = f"NOT EXISTS (SELECT FROM {table} WHERE version_num IN ({', '.join(map(literal, done))}))"
    else:
        said = f"{revision}: reverted only while {table} records it (the script can run again)"
        pending = f"EXISTS (SELECT FROM {table} WHERE version_num = {literal(revision)})"
    return "\n".join(
        (
            f"-- {said}",
            f"SELECT to_regclass({literal(table)}) IS NOT NULL AS outbound_schema_tracked, "
            f"{'true' if step.is_upgrade else 'false'} AS outbound_schema_pending \\gset",
            "\\if :outbound_schema_tracked",
            f"SELECT {pending} AS outbound_schema_pending \\gset",
            "\\endif",
            "\\if :outbound_schema_pending",
        )
    )


def squawk_ignore(lint: Sequence[tuple[str, str]]) -> str:
    """squawk's ignore comment for the next statement alone: the rules it trips, and why it is safe here."""
    rules = ", ".join(dict.fromkeys(rule for rule, _ in lint))
    why = " ".join("; ".join(dict.fromkeys(reason for _, reason in lint)).split())  # one line
    return f"-- squawk-ignore {rules} -- {why}\n"


def _table_of(construct: Any) -> str | None:
    if isinstance(construct, base.AlterTable):
        return construct.table_name
    element = getattr(construct, "element", None)
    table = getattr(element, "table", None)
    if table is not None:
        return str(table.name)
    name = getattr(element, "name", None)
    return str(name) if isinstance(construct, CreateTable | DropTable) and name else None


def _qualified(name: str, schema: str | None) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def _referenced(constraint_or_table: Any) -> list[str]:
    keys = getattr(constraint_or_table, "foreign_keys", ())
    if isinstance(constraint_or_table, ForeignKeyConstraint):
        keys = constraint_or_table.elements
    return list(dict.fromkeys(fk.target_fullname.rsplit(".", 1)[0].rsplit(".", 1)[-1] for fk in keys))


@dataclass
class RunPlan:
    """What planning found for one run, before anything changed."""

    steps: list[RevisionStep]
    managed: set[str]
    drops: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)  # upgrade: the preflight state of each revision
    #: Revisions whose changes the catalog already holds whole: recorded without running their operations
    #: (a later revision may have dropped what they create, so running them again could fail).
    adopted: set[str] = field(default_factory=set)


class SafeImpl(PostgresqlImpl):
    """Alembic's PostgreSQL implementation, with every statement routed through the safety rules.

    Not registered for the dialect (no ``__dialect__``): :func:`install` puts it into
    one migration run only.
    """

    migration_context: MigrationContext
    expected: ExpectedSchemas | None
    limits: Limits
    planning: bool = False
    preflight: bool = True
    rules: Rules | None = None
    plan: RunPlan | None = None

    def setup(
        self,
        migration_context: MigrationContext,
        limits: Limits,
        expected: ExpectedSchemas | None,
        *,
        planning: bool = False,
        preflight: bool = True,
    ) -> None:
        self.migration_context = migration_context
        self.limits = limits
        self.expected = expected
        self.planning = planning
        self.preflight = preflight
        self.runner = DDLRunner(
            self._raw_exec,
            limits,
            as_sql=self.as_sql,
            session_guard=self._session_guard,
            watch=self._watch,
            application_name=lambda label: None if self.as_sql else progress.application_name(label),
        )
        self.progress_interval = limits.progress_interval_s
        self.reporter = progress.Reporter()
        self.created_tables: set[str] = set()
        self.executed = 0
        self._offline_block: ExitStack | None = None
        self._guarded: set[str] = set()
        self._step_started = time.monotonic()
        self._lint_note: tuple[object, object, str] | None = None  # (construct, its call, the ignore comment)
        self._skippable = False  # offline: a revision's block is open, run only where it is not done yet

    # Routing.

    def _session_guard(self) -> SessionGuard | None:
        connection = self.migration_context.connection
        return None if self.as_sql or connection is None else same_session_guard(connection)

    def _watch(self, label: str) -> AbstractContextManager[object]:
        """Online: report the statement's progress while it runs long."""
        connection = self.migration_context.connection
        if self.as_sql or connection is None:
            return nullcontext()
        # Worked out once per server connection (its parameters never change), not for every statement.
        if MONITOR_KEY not in connection.info:
            connection.info[MONITOR_KEY] = _monitor(connection)
        return progress.watching(
            connection.info[MONITOR_KEY], connection.info.get(BACKEND_KEY), label, self.progress_interval, self.reporter
        )

    def _raw_exec(self, statement: Statement) -> Any:
        """Alembic's own executor, past the rules: for the statements this layer decided on."""
        if self._lint_note is not None and any(statement is s for s in self._lint_note[:2]):
            assert self.output_buffer is not None  # offline
            self.output_buffer.write(self._lint_note[2])  # the line before the statement, for it alone
            self._lint_note = None
        if isinstance(statement, Call):
            return statement.run()
        return super()._exec(sql_text(statement) if isinstance(statement, str) else statement)

    def _exec(
        self,
        construct: Any,
        execution_options: Mapping[str, Any] | None = None,
        multiparams: Sequence[Mapping[str, Any]] | None = None,
        params: Mapping[str, Any] = immutabledict(),
    ) -> Any:
        if isinstance(construct, str):
            construct = text(construct)
        rules = self.rules
        if rules is None or _is_version_table(construct, self.migration_context.version_table):
            self._close_offline_block()
            if self.as_sql:
                construct = _rerunnable_version_change(construct)
            return super()._exec(construct, execution_options, multiparams, params)
        rules.lint.clear()
        rules.check(construct)
        if self.planning or self._adopted():
            return None
        if rules.refusals:
            raise OutboundSchemaError(rules.refusals[0] + " Nothing of this operation was changed.")
        if self.as_sql:
            self._guard_revision(rules)

        call = Call(lambda: super(SafeImpl, self)._exec(construct, execution_options, multiparams, params))
        self._lint_note = (construct, call, squawk_ignore(rules.lint)) if self.as_sql and rules.lint else None

        return self._apply(construct, call, rules)

    def _adopted(self) -> bool:
        """Whether the running revision is one the catalog holds whole: its operations are not run."""
        return self.plan is not None and self.rules is not None and self.rules.revision in self.plan.adopted

    # A run: plan, refuse, then go step by step.

    def start_migrations(self) -> None:
        super().start_migrations()
        context = self.migration_context
        produce = context._migrations_fn
        if produce is None or self.planning:
            return
        heads = () if context.purge else context.get_current_heads()
        check_rows(context.version_table, heads)
        script = getattr(context, "script", None)
        superseded = superseded_rows(heads, lambda h: applied_revisions(script, h)) if script else []
        if superseded:
            raise version_rows_error(context.version_table, heads, superseded)
        steps = list(produce(heads, context))
        revision_steps = [s for s in steps if isinstance(s, RevisionStep)]
        self.plan = RunPlan(revision_steps, {s.revision.revision for s in revision_steps if is_managed(s.revision)})
        if self.plan.managed:
            from outbound_schema.takeover import prepare  # the catalog comparison, only when there is work

            prepare(self, self.plan)
            self._create_history_table()

        def tracked(_heads: object, _context: object) -> Iterator[Any]:
            for step in steps:
                self._enter_step(step)
                yield step
                self._leave_step(step)
            self._enter_step(None)

        context._migrations_fn = tracked
        guard = self._session_guard()
        if guard is not None:
            # Alembic reads the version table and creates it next, in this transaction: a server session
            # that is not the lock's stops here, before two runs create it at once.
            self._raw_exec(guard.statement())

    # The schema history: what each run applied, so that any release can tell where a database stands.

    def _create_history_table(self) -> None:
        if self.as_sql:  # in a transaction of its own, before the first revision's
            self.runner.in_transaction([HISTORY_DDL], label="schema history", tables=[])
            return
        with self._autocommit():
            self.runner.in_transaction([HISTORY_DDL], label="schema history", tables=[])

    def record_history(self, *, step: Any, **_kwargs: Any) -> None:
        """Alembic's ``on_version_apply``: in the revision's own transaction, right after the version table
        moved, one row of the schema history for each revision of ours applied or reverted."""
        plan = self.plan
        revision = step.up_revision_id
        if plan is None or step.is_stamp or revision not in plan.managed:
            return
        if not step.is_upgrade:
            action = "reverted"
        elif plan.states.get(revision) == "present" and self.executed == 0 and not self.as_sql:
            action = "adopted"
        elif plan.states.get(revision) == "partial":
            action = "completed"
        else:
            action = "applied"
        parents = ", ".join(literal(parent) for parent in step.down_revision_ids)
        # Offline, the script's run is not this process's: it is timed by nobody, from wherever it runs.
        duration = "NULL" if self.as_sql else str(round((time.monotonic() - self._step_started) * 1000))
        host = "NULL" if self.as_sql else literal(socket.gethostname())
        release = _release()
        # An offline script run again records a revision once: not where its last row already says the same.
        last = f"(SELECT action FROM {HISTORY_TABLE} WHERE revision = {literal(revision)} ORDER BY id DESC LIMIT 1)"
        self._raw_exec(
            f"INSERT INTO {HISTORY_TABLE} (revision, parents, action, duration_ms, release, host) "
            f"SELECT {literal(revision)}, CAST(ARRAY[{parents}] AS text[]), {literal(action)}, {duration}, "
            f"{literal(release) if release else 'NULL'}, {host} "
            f"WHERE {last} IS DISTINCT FROM {literal(action)}"
        )

    def rules_for(self, step: RevisionStep) -> Rules:
        assert self.expected is not None
        revision = step.revision
        before = self.expected.before(revision) if step.is_upgrade else self.expected.at(revision.revision)
        return Rules(revision.revision, step.is_upgrade, before, _allowances(revision))

    def _enter_step(self, step: Any) -> None:
        self._close_offline_block()
        if self._skippable:
            self.static_output("\\endif")
            self._skippable = False
        managed = (
            self.plan is not None and isinstance(step, RevisionStep) and step.revision.revision in self.plan.managed
        )
        self.rules = self.rules_for(step) if managed else None
        self.executed = 0
        self._step_started = time.monotonic()
        if managed and self.as_sql:
            # Everything the step writes, from its BEGIN to its COMMIT, runs only where it is not done yet.
            self.static_output(skip_when_done(step, self.migration_context))
            self._skippable = True

    def _leave_step(self, step: Any) -> None:
        rules, self.rules = self.rules, None
        if rules is None or self.plan is None:
            return
        state = self.plan.states.get(rules.revision)
        if not rules.upgrading:
            self._done("%s: reverted", rules.revision)
        elif state == "present" and self.executed == 0 and not self.as_sql:
            log.info("%s: found complete, recorded as applied without changes", rules.revision)
        elif state == "partial":
            log.info("%s: found in part, completed", rules.revision)

    def create_table(self, table: Any, **kw: Any) -> None:
        """As Alembic's, but what the table's events create (a PostgreSQL ENUM type) is created only if absent."""
        if self.rules is None or self.planning:
            return super().create_table(table, **kw)
        if self._adopted():
            return None
        table.dispatch.before_create(table, self.connection, checkfirst=True, _ddl_runner=self)
        self._exec(CreateTable(table, **kw))
        table.dispatch.after_create(table, self.connection, checkfirst=True, _ddl_runner=self)
        for index in table.indexes:
            self._exec(CreateIndex(index))
        if self.dialect.supports_comments and not self.dialect.inline_comments:
            if table.comment is not None:
                self.create_table_comment(table)
            for column in table.columns:
                if column.comment is not None:
                    self.create_column_comment(column)

    def drop_table(self, table: Any, **kw: Any) -> None:
        """As Alembic's, but what the table's events drop (a PostgreSQL ENUM type) is dropped only if present."""
        if self.rules is None or self.planning:
            return super().drop_table(table, **kw)
        if self._adopted():
            return None
        table.dispatch.before_drop(table, self.connection, checkfirst=True, _ddl_runner=self)
        self._exec(DropTable(table, **kw))
        table.dispatch.after_drop(table, self.connection, checkfirst=True, _ddl_runner=self)

    # Transactions.

    @contextmanager
    def _autocommit(self) -> Iterator[None]:
        """Outside the revision's transaction: each change commits on its own."""
        context = self.migration_context
        if self.as_sql:
            # Offline the block stays open until the version table is written: one COMMIT ... BEGIN per revision.
            if self._offline_block is None:
                self._offline_block = ExitStack()
                self._offline_block.enter_context(context.autocommit_block())
            yield
            return
        assert context.connection is not None
        if context.connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            yield  # the revision is in an autocommit block of its own
            return
        with context.autocommit_block():
            yield

    def _close_offline_block(self) -> None:
        if self._offline_block is not None:
            block, self._offline_block = self._offline_block, None
            block.close()

    # Catalog look-ups, online.

    def _scalar(self, sql: str, **params: Any) -> Any:
        return self._raw_exec(text(sql).bindparams(**params)).scalar()

    def _relation(self, name: str, schema: str | None) -> str | None:
        """The relkind of the relation ``name`` on the search path (or in ``schema``), if any."""
        kind = self._scalar(
            "SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:name)", name=_qualified(name, schema)
        )
        return str(kind) if kind is not None else None

    def _column_exists(self, table: str, column: str, schema: str | None) -> bool:
        return bool(
            self._scalar(
                "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass(:table) "
                "AND attname = :column AND attnum > 0 AND NOT attisdropped)",
                table=_qualified(table, schema),
                column=column,
            )
        )

    # The operations.

    def _apply(self, construct: Any, call: Call, rules: Rules) -> Any:
        table = _table_of(construct)
        label = f"{rules.revision}: {_describe(construct)}"
        tables = [table] if table else []
        with self._autocommit():
            if isinstance(construct, CreateTable):
                return self._create_table(construct, label, rules)
            if isinstance(construct, CreateIndex):
                return self._create_index(construct, label, rules)
            if isinstance(construct, DropIndex):
                construct.element.dialect_kwargs["postgresql_concurrently"] = True
                construct.if_exists = True
                self._outside(construct, label)
                return self._done("%s: dropped index %s concurrently", rules.revision, construct.element.name)
            if isinstance(construct, AddConstraint):
                return self._add_constraint(construct, label, rules)
            if isinstance(construct, base.AddColumn):
                schema = construct.schema
                if not self.as_sql and self._column_exists(construct.table_name, construct.column.name, schema):
                    log.info("%s: column %s.%s already present, kept", rules.revision, table, construct.column.name)
                    return None
                construct.if_not_exists = True
            elif isinstance(construct, base.DropColumn):
                construct.if_exists = True
                return self._drop(construct, label, rules, construct.table_name, construct.column.name)
            elif isinstance(construct, DropTable):
                construct.if_exists = True
                return self._drop(construct, label, rules, construct.element.name, None)
            elif isinstance(construct, DropConstraint):
                construct.if_exists = True
            elif isinstance(construct, base.ColumnName) and not self.as_sql:
                schema = construct.schema
                if not self._column_exists(table or "", construct.column_name, schema) and self._column_exists(
                    table or "", construct.newname, schema
                ):
                    return None  # renamed by an earlier, interrupted run
            elif isinstance(construct, base.RenameTable) and not self.as_sql:
                schema = construct.schema
                if self._relation(construct.table_name, schema) is None and self._relation(
                    str(construct.new_table_name), schema
                ):
                    return None
            elif isinstance(construct, TextClause) and runs_outside_transactions(construct.text):
                self._outside(construct, label)
                return self._done("%s: %s", rules.revision, _did(construct))
            self.runner.in_transaction([call], label=label, tables=tables)
            self.executed += 1
            self._done("%s: %s", rules.revision, _did(construct))
        return None

    def _done(self, message: str, *args: object) -> None:
        """What a statement changed, for the deploy log; written into a ``--sql`` script, it changed
        nothing yet (the script is the output there), so only ``-v`` shows it."""
        log.log(logging.DEBUG if self.as_sql else logging.INFO, message, *args)

    def _outside(self, statement: Statement, label: str) -> None:
        self.runner.outside(statement, label=label)
        self.executed += 1

    def _create_table(self, construct: CreateTable, label: str, rules: Rules) -> None:
        table = construct.element
        if not self.as_sql and self._relation(table.name, table.schema) is not None:
            log.info("%s: table %s already present, kept", rules.revision, table.name)
            return
        statement = CreateTable(table, if_not_exists=True)
        self.runner.in_transaction([statement], label=label, tables=[table.name, *_referenced(table)])
        self.executed += 1
        self.created_tables.add(table.name)
        self._done("%s: created table %s", rules.revision, table.name)

    def _create_index(self, construct: CreateIndex, label: str, rules: Rules) -> None:
        index = construct.element
        name, table, schema = str(index.name), str(index.table.name), index.table.schema  # type: ignore[union-attr]
        qualified = _qualified(name, schema)
        if self.as_sql:
            # Nothing can be rebuilt conditionally offline: stop the script rather than keep an INVALID index.
            message = (
                f"index {name} is INVALID, left by an interrupted build: run DROP INDEX CONCURRENTLY {qualified}; "
                "then run this script again"
            )
            self.runner.execute(
                "DO $outbound$ BEGIN IF EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass("
                f"{literal(qualified)}) AND NOT indisvalid) THEN RAISE EXCEPTION {raise_format(message)}; "
                "END IF; END $outbound$"
            )
        else:
            valid = self._scalar(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)", name=qualified
            )
            if valid:
                log.info("%s: index %s already present, kept", rules.revision, name)
                return
            if valid is False:
                # Unusable and unused by PostgreSQL: rebuilding it loses nothing.
                self._outside(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}", label)
                log.info("%s: dropped INVALID index %s to rebuild it", rules.revision, name)
        new_table = not self.as_sql and table in self.created_tables
        # A table this run created is empty and unused: its indexes are built at once.
        index.dialect_kwargs["postgresql_concurrently"] = not new_table
        statement = CreateIndex(index, if_not_exists=True)
        if new_table:
            self.runner.in_transaction([statement], label=label, tables=[table])
            self.executed += 1
            self._done("%s: created index %s", rules.revision, name)
        else:
            self._outside(statement, label)
            self._done("%s: created index %s concurrently", rules.revision, name)

    def _add_constraint(self, construct: AddConstraint, label: str, rules: Rules) -> None:
        constraint = construct.element
        table = str(constraint.table.name)
        name = str(constraint.name)
        qualified_table = _qualified(table, constraint.table.schema)
        tables = [table, *_referenced(constraint)]
        validated = None
        if not self.as_sql:
            validated = self._scalar(
                "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass(:table) AND conname = :name",
                table=qualified_table,
                name=name,
            )
            if validated:
                log.info("%s: constraint %s already present, kept", rules.revision, name)
                return
        validate_later = isinstance(constraint, CheckConstraint | ForeignKeyConstraint) and (
            self.as_sql or table not in self.created_tables
        )
        if validated is None:
            if validate_later:
                # Added without checking the rows (a short lock), then validated without blocking writes.
                constraint.dialect_kwargs["postgresql_not_valid"] = True
            statement: Statement = construct
            if self.as_sql:
                # The script can run again: the constraint is added only where it is absent.
                statement = (
                    "DO $outbound$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = "
                    f"to_regclass({literal(qualified_table)}) AND conname = {literal(name)}) THEN "
                    f"{_sql(construct)}; END IF; END $outbound$"
                )
            self.runner.in_transaction([statement], label=label, tables=tables)
            self.executed += 1
        if validate_later:
            validate = f"ALTER TABLE {qualified_table} VALIDATE CONSTRAINT {quote(name)}"
            try:
                self.runner.in_transaction(
                    [validate], label=f"{label} (validate)", tables=tables, waits_harmlessly=True
                )
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) not in _VIOLATIONS:
                    raise
                raise OutboundSchemaError(
                    f"{label}: rows already in {table} break {name} ({' '.join(str(exc.orig).split())}), so it "
                    "was added NOT VALID and not validated: new and changed rows are checked from now on. Fix "
                    "the existing rows (or the constraint, in a new revision), then run the upgrade again, which "
                    "validates it."
                ) from None
            self.executed += 1
        self._done("%s: added constraint %s", rules.revision, name)

    def _drop(self, construct: Any, label: str, rules: Rules, table: str, column: str | None) -> None:
        statements: list[Statement] = [construct]
        if not rules.upgrading and not self.limits.allow_data_loss:
            statements.insert(0, data_guard(rules.revision, table, column, lock=True))
        self.runner.in_transaction(statements, label=label, tables=[table])
        self.executed += 1
        self._done("%s: %s", rules.revision, _did(construct))

    def _guard_revision(self, rules: Rules) -> None:
        """Offline, before a downgrade changes anything of a revision: refuse if any of its drops would destroy
        data. (Online the whole run was checked before it started; each drop checks again under its lock.)"""
        if rules.upgrading or self.limits.allow_data_loss or rules.revision in self._guarded or self.plan is None:
            return
        self._guarded.add(rules.revision)
        drops = self.plan.drops.get(rules.revision, [])
        if drops:
            with self._autocommit():
                checks = [data_guard(rules.revision, table, column, lock=False) for table, column in drops]
                self.runner.in_transaction(checks, label=f"{rules.revision}: data check", tables=[])


def _describe(construct: Any) -> str:
    """A short name for the change, for messages: 'add column outbound_call_jobs.attempts'."""
    table = _table_of(construct)
    if isinstance(construct, base.AddColumn):
        return f"add column {table}.{construct.column.name}"
    if isinstance(construct, base.DropColumn):
        return f"drop column {table}.{construct.column.name}"
    if isinstance(construct, base.AlterColumn):
        return f"alter column {table}.{construct.column_name}"
    if isinstance(construct, CreateIndex | DropIndex):
        return f"{'create' if isinstance(construct, CreateIndex) else 'drop'} index {construct.element.name}"
    if isinstance(construct, AddConstraint | DropConstraint):
        verb = "add" if isinstance(construct, AddConstraint) else "drop"
        return f"{verb} constraint {construct.element.name} on {table}"
    if isinstance(construct, CreateTable | DropTable):
        return f"{'create' if isinstance(construct, CreateTable) else 'drop'} table {table}"
    if isinstance(construct, base.RenameTable):
        return f"rename table {table}"
    return "execute" if isinstance(construct, TextClause) else type(construct).__name__


def _did(construct: Any) -> str:
    """What a statement changed, in the past tense, for the deploy log: 'set NOT NULL on outbound_call_jobs.status'."""
    table = _table_of(construct)
    if isinstance(construct, base.AlterColumn):
        column = f"{table}.{construct.column_name}"
        if isinstance(construct, base.ColumnNullable):
            return f"{'dropped NOT NULL on' if construct.nullable else 'set NOT NULL on'} {column}"
        if isinstance(construct, base.ColumnDefault):
            default = construct.default
            if default is None:
                return f"dropped the default of {column}"
            shown = getattr(getattr(default, "arg", default), "text", getattr(default, "arg", default))
            return f"set the default of {column} to {shown}"
        if isinstance(construct, base.ColumnType):
            return f"changed the type of {column} to {_sql(construct.type_)}"
        if isinstance(construct, base.ColumnName):
            return f"renamed column {column} to {construct.newname}"
        if isinstance(construct, base.ColumnComment):
            return f"set the comment of {column}"
    if isinstance(construct, base.AddColumn):
        return f"added column {table}.{construct.column.name}"
    if isinstance(construct, base.DropColumn):
        return f"dropped column {table}.{construct.column.name}"
    if isinstance(construct, DropTable):
        return f"dropped table {table}"
    if isinstance(construct, DropConstraint):
        return f"dropped constraint {construct.element.name} on {table}"
    if isinstance(construct, base.RenameTable):
        return f"renamed table {table} to {construct.new_table_name}"
    if isinstance(construct, TextClause):
        statement = " ".join(construct.text.split())
        return f"executed {statement[:80]}{'...' if len(statement) > 80 else ''}"
    return _describe(construct)


def data_guard(revision: str, table: str, column: str | None, *, lock: bool, before_run: bool = False) -> str:
    """A statement that raises when dropping ``table`` (or its ``column``) would destroy data.

    With ``lock`` it first takes the lock the drop will take, so that no row can
    arrive between the check and the drop. ``before_run``: the check runs before
    anything of the downgrade, so its refusal says nothing was reverted.
    """
    what = f"column {table}.{column} holds values" if column else f"table {table} holds rows"
    exists = f"SELECT EXISTS (SELECT FROM {quote(table)}{f' WHERE {quote(column)} IS NOT NULL' if column else ''})"
    present = f"to_regclass({literal(quote(table))}) IS NOT NULL"
    if column:
        present += (
            f" AND EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass({literal(quote(table))})"
            f" AND attname = {literal(column)} AND attnum > 0 AND NOT attisdropped)"
        )
    reverted = (
        "the downgrade was refused and nothing was reverted"
        if before_run
        else f"it was refused and nothing of {revision} was reverted; revisions above it were reverted only "
        "where they held no data"
    )
    message = (
        f"Downgrading {revision} would destroy data ({what}), so {reverted}. Back the data up first, then "
        "downgrade again with --allow-data-loss (or -x allow_data_loss=true)."
    )
    lock_sql = f"EXECUTE {literal(f'LOCK TABLE {quote(table)} IN ACCESS EXCLUSIVE MODE')}; " if lock else ""
    return (
        f"DO $outbound$ DECLARE found boolean; BEGIN IF {present} THEN {lock_sql}EXECUTE {literal(exists)} "
        f"INTO found; IF found THEN RAISE EXCEPTION {raise_format(message)}; END IF; END IF; END $outbound$"
    )


def plan_revisions(
    impl: SafeImpl, steps: Sequence[RevisionStep]
) -> tuple[list[str], dict[str, list[tuple[str, str | None]]]]:
    """Run each step's migration function against a recorder; return the refusals and each downgrade's drops."""
    alembic_log = logging.getLogger("alembic.runtime.migration")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)  # the recorder's own context is no news to the operator
    try:
        planner_context = MigrationContext.configure(
            dialect_name="postgresql",
            opts={
                "as_sql": True,
                "output_buffer": io.StringIO(),
                "literal_binds": True,
                "transaction_per_migration": True,
                "version_table": impl.migration_context.version_table,
            },
        )
    finally:
        alembic_log.setLevel(level)
    planner = SafeImpl(
        planner_context.dialect,
        planner_context.connection,  # a mock: what a revision executes through op.get_bind() goes nowhere
        True,
        True,
        planner_context.impl.output_buffer,
        planner_context.opts,
    )
    planner.setup(planner_context, impl.limits, impl.expected, planning=True)
    planner_context.impl = planner
    refusals: list[str] = []
    drops: dict[str, list[tuple[str, str | None]]] = {}
    running = getattr(op_module, "_proxy", None)
    recorder = Operations(planner_context)
    recorder._install_proxy()  # `op` in the revisions is the recorder's while they are planned
    try:
        for step in steps:
            rules = planner.rules = impl.rules_for(step)
            try:
                step.migration_fn()
            except OutboundSchemaError:
                raise
            except Exception as exc:  # a revision that needs a live database to plan
                log.warning(
                    "%s could not be planned before the run (%s: %s): its operations are checked as they "
                    "run, so a refusal would stop it after the changes before it. Revisions should run "
                    "offline (--sql) too.",
                    rules.revision,
                    type(exc).__name__,
                    exc,
                )
            refusals += rules.refusals
            drops[rules.revision] = rules.drops
            for key in sorted(rules.used):
                log.warning(
                    "%s: %s, refused by default, allowed by the revision: %s",
                    rules.revision,
                    key,
                    rules.allowed[key],
                )
            # An allowance is for the upgrade: going down, the revision's drops are guarded by the data check.
            for unused in sorted(set(rules.allowed) - rules.used) if rules.upgrading else ():
                log.warning("%s: allow_unsafe names %r, which no operation of it needs", rules.revision, unused)
    finally:
        planner.rules = None
        recorder._remove_proxy()
        if running is not None:
            running._install_proxy()
    return refusals, drops


def host_tables(impl: SafeImpl, steps: Sequence[RevisionStep]) -> list[str]:
    """The tables outside ours that the run's target references by foreign key."""
    assert impl.expected is not None
    target = impl.expected.at(steps[-1].revision.revision) if steps else None
    return foreign_tables(target) if target is not None else list(HOST_TABLES)


def install(
    context: MigrationContext, limits: Limits, expected: ExpectedSchemas, *, preflight: bool = True
) -> SafeImpl:
    """Put the safety layer into ``context``'s migration run (after ``context.configure``)."""
    old = context.impl
    if isinstance(old, SafeImpl):
        return old
    if not isinstance(old, PostgresqlImpl):
        raise OutboundSchemaError(
            f"outbound-schema migrates PostgreSQL only; this migration runs against {old.dialect.name}."
        )
    if not context._transaction_per_migration:
        raise OutboundSchemaError(
            "The migration environment must be configured with transaction_per_migration=True: outbound-schema "
            "commits each change on its own, and builds indexes CONCURRENTLY outside any transaction."
        )
    impl = SafeImpl(old.dialect, old.connection, old.as_sql, old.transactional_ddl, old.output_buffer, old.context_opts)
    impl.setup(context, limits, expected, preflight=preflight)
    context.impl = impl
    context.on_version_apply_callbacks = (*context.on_version_apply_callbacks, impl.record_history)
    return impl


def _release() -> str | None:
    """This release's version, as the schema history names the release that applied a revision."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("outbound-schema")
    except PackageNotFoundError:
        return None
