"""The revisions, the committed expected-schema files and the models agree, on a real server.

Every revision's file equals the catalog the revisions build (the files are
fresh); the legacy six's files equal what the old script's SQL builds; head's
file equals what the models' ``create_all`` builds; and upgrading and
downgrading to each revision, online or through the offline script, lands on
that revision's file.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from dataclasses import replace

import pytest
from alembic import command
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from outbound_schema.catalog import Snapshot, snapshot
from outbound_schema.config import alembic_config
from outbound_schema.expected import SNAPSHOT_COMMAND, render
from outbound_schema.models import metadata
from tests.helpers import (
    ALL_REVISIONS,
    HEAD,
    MIGRATIONS,
    REPO,
    catalog,
    catalog_text,
    cli_here,
    expected_schema,
    expected_text,
    our_tables,
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


def test_the_expected_schema_files_are_fresh(generated_catalogs: dict[str, Snapshot]) -> None:
    """Regenerated from the revisions on this server, every file comes out as committed."""
    stale = []
    for revision in ALL_REVISIONS:
        path = MIGRATIONS / "schema" / f"{revision}.sql"
        fresh = render(generated_catalogs[revision], revision)
        if not path.is_file() or path.read_text() != fresh:
            old = path.read_text().splitlines(keepends=True) if path.is_file() else []
            stale.append(f"{path.name}:\n" + "".join(difflib.unified_diff(old, fresh.splitlines(keepends=True))))
    extra = sorted(p.name for p in (MIGRATIONS / "schema").glob("*.sql") if p.stem not in ALL_REVISIONS)
    assert not stale and not extra, (
        f"The expected-schema files are stale: run `{SNAPSHOT_COMMAND}` and commit the result.\n"
        + "\n".join(stale)
        + (f"\nFiles of no revision: {', '.join(extra)}" if extra else "")
    )


@pytest.mark.parametrize("revision", REVISIONS)
def test_the_legacy_files_hold_what_the_old_script_built(revision: str, legacy_catalogs: dict[str, Snapshot]) -> None:
    assert render(legacy_catalogs[revision], revision) == expected_text(revision)


def models_against_heads_file(built: Snapshot, head: Snapshot) -> list[str]:
    """What the models' ``create_all`` built that head's file does not hold, or the reverse: one line per
    object, naming it and the fix."""
    where = f"head's file (alembic/schema/{HEAD}.sql)"
    regenerate = f"then `{SNAPSHOT_COMMAND}`"
    found: list[str] = []

    def compare(kind: str, name: str, file_has: str | None, models_build: str | None, *, unmap: str) -> None:
        if file_has == models_build:
            return
        if models_build is None:
            found.append(f"{kind} {name}: in {where} but not in the models: {unmap}")
        elif file_has is None:
            found.append(
                f"{kind} {name}: in the models but not in {where}: write a revision that adds it "
                f"(alembic revision --autogenerate), {regenerate}; or take it out of the models"
            )
        else:
            found.append(
                f"{kind} {name}: {where} has {file_has}, the models build {models_build}: change the model "
                f"to match, or write a revision that changes it, {regenerate}"
            )

    for table in sorted(head.tables.keys() | built.tables.keys()):
        want, have = head.tables.get(table), built.tables.get(table)
        compare(
            "table",
            table,
            None if want is None else "it",
            None if have is None else "it",
            unmap="add its model, or write a revision that drops it",
        )
        if want is None or have is None:
            continue
        for column in [*want.columns, *(c for c in have.columns if want.column(c.name) is None)]:
            file_col, model_col = want.column(column.name), have.column(column.name)
            compare(
                "column",
                f"{table}.{column.name}",
                None if file_col is None else file_col.describe(),
                None if model_col is None else model_col.describe(),
                unmap="map it, or keep it on the Table and exclude it from the mapper with "
                "exclude_properties (docs/changing-the-schema.md), or write a revision that drops it",
            )
        if not found and [c.name for c in want.columns] != [c.name for c in have.columns]:
            found.append(
                f"table {table}: {where} orders its columns {', '.join(c.name for c in want.columns)}; the models "
                f"{', '.join(c.name for c in have.columns)}: declare them in the file's order (a column added by "
                "a revision goes last)"
            )
        if want.settings() != have.settings():
            found.append(f"table {table}: {where} has {want.settings()}, the models build {have.settings()}")
    for kind, objects in (("constraint", "constraints"), ("index", "indexes"), ("sequence", "sequences")):
        # A constraint's own index is the constraint's (the file lists it as the constraint).
        want_objects, have_objects = (
            {n: o for n, o in getattr(snap, objects).items() if getattr(o, "constraint", None) is None}
            for snap in (head, built)
        )
        for name in sorted(want_objects.keys() | have_objects.keys()):
            want_obj, have_obj = want_objects.get(name), have_objects.get(name)
            compare(
                kind,
                name,
                None if want_obj is None else want_obj.describe(),
                None if have_obj is None else have_obj.describe(),
                unmap="declare it in the model's __table_args__, or write a revision that drops it",
            )
    return found


def test_the_models_build_heads_file(host_engine: Engine) -> None:
    """The models alone, through create_all, give head's catalog: names, order, defaults. A difference
    is named object by object, with what to do about it."""
    with host_engine.begin() as conn:
        metadata.create_all(conn)
        built = snapshot(conn, our_tables())
    mismatches = models_against_heads_file(built, expected_schema())
    assert not mismatches, "The models' create_all differs from head's file:\n" + "\n".join(mismatches)
    assert render(built, HEAD) == expected_text(HEAD)


def test_a_mismatch_between_the_models_and_heads_file_names_the_object_and_the_fix() -> None:
    head = expected_schema()
    table = next(iter(head.tables.values()))
    gone = table.columns[-1]
    built = replace(head, tables={**head.tables, table.name: replace(table, columns=table.columns[:-1])})
    assert models_against_heads_file(built, head) == [
        f"column {table.name}.{gone.name}: in head's file (alembic/schema/{HEAD}.sql) but not in the models: map "
        "it, or keep it on the Table and exclude it from the mapper with exclude_properties "
        "(docs/changing-the-schema.md), or write a revision that drops it"
    ]
    assert models_against_heads_file(head, head) == []


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
