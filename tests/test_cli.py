"""The command line and ``alembic`` itself, run as a deploy would run them: their entry points in this
process (arguments, environment, working folder, output, exit code); the console script itself where
only a process proves it. Targets a run cannot reach are one paragraph and change nothing; the output
keeps its manners (-v, -q, --version)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from outbound_schema.catalog import snapshot
from outbound_schema.config import VERSION_TABLE
from outbound_schema.database import engine_for
from tests.helpers import (
    ALL_REVISIONS,
    HEAD,
    alembic_here,
    cli,
    cli_here,
    connected,
    copy_migrations,
    expected_schema,
    in_location,
    our_tables,
    plain,
    tables,
    version,
)

PASSWORD = "s3cret-pw"


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg"])
def test_upgrade_and_status_from_any_directory(host_db: URL, tmp_path: Path, scheme: str) -> None:
    url = plain(host_db.set(drivername=scheme))
    before = cli_here("status", cwd=tmp_path, DATABASE_URL=url)
    assert before.returncode == 0, before.stderr
    assert f"upgrade would process {' -> '.join(ALL_REVISIONS)}" in before.stdout

    done = cli_here("upgrade", cwd=tmp_path, DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    assert f"-> {HEAD}, " in done.stderr
    assert {"outbound_call_runs", "outbound_call_jobs", VERSION_TABLE} <= tables(host_db)

    after = cli_here("status", "--database-url", url, cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert f"version:  {HEAD}" in after.stdout and "at head" in after.stdout


def test_upgrade_to_a_revision_then_on(host_db: URL) -> None:
    assert cli_here("upgrade", "46a", "--database-url", plain(host_db)).returncode == 0
    status = cli_here("status", "--database-url", plain(host_db))
    assert "version:  46a" in status.stdout and f"process {' -> '.join(ALL_REVISIONS[3:])}" in status.stdout
    assert cli_here("upgrade", "--database-url", plain(host_db)).returncode == 0
    assert "at head" in cli_here("status", "--database-url", plain(host_db)).stdout


def test_missing_host_tables_are_named_and_nothing_is_applied(empty_db: URL) -> None:
    engine = engine_for(empty_db)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE business (id serial PRIMARY KEY)"))
    engine.dispose()

    done = cli_here("upgrade", DATABASE_URL=plain(empty_db))
    assert done.returncode == 1
    message = done.stderr
    for missing in ("leads", "call_log", "outbound_lead_lists"):
        assert missing in message
    assert "business" not in message.split("table(s)")[1].split("which")[0]
    assert "host application" in message and "Traceback" not in message
    assert tables(empty_db) == {"business"}


def test_alembic_cli_reports_missing_host_tables_as_one_paragraph(empty_db: URL) -> None:
    done = alembic_here("upgrade", "head", DATABASE_URL=plain(empty_db))
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "FAILED: The database lacks the host application's table(s) business, call_log, leads," in output
    assert "Traceback" not in output
    assert tables(empty_db) == set()


def test_alembic_says_what_to_do_with_a_revision_it_cannot_find(host_db: URL) -> None:
    """Alembic's own words for a revision it cannot find, and where to look next; nothing changed, online or
    offline, and the same for a database whose version table records a revision this release does not know."""
    for args in (("upgrade", "zzz"), ("upgrade", "zzz", "--sql")):
        done = alembic_here(*args, DATABASE_URL=plain(host_db))
        said = " ".join((done.stdout + done.stderr).split())
        assert done.returncode != 0 and "Can't locate revision identified by 'zzz'; nothing was changed." in said
        assert "`alembic history` lists the revisions this release knows" in said and "Traceback" not in said
    assert version(host_db) is None
    with connected(host_db) as conn:
        conn.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num varchar(32) PRIMARY KEY)"))
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES ('zzz9')"))
        conn.commit()
    current = alembic_here("current", DATABASE_URL=plain(host_db))
    said = " ".join((current.stdout + current.stderr).split())
    assert current.returncode != 0 and "'zzz9'; nothing was changed" in said and "outbound-schema status" in said
    assert version(host_db) == ["zzz9"]


def test_a_script_with_a_database_url_says_the_url_is_not_read() -> None:
    """--sql connects nowhere: a URL given beside it is said to be unread, not taken as checked against."""
    done = cli_here("upgrade", "--sql", "--database-url", "postgresql://u:S3cretPW@127.0.0.1:1/db", "40a")
    assert done.returncode == 0 and "outbound_call_runs" in done.stdout, done.stderr
    assert "--sql writes the script without connecting; --database-url is not read" in done.stderr
    assert "S3cretPW" not in done.stdout + done.stderr
    assert "is not read" not in cli_here("upgrade", "--sql", "40a").stderr


def test_alembic_upgrade_head_from_the_repository(host_db: URL, head_engine: Engine) -> None:
    done = alembic_here("-x", f"url={plain(host_db)}", "upgrade", "head")
    assert done.returncode == 0, done.stderr
    engine = engine_for(host_db)
    try:
        with engine.connect() as conn, head_engine.connect() as reference:
            assert snapshot(conn, our_tables()) == snapshot(reference, our_tables())
    finally:
        engine.dispose()
    again = alembic_here("upgrade", "head", DATABASE_URL=plain(host_db))
    assert again.returncode == 0 and "Running upgrade" not in again.stderr


def test_offline_script_needs_no_server(tmp_path: Path) -> None:
    for done in (cli_here("upgrade", "--sql", cwd=tmp_path), alembic_here("upgrade", "head", "--sql")):
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("CREATE TABLE IF NOT EXISTS outbound_call") == len(expected_schema().tables)
        assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_outbound_call_jobs_status_twilio_sid" in done.stdout
        assert f"UPDATE {VERSION_TABLE} SET version_num='{HEAD}'" in done.stdout
        assert "embedded" not in done.stderr
    assert not (tmp_path / ".outbound-schema").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"mysql://admin:{PASSWORD}@db.example/app", "uses the driver 'mysql'"),
        (f"postgresql://admin:{PASSWORD}@127.0.0.1:1/app", "Could not connect to the database"),
        (f"postgresql://admin:{PASSWORD}@127.0.0.1:1", "names no database"),
        (f"not a url {PASSWORD}", "could not be parsed"),
    ],
)
def test_bad_urls_get_one_clear_paragraph_and_never_show_the_password(url: str, expected: str) -> None:
    for args in (("upgrade",), ("status",)):
        done = cli_here(*args, DATABASE_URL=url)
        assert done.returncode in (1, 2)
        assert expected in done.stderr
        assert PASSWORD not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().count("\n") == 0, done.stderr


def test_unreachable_server_exits_2(tmp_path: Path) -> None:
    done = cli_here("status", "--database-url", f"postgresql://u:{PASSWORD}@127.0.0.1:1/db", cwd=tmp_path)
    assert done.returncode == 2
    assert "u:***@127.0.0.1:1/db" in done.stderr


def test_a_view_is_not_a_host_table(empty_db: URL) -> None:
    with connected(empty_db) as conn:
        for table in ("business", "call_log", "outbound_lead_lists"):
            conn.execute(text(f"CREATE TABLE {table} (id serial PRIMARY KEY)"))
        conn.execute(text("CREATE VIEW leads AS SELECT 1 AS id"))
        conn.commit()
    done = cli_here("upgrade", DATABASE_URL=plain(empty_db))
    assert done.returncode == 1 and "table(s) leads," in done.stderr


def test_options_in_the_url_are_kept(host_db: URL) -> None:
    with connected(host_db) as conn:
        conn.execute(text("CREATE SCHEMA dialer"))
        conn.commit()
    url = host_db.update_query_dict({"options": "-csearch_path=dialer,public"})
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SHOW search_path")) == "dialer,public"
            assert conn.scalar(text("SHOW application_name")) == "outbound-schema"
    finally:
        engine.dispose()
    done = cli_here("upgrade", DATABASE_URL=plain(url))
    assert done.returncode == 0, done.stderr
    with connected(host_db) as conn:
        placed = set(conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'dialer'")))
    assert {"outbound_call_runs", "outbound_call_jobs", VERSION_TABLE} <= placed


def test_snapshot_needs_no_server(tmp_path: Path) -> None:
    """With no URL, `outbound-schema snapshot` runs the revisions on an embedded server of its own."""
    done = cli_here("snapshot", "--check", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("file(s) up to date")
    assert not (tmp_path / ".outbound-schema").exists()


@pytest.mark.parametrize("command", [("upgrade", "99z"), ("downgrade", "99z"), ("upgrade", "46d:99z", "--sql")])
def test_an_unknown_revision_changes_nothing(host_db: URL, command: tuple[str, ...]) -> None:
    done = cli_here(*command, DATABASE_URL=plain(host_db))
    assert done.returncode == 1
    assert "There is no revision '99z' in this version of outbound-schema, so nothing was done" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    assert version(host_db) is None  # no version table was created


def test_head_with_two_heads_is_refused_before_anything_changes(host_db: URL, tmp_path: Path) -> None:
    """``head`` names one revision only while there is one head: with a second one beside it, the command
    stops before it connects, naming both; a revision id still takes the database there."""
    location = copy_migrations(tmp_path / "migrations")
    (location / "versions" / "48z_beside.py").write_text(
        f'revision = "48z"\ndown_revision = {ALL_REVISIONS[-2]!r}\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    done = cli_here("upgrade", "head", DATABASE_URL=plain(host_db), **in_location(location))
    assert done.returncode == 1
    assert "There is no revision 'head'" in done.stderr and f"(head is {', '.join(sorted([HEAD, '48z']))})" in (
        done.stderr
    )
    assert version(host_db) is None  # no version table was created
    sql = cli_here("upgrade", HEAD, "--sql", **in_location(location))
    assert sql.returncode == 0 and f"version_num='{HEAD}'" in sql.stdout, sql.stderr


def test_quiet_by_default_louder_and_quieter_on_request(host_db: URL) -> None:
    first = cli_here("upgrade", DATABASE_URL=plain(host_db))
    assert first.returncode == 0
    assert "Migrating postgresql+psycopg://" in first.stderr and "Running upgrade" in first.stderr
    assert "Will assume" not in first.stderr and "Context impl" not in first.stderr
    assert "WARNI " not in first.stderr and "[alembic" not in first.stderr
    assert cli_here("-q", "upgrade", DATABASE_URL=plain(host_db)).stderr == ""
    assert cli_here("upgrade", "-q", DATABASE_URL=plain(host_db)).stderr == ""
    assert "Context impl PostgresqlImpl" in cli_here("upgrade", "-v", DATABASE_URL=plain(host_db)).stderr
    assert cli_here("status", "-q", DATABASE_URL=plain(host_db)).stderr == ""


def test_a_written_script_does_not_say_it_changed_anything() -> None:
    """``--sql`` writes statements; nothing is created until someone runs them, and stderr says no more."""
    script = cli_here("upgrade", "--sql")
    assert script.returncode == 0 and "CREATE TABLE" in script.stdout
    assert "Running upgrade" in script.stderr
    assert not [line for line in script.stderr.splitlines() if ": created " in line or ": added " in line]
    louder = cli_here("upgrade", "--sql", "-v")
    assert "40a: created table outbound_call_runs" in louder.stderr
    back = cli_here("downgrade", f"{HEAD}:46d", "--sql")
    assert back.returncode == 0 and "Running downgrade" in back.stderr and ": reverted" not in back.stderr


def test_version() -> None:
    from importlib.metadata import version as installed

    done = cli("--version")  # the installed console script: its version comes from the installed metadata
    assert done.returncode == 0 and done.stdout.strip() == f"outbound-schema {installed('outbound-schema')}"


def test_status_says_upgrade_would_refuse_without_the_host_tables(empty_db: URL) -> None:
    done = cli_here("status", DATABASE_URL=plain(empty_db))
    assert done.returncode == 1
    assert "upgrade would refuse: the host application's table(s) business, call_log, leads" in done.stdout
    assert "upgrade would process" not in done.stdout


@pytest.mark.parametrize("target", ["abc-1", "head+5", "47z+1", ""])
def test_odd_targets_are_one_paragraph_and_change_nothing(host_db: URL, target: str) -> None:
    done = cli_here("-q", "upgrade", target, DATABASE_URL=plain(host_db))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert "nothing was" in done.stderr
    assert version(host_db) is None
