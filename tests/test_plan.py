"""``outbound-schema plan``: what an upgrade will do, read from the live database with SELECT alone.

On small tables with rows: the statements are the ones ``upgrade --sql`` writes for the same range, the locks and
what they block, the sizes, refusals and opt-outs, the JSON's shape, and that a role allowed SELECT alone can plan
and nothing changes. How close the estimates come to real durations on millions of rows: bench/plan_estimates.py.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from outbound_schema.config import VERSION_TABLE
from outbound_schema.revisions import next_revision_id
from outbound_schema.standing import HISTORY_TABLE
from tests.helpers import (
    ALL_REVISIONS,
    HEAD,
    REPO,
    catalog,
    cli_here,
    connected,
    copy_migrations,
    in_location,
    inject,
    plain,
    put_on_top,
    version,
)
from tests.test_safety import SID

JOBS = "outbound_call_jobs"
ROWS = 3000
EXAMPLE = (REPO / "tests" / "example_revision.py").read_text()


def _with_rows(url: URL) -> None:
    inject(
        url,
        "INSERT INTO business (id) SELECT generate_series(1, 2)",
        "INSERT INTO leads (id) SELECT generate_series(1, 50)",
        "INSERT INTO outbound_call_runs (business_id) SELECT 1 FROM generate_series(1, 3)",
        f"INSERT INTO {JOBS} (run_id, lead_id, status, twilio_call_sid) SELECT (SELECT min(id) FROM "
        "outbound_call_runs), 1 + i % 50, (ARRAY['queued','dialing','completed','failed'])[1 + i % 4], "
        f"'CA' || md5(i::text) FROM generate_series(1, {ROWS}) AS i",
        f"ANALYZE {JOBS}",
    )


@pytest.fixture
def db_46b(host_db: URL) -> URL:
    done = cli_here("upgrade", "46b", DATABASE_URL=plain(host_db))
    assert done.returncode == 0, done.stderr
    _with_rows(host_db)
    return host_db


@pytest.fixture
def reader(host_db: URL) -> Any:
    """A role that may only read (pg_read_all_data), and its URL."""
    role = f"plan_reader_{uuid.uuid4().hex[:8]}"
    inject(host_db, f"CREATE ROLE {role} LOGIN PASSWORD 'reader-pw' IN ROLE pg_read_all_data")
    yield plain(host_db.set(username=role, password="reader-pw"))
    inject(host_db, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def _plan(url: str, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
    done = cli_here("plan", "--format", "json", *args, DATABASE_URL=url, **env)
    return done.returncode, json.loads(done.stdout)


def _statements(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for r in plan["revisions"] for s in r["statements"]]


def test_a_plan_of_46b_to_47a_as_a_role_that_may_only_read(db_46b: URL, reader: str) -> None:
    """Pinned to 47a, the revisions it speaks of: a later head's revisions may well need a decision."""
    before = catalog(db_46b)
    code, plan = _plan(reader, "47a")

    assert code == 0, plan
    assert plan["format"] == 1 and plan["version"] == ["46b"] and plan["state"] == "behind"
    assert [r["revision"] for r in plan["revisions"]][:3] == ["46c", "46d", "47a"]
    by_label = {s["label"]: s for s in _statements(plan)}
    add = by_label["46c: add column outbound_call_jobs.dial_lock_token"]
    assert add["lock"] == {"mode": "ACCESS EXCLUSIVE", "tables": [JOBS], "blocks": "reads and writes"}
    assert add["sql"] == ["ALTER TABLE outbound_call_jobs ADD COLUMN IF NOT EXISTS dial_lock_token VARCHAR(64)"]
    assert add["lock_wait"]["per_attempt_ms"] == 100 and add["lock_wait"]["attempts"] > 1
    assert 300 <= add["lock_wait"]["max_with_backoff_s"] <= 300.2  # the lock wait total, 5 min
    assert not add["scans_table"] and not add["rewrites_table"]
    assert add["blocking_window_s"] == pytest.approx(0.1, abs=0.05)
    index = by_label["46d: create index idx_outbound_call_jobs_status_twilio_sid"]
    assert index["lock"]["mode"] == "SHARE UPDATE EXCLUSIVE" and index["lock"]["blocks"] == "nothing"
    assert index["sql"][-1] == (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_outbound_call_jobs_status_twilio_sid ON outbound_call_jobs "
        "(status, twilio_call_sid)"
    )
    assert "RAISE EXCEPTION" in index["sql"][0]  # the guard against an INVALID leftover
    assert index["scans_table"] and index["work"] == "index build"
    assert index["table"]["name"] == JOBS and ROWS * 0.8 <= index["table"]["rows"] <= ROWS * 1.2
    assert index["table"]["bytes"] > 0 and index["estimated_s"] >= 0
    rates = plan["calibration"]["tables"][JOBS]
    assert rates["sample_rows"] == ROWS and rates["scan_rows_per_s"] > 0 and rates["scan_ms"] > 0
    summary = plan["summary"]
    assert summary["decisions"] == [] and summary["exit_code"] == 0
    assert summary["longest_blocking_window"]["blocks"] == "reads and writes"
    assert summary["estimated_s"] == pytest.approx(sum(s["estimated_s"] for s in _statements(plan)), abs=0.01)
    # Read-only: nothing changed.
    assert catalog(db_46b) == before and version(db_46b) == ["46b"]

    text = cli_here("plan", "47a", DATABASE_URL=reader)
    assert text.returncode == 0, text.stderr
    assert "46d: create index idx_outbound_call_jobs_status_twilio_sid" in text.stdout
    assert "lock: SHARE UPDATE EXCLUSIVE on outbound_call_jobs: blocks nothing" in text.stdout
    assert "needs a human decision: nothing" in text.stdout


def test_the_plan_shows_what_upgrade_sql_writes(db_46b: URL) -> None:
    code, plan = _plan(plain(db_46b), "47a")
    script = cli_here("upgrade", "46b:47a", "--sql").stdout
    assert code == 0
    position = 0
    for statement in [*plan["before"], *_statements(plan)]:
        found = script.find(statement["script"], position)
        assert found >= 0, statement["script"]
        position = found + len(statement["script"])


def test_not_valid_then_validate_and_a_partial_index_of_the_next_revision(head_db: URL, tmp_path: Path) -> None:
    location = copy_migrations(tmp_path / "alembic")
    revision = put_on_top(location, EXAMPLE, "example")
    _with_rows(head_db)

    code, plan = _plan(plain(head_db), **in_location(location))

    assert code == 0, plan
    (planned,) = plan["revisions"]
    assert planned["revision"] == revision
    by_label = {s["label"]: s for s in planned["statements"]}
    added = by_label[f"{revision}: add constraint outbound_call_jobs_status_check on {JOBS}"]
    assert added["sql"][-1].endswith("NOT VALID END IF; END $outbound$") or "NOT VALID" in added["sql"][-1]
    assert added["lock"]["mode"] == "ACCESS EXCLUSIVE" and not added["scans_table"]
    validate = by_label[f"{revision}: add constraint outbound_call_jobs_status_check on {JOBS} (validate)"]
    assert validate["sql"] == [f"ALTER TABLE {JOBS} VALIDATE CONSTRAINT outbound_call_jobs_status_check"]
    assert validate["lock"] == {"mode": "SHARE UPDATE EXCLUSIVE", "tables": [JOBS], "blocks": "nothing"}
    assert validate["scans_table"] and validate["work"] == "validation scan"
    assert validate["lock_wait"]["per_attempt_ms"] == 30 * 60_000
    partial = by_label[f"{revision}: create index idx_outbound_call_jobs_queued"]
    assert partial["sql"][-1].endswith("WHERE status = 'queued'")
    script = cli_here("upgrade", f"{HEAD}:head", "--sql", **in_location(location)).stdout
    assert all(s["script"] in script for s in planned["statements"])


def test_refusals_and_opt_outs_need_a_decision(head_db: URL, tmp_path: Path) -> None:
    location = copy_migrations(tmp_path / "alembic")
    revision = '"""Under test."""\nimport sqlalchemy as sa\nfrom alembic import op\n\nrevision = "next"\n'
    revision += 'down_revision = "head"\nbranch_labels = None\ndepends_on = None\n{allow}\n\ndef upgrade() -> None:\n'
    revision += "    {body}\n\n\ndef downgrade() -> None:\n    pass\n"
    allowed = put_on_top(
        location,
        revision.format(
            allow=f'allow_unsafe = {{"drop_column {JOBS}.dial_started_at": "no release reads it"}}',
            body=f'op.drop_column("{JOBS}", "dial_started_at")',
        ),
        "allowed",
    )
    refused = put_on_top(location, revision.format(allow="", body=f'op.drop_column("{JOBS}", "{SID.name}")'), "refused")

    code, plan = _plan(plain(head_db), **in_location(location))

    assert code == 1, plan
    revisions = {r["revision"]: r for r in plan["revisions"]}
    assert revisions[allowed]["opt_outs"] == [
        {"key": f"drop_column {JOBS}.dial_started_at", "why": "no release reads it"}
    ]
    (message,) = revisions[refused]["refusals"]
    assert f"drop_column {JOBS}.{SID.name}" in message
    (statement,) = revisions[refused]["statements"]
    assert statement["refused"] == [message] and statement["script"] == ""
    decisions = plan["summary"]["decisions"]
    assert message in decisions and any("no release reads it" in d for d in decisions)
    text = cli_here("plan", DATABASE_URL=plain(head_db), **in_location(location))
    assert text.returncode == 1 and "REFUSED" in text.stdout and "opt-out:" in text.stdout
    assert version(head_db) == [HEAD]


def test_at_head_nothing_to_do_and_no_database_exit_2(head_db: URL, tmp_path: Path) -> None:
    code, plan = _plan(plain(head_db))
    assert code == 0 and plan["revisions"] == [] and plan["summary"]["estimated_s"] == 0
    done = cli_here("plan", "--format", "json", DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 2 and json.loads(done.stdout)["state"] == "error"
    with connected(head_db) as connection:
        assert connection is not None


@pytest.mark.parametrize("where", ["unknown", "ahead"])
def test_a_database_past_this_release_or_at_a_revision_it_lacks_is_not_planned(head_db: URL, where: str) -> None:
    """Like status and check for those states, one paragraph saying why nothing was planned; exit 1 where
    upgrade would refuse (unknown), 0 where it would change nothing (ahead: a release rollback)."""
    inject(head_db, f"UPDATE {VERSION_TABLE} SET version_num = '99z'")
    if where == "ahead":  # a newer release applied 99z on top of this release's head, and recorded it
        inject(
            head_db,
            f"INSERT INTO {HISTORY_TABLE} (revision, parents, action, release) VALUES ('99z', ARRAY['{HEAD}'], "
            "'applied', '9.9.9')",
        )
    status = cli_here("status", "--format", "json", DATABASE_URL=plain(head_db))
    assert json.loads(status.stdout)["state"] == where
    before = catalog(head_db)

    code, plan = _plan(plain(head_db))

    expected_code = 1 if where == "unknown" else 0
    assert code == expected_code, plan
    assert plan["state"] == where and plan["version"] == ["99z"] and plan["revisions"] == []
    message = plan["not_planned"]
    assert plan["summary"]["decisions"] == ([message] if where == "unknown" else [])
    assert plan["summary"]["exit_code"] == expected_code
    assert "Nothing was planned" in message
    if where == "unknown":
        assert message.startswith("The database is at revision 99z, which is on no line of this release's history")
    else:
        assert message.startswith(f"The database is at 99z, ahead of this release's head {HEAD}: 99z applied by")
        assert "Plan with the release that applied them (9.9.9) or a later one." in message
    text = cli_here("plan", DATABASE_URL=plain(head_db))
    assert text.returncode == expected_code and "Traceback" not in text.stderr
    assert text.stdout.splitlines()[-1] == f"not planned: {message}"
    assert catalog(head_db) == before and version(head_db) == ["99z"]


def test_a_database_at_two_heads_is_planned_from_both(head_db: URL, tmp_path: Path) -> None:
    """A branched history: the version table holds a row per head, and the plan starts from all of them,
    as status reads them (the revisions neither row has are pending), not from base."""
    location = copy_migrations(tmp_path / "alembic")
    # Ids after head's, whatever head is: A and B side by side on it, C on B.
    a = next_revision_id([HEAD])
    assert a is not None
    b = f"{a[:-1]}b"
    c = f"{(next_revision_id([b]) or '')[:-1]}b"
    body = (
        "import sqlalchemy as sa\nfrom alembic import op\n\nrevision = {rev!r}\ndown_revision = {down!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade() -> None:\n    {up}\n\n\n"
        "def downgrade() -> None:\n    pass\n"
    )
    for rev, down, up in (
        (a, HEAD, f'op.add_column("{JOBS}", sa.Column("on_a", sa.Integer()))'),
        (b, HEAD, f'op.add_column("{JOBS}", sa.Column("on_b", sa.Integer()))'),
        (c, b, f'op.create_index("idx_on_b", "{JOBS}", ["on_b"])'),
    ):
        (location / "versions" / f"{rev}_branch.py").write_text(body.format(rev=rev, down=down, up=up))
    env = in_location(location)
    for rev in (a, b):
        done = cli_here("upgrade", rev, DATABASE_URL=plain(head_db), **env)
        assert done.returncode == 0, done.stderr
    assert sorted(version(head_db) or []) == [a, b]
    status = json.loads(cli_here("status", "--format", "json", DATABASE_URL=plain(head_db), **env).stdout)
    assert status["version"] == [a, b] and status["head"] == sorted([a, c])
    assert [r["revision"] for r in status["revisions"] if r["state"] != "applied"] == [c]
    _with_rows(head_db)
    before = catalog(head_db)

    code, plan = _plan(plain(head_db), "heads", **env)

    assert code == 0, plan
    assert plan["version"] == [a, b] and plan["state"] == "behind"
    (planned,) = plan["revisions"]
    assert planned["revision"] == c
    (index,) = [s for s in planned["statements"] if s["label"] == f"{c}: create index idx_on_b"]
    assert index["sql"][-1] == f"CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_on_b ON {JOBS} (on_b)"
    assert index["scans_table"] and index["table"]["name"] == JOBS
    script = cli_here("upgrade", f"{a}:heads", "--sql", **env).stdout  # what C's part of the script says
    assert all(s["script"] in script for s in planned["statements"])
    assert catalog(head_db) == before and sorted(version(head_db) or []) == [a, b]


def test_two_version_rows_one_before_the_other_are_refused_as_status_refuses_them(head_db: URL) -> None:
    """Not branches: a row a later row already includes (a script run twice). Exit 2, the same paragraph."""
    inject(head_db, f"INSERT INTO {VERSION_TABLE} VALUES ('{ALL_REVISIONS[0]}')")
    status = cli_here("status", DATABASE_URL=plain(head_db))
    done = cli_here("plan", "--format", "json", DATABASE_URL=plain(head_db))
    assert status.returncode == done.returncode == 2
    assert json.loads(done.stdout)["state"] == "error"
    said = f"holds the rows {ALL_REVISIONS[0]}, {HEAD} where it should hold one"
    assert said in status.stderr and said in done.stderr and "Traceback" not in done.stderr


def test_a_column_an_earlier_revision_adds_is_sampled_as_it_will_be(db_46b: URL) -> None:
    """46c adds dial_lock_token, then indexes it: when the plan samples the table the column is not there yet,
    so its rows are sampled as 46c leaves them (NULL), and the sort and a predicate on it are timed."""
    import psycopg

    from outbound_schema.plan import Change, Planned, calibrate, table_size

    code, plan = _plan(plain(db_46b), "46c")
    assert code == 0, plan
    (add,) = [s for s in _statements(plan) if s["label"] == "46c: add column outbound_call_jobs.dial_lock_token"]
    planned = Planned()
    planned.note(Change("46c", add["label"], add["sql"], add["script"], True))
    assert planned.added == {JOBS: {"dial_lock_token": "CAST(NULL AS VARCHAR(64))"}}
    with psycopg.connect(plain(db_46b.set(drivername="postgresql"))) as connection:
        connection.read_only = True
        size = table_size(connection, JOBS)
        assert size is not None
        added = planned.added[JOBS]
        keys = calibrate(connection, size, keys="dial_lock_token", added=added)
        assert keys.sample_rows == keys.sorted_rows == ROWS and keys.kept() == 1
        kept = calibrate(connection, size, keys="status", predicate="dial_lock_token IS NOT NULL", added=added)
        assert kept.kept_rows == kept.sorted_rows == 0  # every row NULL, as 46c leaves it
        queued = calibrate(connection, size, keys="run_id", predicate="status = 'queued'")
        assert queued.kept_rows == ROWS // 4 and queued.sorted_rows == ROWS // 4
    assert version(db_46b) == ["46b"]
