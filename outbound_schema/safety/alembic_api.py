"""Every use of Alembic beyond its documented API, in one place, each with what it stands for.

Alembic is pinned below 2; within that range these attributes have kept their meaning, and
``tests/test_alembic_api.py`` runs each one against the installed Alembic, so a release that changes one
fails there, by name, rather than somewhere in a migration. What differs between the releases we support
(pyproject.toml's range; CI runs its lowest and its newest) is read here too, with what an older release
did instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from alembic import op as op_module
from alembic.config import Config
from alembic.ddl import base
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext, RevisionStep

#: ``MigrationContext._migrations_fn(heads, context)``: the steps a run goes through, in order.
StepsFn = Callable[[Any, MigrationContext], Any]


def migration_steps(context: MigrationContext) -> StepsFn | None:
    """The function that gives the run's steps (None outside a command that runs revisions)."""
    steps: StepsFn | None = context._migrations_fn
    return steps


def replace_migration_steps(context: MigrationContext, steps: StepsFn) -> None:
    """Have the run go through ``steps`` instead: how each step is seen before and after it runs."""
    context._migrations_fn = steps


def transaction_per_migration(context: MigrationContext) -> bool:
    """Whether ``context.configure(transaction_per_migration=True)`` was given."""
    return bool(context._transaction_per_migration)


@contextmanager
def op_proxied_to(operations: Operations) -> Iterator[None]:
    """``alembic.op`` in the revisions is ``operations`` within; the running one's again after."""
    running = getattr(op_module, "_proxy", None)
    operations._install_proxy()
    try:
        yield
    finally:
        operations._remove_proxy()
        if running is not None:
            running._install_proxy()


def descendants(step: RevisionStep) -> list[str]:
    """The step's revision and every revision built on it."""
    return [rev.revision for rev in step.revision_map._get_descendant_nodes([step.revision])]


def command_name(context: MigrationContext) -> str | None:
    """The name of the command running the migrations: ``upgrade``, ``downgrade``, ``stamp``, ... (the
    function ``alembic.command`` hands the environment as ``fn``); None when none did."""
    name = getattr(context.opts.get("fn"), "__name__", None)
    return name if isinstance(name, str) else None


def add_version_apply_callback(context: MigrationContext, callback: Callable[..., None]) -> None:
    """Call ``callback`` as ``configure(on_version_apply=...)`` would, beside any the environment gave."""
    context.on_version_apply_callbacks = (*context.on_version_apply_callbacks, callback)


def look_up_version_table_with(context: MigrationContext, has_table: Callable[[], bool]) -> None:
    """Have Alembic ask ``has_table()`` whether the version table exists, where it reflects it through
    SQLAlchemy's inspector: ``MigrationContext._has_version_table``, which ``get_current_heads`` calls (twice
    a run)."""
    context._has_version_table = has_table  # type: ignore[method-assign]


def inline_key(construct: base.AddColumn) -> str | None:
    """The key ``op.add_column`` builds within the ADD COLUMN itself: ``"primary key"`` for
    ``inline_primary_key=True`` on a primary-key column (Alembic 1.18.4+), ``"foreign key"`` for
    ``inline_references=True`` (Alembic 1.18.2+); None when the column comes alone. Before those releases
    neither argument existed: no primary key was added with a column, and a foreign key always came as an
    ALTER TABLE ... ADD CONSTRAINT of its own."""
    if getattr(construct, "inline_primary_key", None) and construct.column.primary_key:
        return "primary key"
    if getattr(construct, "inline_references", None) and construct.column.foreign_keys:
        return "foreign key"
    return None


def upgrade_script(config: Config, starts: Sequence[str], target: str) -> None:
    """``command.upgrade(config, "start:target", sql=True)`` from every revision of ``starts`` at once: a version
    table at two heads of a branched history starts from both. The range ``command.upgrade`` parses takes one
    starting revision; the offline migration context reads a list (``starting_rev``), and this is
    ``command.upgrade``'s own body with that list handed to it."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)

    def upgrade(rev: Any, context: Any) -> Any:  # named so: command_name() reads the command from it
        return script._upgrade_revs(target, rev)

    with EnvironmentContext(
        config, script, fn=upgrade, as_sql=True, starting_rev=tuple(starts) or None, destination_rev=target
    ):
        script.run_env()
