"""A host application with its own Alembic history in the same database, both supported ways."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import URL

from outbound_schema import is_at_head, is_migrated
from outbound_schema.database import engine_for
from tests.helpers import HEAD, REPO, alembic_here, cli_here, connected, plain, tables

HOST = REPO / "tests" / "host_project"


def host_alembic(ini: str, url: URL, *args: str) -> str:
    done = alembic_here("-c", str(HOST / ini), *args, cwd=HOST, DATABASE_URL=plain(url))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def versions(url: URL, table: str) -> set[str]:
    with connected(url) as conn:
        return set(conn.scalars(text(f"SELECT version_num FROM {table}")))


def test_two_histories_two_version_tables(empty_db: URL) -> None:
    host_alembic("alembic.ini", empty_db, "upgrade", "head")
    done = cli_here("upgrade", DATABASE_URL=plain(empty_db))
    assert done.returncode == 0, done.stderr

    assert versions(empty_db, "alembic_version") == {"h2"}
    assert versions(empty_db, "outbound_schema_version") == {HEAD}
    assert "h2 (head)" in host_alembic("alembic.ini", empty_db, "current")
    assert cli_here("check", DATABASE_URL=plain(empty_db)).returncode == 0
    # Each history moves on its own.
    host_alembic("alembic.ini", empty_db, "downgrade", "h1")
    assert cli_here("status", "--check", DATABASE_URL=plain(empty_db)).returncode == 0
    host_alembic("alembic.ini", empty_db, "upgrade", "head")
    engine = engine_for(empty_db)
    try:
        assert is_at_head(engine)
    finally:
        engine.dispose()


def test_one_history_with_our_branch(empty_db: URL) -> None:
    heads = host_alembic("alembic_shared.ini", empty_db, "heads")
    assert "h2 (host) (head)" in heads and f"{HEAD} (outbound_schema) (head)" in heads

    # On an empty database ours must wait for the host's tables: it refuses, changing nothing.
    first = alembic_here(
        "-c",
        str(HOST / "alembic_shared.ini"),
        "upgrade",
        "outbound_schema@head",
        cwd=HOST,
        DATABASE_URL=plain(empty_db),
    )
    assert first.returncode != 0 and "lacks the host application's table(s) business" in first.stdout
    assert tables(empty_db) == set()

    host_alembic("alembic_shared.ini", empty_db, "upgrade", "host@head")
    host_alembic("alembic_shared.ini", empty_db, "upgrade", "heads")

    assert versions(empty_db, "alembic_version") == {"h2", HEAD}
    assert "outbound_schema_version" not in tables(empty_db)
    engine = engine_for(empty_db)
    try:
        assert is_at_head(engine, version_table="alembic_version")
        assert not is_at_head(engine)
    finally:
        engine.dispose()
    check = cli_here("check", "--version-table", "alembic_version", DATABASE_URL=plain(empty_db))
    assert check.returncode == 0, check.stdout
    # The host's later upgrades and our downgrades move independently.
    host_alembic("alembic_shared.ini", empty_db, "downgrade", "outbound_schema@46b")
    assert versions(empty_db, "alembic_version") == {"h2", "46b"}
    host_alembic("alembic_shared.ini", empty_db, "upgrade", "heads")
    assert versions(empty_db, "alembic_version") == {"h2", HEAD}


def test_status_check_exit_codes(host_db: URL, tmp_path: object) -> None:
    assert cli_here("status", "--check", DATABASE_URL=plain(host_db)).returncode == 1
    assert cli_here("upgrade", "46b", DATABASE_URL=plain(host_db)).returncode == 0
    assert cli_here("status", "--check", DATABASE_URL=plain(host_db)).returncode == 1
    assert cli_here("upgrade", DATABASE_URL=plain(host_db)).returncode == 0
    assert cli_here("status", "--check", DATABASE_URL=plain(host_db)).returncode == 0
    assert cli_here("status", "--check", DATABASE_URL="postgresql://u:p@127.0.0.1:1/x").returncode == 2
    assert cli_here("status", "--check", DATABASE_URL="mysql://u:p@h/x").returncode == 2


def test_is_at_head_follows_the_database(host_db: URL) -> None:
    engine = engine_for(host_db)
    try:
        assert not is_at_head(engine) and not is_migrated(engine)
        assert cli_here("upgrade", "46c", DATABASE_URL=plain(host_db)).returncode == 0
        with engine.connect() as conn:
            assert not is_at_head(conn) and not is_migrated(conn)
        assert cli_here("upgrade", DATABASE_URL=plain(host_db)).returncode == 0
        assert is_at_head(engine) and is_migrated(engine)
    finally:
        engine.dispose()


def test_a_host_env_keeps_its_own_x_keys_and_refuses_a_misspelling_of_ours(empty_db: URL) -> None:
    """A host's env.py may read -x keys of its own: those pass through ours. One like a key of ours is taken
    for a misspelling of it and refused before anything changes: the run would have gone on with the
    default."""
    refused = alembic_here(
        "-c",
        str(HOST / "alembic_shared.ini"),
        "-x",
        "lock_timout=5s",
        "upgrade",
        "host@head",
        cwd=HOST,
        DATABASE_URL=plain(empty_db),
    )
    output = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0 and "did you mean -x lock_timeout=?" in output, output
    assert tables(empty_db) == set()
    host_alembic("alembic_shared.ini", empty_db, "-x", "tenant=acme", "upgrade", "host@head")
    assert versions(empty_db, "alembic_version") == {"h2"}
