"""The command line and ``alembic`` itself, run as a deploy would run them: their entry points in this
process (arguments, environment, working folder, output, exit code); the console script itself where
only a process proves it."""

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
    cli_here,
    connected,
    expected_schema,
    our_tables,
    plain,
    tables,
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
