"""The revisions, the committed expected-schema files and the models agree, on a real server.

The legacy six's files equal what the old script's SQL builds, and upgrading and
downgrading to each revision, online or through the offline script, lands on that
revision's file. (That the files are fresh is tests/test_snapshot.py's; that the
models build head's file, tests/test_models.py's.)
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from alembic import command
from sqlalchemy.engine import URL

from outbound_schema.catalog import Snapshot
from outbound_schema.config import alembic_config
from outbound_schema.expected import render
from tests.helpers import (
    ALL_REVISIONS,
    HEAD,
    REPO,
    catalog,
    catalog_text,
    cli_here,
    expected_schema,
    expected_text,
    revisions_after,
    run_script,
    script,
    version,
)
from tests.legacy import REVISIONS


def test_the_legacy_revisions_start_a_linear_history() -> None:
    chain = [rev.revision for rev in reversed(list(script().walk_revisions()))]
    assert chain == list(ALL_REVISIONS)
    assert chain[: len(REVISIONS)] == list(REVISIONS)
    assert script().get_heads() == [HEAD]
    assert all(len(rev.nextrev) <= 1 for rev in script().walk_revisions())


@pytest.mark.parametrize("revision", REVISIONS)
def test_the_legacy_files_hold_what_the_old_script_built(revision: str, legacy_catalogs: dict[str, Snapshot]) -> None:
    assert render(legacy_catalogs[revision], revision) == expected_text(revision)


def test_a_database_at_head_holds_heads_file(head_db: URL) -> None:
    assert catalog_text(head_db, HEAD) == expected_text(HEAD)
    assert version(head_db) == [HEAD]


@pytest.mark.parametrize("target", ALL_REVISIONS)
def test_each_revision_lands_on_its_file(host_db: URL, target: str) -> None:
    command.upgrade(alembic_config(host_db), target)
    assert catalog_text(host_db, target) == expected_text(target)
    assert version(host_db) == [target]


def in_files_order(found: Snapshot, target: str) -> Snapshot:
    """``found`` with its columns in the order of ``target``'s file, where they are only moved: a column a
    later revision dropped comes back, downgraded, at the end of its table (PostgreSQL puts a column
    nowhere else); each one moved must be such a column."""
    expected = expected_schema(target)
    dropped_later = {
        f"{table}.{column.name}"
        for later in revisions_after(target)
        for table, info in expected.tables.items()
        for column in info.columns
        if table in (then := expected_schema(later)).tables and then.tables[table].column(column.name) is None
    }
    tables = dict(found.tables)
    for name, info in found.tables.items():
        want = expected.tables.get(name)
        if want is None or [c.name for c in info.columns] == [c.name for c in want.columns]:
            continue
        order = [c.name for c in want.columns]
        if sorted(c.name for c in info.columns) != sorted(order):
            continue
        readded = [c.name for c in info.columns if f"{name}.{c.name}" in dropped_later]
        others = [c.name for c in info.columns if c.name not in readded]
        assert others == [n for n in order if n not in readded], (name, "columns out of order", others)
        assert [c.name for c in info.columns][len(others) :] == readded, (name, "not at the end", readded)
        tables[name] = replace(info, columns=tuple(sorted(info.columns, key=lambda c: order.index(c.name))))
    return replace(found, tables=tables)


@pytest.mark.parametrize("target", ["base", *ALL_REVISIONS[:-1]])
def test_each_downgrade_returns_to_the_previous_file(head_db: URL, target: str) -> None:
    command.downgrade(alembic_config(head_db), target)
    if target == "base":
        assert catalog_text(head_db, target) == render(Snapshot(), target)
        assert version(head_db) == []
    else:
        assert render(in_files_order(catalog(head_db), target), target) == expected_text(target)
        assert version(head_db) == [target]
    # Up again from there lands on exactly head's file.
    command.upgrade(alembic_config(head_db), "head")
    assert catalog_text(head_db, HEAD) == expected_text(HEAD)


def offline_sql(*args: str) -> str:
    done = cli_here("upgrade", *args, "--sql")  # no DATABASE_URL: the script needs no server
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_offline_script_lands_on_heads_file(host_db: URL) -> None:
    run_script(host_db, offline_sql("head"))
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)
    assert version(host_db) == [HEAD]


def test_the_offline_script_from_a_revision(host_db: URL) -> None:
    command.upgrade(alembic_config(host_db), "46b")
    sql = offline_sql("46b:head")
    assert "CREATE TABLE IF NOT EXISTS outbound_call_runs" not in sql
    run_script(host_db, sql)
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)
    assert version(host_db) == [HEAD]


def test_revisions_never_import_the_orm_models() -> None:
    probe = (
        "import importlib.util, pathlib, sys\n"
        "for path in sorted(pathlib.Path('alembic/versions').glob('*.py')):\n"
        "    spec = importlib.util.spec_from_file_location(path.stem, path)\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print('outbound_schema.models' in sys.modules)\n"
    )
    # A fresh Python: this one has imported the models long ago.
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
