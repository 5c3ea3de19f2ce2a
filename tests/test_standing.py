"""Where a database stands (outbound_schema.standing): the version table read, and refused when no reading of it
can be trusted. Release rollbacks, which the schema history decides, are in tests/test_rollback.py."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from outbound_schema.config import VERSION_TABLE
from tests.helpers import (
    ALL_REVISIONS,
    HEAD,
    catalog_text,
    cli_here,
    connected,
    expected_text,
    inject,
    plain,
    rows,
    version,
)


def test_two_version_rows_are_an_error_never_at_head(head_db: URL) -> None:
    with connected(head_db) as conn:
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES ('{ALL_REVISIONS[0]}')"))
        conn.commit()
    rows = f"{ALL_REVISIONS[0]}, {HEAD}"
    check = cli_here("check", "--format", "json", DATABASE_URL=plain(head_db))
    assert check.returncode == 2 and json.loads(check.stdout)["status"] == "error"
    assert f"holds the rows {rows} where it should hold one" in check.stderr
    status = cli_here("status", "--check", DATABASE_URL=plain(head_db))
    assert status.returncode == 2 and "at head" not in status.stdout
    upgrade = cli_here("upgrade", DATABASE_URL=plain(head_db))
    assert upgrade.returncode == 2 and f"DELETE FROM {VERSION_TABLE} WHERE version_num IN ('{ALL_REVISIONS[0]}')" in (
        upgrade.stderr
    )
    assert "Traceback" not in check.stderr + status.stderr + upgrade.stderr
    assert sorted(version(head_db) or []) == sorted([ALL_REVISIONS[0], HEAD])  # nothing changed


@pytest.mark.parametrize("blank", ["NULL", "''"])
@pytest.mark.parametrize("beside_head", [True, False])
def test_a_version_row_naming_no_revision_is_an_error(head_db: URL, blank: str, beside_head: bool) -> None:
    """A NULL or empty row, alone or beside head's, is never read as 'at head' or as 'untracked'."""
    statements = [
        f"ALTER TABLE {VERSION_TABLE} DROP CONSTRAINT {VERSION_TABLE}_pkc",
        f"ALTER TABLE {VERSION_TABLE} ALTER COLUMN version_num DROP NOT NULL",
        f"INSERT INTO {VERSION_TABLE} VALUES ({blank})"
        if beside_head
        else f"UPDATE {VERSION_TABLE} SET version_num = {blank}",
    ]
    inject(head_db, *statements)
    before = rows(head_db)
    check = cli_here("check", "--format", "json", DATABASE_URL=plain(head_db))
    assert check.returncode == 2 and json.loads(check.stdout)["status"] == "error"
    status = cli_here("status", "--format", "json", DATABASE_URL=plain(head_db))
    assert status.returncode == 2 and json.loads(status.stdout)["state"] == "error"
    for args in (("upgrade",), ("downgrade", "46c")):
        done = cli_here(*args, DATABASE_URL=plain(head_db))
        assert done.returncode == 2, done.stderr
        assert "names no revision" in done.stderr and "WHERE version_num IS NULL OR btrim(version_num) = ''" in (
            done.stderr
        )
    for done in (check, status):
        assert "names no revision" in done.stderr + json.loads(done.stdout)["error"]
        assert "Traceback" not in done.stderr
    assert rows(head_db) == before and catalog_text(head_db, HEAD) == expected_text(HEAD)  # nothing changed


def test_a_version_table_holding_what_no_revision_writes(head_db: URL) -> None:
    with connected(head_db) as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        conn.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num integer)"))
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES (47), (NULL)"))
        conn.commit()
    check = cli_here("check", "--format", "json", DATABASE_URL=plain(head_db))
    assert check.returncode in (1, 2) and json.loads(check.stdout)["status"] in ("drift", "error")
    status = cli_here("status", DATABASE_URL=plain(head_db))
    assert status.returncode in (1, 2)
    assert "Traceback" not in check.stderr + status.stderr
