"""The safety layer under ordinary ``op.*`` revisions: what it refuses, what it makes safe, the opt-out.

Each case is a revision put on top of head in a copy of the migrations and run
against a database at head holding rows. The columns the revisions touch are
picked from head's expected-schema file (a nullable varchar without a default,
the integer foreign keys), so that each case tests what it says whatever head is. A refused revision changes nothing,
online or offline, however many safe operations come before the refused one;
an allowed one applies, and its effects are read back from the catalog.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import URL

from outbound_schema.errors import OutboundSchemaError
from outbound_schema.safety import runs_outside_transactions
from tests.helpers import (
    HEAD,
    catalog,
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
    version,
)

JOBS = "outbound_call_jobs"
_COLUMNS = expected_schema().tables[JOBS].columns
#: A nullable varchar without a default, which the rows fill (call_sid at 47a): to widen, make NOT NULL,
#: check, make unique, drop, rename.
SID = next((c for c in _COLUMNS if c.nullable and c.default is None and c.type.startswith("character varying(")), None)
assert SID is not None, f"head's file has no nullable varchar column without a default in {JOBS}"
SID_LENGTH = int(SID.type.removeprefix("character varying(").removesuffix(")"))
#: Integer NOT NULL columns without a default (the foreign keys run_id and lead_id): type changes.
INTS = [c.name for c in _COLUMNS if c.type == "integer" and not c.nullable and c.default is None]
assert len(INTS) >= 2, f"head's file has fewer than two integer NOT NULL columns without a default in {JOBS}"

REVISION = '''"""A revision under test."""

import sqlalchemy as sa
from alembic import op

revision = "next"
down_revision = "head"
branch_labels = None
depends_on = None
{allow}

def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


def revision_on_top(tmp_path: Path, body: str, allow: str = "") -> tuple[Path, str]:
    location = tmp_path / "alembic"
    if not location.exists():
        copy_migrations(location)
    indented = "\n".join(f"    {line}" for line in body.strip().splitlines())
    revision = put_on_top(location, REVISION.format(body=indented, allow=allow), "under_test")
    return location, revision


@pytest.fixture
def busy_db(head_db: URL) -> URL:
    """A database at head whose tables hold rows."""
    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        conn.execute(text("INSERT INTO outbound_call_runs (id, business_id) VALUES (1, 1)"))
        conn.execute(
            text(
                f"INSERT INTO {JOBS} (run_id, lead_id, {SID.name}) SELECT 1, 1, 'CA' || i "
                "FROM generate_series(1, 50) AS i"
            )
        )
        conn.commit()
    return head_db


REFUSED = {
    "a volatile default": (
        'op.add_column("outbound_call_jobs", sa.Column("token", sa.Text(), '
        'server_default=sa.text("gen_random_uuid()::text")))',
        "add_column outbound_call_jobs.token",
        "volatile default",
    ),
    "NOT NULL without a default": (
        'op.add_column("outbound_call_jobs", sa.Column("priority", sa.Integer(), nullable=False))',
        "add_column outbound_call_jobs.priority",
        "give it a constant server_default",
    ),
    "a rewriting type change": (
        f'op.alter_column("outbound_call_jobs", "{INTS[1]}", type_=sa.BigInteger(), existing_type=sa.Integer())',
        f"alter_column_type outbound_call_jobs.{INTS[1]}",
        "from integer to BIGINT",
    ),
    "a type change of unstated origin": (
        f'op.alter_column("outbound_call_jobs", "{INTS[0]}", type_=sa.BigInteger())',
        f"alter_column_type outbound_call_jobs.{INTS[0]}",
        "from integer to BIGINT",
    ),
    "SET NOT NULL without a validated CHECK": (
        f'op.alter_column("outbound_call_jobs", "{SID.name}", nullable=False, existing_type=sa.String({SID_LENGTH}))',
        f"set_not_null outbound_call_jobs.{SID.name}",
        f"op.create_check_constraint('outbound_call_jobs_{SID.name}_not_null'",
    ),
    "SET NOT NULL on a column added just before": (
        'op.add_column("outbound_call_jobs", sa.Column("n", sa.Integer(), server_default="0"))\n'
        'op.alter_column("outbound_call_jobs", "n", nullable=False)',
        "set_not_null outbound_call_jobs.n",
        "op.create_check_constraint('outbound_call_jobs_n_not_null'",
    ),
    "a rewriting type change of a column added just before": (
        'op.add_column("outbound_call_jobs", sa.Column("n", sa.Integer(), server_default="0"))\n'
        'op.alter_column("outbound_call_jobs", "n", type_=sa.BigInteger())',
        "alter_column_type outbound_call_jobs.n",
        "from a type this revision does not state",
    ),
    "a type change whose stated origin is not the column's": (
        f'op.alter_column("outbound_call_jobs", "{INTS[1]}", type_=sa.Numeric(12, 2), existing_type=sa.Numeric(10, 2))',
        f"alter_column_type outbound_call_jobs.{INTS[1]}",
        "from integer to NUMERIC(12, 2)",
    ),
    "a plain UNIQUE constraint": (
        f'op.create_unique_constraint("outbound_call_jobs_{SID.name}_key", "outbound_call_jobs", ["{SID.name}"])',
        f"create_unique_constraint outbound_call_jobs.outbound_call_jobs_{SID.name}_key",
        f"op.create_index('outbound_call_jobs_{SID.name}_key', 'outbound_call_jobs', ['{SID.name}'], unique=True)",
    ),
    "dropping a column, after a safe change": (
        'op.add_column("outbound_call_jobs", sa.Column("note", sa.Text()))\n'
        f'op.drop_column("outbound_call_jobs", "{SID.name}")',
        f"drop_column outbound_call_jobs.{SID.name}",
        "release a version that no longer uses it",
    ),
    "renaming a column": (
        f'op.alter_column("outbound_call_jobs", "{SID.name}", new_column_name="provider_sid")',
        f"rename_column outbound_call_jobs.{SID.name}",
        "add the new column, write both",
    ),
    "dropping a table": (
        'op.drop_table("outbound_call_runs")',
        "drop_table outbound_call_runs",
        "expand/contract",
    ),
    "renaming a table": (
        'op.rename_table("outbound_call_jobs", "call_jobs")',
        "rename_table outbound_call_jobs",
        "create the new table",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_unsafe_operations_are_refused_before_anything_changes(busy_db: URL, tmp_path: Path, case: str) -> None:
    body, key, alternative = REFUSED[case]
    location, revision = revision_on_top(tmp_path, body)
    before, nodes = catalog(busy_db), file_nodes(busy_db)

    with pytest.raises(OutboundSchemaError) as refused:
        command.upgrade(config_for(busy_db, location), "head")

    message = str(refused.value)
    assert message.startswith(f"{revision}: op.") and "\n" not in message.split("\n\n")[0]
    assert alternative in message
    assert f'allow_unsafe = {{"{key}": "<why it is safe>"}}' in message
    assert message.endswith("Nothing was changed.")
    assert catalog(busy_db) == before and file_nodes(busy_db) == nodes
    assert version(busy_db) == [HEAD]

    # Offline alike: no script is written.
    offline = config_for(None, location)
    offline.output_buffer = io.StringIO()
    with pytest.raises(OutboundSchemaError, match=key.split()[0]):
        command.upgrade(offline, f"{HEAD}:head", sql=True)


def test_the_command_line_says_it_in_one_paragraph_and_exits_1(busy_db: URL, tmp_path: Path) -> None:
    location, _ = revision_on_top(tmp_path, REFUSED["dropping a column, after a safe change"][0])
    done = cli_here("upgrade", DATABASE_URL=plain(busy_db), **in_location(location))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    error = done.stderr[done.stderr.index("outbound-schema: error:") :]
    assert error.strip().count("\n\n") == 1  # the refusal, then "Nothing was changed."
    assert "note" not in {c.name for c in catalog(busy_db).tables[JOBS].columns}


def test_a_refusal_in_a_later_revision_stops_the_earlier_ones_too(busy_db: URL, tmp_path: Path) -> None:
    location, _ = revision_on_top(tmp_path, 'op.add_column("outbound_call_jobs", sa.Column("note", sa.Text()))')
    revision_on_top(tmp_path, f'op.drop_column("outbound_call_jobs", "{SID.name}")')
    with pytest.raises(OutboundSchemaError, match=rf"drop_column outbound_call_jobs\.{SID.name}"):
        command.upgrade(config_for(busy_db, location), "head")
    assert version(busy_db) == [HEAD]
    assert catalog_text(busy_db, HEAD) == expected_text(HEAD)


def test_the_opt_out_allows_exactly_what_it_names(busy_db: URL, tmp_path: Path) -> None:
    allow = f'\nallow_unsafe = {{"drop_column outbound_call_jobs.{SID.name}": "no release maps it since 2.3"}}\n'
    location, revision = revision_on_top(tmp_path, f'op.drop_column("outbound_call_jobs", "{SID.name}")', allow)

    done = cli_here("upgrade", DATABASE_URL=plain(busy_db), **in_location(location))

    assert done.returncode == 0, done.stderr
    assert (
        f"{revision}: drop_column outbound_call_jobs.{SID.name}, refused by default, allowed by the revision: "
        "no release maps it since 2.3" in done.stderr
    )
    assert SID.name not in {c.name for c in catalog(busy_db).tables[JOBS].columns}
    assert version(busy_db) == [revision]


def test_an_opt_out_is_a_reason_not_a_flag(busy_db: URL, tmp_path: Path) -> None:
    allow = f'\nallow_unsafe = {{"drop_column outbound_call_jobs.{SID.name}": ""}}\n'
    location, _ = revision_on_top(tmp_path, f'op.drop_column("outbound_call_jobs", "{SID.name}")', allow)
    with pytest.raises(OutboundSchemaError, match="to the reason it is safe, a non-empty string"):
        command.upgrade(config_for(busy_db, location), "head")
    assert version(busy_db) == [HEAD]


def test_safe_forms_go_through_without_rewriting_or_an_opt_out(busy_db: URL, tmp_path: Path) -> None:
    """A wider varchar, NOT NULL through a validated CHECK, a foreign key and a CHECK on a table with rows,
    and anything on a table the revision creates."""
    location, revision = revision_on_top(
        tmp_path,
        f"""
op.alter_column("outbound_call_jobs", "{SID.name}", type_=sa.String({2 * SID_LENGTH}),
                existing_type=sa.String({SID_LENGTH}))
op.create_check_constraint("outbound_call_jobs_sid_not_null", "outbound_call_jobs", "{SID.name} IS NOT NULL")
op.alter_column("outbound_call_jobs", "{SID.name}", nullable=False, existing_type=sa.String({2 * SID_LENGTH}))
op.add_column("outbound_call_jobs", sa.Column("retry_of", sa.Integer(), nullable=True))
op.create_foreign_key("outbound_call_jobs_retry_of_fkey", "outbound_call_jobs", "outbound_call_jobs",
                      ["retry_of"], ["id"])
op.create_table("outbound_call_notes", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("body", sa.Text()))
op.create_unique_constraint("outbound_call_notes_body_key", "outbound_call_notes", ["body"])
op.add_column("outbound_call_notes",
              sa.Column("created_at", sa.DateTime(), server_default=sa.text("clock_timestamp()")))
""",
    )
    nodes = file_nodes(busy_db)

    done = cli_here("upgrade", DATABASE_URL=plain(busy_db), **in_location(location))

    assert done.returncode == 0, done.stderr
    assert f"{revision}: created index" not in done.stderr or "concurrently" in done.stderr
    assert file_nodes(busy_db) == nodes, "a table was rewritten"
    live = catalog(busy_db)
    jobs = live.tables[JOBS]
    widened = jobs.column(SID.name)
    assert widened is not None and widened.type == f"character varying({2 * SID_LENGTH})"
    assert widened.nullable is False
    constraints = {name: c.definition for name, c in live.constraints.items()}
    assert not any(d.endswith("NOT VALID") for d in constraints.values()), "every constraint validated"
    assert constraints["outbound_call_jobs_retry_of_fkey"] == "FOREIGN KEY (retry_of) REFERENCES outbound_call_jobs(id)"
    with connected(busy_db) as conn:
        assert conn.scalar(text("SELECT to_regclass('outbound_call_notes_body_key') IS NOT NULL"))
    assert version(busy_db) == [revision]


def test_a_check_the_rows_break_stops_with_the_constraint_not_valid(busy_db: URL, tmp_path: Path) -> None:
    """Added NOT VALID (new rows are checked at once), its validation fails on old rows: a clear error."""
    location, _ = revision_on_top(
        tmp_path, f'op.create_check_constraint("outbound_call_jobs_no_sid", "outbound_call_jobs", "{SID.name} IS NULL")'
    )
    done = cli_here("upgrade", DATABASE_URL=plain(busy_db), **in_location(location))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "outbound_call_jobs_no_sid" in done.stderr
    assert catalog(busy_db).constraints["outbound_call_jobs_no_sid"].definition.endswith("NOT VALID")
    assert version(busy_db) == [HEAD]


def test_an_unnamed_constraint_is_refused_whatever_the_revision_allows(busy_db: URL, tmp_path: Path) -> None:
    allow = '\nallow_unsafe = {"create_constraint outbound_call_jobs": "we know"}\n'
    location, _ = revision_on_top(
        tmp_path, 'op.create_foreign_key(None, "outbound_call_jobs", "leads", ["lead_id"], ["id"])', allow
    )
    with pytest.raises(OutboundSchemaError, match="has no name") as refused:
        command.upgrade(config_for(busy_db, location), "head")
    assert "allow_unsafe" not in str(refused.value)
    assert version(busy_db) == [HEAD]


def test_not_null_on_a_column_already_not_null_is_no_scan(busy_db: URL, tmp_path: Path) -> None:
    location, revision = revision_on_top(
        tmp_path, f'op.alter_column("outbound_call_jobs", "{INTS[0]}", nullable=False, server_default="1")'
    )
    command.upgrade(config_for(busy_db, location), "head")
    assert version(busy_db) == [revision]


def test_a_table_with_an_enum_is_created_again_after_a_crash(busy_db: URL, tmp_path: Path) -> None:
    """The type its events create survives a crash before the table: the rerun keeps it instead of failing."""
    location, revision = revision_on_top(
        tmp_path,
        'op.create_table("outbound_call_moods", sa.Column("id", sa.Integer(), primary_key=True),\n'
        '                sa.Column("mood", sa.Enum("calm", "busy", name="outbound_call_mood")))',
    )
    with connected(busy_db) as conn:
        conn.execute(text("CREATE TYPE outbound_call_mood AS ENUM ('calm', 'busy')"))
        conn.commit()
    command.upgrade(config_for(busy_db, location), "head")
    assert version(busy_db) == [revision]
    with connected(busy_db) as conn:
        assert conn.scalar(text("SELECT to_regclass('outbound_call_moods') IS NOT NULL"))


@pytest.mark.parametrize(
    ("sql", "outside"),
    [
        ("CREATE INDEX CONCURRENTLY ix ON t (c)", True),
        ("  -- the queued jobs\ncreate unique index concurrently ix ON t (c)", True),
        ("/* no lock */ DROP INDEX CONCURRENTLY IF EXISTS ix", True),
        ("REINDEX (VERBOSE) INDEX CONCURRENTLY ix", True),
        ("VACUUM ANALYZE outbound_call_jobs", True),
        ("UPDATE outbound_call_jobs SET error_message = 'retried concurrently'", False),
        ("ALTER TABLE t ADD COLUMN c int -- built concurrently later", False),
    ],
)
def test_only_statements_that_must_run_outside_a_transaction_do(sql: str, outside: bool) -> None:
    assert runs_outside_transactions(sql) is outside
