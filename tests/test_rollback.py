"""Release rollbacks: this release against a database a newer release migrated, and the schema history.

The newer release is a copy of the migrations with ``tests/example_revision.py`` on top of head
(``tests/test_next_revision.py``'s ``nxt``), run by this code: so this release already writes the
history the next one's rollback needs. The older release is this checkout's migrations, whose head is
the example's parent. Nothing here names head: it is whatever this checkout's head is.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL

from outbound_schema import is_at_head, is_migrated
from outbound_schema.config import VERSION_TABLE
from outbound_schema.database import engine_for
from outbound_schema.health import standing
from outbound_schema.standing import HISTORY_TABLE
from tests import test_next_revision
from tests.conftest import TEMPLATE_HEAD, Databases
from tests.helpers import (
    ALL_REVISIONS,
    HEAD,
    alembic_here,
    catalog_text,
    cli_here,
    connected,
    inject,
    plain,
    rows,
    version,
)
from tests.legacy import REVISIONS, legacy_db
from tests.test_next_revision import Next

# The newer release's fixtures: the copy of the migrations with the example on top, a database at it.
nxt = test_next_revision.nxt
next_db = test_next_revision.next_db


def history(url: URL) -> list[dict[str, object]]:
    with connected(url) as conn:
        found = conn.execute(
            text(f"SELECT revision, parents, action, duration_ms, release, host FROM {HISTORY_TABLE} ORDER BY id")
        )
        return [dict(row._mapping) for row in found]


def test_every_run_records_what_it_did_in_the_schema_history(host_db: URL) -> None:
    done = cli_here("upgrade", DATABASE_URL=plain(host_db))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"upgraded base -> {HEAD} in ")
    recorded = history(host_db)
    assert [row["revision"] for row in recorded] == list(ALL_REVISIONS)
    assert [row["parents"] for row in recorded] == [[], *([rev] for rev in ALL_REVISIONS[:-1])]
    assert {row["action"] for row in recorded} == {"applied"}
    assert all(row["release"] and row["host"] and isinstance(row["duration_ms"], int) for row in recorded)

    again = cli_here("upgrade", DATABASE_URL=plain(host_db))
    assert again.returncode == 0 and again.stderr.splitlines()[-1] == f"at {HEAD} (head): nothing to do"
    assert len(history(host_db)) == len(ALL_REVISIONS)

    back = cli_here("downgrade", ALL_REVISIONS[-2], DATABASE_URL=plain(host_db))
    assert back.returncode == 0, back.stderr
    assert back.stderr.splitlines()[-1].startswith(f"downgraded {HEAD} -> {ALL_REVISIONS[-2]} in ")
    assert history(host_db)[-1]["revision"] == HEAD and history(host_db)[-1]["action"] == "reverted"

    status = cli_here("status", DATABASE_URL=plain(host_db))
    assert f"history:  {HEAD} reverted by release " in status.stdout
    shown = json.loads(cli_here("status", "--format", "json", DATABASE_URL=plain(host_db)).stdout)["history"]
    assert [entry["revision"] for entry in shown] == [*ALL_REVISIONS, HEAD]


def test_a_legacy_database_taken_over_records_its_revisions_as_adopted(host_db: URL) -> None:
    legacy_db(host_db, REVISIONS[-1])
    assert cli_here("upgrade", DATABASE_URL=plain(host_db)).returncode == 0
    actions = {row["revision"]: row["action"] for row in history(host_db)}
    assert actions == {rev: "adopted" if rev in REVISIONS else "applied" for rev in ALL_REVISIONS}


def test_this_release_against_a_newer_database_does_nothing_and_says_so(nxt: Next, next_db: URL) -> None:
    """The older release's deploy (upgrade, then gate on status --check) goes through: a rollback works."""
    before, catalog = rows(next_db), catalog_text(next_db, nxt.revision, nxt.location)
    newer = history(next_db)[-1]
    assert newer["revision"] == nxt.revision and newer["parents"] == [HEAD] and newer["action"] == "applied"

    for done in (
        cli_here("upgrade", DATABASE_URL=plain(next_db)),
        alembic_here("upgrade", "head", DATABASE_URL=plain(next_db)),
    ):
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        last = done.stderr.splitlines()[-1]
        assert f"at {nxt.revision}, ahead of this release's head {HEAD}: {nxt.revision} applied by release" in last
        assert last.endswith("nothing to do")

    status = cli_here("status", "--check", DATABASE_URL=plain(next_db))
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"state:    at {nxt.revision}, ahead of this release's head {HEAD}" in status.stdout
    as_json = json.loads(cli_here("status", "--format", "json", DATABASE_URL=plain(next_db)).stdout)
    assert as_json["state"] == "ahead"

    check = cli_here("check", DATABASE_URL=plain(next_db))
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert not [line for line in lines if line.startswith("❌")]
    assert "⚠️ column outbound_call_jobs.attempts: " in check.stdout  # the example's: not this release's to judge
    assert lines[-1].startswith(f"AHEAD: the database is past this release's revision {HEAD} (head)")
    report = json.loads(cli_here("check", "--format", "json", DATABASE_URL=plain(next_db)).stdout)
    assert report["status"] == "ahead" and report["revision"]["state"] == "ahead"
    assert [entry["revision"] for entry in report["revision"]["newer"]] == [nxt.revision]
    assert report["summary"]["drift"] == 0 and report["summary"]["not_judged"] > 0

    engine = engine_for(next_db)
    try:
        assert is_migrated(engine) and not is_at_head(engine)
        assert standing(engine).state == "ahead"
    finally:
        engine.dispose()
    assert rows(next_db) == before and catalog_text(next_db, nxt.revision, nxt.location) == catalog
    assert version(next_db) == [nxt.revision]


def test_this_release_refuses_to_revert_what_it_does_not_have(nxt: Next, next_db: URL) -> None:
    done = cli_here("downgrade", ALL_REVISIONS[-2], DATABASE_URL=plain(next_db))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and done.stderr.splitlines()[-1].startswith("outbound-schema: error: ")
    assert f"This release does not have revision(s) {nxt.revision}, so it cannot revert them" in done.stderr
    assert f"to {HEAD} first, then with this one" in done.stderr
    assert version(next_db) == [nxt.revision]
    # The newer release itself reverts it, and this one is then at its own head.
    assert nxt.cli(next_db, "downgrade", HEAD).returncode == 0
    assert cli_here("status", "--check", DATABASE_URL=plain(next_db)).returncode == 0


def test_a_revision_on_no_line_of_this_release_is_refused(databases: Databases) -> None:
    """A version row no history leads back to head: refused in one paragraph, whatever its id says."""
    url = databases.create(TEMPLATE_HEAD)
    try:
        for stranger in ("99z", "ae1027a6acf"):
            inject(url, f"UPDATE {VERSION_TABLE} SET version_num = '{stranger}'")
            for args in (("upgrade",), ("downgrade", ALL_REVISIONS[0])):
                done = cli_here(*args, DATABASE_URL=plain(url))
                assert done.returncode == 1, done.stderr
                assert "Traceback" not in done.stderr
                assert done.stderr.splitlines()[-1].startswith("outbound-schema: error: The database is at")
                assert f"The database is at revision {stranger}, which is on no line of this release's history" in (
                    done.stderr
                )
            status = cli_here("status", "--check", DATABASE_URL=plain(url))
            assert status.returncode == 1 and "on no line of this release's history" in status.stdout
            engine = engine_for(url)
            try:
                assert not is_migrated(engine) and standing(engine).state == "unknown"
            finally:
                engine.dispose()
            assert version(url) == [stranger]
    finally:
        databases.release(url)


def test_a_history_that_leads_elsewhere_is_not_ahead(databases: Databases, tmp_path: Path) -> None:
    """A newer revision whose recorded parent is a revision before head was not built on this release."""
    url = databases.create(TEMPLATE_HEAD)
    try:
        inject(
            url,
            f"UPDATE {VERSION_TABLE} SET version_num = '99z'",
            f"INSERT INTO {HISTORY_TABLE} (revision, parents, action) VALUES ('99z', ARRAY['{ALL_REVISIONS[-2]}'], "
            "'applied')",
        )
        engine = engine_for(url)
        try:
            assert standing(engine).state == "unknown" and not is_migrated(engine)
        finally:
            engine.dispose()
        inject(url, f"UPDATE {HISTORY_TABLE} SET parents = ARRAY['{HEAD}'] WHERE revision = '99z'")
        engine = engine_for(url)
        try:
            assert standing(engine).state == "ahead" and is_migrated(engine)
        finally:
            engine.dispose()
    finally:
        databases.release(url)


def test_the_history_is_not_part_of_the_expected_schema() -> None:
    from tests.helpers import expected_text

    assert HISTORY_TABLE not in expected_text(HEAD)


def test_the_offline_script_records_the_history_once(host_db: URL) -> None:
    from tests.helpers import run_script

    script = cli_here("upgrade", "--sql")
    assert script.returncode == 0, script.stderr
    run_script(host_db, script.stdout)
    run_script(host_db, script.stdout)
    recorded = history(host_db)
    assert [row["revision"] for row in recorded] == list(ALL_REVISIONS)
    assert all(row["host"] is None and row["duration_ms"] is None for row in recorded)
