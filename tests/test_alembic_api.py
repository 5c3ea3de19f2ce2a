"""Each use of Alembic beyond its documented API (outbound_schema.safety.alembic_api), run against the
installed Alembic: a release that changes one fails here, by name."""

from __future__ import annotations

import inspect
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config
from alembic.ddl import base
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

from outbound_schema.config import VERSION_TABLE
from outbound_schema.safety import alembic_api
from outbound_schema.safety.impl import SafeImpl
from tests.helpers import HEAD, connected, inject

ENV = """
import json, os
from alembic import context
from outbound_schema.safety import alembic_api

context.configure(url="postgresql+psycopg://", transaction_per_migration=True, literal_binds=True)
migration = context.get_context()
found = {
    "command": alembic_api.command_name(migration),
    "per_migration": alembic_api.transaction_per_migration(migration),
    "descendants": {},
    "applied": [],
}
steps = alembic_api.migration_steps(migration)


def watched(heads, ctx):
    for step in steps(heads, ctx):
        found["descendants"][step.revision.revision] = sorted(alembic_api.descendants(step))
        yield step


alembic_api.replace_migration_steps(migration, watched)
alembic_api.add_version_apply_callback(migration, lambda *, step, **_: found["applied"].append(step.up_revision_id))
with context.begin_transaction():
    context.run_migrations()
with open(os.environ["ALEMBIC_API_OUT"], "w") as out:
    json.dump(found, out)
"""

REVISION = """
revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
"""


@pytest.fixture
def location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(ENV)
    for revision, down in (("a1", None), ("b2", "a1"), ("c3", "b2")):
        (tmp_path / "versions" / f"{revision}.py").write_text(REVISION.format(revision=revision, down=down))
    monkeypatch.setenv("ALEMBIC_API_OUT", str(tmp_path / "found.json"))
    return tmp_path


def run(location: Path, verb: str, target: str) -> dict[str, object]:
    config = Config(output_buffer=io.StringIO())
    config.set_main_option("script_location", str(location))
    getattr(command, verb)(config, target, sql=True)
    found: dict[str, object] = json.loads((location / "found.json").read_text())
    return found


def test_the_run_s_steps_its_command_and_its_callbacks(location: Path) -> None:
    up = run(location, "upgrade", "head")
    assert up["command"] == "upgrade" and up["per_migration"] is True
    assert up["applied"] == ["a1", "b2", "c3"]
    assert up["descendants"] == {"a1": ["a1", "b2", "c3"], "b2": ["b2", "c3"], "c3": ["c3"]}

    down = run(location, "downgrade", "c3:a1")
    assert down["command"] == "downgrade" and down["applied"] == ["c3", "b2"]


def test_op_is_proxied_to_the_recorder_and_back() -> None:
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="postgresql", opts={"as_sql": True, "output_buffer": buffer})
    from outbound_schema.safety import alembic_api

    running = getattr(op, "_proxy", None)  # whatever an earlier run left, it is put back
    with alembic_api.op_proxied_to(Operations(context)):
        op.execute("SELECT 1")
    assert "SELECT 1" in buffer.getvalue()
    assert getattr(op, "_proxy", None) is running


def test_the_key_add_column_builds_inline() -> None:
    """``op.add_column(..., inline_primary_key=True)`` (Alembic 1.18.4+) and ``inline_references=True``
    (1.18.2+) build the key within the ADD COLUMN; without them, and on the releases before, none is."""
    from outbound_schema.safety import alembic_api

    def key(column: sa.Column[int], **inline: bool) -> str | None:
        return alembic_api.inline_key(base.AddColumn("outbound_call_jobs", column, schema=None, **inline))

    primary = sa.Column("id", sa.Integer, primary_key=True)
    referencing = sa.Column("run_id", sa.Integer, sa.ForeignKey("outbound_call_runs.id"))
    assert key(primary) is None and key(referencing) is None
    accepted = inspect.signature(base.AddColumn).parameters
    if "inline_primary_key" in accepted:
        assert key(primary, inline_primary_key=True) == "primary key"
        assert key(referencing, inline_primary_key=True) is None  # no primary key to put there
    if "inline_references" in accepted:
        assert key(referencing, inline_references=True) == "foreign key"


def test_an_offline_upgrade_from_two_heads_at_once(location: Path) -> None:
    """``upgrade_script``: ``command.upgrade``'s own body, started from every row of a version table at two heads
    of a branched history (``b2`` beside ``d4``): only what neither includes runs, as the command ``upgrade``."""
    from outbound_schema.safety import alembic_api

    (location / "versions" / "d4.py").write_text(REVISION.format(revision="d4", down="a1"))
    config = Config(output_buffer=io.StringIO())
    config.set_main_option("script_location", str(location))
    alembic_api.upgrade_script(config, ["b2", "d4"], "heads")
    found = json.loads((location / "found.json").read_text())
    assert found["command"] == "upgrade" and found["applied"] == ["c3"]
    alembic_api.upgrade_script(config, [], "heads")  # no rows: from base, as ``upgrade heads --sql``
    assert sorted(json.loads((location / "found.json").read_text())["applied"]) == ["a1", "b2", "c3", "d4"]


def test_the_version_table_is_looked_up_as_we_say(head_db: URL) -> None:
    """``MigrationContext._has_version_table``: what ``get_current_heads`` asks before it reads the table."""
    with connected(head_db) as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert context.get_current_heads() == (HEAD,)
        asked: list[bool] = []
        alembic_api.look_up_version_table_with(context, lambda: asked.append(False) or False)
        assert context.get_current_heads() == () and asked == [False]


def test_the_version_table_look_up_agrees_with_sqlalchemy(head_db: URL) -> None:
    """The safety layer's one-statement look-up answers as the inspector's ``has_table`` does: for a table, none,
    a view and a sequence of that name, a table off the search path, in a schema named, in a quoted one."""
    inject(
        head_db,
        "CREATE VIEW as_view AS SELECT 1 AS v",
        "CREATE SEQUENCE as_sequence",
        "CREATE SCHEMA hidden",
        "CREATE TABLE hidden.off_the_path (v int)",
        'CREATE SCHEMA "Odd"',
        'CREATE TABLE "Odd".in_odd (v int)',
    )
    cases = {
        (VERSION_TABLE, None): True,
        ("nowhere", None): False,
        ("as_view", None): True,
        ("as_sequence", None): False,
        ("off_the_path", None): False,
        ("off_the_path", "hidden"): True,
        ("in_odd", "Odd"): True,
    }
    with connected(head_db) as connection:
        for (name, schema), exists in cases.items():
            context = MigrationContext.configure(
                connection, opts={"version_table": name, "version_table_schema": schema}
            )
            impl = SafeImpl(context.dialect, connection, False, True, None, {})
            impl.migration_context = context
            assert sa.inspect(connection).has_table(name, schema) is exists, (name, schema)
            assert impl.version_table_exists() is exists, (name, schema)
