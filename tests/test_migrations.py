"""Our revisions build exactly what the old script built, step by step, up and down."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from outbound_schema.catalog import Snapshot, snapshot
from outbound_schema.config import alembic_config
from outbound_schema.models import HOST_TABLES, metadata
from tests.helpers import REPO, catalog, run_script, version
from tests.legacy import REVISIONS


def test_revision_chain_is_linear_and_named_as_the_legacy_steps() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert chain == list(REVISIONS)
    assert script.get_heads() == ["46d"]
    assert all(len(rev.nextrev) <= 1 for rev in script.walk_revisions())


def test_head_catalog_is_exactly_the_legacy_catalog(head_db: URL, legacy_catalogs: dict[str, Snapshot]) -> None:
    built = catalog(head_db)
    assert built == legacy_catalogs["46d"]
    # The names production has, spelled out, so a regression reads plainly.
    assert {"outbound_call_runs_pkey", "outbound_call_jobs_run_id_fkey"} <= set(built.constraints)
    assert set(built.sequences) == {"outbound_call_runs_id_seq", "outbound_call_jobs_id_seq"}
    assert len(built.indexes) == 12
    assert version(head_db) == ["46d"]


@pytest.mark.parametrize("target", REVISIONS)
def test_each_revision_matches_the_legacy_step(host_db: URL, target: str, legacy_catalogs: dict[str, Snapshot]) -> None:
    command.upgrade(alembic_config(host_db), target)
    assert catalog(host_db) == legacy_catalogs[target]
    assert version(host_db) == [target]


@pytest.mark.parametrize("target", ["base", *REVISIONS[:-1]])
def test_each_downgrade_returns_to_the_previous_step(
    head_db: URL, target: str, legacy_catalogs: dict[str, Snapshot]
) -> None:
    command.downgrade(alembic_config(head_db), target)
    assert catalog(head_db) == legacy_catalogs[target]
    assert version(head_db) == ([] if target == "base" else [target])
    # Up again from there lands on exactly the head catalog.
    command.upgrade(alembic_config(head_db), "head")
    assert catalog(head_db) == legacy_catalogs["46d"]


def test_downgrade_to_base_leaves_host_tables_alone(head_engine: Engine, head_db: URL) -> None:
    with head_engine.begin() as conn:
        conn.execute(text("INSERT INTO business DEFAULT VALUES"))
    command.downgrade(alembic_config(head_db), "base")
    with head_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM business")) == 1
        present = {t for t in HOST_TABLES if conn.scalar(text("SELECT to_regclass(:t)"), {"t": t})}
    assert present == set(HOST_TABLES)


def test_models_build_exactly_the_legacy_catalog(host_engine: Engine, legacy_catalogs: dict[str, Snapshot]) -> None:
    """The models alone, through create_all, give production's catalog: names, order, defaults."""
    with host_engine.begin() as conn:
        metadata.create_all(conn)
        assert snapshot(conn) == legacy_catalogs["46d"]


def offline_sql(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "outbound_schema.cli", "upgrade", *args, "--sql"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return done.stdout


def test_offline_script_builds_the_same_catalog(host_db: URL, legacy_catalogs: dict[str, Snapshot]) -> None:
    run_script(host_db, offline_sql("head"))
    assert catalog(host_db) == legacy_catalogs["46d"]
    assert version(host_db) == ["46d"]


def test_offline_script_from_a_revision(host_db: URL, legacy_catalogs: dict[str, Snapshot]) -> None:
    command.upgrade(alembic_config(host_db), "46b")
    sql = offline_sql("46b:head")
    assert "CREATE TABLE IF NOT EXISTS outbound_call_runs" not in sql
    run_script(host_db, sql)
    assert catalog(host_db) == legacy_catalogs["46d"]
    assert version(host_db) == ["46d"]


def test_revisions_never_import_the_orm_models() -> None:
    probe = (
        "import importlib.util, pathlib, sys\n"
        "for path in sorted(pathlib.Path('alembic/versions').glob('*.py')):\n"
        "    spec = importlib.util.spec_from_file_location(path.stem, path)\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print('outbound_schema.models' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
