"""The next revision: one beyond the legacy six, written with plain ``op.*`` calls, as safe as they are.

``tests/example_revision.py`` (a NOT NULL column with a constant default, a
CHECK, a partial index) is put on top of head in a copy of the migrations, and
its expected-schema file generated there as ``outbound-schema snapshot`` does.
It then goes through what a real revision goes through: upgrade (from the host
tables alone, and of a legacy-built database holding rows), check, status,
drift injected into its objects, a rerun after a half-done run, downgrade and
the offline script. Nothing here names head or the legacy revisions but to
build a legacy database: the tests hold for whatever head is.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import URL

from outbound_schema import is_at_head, is_migrated
from outbound_schema.config import VERSION_TABLE
from outbound_schema.database import engine_for
from outbound_schema.revisions import next_revision_id
from outbound_schema.snapshot import generate, write
from tests import session_server
from tests.conftest import TEMPLATE_HEAD, TEMPLATE_HOST, Databases
from tests.helpers import (
    BIN,
    HEAD,
    REPO,
    alembic_here,
    assert_lint_clean,
    autogenerate,
    catalog_text,
    cli_here,
    config_for,
    connected,
    copy_migrations,
    expected_schema,
    expected_text,
    file_nodes,
    in_location,
    plain,
    put_on_top,
    rows,
    run_script,
    script,
    version,
)
from tests.legacy import REVISIONS, assert_rows_kept, legacy_db

EXAMPLE = (REPO / "tests" / "example_revision.py").read_text()
JOBS = "outbound_call_jobs"
ATTEMPTS = f"{JOBS}.attempts"


@dataclass(frozen=True)
class Next:
    location: Path  # the copy of the migrations holding the example on top of head
    revision: str  # the example's id there

    def expected(self) -> str:
        return expected_text(self.revision, self.location)

    def catalog(self, url: URL) -> str:
        return catalog_text(url, self.revision, self.location)

    def cli(self, url: URL | None, *args: str) -> subprocess.CompletedProcess[str]:
        """Our command line, in this process, on this copy of the migrations."""
        env = in_location(self.location)
        return cli_here(*args, **env) if url is None else cli_here(*args, DATABASE_URL=plain(url), **env)

    def config(self, url: URL) -> Config:
        return config_for(url, self.location)


@pytest.fixture(scope="session")
def nxt(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Next:
    """Built by the first worker that asks; its folder, which no test changes, serves them all (a
    worker's temporary folders stay until the run ends: pytest-xdist hands each its base folder, which
    pytest removes only in the process that made it)."""

    def build() -> Next:
        location = copy_migrations(tmp_path_factory.mktemp("next") / "alembic")
        revision = put_on_top(location, EXAMPLE, "dial_attempts")
        scratch = databases.create(TEMPLATE_HOST)
        write(script(location), generate(script(location), scratch))
        databases.release(scratch)
        return Next(location, revision)

    return session_server.once("next_revision", build)


@pytest.fixture
def next_db(nxt: Next, databases: Databases) -> Iterator[URL]:
    """A database at the example revision."""
    url = databases.create(TEMPLATE_HEAD)
    command.upgrade(nxt.config(url), "head")
    yield url
    databases.release(url)


def seed_jobs(url: URL, count: int = 3) -> None:
    with connected(url) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        conn.execute(text("INSERT INTO outbound_call_runs (id, business_id) VALUES (1, 1)"))
        conn.execute(text(f"INSERT INTO {JOBS} (run_id, lead_id) SELECT 1, 1 FROM generate_series(1, {count})"))
        conn.commit()


def test_its_expected_file_shows_exactly_its_change(nxt: Next) -> None:
    """What a reviewer sees: the new revision's file against head's, one line per new object."""
    diff = list(difflib.unified_diff(expected_text(HEAD).splitlines(), nxt.expected().splitlines(), lineterm=""))
    added = {line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")}
    removed = {line[1:] for line in diff if line.startswith("-") and not line.startswith("---")}
    assert added - {line + "," for line in removed} == {
        f"-- outbound-schema: the catalog of its tables at revision {nxt.revision}.",
        "    attempts integer NOT NULL DEFAULT 0",
        f"ALTER TABLE {JOBS} ADD CONSTRAINT outbound_call_jobs_status_check CHECK (((status)::text = ANY "
        "((ARRAY['queued'::character varying, 'dialing'::character varying, 'completed'::character varying, "
        "'failed'::character varying])::text[])));",
        f"CREATE INDEX idx_outbound_call_jobs_queued ON {JOBS} USING btree (run_id) "
        "WHERE ((status)::text = 'queued'::text);",
    }


def test_upgrade_from_the_host_tables_alone(nxt: Next, host_db: URL) -> None:
    done = nxt.cli(host_db, "upgrade")
    assert done.returncode == 0, done.stderr
    assert nxt.catalog(host_db) == nxt.expected()
    assert version(host_db) == [nxt.revision]


def test_upgrade_of_a_legacy_database_holding_rows(nxt: Next, host_db: URL) -> None:
    """Built by the old script, never tracked: the legacy revisions are recorded, the new one applied."""
    legacy_db(host_db, REVISIONS[-1])
    before, nodes = rows(host_db), file_nodes(host_db)

    done = nxt.cli(host_db, "upgrade")

    assert done.returncode == 0, done.stderr
    assert f"{REVISIONS[-1]}: found complete, recorded as applied without changes" in done.stderr
    assert f"{nxt.revision}: added column {JOBS}.attempts" in done.stderr
    assert f"{nxt.revision}: added constraint outbound_call_jobs_status_check" in done.stderr
    assert f"{nxt.revision}: created index idx_outbound_call_jobs_queued concurrently" in done.stderr
    assert nxt.catalog(host_db) == nxt.expected()
    assert version(host_db) == [nxt.revision]
    assert_rows_kept(host_db, before, attempts=0)
    assert file_nodes(host_db) == nodes, "a table was rewritten"


def test_status_and_check_follow_it(nxt: Next, head_db: URL) -> None:
    status = nxt.cli(head_db, "status", "--check")
    assert status.returncode == 1
    assert f"  {nxt.revision}  missing: upgrade will apply it" in status.stdout.splitlines()
    behind = nxt.cli(head_db, "check", "--format", "json")
    report = json.loads(behind.stdout)
    assert behind.returncode == 0 and report["revision"]["state"] == "behind"  # not drift: its own state
    assert report["status"] == "behind"
    assert report["revision"]["compared_with"] == HEAD  # its objects are compared with its own revision
    assert [o["kind"] for o in report["objects"] if o["verdict"] != "ok"] == ["revision"]

    assert nxt.cli(head_db, "upgrade").returncode == 0

    assert nxt.cli(head_db, "status", "--check").returncode == 0
    check = nxt.cli(head_db, "check")
    assert check.returncode == 0, check.stdout
    assert check.stdout.splitlines()[-1].endswith(f"match revision {nxt.revision} (head)")
    assert f"✅ column {JOBS}.attempts: integer NOT NULL DEFAULT 0" in check.stdout.splitlines()


DRIFT = {
    "CHECK dropped": (
        [f"ALTER TABLE {JOBS} DROP CONSTRAINT outbound_call_jobs_status_check"],
        "constraint",
        "outbound_call_jobs_status_check",
        "missing",
    ),
    "CHECK never validated": (
        [
            f"ALTER TABLE {JOBS} DROP CONSTRAINT outbound_call_jobs_status_check",
            f"ALTER TABLE {JOBS} ADD CONSTRAINT outbound_call_jobs_status_check "
            "CHECK (status IN ('queued', 'dialing', 'completed', 'failed')) NOT VALID",
        ],
        "constraint",
        "outbound_call_jobs_status_check",
        "invalid",
    ),
    "CHECK on other values": (
        [
            f"ALTER TABLE {JOBS} DROP CONSTRAINT outbound_call_jobs_status_check",
            f"ALTER TABLE {JOBS} ADD CONSTRAINT outbound_call_jobs_status_check CHECK (status <> 'x')",
        ],
        "constraint",
        "outbound_call_jobs_status_check",
        "different",
    ),
    "partial index without its predicate": (
        ["DROP INDEX idx_outbound_call_jobs_queued", f"CREATE INDEX idx_outbound_call_jobs_queued ON {JOBS} (run_id)"],
        "index",
        "idx_outbound_call_jobs_queued",
        "different",
    ),
    "column nullable": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN attempts DROP NOT NULL"],
        "column",
        f"{JOBS}.attempts",
        "different",
    ),
    "column default": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN attempts SET DEFAULT 1"],
        "column",
        f"{JOBS}.attempts",
        "different",
    ),
    "column dropped": ([f"ALTER TABLE {JOBS} DROP COLUMN attempts"], "column", f"{JOBS}.attempts", "missing"),
}


@pytest.mark.parametrize("case", DRIFT)
def test_drift_in_its_objects_is_named(nxt: Next, next_db: URL, case: str) -> None:
    statements, kind, name, verdict = DRIFT[case]
    with connected(next_db) as conn:
        for statement in statements:
            conn.execute(text(statement))
        conn.commit()
    done = nxt.cli(next_db, "check", "--format", "json")
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 1
    drifted = [(o["kind"], o["name"], o["verdict"]) for o in report["objects"] if o["verdict"] != "ok"]
    assert drifted == [(kind, name, verdict)]


def test_a_half_done_run_is_completed(nxt: Next, head_db: URL) -> None:
    """What a run killed halfway leaves: the column, the CHECK added but not validated, the index INVALID."""
    seed_jobs(head_db)
    with connected(head_db) as conn:
        conn.execute(text(f"ALTER TABLE {JOBS} ADD COLUMN attempts integer DEFAULT 0 NOT NULL"))
        conn.execute(
            text(
                f"ALTER TABLE {JOBS} ADD CONSTRAINT outbound_call_jobs_status_check "
                "CHECK (status IN ('queued', 'dialing', 'completed', 'failed')) NOT VALID"
            )
        )
        conn.execute(text(f"CREATE INDEX idx_outbound_call_jobs_queued ON {JOBS} (run_id) WHERE status = 'queued'"))
        conn.execute(
            text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx_outbound_call_jobs_queued'::regclass")
        )
        conn.commit()

    status = nxt.cli(head_db, "status").stdout.splitlines()
    assert f"  {nxt.revision}  partly present: upgrade will complete it" in status
    assert f"        column {JOBS}.attempts present" in status
    assert "        constraint outbound_call_jobs_status_check NOT VALID, to be validated" in status
    assert "        index idx_outbound_call_jobs_queued INVALID, to be rebuilt" in status

    done = nxt.cli(head_db, "upgrade")

    assert done.returncode == 0, done.stderr
    assert f"{nxt.revision}: found in part, completed" in done.stderr
    assert f"{nxt.revision}: dropped INVALID index idx_outbound_call_jobs_queued to rebuild it" in done.stderr
    assert nxt.catalog(head_db) == nxt.expected()
    assert version(head_db) == [nxt.revision]


def test_downgrade_keeps_its_data_unless_allowed(nxt: Next, next_db: URL) -> None:
    seed_jobs(next_db)
    before = nxt.catalog(next_db)

    refused = nxt.cli(next_db, "downgrade", HEAD)
    assert refused.returncode == 1
    assert f"Downgrading {nxt.revision} would destroy data (column {JOBS}.attempts holds values)" in " ".join(
        refused.stderr.split()
    )
    assert nxt.catalog(next_db) == before and version(next_db) == [nxt.revision]

    allowed = nxt.cli(next_db, "downgrade", HEAD, "--allow-data-loss")
    assert allowed.returncode == 0, allowed.stderr
    assert catalog_text(next_db, HEAD) == expected_text(HEAD)
    assert version(next_db) == [HEAD]


def test_its_offline_script_passes_squawk_and_can_run_again(nxt: Next, head_db: URL) -> None:
    seed_jobs(head_db)
    sql = nxt.cli(None, "upgrade", f"{HEAD}:head", "--sql")
    assert sql.returncode == 0, sql.stderr
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_outbound_call_jobs_queued" in sql.stdout
    assert "NOT VALID" in sql.stdout and "VALIDATE CONSTRAINT outbound_call_jobs_status_check" in sql.stdout
    linted = subprocess.run(
        [str(BIN / "squawk"), "--reporter", "gcc", "--config", str(REPO / ".squawk.toml")],
        input=sql.stdout,
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr

    run_script(head_db, sql.stdout)
    assert nxt.catalog(head_db) == nxt.expected()
    assert version(head_db) == [nxt.revision]
    # Run again, as after a failure at its last statement: every statement finds its work done.
    with connected(head_db) as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = :head"), {"head": HEAD})
        conn.commit()
    run_script(head_db, sql.stdout)
    assert nxt.catalog(head_db) == nxt.expected()
    assert version(head_db) == [nxt.revision]


def test_autogenerate_writes_what_it_detects(nxt: Next, head_db: URL, next_db: URL, tmp_path: Path) -> None:
    """`alembic revision --autogenerate` from a checkout: the detected operations land in the file, under the
    project's next id, formatted as the project's code is, and the revision upgrades."""
    # The next release's models: the tables as the example revision leaves them.
    models = MetaData()
    with connected(next_db) as conn:
        models.reflect(conn, only=list(expected_schema(nxt.revision, nxt.location).tables), resolve_fks=True)

    written = autogenerate(tmp_path, models, head_db, "dial attempts")

    new_id = next_revision_id([HEAD])
    assert written.name == f"{new_id}_dial_attempts.py"
    source = written.read_text()
    assert f'revision = "{new_id}"' in source and f'down_revision = "{HEAD}"' in source
    assert "op.add_column(" in source and '"attempts"' in source
    assert "op.create_index(" in source and '"idx_outbound_call_jobs_queued"' in source
    assert_lint_clean(written)

    location = written.parent.parent
    command.upgrade(config_for(head_db, location), "head")
    assert version(head_db) == [new_id]
    with connected(head_db) as conn:
        assert conn.scalar(text("SELECT to_regclass('idx_outbound_call_jobs_queued') IS NOT NULL"))


def test_a_revision_written_by_hand_gets_the_next_id(tmp_path: Path) -> None:
    """`alembic revision -m ...` needs no database, and names the file as the project does."""
    for name in ("alembic.ini", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    location = copy_migrations(tmp_path / "alembic")
    done = alembic_here("-c", str(tmp_path / "alembic.ini"), "revision", "-m", "by hand", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "embedded" not in done.stderr
    new_id = next_revision_id([HEAD])
    source = (location / "versions" / f"{new_id}_by_hand.py").read_text()
    assert f'revision = "{new_id}"' in source and f'down_revision = "{HEAD}"' in source
    assert "from alembic import op" in source and "import sqlalchemy as sa" in source


def test_the_previous_release_still_starts_on_a_migrated_database(next_db: URL, head_db: URL) -> None:
    """This installed version's head is the example's parent: a database at the example holds all it needs."""
    engine = engine_for(next_db)
    try:
        assert is_migrated(engine) and not is_at_head(engine)
    finally:
        engine.dispose()
    engine = engine_for(head_db)
    try:
        assert is_migrated(engine) and is_at_head(engine)
    finally:
        engine.dispose()


def test_snapshot_writes_what_is_stale_and_check_says_so(nxt: Next, databases: Databases, tmp_path: Path) -> None:
    location = tmp_path / "alembic"
    shutil.copytree(nxt.location, location)
    mine = Next(location, nxt.revision)
    path, orphan = location / "schema" / f"{nxt.revision}.sql", location / "schema" / "99z.sql"
    good = path.read_text()
    path.unlink()
    orphan.write_text("-- a file of no revision\n")
    server = databases.server.url

    stale = mine.cli(server, "snapshot", "--check")
    assert stale.returncode == 1
    assert f"stale: {path}" in stale.stdout and f"no revision for: {orphan}" in stale.stdout
    assert "run `outbound-schema snapshot`" in stale.stdout
    assert not path.exists() and orphan.exists()

    done = mine.cli(server, "snapshot")
    assert done.returncode == 0, done.stderr
    assert f"written: {path}" in done.stdout and f"removed: {orphan}" in done.stdout
    assert path.read_text() == good and not orphan.exists()
    assert mine.cli(server, "snapshot", "--check").returncode == 0
