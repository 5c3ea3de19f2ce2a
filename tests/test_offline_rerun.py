"""The offline script runs again, through psql, on a history where a later revision drops what an earlier one
created; and squawk agrees with the library.

A copy of the migrations as they stood at 47a (whatever head is, call_sid is there) holds two revisions on
top: a contract revision dropping
outbound_call_jobs.call_sid (allowed with ``allow_unsafe``), which 40b indexed, and one taking each safe path the
library's refusals recommend. Run again from base without its guards, the script failed at 40b's CREATE INDEX
on call_sid. Each revision's block is skipped where the version table records it as done; squawk is told,
statement by statement, what the library runs safely or a revision allowed, and nothing else.
"""

from __future__ import annotations

import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy.engine import URL

from outbound_schema.safety import SQUAWK_RULES
from outbound_schema.snapshot import generate, write
from tests import session_server
from tests.conftest import TEMPLATE_HOST, Databases
from tests.helpers import (
    HEAD,
    REPO,
    catalog_text,
    cli_here,
    config_for,
    copy_migrations,
    expected_text,
    in_location,
    psql,
    put_on_top,
    revisions_through,
    run_script,
    script,
    script_steps,
    squawk,
    version,
)

CONTRACT = (REPO / "tests" / "example_contract.py").read_text()

SAFE_PATHS = '''"""The safe paths the refusals recommend: NOT NULL through a CHECK, a unique index, a CHECK and a
foreign key added NOT VALID then validated, a changed default."""

import sqlalchemy as sa
from alembic import op

revision = "next"
down_revision = "head"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_check_constraint("outbound_call_jobs_status_not_null", "outbound_call_jobs", "status IS NOT NULL")
    op.alter_column("outbound_call_jobs", "status", existing_type=sa.String(32), nullable=False)
    op.drop_constraint("outbound_call_jobs_status_not_null", "outbound_call_jobs", type_="check")
    op.create_index("idx_outbound_call_jobs_twilio_sid_unique", "outbound_call_jobs", ["twilio_call_sid"], unique=True)
    op.create_check_constraint("outbound_call_runs_concurrency_check", "outbound_call_runs", "concurrency > 0")
    op.add_column("outbound_call_jobs", sa.Column("business_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        "outbound_call_jobs_business_id_fkey", "outbound_call_jobs", "business", ["business_id"], ["id"]
    )
    op.alter_column("outbound_call_runs", "concurrency", server_default="5")


def downgrade() -> None:
    op.alter_column("outbound_call_runs", "concurrency", server_default="3")
    op.drop_constraint("outbound_call_jobs_business_id_fkey", "outbound_call_jobs", type_="foreignkey")
    op.drop_column("outbound_call_jobs", "business_id")
    op.drop_constraint("outbound_call_runs_concurrency_check", "outbound_call_runs", type_="check")
    op.drop_index("idx_outbound_call_jobs_twilio_sid_unique", table_name="outbound_call_jobs")
    op.alter_column("outbound_call_jobs", "status", existing_type=sa.String(32), nullable=True)
'''

DROP = "ALTER TABLE outbound_call_jobs DROP COLUMN IF EXISTS call_sid;"
#: The history the copy's revisions go on top of, and a revision in its middle.
PINNED = revisions_through("47a")
MIDDLE = PINNED[len(PINNED) // 2]


@dataclass(frozen=True)
class Copy:
    location: Path
    contract: str  # the revision dropping call_sid
    top: str  # the safe paths' revision, the copy's head

    def cli(self, *args: str) -> str:
        done = cli_here(*args, **in_location(self.location))
        assert done.returncode == 0, done.stderr
        return done.stdout

    def lands_on(self, url: URL, revision: str) -> None:
        assert catalog_text(url, revision, self.location) == expected_text(revision, self.location)
        assert version(url) == [revision]


@pytest.fixture(scope="session")
def copy(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Copy:
    def build() -> Copy:
        location = copy_migrations(tmp_path_factory.mktemp("contract") / "alembic", through=PINNED[-1])
        contract = put_on_top(location, CONTRACT, "drop_call_sid")
        top = put_on_top(location, SAFE_PATHS, "safe_paths")
        scratch = databases.create(TEMPLATE_HOST)
        write(script(location), generate(script(location), scratch))
        databases.release(scratch)
        return Copy(location, contract, top)

    return session_server.once("offline_rerun_contract", build)


def start_at(copy: Copy, url: URL, start: str) -> str:
    """The database at ``start`` (online), and the offline upgrade script from there to head."""
    if start == "base":
        return copy.cli("upgrade", "head", "--sql")
    command.upgrade(config_for(url, copy.location), start)
    return copy.cli("upgrade", f"{start}:head", "--sql")


@pytest.mark.parametrize("start", ["base", MIDDLE])
def test_the_script_runs_twice_through_psql(copy: Copy, host_db: URL, start: str) -> None:
    sql = start_at(copy, host_db, start)
    assert DROP in sql
    for _ in range(2):
        done = psql(host_db, sql)
        assert done.returncode == 0, done.stderr
        copy.lands_on(host_db, copy.top)


def cuts(sql: str) -> list[int]:
    """Where to cut the script: early, in the middle, just after the drop, and just before its last step."""
    steps = script_steps(sql)
    after_drop = next(i for i, step in enumerate(steps) if DROP in step) + 1
    return [len(steps) // 4, len(steps) // 2, after_drop, len(steps) - 1]


@pytest.mark.parametrize("cut", range(4))
@pytest.mark.parametrize("start", ["base", MIDDLE])
def test_the_script_runs_again_after_dying_at_a_statement(copy: Copy, host_db: URL, start: str, cut: int) -> None:
    sql = start_at(copy, host_db, start)
    steps = script_steps(sql)
    psql(host_db, "\n\n".join(steps[: cuts(sql)[cut]]) + "\n")  # psql dies there
    run_script(host_db, sql)
    copy.lands_on(host_db, copy.top)
    run_script(host_db, sql)
    copy.lands_on(host_db, copy.top)


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_the_downgrade_script_runs_again(copy: Copy, host_db: URL, cut: float) -> None:
    """Down to the contract revision (below it, call_sid would come back last among the columns, not where
    the older files have it, offline as online)."""
    command.upgrade(config_for(host_db, copy.location), "head")
    sql = copy.cli("downgrade", f"{copy.top}:{copy.contract}", "--sql")
    steps = script_steps(sql)
    psql(host_db, "\n\n".join(steps[: int(len(steps) * cut)]) + "\n")
    for _ in range(2):
        run_script(host_db, sql)
        copy.lands_on(host_db, copy.contract)
    # Once below, the upgrade script from there runs as well.
    run_script(host_db, copy.cli("upgrade", f"{copy.contract}:head", "--sql"))
    copy.lands_on(host_db, copy.top)


def test_the_downgrade_to_base_runs_again(copy: Copy, host_db: URL) -> None:
    command.upgrade(config_for(host_db, copy.location), "head")
    sql = copy.cli("downgrade", f"{copy.top}:base", "--sql")
    for _ in range(2):
        run_script(host_db, sql)
        assert version(host_db) == []
        assert catalog_text(host_db, "base", copy.location) == catalog_text(host_db, "base")


# The lint.


def flagged(linted: subprocess.CompletedProcess[str]) -> list[tuple[int, str]]:
    """(line, rule) of each of squawk's findings."""
    found = []
    for line in linted.stdout.splitlines():
        where, _, rest = line.partition(": warning: ")
        if rest:
            found.append((int(where.split(":")[1]) + 1, rest.split()[0]))  # squawk counts lines from 0
    return found


def test_the_committed_configuration_excludes_none_of_the_rules_the_library_answers_for() -> None:
    excluded = set(tomllib.loads((REPO / ".squawk.toml").read_text())["excluded_rules"])
    assert not excluded & {*SQUAWK_RULES.values(), "adding-required-field", "ban-drop-constraint"}


@pytest.mark.parametrize("start", ["base", MIDDLE, PINNED[-1]])
def test_squawk_passes_the_opt_out_and_the_safe_paths(copy: Copy, start: str) -> None:
    sql = copy.cli("upgrade", "head" if start == "base" else f"{start}:head", "--sql")
    lines = sql.splitlines()
    ignores = [(i, line) for i, line in enumerate(lines) if "squawk-ignore" in line]
    # One comment a statement the library runs safely or a revision allowed, on the line before it.
    assert [(line.split(" -- ")[0], lines[i + 1]) for i, line in ignores] == [
        ("-- squawk-ignore ban-drop-column", DROP),
        (
            "-- squawk-ignore adding-not-nullable-field",
            "ALTER TABLE outbound_call_jobs ALTER COLUMN status SET NOT NULL;",
        ),
        (
            "-- squawk-ignore ban-drop-constraint",
            "ALTER TABLE outbound_call_jobs DROP CONSTRAINT IF EXISTS outbound_call_jobs_status_not_null;",
        ),
    ]
    assert "no release maps call_sid since the one before" in lines[ignores[0][0]]  # the reason it allows it
    linted = squawk(sql)
    assert linted.returncode == 0, linted.stdout + linted.stderr

    # The comments are what make it pass: without them squawk flags the drop and the CHECK's drop. (It takes the
    # VALIDATE CONSTRAINT before SET NOT NULL into account, where the CHECK is in the same script.)
    bare = "\n".join(line for line in lines if "squawk-ignore" not in line) + "\n"
    found = flagged(squawk(bare))
    assert [rule for _, rule in found] == ["ban-drop-column", "ban-drop-constraint"]
    assert [bare.splitlines()[line - 1] for line, _ in found] == [lines[ignores[0][0] + 1], lines[ignores[2][0] + 1]]


def test_the_ignore_comment_covers_its_statement_alone(copy: Copy) -> None:
    """Another drop, without an opt-out, in the same revision's block (inside psql's \\if) is still flagged.
    The library refuses such a revision, so it is written into the script by hand."""
    sql = copy.cli("upgrade", "head", "--sql")
    other = (
        "BEGIN;\n\nSET LOCAL lock_timeout = '100ms';\n\nSET LOCAL statement_timeout = '1800000ms';\n\n"
        "ALTER TABLE outbound_call_jobs DROP COLUMN IF EXISTS twilio_call_sid;\n\nCOMMIT;\n\n"
    )
    contract_block = sql.index(DROP)
    end_of_block = sql.index("\\endif", contract_block)
    tampered = sql[:end_of_block] + other + sql[end_of_block:]
    linted = squawk(tampered)
    assert linted.returncode != 0
    found = flagged(linted)
    assert [rule for _, rule in found] == ["ban-drop-column"]
    assert "twilio_call_sid" in tampered.splitlines()[found[0][0] - 1]


def run_psql_style(url: URL, script: list[str], *, stop_after: int | None = None) -> list[str]:
    """Send ``script`` (:func:`script_steps`) through psql as its default runs it, on past errors, dying after
    ``stop_after`` steps; the errors it met."""
    done = psql(url, "\n\n".join(script[:stop_after]) + "\n", stop_on_error=False)
    return [line for line in done.stderr.splitlines() if "ERROR:" in line or "error:" in line]


def offline(*args: str) -> list[str]:
    done = cli_here("upgrade", *args, "--sql")
    assert done.returncode == 0, done.stderr
    return script_steps(done.stdout)


def test_the_offline_script_runs_again_after_a_shorter_one(host_db: URL) -> None:
    assert run_psql_style(host_db, offline("46b")) == []
    assert version(host_db) == ["46b"]
    full = offline()
    assert run_psql_style(host_db, full) == []
    assert run_psql_style(host_db, full) == []  # and again, at head
    assert version(host_db) == [HEAD]
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)


@pytest.mark.parametrize("share", [0.2, 0.5, 0.8])
def test_the_offline_script_runs_again_after_dying_at_any_statement(host_db: URL, share: float) -> None:
    full = offline()
    stop = max(1, int(len(full) * share))
    run_psql_style(host_db, full, stop_after=stop)
    assert run_psql_style(host_db, full) == []
    assert version(host_db) == [HEAD]
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)
