"""The Alembic implementation: :class:`SafeImpl` takes the place of Alembic's PostgreSQL implementation for
one run, and routes every statement an operation causes through the rules.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from functools import cache
from typing import Any

from alembic.ddl import base
from alembic.ddl.postgresql import PostgresqlImpl
from alembic.runtime.migration import MigrationContext, RevisionStep
from sqlalchemy import CheckConstraint, Connection, TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import (
    AddConstraint,
    CreateIndex,
    CreateTable,
    DropConstraint,
    DropIndex,
    DropTable,
    ForeignKeyConstraint,
)
from sqlalchemy.util import immutabledict

from outbound_schema import progress
from outbound_schema.ddl import Call, DDLRunner, Limits, SessionGuard, Statement
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.expected import ExpectedSchemas, is_managed
from outbound_schema.keywords import literal, quote
from outbound_schema.locking import BACKEND_KEY, same_session_guard
from outbound_schema.query import _literal_percent
from outbound_schema.revisions import applied_revisions, check_rows, superseded_rows, version_rows_error
from outbound_schema.safety import alembic_api
from outbound_schema.safety.guards import data_guard, raise_format, sql_text
from outbound_schema.safety.operations import describe, did, handler_for, qualified, referenced, sql_of, table_of
from outbound_schema.safety.planning import RunPlan, prepare
from outbound_schema.safety.rules import Rules, allowances
from outbound_schema.safety.script import is_version_table, rerunnable_version_change, skip_when_done, squawk_ignore
from outbound_schema.session import KEEP_ALIVE
from outbound_schema.standing import HISTORY_DDL, HISTORY_TABLE

log = logging.getLogger("outbound_schema.migrate")

_VIOLATIONS = {"23514", "23503", "23502"}  # check, foreign key, not null
_OUTSIDE_TRANSACTIONS = re.compile(
    r"(CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|DROP\s+INDEX\s+CONCURRENTLY|REINDEX\s+(\(.*?\)\s*)?\w+\s+CONCURRENTLY"
    r"|REFRESH\s+MATERIALIZED\s+VIEW\s+CONCURRENTLY|VACUUM)\b",
    re.IGNORECASE,
)
_LEADING_COMMENTS = re.compile(r"^(\s+|--[^\n]*\n?|/\*.*?\*/)*", re.DOTALL)


def runs_outside_transactions(sql: str) -> bool:
    """Whether a statement of ``op.execute`` cannot run in a transaction block (by its leading words)."""
    return bool(_OUTSIDE_TRANSACTIONS.match(_LEADING_COMMENTS.sub("", sql, count=1)))


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
        # Autocommit: a transaction left open here would hold a snapshot the index build waits for. It idles
        # between readings: a role's idle_session_timeout must not end it (outbound_schema.session).
        watcher = target.connect(autocommit=True)
        try:
            watcher.execute(KEEP_ALIVE)
        except BaseException:
            watcher.close()
            raise
        return watcher

    return connect


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
    #: ``outbound-schema plan``'s recorder (``outbound_schema.plan.Recorder``), offline only: a refused operation
    #: is handed to it and left out of the script, instead of stopping the run.
    observer: Any = None

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
        if isinstance(statement, str) and not self.as_sql:
            # Written whole by this layer (BEGIN, the session check and settings, COMMIT), it binds nothing: to
            # the driver as it is, rather than compiled as text() first, which cost more than running it.
            assert self.connection is not None
            return self.connection.exec_driver_sql(_literal_percent(statement))
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
        if rules is None or is_version_table(construct, self.migration_context.version_table):
            self._close_offline_block()
            if self.as_sql:
                construct = rerunnable_version_change(construct, self.migration_context.version_table)
                if construct is None:
                    return None
            return super()._exec(construct, execution_options, multiparams, params)
        rules.lint.clear()
        refused_before = len(rules.refusals)
        rules.check(construct)
        if self.planning or self._adopted():
            return None
        if self.observer is not None and len(rules.refusals) > refused_before:
            self.observer.refused(construct, rules.refusals[refused_before:])
            return None
        if rules.refusals and self.observer is None:
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
        produce = alembic_api.migration_steps(context)
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
            prepare(self, self.plan)
            self._create_history_table()

        def tracked(_heads: object, _context: object) -> Iterator[Any]:
            for step in steps:
                self._enter_step(step)
                yield step
                self._leave_step(step)
            self._enter_step(None)

        alembic_api.replace_migration_steps(context, tracked)
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
        # Found, it is kept: CREATE TABLE IF NOT EXISTS needs CREATE on the schema even then.
        found = self._relation(HISTORY_TABLE, None) is not None
        self.migration_context.connection.commit()  # type: ignore[union-attr]
        if found:
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
        return Rules(revision.revision, step.is_upgrade, before, allowances(revision))

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
        """Online: one value ``sql`` reads, its parameters in the driver's ``%(name)s`` form."""
        assert self.connection is not None and not self.as_sql
        return self.connection.exec_driver_sql(sql, params).scalar()

    def _relation(self, name: str, schema: str | None) -> str | None:
        """The relkind of the relation ``name`` on the search path (or in ``schema``), if any."""
        kind = self._scalar(
            "SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%(name)s)", name=qualified(name, schema)
        )
        return str(kind) if kind is not None else None

    def version_table_exists(self) -> bool:
        """Whether the version table exists, as SQLAlchemy's ``has_table`` tells it (a table, view or foreign
        table of that name the search path finds, or in the schema configured): one look-up, where the
        inspector's query over pg_class and pg_namespace cost a new session's server 1.5 ms more."""
        context = self.migration_context
        return self._relation(context.version_table, context.version_table_schema) in ("r", "p", "f", "v", "m")

    def _column_exists(self, table: str, column: str, schema: str | None) -> bool:
        return bool(
            self._scalar(
                "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass(%(table)s) "
                "AND attname = %(column)s AND attnum > 0 AND NOT attisdropped)",
                table=qualified(table, schema),
                column=column,
            )
        )

    # The operations.

    def _apply(self, construct: Any, call: Call, rules: Rules) -> Any:
        table = table_of(construct)
        label = f"{rules.revision}: {describe(construct)}"
        with self._autocommit():
            how = handler_for(_HOW, construct)
            if how is not None and how(self, construct, label, rules):
                return None  # done its own way, or found done
            self.runner.in_transaction([call], label=label, tables=[table] if table else [])
            self.executed += 1
            self._done("%s: %s", rules.revision, did(construct))
        return None

    # How each construct runs, where it differs from one statement in a short transaction of its own: each
    # returns True when it has done (or found done) the change, False to run the statement as written.

    def _drop_index(self, construct: DropIndex, label: str, rules: Rules) -> bool:
        construct.element.dialect_kwargs["postgresql_concurrently"] = True
        construct.if_exists = True
        self._outside(construct, label)
        self._done("%s: dropped index %s concurrently", rules.revision, construct.element.name)
        return True

    def _add_column(self, construct: base.AddColumn, _label: str, rules: Rules) -> bool:
        table, column = construct.table_name, construct.column.name
        if not self.as_sql and self._column_exists(table, column, construct.schema):
            log.info("%s: column %s.%s already present, kept", rules.revision, table, column)
            return True
        construct.if_not_exists = True
        return False

    def _drop_column(self, construct: base.DropColumn, label: str, rules: Rules) -> bool:
        construct.if_exists = True
        self._drop(construct, label, rules, construct.table_name, construct.column.name)
        return True

    def _drop_table(self, construct: DropTable, label: str, rules: Rules) -> bool:
        construct.if_exists = True
        self._drop(construct, label, rules, construct.element.name, None)
        return True

    def _drop_constraint(self, construct: DropConstraint, _label: str, _rules: Rules) -> bool:
        construct.if_exists = True
        return False

    def _rename_column(self, construct: base.ColumnName, _label: str, _rules: Rules) -> bool:
        """Renamed by an earlier, interrupted run: nothing to do."""
        table, schema = construct.table_name, construct.schema
        return (
            not self.as_sql
            and not self._column_exists(table, construct.column_name, schema)
            and self._column_exists(table, construct.newname, schema)
        )

    def _rename_table(self, construct: base.RenameTable, _label: str, _rules: Rules) -> bool:
        schema = construct.schema
        return (
            not self.as_sql
            and self._relation(construct.table_name, schema) is None
            and self._relation(str(construct.new_table_name), schema) is not None
        )

    def _execute(self, construct: TextClause, label: str, rules: Rules) -> bool:
        if not runs_outside_transactions(construct.text):
            return False
        self._outside(construct, label)
        self._done("%s: %s", rules.revision, did(construct))
        return True

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
        self.runner.in_transaction([statement], label=label, tables=[table.name, *referenced(table)])
        self.executed += 1
        self.created_tables.add(table.name)
        self._done("%s: created table %s", rules.revision, table.name)

    def _create_index(self, construct: CreateIndex, label: str, rules: Rules) -> None:
        index = construct.element
        name, table, schema = str(index.name), str(index.table.name), index.table.schema  # type: ignore[union-attr]
        index_name = qualified(name, schema)
        if self.as_sql:
            # Nothing can be rebuilt conditionally offline: stop the script rather than keep an INVALID index.
            message = (
                f"index {name} is INVALID, left by an interrupted build: run DROP INDEX CONCURRENTLY {index_name}; "
                "then run this script again"
            )
            self.runner.execute(
                "DO $outbound$ BEGIN IF EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass("
                f"{literal(index_name)}) AND NOT indisvalid) THEN RAISE EXCEPTION {raise_format(message)}; "
                "END IF; END $outbound$"
            )
        else:
            valid = self._scalar(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%(name)s)", name=index_name
            )
            if valid:
                log.info("%s: index %s already present, kept", rules.revision, name)
                return
            if valid is False:
                # Unusable and unused by PostgreSQL: rebuilding it loses nothing.
                self._outside(f"DROP INDEX CONCURRENTLY IF EXISTS {index_name}", label)
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
        qualified_table = qualified(table, constraint.table.schema)
        tables = [table, *referenced(constraint)]
        validated = None
        if not self.as_sql:
            validated = self._scalar(
                "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass(%(table)s) AND conname = %(name)s",
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
                    f"{sql_of(construct)}; END IF; END $outbound$"
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
        self._done("%s: %s", rules.revision, did(construct))

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
    if not alembic_api.transaction_per_migration(context):
        raise OutboundSchemaError(
            "The migration environment must be configured with transaction_per_migration=True: outbound-schema "
            "commits each change on its own, and builds indexes CONCURRENTLY outside any transaction."
        )
    impl = SafeImpl(old.dialect, old.connection, old.as_sql, old.transactional_ddl, old.output_buffer, old.context_opts)
    impl.setup(context, limits, expected, preflight=preflight)
    context.impl = impl
    alembic_api.add_version_apply_callback(context, impl.record_history)
    alembic_api.look_up_version_table_with(context, impl.version_table_exists)
    return impl


@cache
def _release() -> str | None:
    """This release's version, as the schema history names the release that applied a revision. Read once
    per process: importlib.metadata searches sys.path and parses the metadata file at each call."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("outbound-schema")
    except PackageNotFoundError:
        return None


def _whole(method: Callable[[SafeImpl, Any, str, Rules], None]) -> Callable[[SafeImpl, Any, str, Rules], bool]:
    """A way of running a construct that always does the whole change itself."""

    def run(impl: SafeImpl, construct: Any, label: str, rules: Rules) -> bool:
        method(impl, construct, label, rules)
        return True

    return run


#: How each construct runs under the safety layer, by its type (see :meth:`SafeImpl._apply`).
_HOW: dict[type, Callable[[SafeImpl, Any, str, Rules], bool]] = {
    CreateTable: _whole(SafeImpl._create_table),
    CreateIndex: _whole(SafeImpl._create_index),
    AddConstraint: _whole(SafeImpl._add_constraint),
    DropIndex: SafeImpl._drop_index,
    base.AddColumn: SafeImpl._add_column,
    base.DropColumn: SafeImpl._drop_column,
    DropTable: SafeImpl._drop_table,
    DropConstraint: SafeImpl._drop_constraint,
    base.ColumnName: SafeImpl._rename_column,
    base.RenameTable: SafeImpl._rename_table,
    TextClause: SafeImpl._execute,
}
