"""Planning a run before anything changes: every revision's operations recorded against no database,
refusals found up front, and the catalog compared (take-over) before the first change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from outbound_schema.safety import alembic_api
from outbound_schema.safety.guards import refuse_data_loss
from outbound_schema.safety.privileges import refuse_missing_privileges

if TYPE_CHECKING:
    from outbound_schema.safety.impl import SafeImpl
    from outbound_schema.safety.rules import Rules

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext, RevisionStep

from outbound_schema.catalog import HOST_TABLES
from outbound_schema.database import require_host_tables
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.expected import SNAPSHOT_COMMAND, foreign_tables

log = logging.getLogger("outbound_schema.migrate")


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


def plan_revisions(
    impl: SafeImpl, steps: Sequence[RevisionStep], planned: dict[str, Rules] | None = None
) -> tuple[list[str], dict[str, list[tuple[str, str | None]]]]:
    """Run each step's migration function against a recorder; return the refusals and each downgrade's drops
    (``planned``, when given, gets each revision's rules as planned: what its operations act on)."""
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
    planner = type(impl)(
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
    # `op` in the revisions is the recorder's while they are planned.
    with alembic_api.op_proxied_to(Operations(planner_context)):
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
                if planned is not None:
                    planned[rules.revision] = rules
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
    return refusals, drops


def host_tables(impl: SafeImpl, steps: Sequence[RevisionStep]) -> list[str]:
    """The tables outside ours that the run's target references by foreign key."""
    assert impl.expected is not None
    target = impl.expected.at(steps[-1].revision.revision) if steps else None
    return foreign_tables(target) if target is not None else list(HOST_TABLES)


def prepare(impl: SafeImpl, plan: RunPlan) -> None:
    """Before the first change of a run: plan every revision, refuse what must be refused."""
    from outbound_schema.takeover import assess, refuse_conflicts  # the catalog comparison, only when there is work

    steps = [s for s in plan.steps if s.revision.revision in plan.managed]
    planned: dict[str, Rules] = {}
    refusals, plan.drops = plan_revisions(impl, steps, planned)
    if impl.observer is not None:  # outbound-schema plan: the refusals are shown, the script goes on
        impl.observer.planned(planned)
        refusals = []
    if refusals:
        raise OutboundSchemaError("\n\n".join([*refusals, "Nothing was changed."]))
    connection = impl.migration_context.connection
    if impl.as_sql or connection is None:
        return  # offline there is no catalog to read; every statement can run again
    upgrades = [s for s in steps if s.is_upgrade]
    if upgrades:
        require_host_tables(connection, host_tables(impl, upgrades))
        if impl.preflight and impl.expected is not None:
            for rev in (s.revision for s in upgrades):
                if impl.expected.at(rev.revision) is None:
                    log.warning(
                        "%s has no expected-schema file yet, so the database is not compared with it before the "
                        "upgrade; generate it with `%s`",
                        rev.revision,
                        SNAPSHOT_COMMAND,
                    )
            reports = assess(connection, impl.expected, [s.revision for s in upgrades])
            refuse_conflicts(reports)
            plan.states = {report.revision: report.state for report in reports}
            plan.adopted = {report.revision for report in reports if report.adopted}
    downgrades = [s for s in steps if not s.is_upgrade]
    if downgrades and not impl.limits.allow_data_loss:
        refuse_data_loss(
            connection, [(s.revision.revision, plan.drops.get(s.revision.revision, [])) for s in downgrades]
        )
    # Found whole in the catalog, a revision changes nothing: it needs no privilege beyond recording it.
    working = [planned[s.revision.revision] for s in steps if s.revision.revision in planned]
    working = [rules for rules in working if plan.states.get(rules.revision) != "present"]
    working = [rules for rules in working if rules.revision not in plan.adopted]
    context = impl.migration_context
    refuse_missing_privileges(
        connection, working, version_table=context.version_table, version_table_schema=context.version_table_schema
    )
    connection.commit()  # no transaction stays open: concurrent index builds wait for open transactions
