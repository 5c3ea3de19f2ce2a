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

from outbound_schema.safety.guards import data_guard, raise_format, sql_text
from outbound_schema.safety.impl import MONITOR_KEY, SafeImpl, install, runs_outside_transactions
from outbound_schema.safety.planning import RunPlan, host_tables, plan_revisions
from outbound_schema.safety.rules import ALLOW_UNSAFE, SQUAWK_RULES, VOLATILE_FUNCTIONS, Rules, rewrites

__all__ = [
    "ALLOW_UNSAFE",
    "MONITOR_KEY",
    "SQUAWK_RULES",
    "VOLATILE_FUNCTIONS",
    "Rules",
    "RunPlan",
    "SafeImpl",
    "data_guard",
    "host_tables",
    "install",
    "plan_revisions",
    "raise_format",
    "rewrites",
    "runs_outside_transactions",
    "sql_text",
]
