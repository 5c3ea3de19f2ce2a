"""Contract steps: a revision that drops what an earlier one created, with the opt-out it needs.

A copy of the migrations as they stood at 47a gets such a revision on top (``CONTRACT``: call_sid and
its index go, as docs/changing-the-schema.md's expand/contract example does; whatever head is, 47a still has them).
Take-over must adopt, without changes, a database whose catalog equals any revision's expected file:
here one at that revision that lost its version table, where replaying 40b's index on call_sid would fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from outbound_schema.config import VERSION_TABLE
from outbound_schema.snapshot import generate, write
from tests import session_server
from tests.conftest import TEMPLATE_HOST, Databases
from tests.helpers import (
    REPO,
    catalog_text,
    cli_here,
    copy_migrations,
    expected_text,
    in_location,
    inject,
    plain,
    put_on_top,
    revisions_through,
    script,
    version,
)

#: The history the contract revision goes on top of: call_sid and its index are there.
PINNED = revisions_through("47a")

CONTRACT = (REPO / "tests" / "example_contract.py").read_text()


@pytest.fixture(scope="session")
def contract(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The copy of the migrations with the contract revision on top, and that revision's id."""

    def build() -> tuple[Path, str]:
        location = copy_migrations(tmp_path_factory.mktemp("contract") / "alembic", through=PINNED[-1])
        revision = put_on_top(location, CONTRACT, "drop_call_sid")
        scratch = databases.create(TEMPLATE_HOST)
        write(script(location), generate(script(location), scratch))
        databases.release(scratch)
        return location, revision

    return session_server.once("contract_revision", build)


def test_a_database_that_lost_its_version_table_after_a_drop_is_adopted_unchanged(
    contract: tuple[Path, str], host_db: URL
) -> None:
    location, revision = contract
    env = {"DATABASE_URL": plain(host_db), **in_location(location)}
    assert cli_here("upgrade", **env).returncode == 0
    inject(host_db, f"DROP TABLE {VERSION_TABLE}")
    assert catalog_text(host_db, revision, location) == expected_text(revision, location)

    status = cli_here("status", "--format", "json", **env)
    states = {entry["revision"]: entry["state"] for entry in json.loads(status.stdout)["revisions"]}
    assert states == dict.fromkeys([*PINNED, revision], "present"), status.stdout

    done = cli_here("upgrade", **env)

    assert done.returncode == 0, done.stderr
    for rev in [*PINNED, revision]:
        assert f"{rev}: found complete, recorded as applied without changes" in done.stderr
    assert version(host_db) == [revision]
    assert catalog_text(host_db, revision, location) == expected_text(revision, location)


def test_a_partial_state_after_a_drop_is_still_judged(contract: tuple[Path, str], host_db: URL) -> None:
    """Not a file's catalog: compared revision by revision as before, and completed."""
    location, revision = contract
    env = {"DATABASE_URL": plain(host_db), **in_location(location)}
    assert cli_here("upgrade", PINNED[-1], **env).returncode == 0
    inject(host_db, f"DROP TABLE {VERSION_TABLE}", "DROP INDEX idx_outbound_call_jobs_call_sid")

    done = cli_here("upgrade", **env)

    assert done.returncode == 0, done.stderr
    assert version(host_db) == [revision]
    assert catalog_text(host_db, revision, location) == expected_text(revision, location)


def test_every_operation_says_what_it_did(contract: tuple[Path, str], host_db: URL) -> None:
    location, revision = contract
    env = {"DATABASE_URL": plain(host_db), **in_location(location)}
    assert cli_here("upgrade", PINNED[-1], **env).returncode == 0

    up = cli_here("upgrade", **env)
    assert up.returncode == 0, up.stderr
    assert f"{revision}: dropped index idx_outbound_call_jobs_call_sid concurrently" in up.stderr
    assert f"{revision}: dropped column outbound_call_jobs.call_sid" in up.stderr
    assert up.stderr.splitlines()[-1].startswith(f"upgraded {PINNED[-1]} -> {revision} in ")

    down = cli_here("downgrade", "47a", **env)
    assert down.returncode == 0, down.stderr
    assert f"{revision}: added column outbound_call_jobs.call_sid" in down.stderr
    assert f"{revision}: created index idx_outbound_call_jobs_call_sid concurrently" in down.stderr
    # The opt-out is worth a warning where it is used, going up; going down it is no news.
    assert "drop_column outbound_call_jobs.call_sid, refused by default, allowed by the revision" in up.stderr
    assert "allow_unsafe" not in down.stderr and "refused by default" not in down.stderr
    # 47a's own change, named as it is undone (this test speaks of 47a: it goes down to 47a first).
    assert cli_here("downgrade", "46d", **env).stderr.count("set the default of outbound_call_") == 3
