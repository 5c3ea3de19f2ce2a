"""Every ❌ line's fix is real SQL: run as printed on the server, it leaves ``check`` clean.

Each case changes a database at 47a the way an operator or another tool would, reads the check's line for
the object, runs the exact fix the line gives, and checks again.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from tests.helpers import check_report as check
from tests.helpers import drifted, inject, plain

JOBS = "outbound_call_jobs"
RUNS = "outbound_call_runs"


def fk_triggers(table: str, firing: str) -> str:
    """Set the internal triggers enforcing foreign keys on ``table`` to ``firing``: ALTER TABLE takes no ALL
    with ENABLE REPLICA or ENABLE ALWAYS, so each by name, as a replication tool does."""
    return (
        "DO $$ DECLARE t record; BEGIN FOR t IN SELECT tgname FROM pg_trigger "
        f"WHERE tgrelid = '{table}'::regclass AND tgisinternal LOOP "
        f"EXECUTE format('ALTER TABLE {table} {firing} TRIGGER %I', t.tgname); END LOOP; END $$"
    )


# case: (statements, kind, name, verdict, the expected state in words, the fix, the search_path to check with)
FIXES: dict[str, tuple[list[str], str, str, str, str, str, str | None]] = {
    "column statistics": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN status SET STATISTICS 1000"],
        "column",
        f"{JOBS}.status",
        "different",
        "expected STATISTICS -1 (the default)",
        f"ALTER TABLE {JOBS} ALTER COLUMN status SET STATISTICS -1",
        None,
    ),
    "column storage": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN error_message SET STORAGE EXTERNAL"],
        "column",
        f"{JOBS}.error_message",
        "different",
        "expected STORAGE EXTENDED (its type's)",
        f"ALTER TABLE {JOBS} ALTER COLUMN error_message SET STORAGE EXTENDED",
        None,
    ),
    "column options": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN status SET (n_distinct = 5)"],
        "column",
        f"{JOBS}.status",
        "different",
        "expected none",
        f"ALTER TABLE {JOBS} ALTER COLUMN status RESET (n_distinct)",
        None,
    ),
    "row-level security forced": (
        [f"ALTER TABLE {RUNS} FORCE ROW LEVEL SECURITY"],
        "table",
        RUNS,
        "different",
        "expected NO FORCE",
        f"ALTER TABLE {RUNS} NO FORCE ROW LEVEL SECURITY",
        None,
    ),
    "row-level security": (
        [f"ALTER TABLE {RUNS} ENABLE ROW LEVEL SECURITY"],
        "table",
        RUNS,
        "different",
        "has row-level security enabled",
        f"ALTER TABLE {RUNS} DISABLE ROW LEVEL SECURITY",
        None,
    ),
    "storage parameters": (
        [f"ALTER TABLE {JOBS} SET (fillfactor = 70, autovacuum_enabled = false)"],
        "table",
        JOBS,
        "different",
        "expected none",
        f"ALTER TABLE {JOBS} RESET (autovacuum_enabled, fillfactor)",
        None,
    ),
    "replica identity": (
        [f"ALTER TABLE {JOBS} REPLICA IDENTITY FULL"],
        "table",
        JOBS,
        "different",
        "expected DEFAULT",
        f"ALTER TABLE {JOBS} REPLICA IDENTITY DEFAULT",
        None,
    ),
    "unlogged table": (
        [f"ALTER TABLE {JOBS} SET UNLOGGED"],
        "table",
        JOBS,
        "different",
        "is UNLOGGED",
        f"ALTER TABLE {JOBS} SET LOGGED",
        None,
    ),
    "inherited by another table": (
        [f"CREATE TABLE jobs_archive () INHERITS ({JOBS})"],
        "table",
        JOBS,
        "different",
        "expected none",
        f"ALTER TABLE jobs_archive NO INHERIT {JOBS}",
        None,
    ),
    "sequence cycles": (
        [f"ALTER SEQUENCE {RUNS}_id_seq CYCLE"],
        "sequence",
        f"{RUNS}_id_seq",
        "different",
        "expected NO CYCLE",
        f"ALTER SEQUENCE {RUNS}_id_seq NO CYCLE",
        None,
    ),
    "sequence unlogged": (
        [f"ALTER SEQUENCE {RUNS}_id_seq SET UNLOGGED"],
        "sequence",
        f"{RUNS}_id_seq",
        "different",
        "expected logged",
        f"ALTER SEQUENCE {RUNS}_id_seq SET LOGGED",
        None,
    ),
    "sequence options": (
        [f"ALTER SEQUENCE {RUNS}_id_seq INCREMENT BY 2 CACHE 20"],
        "sequence",
        f"{RUNS}_id_seq",
        "different",
        "has INCREMENT BY 2, expected 1; has CACHE 20, expected 1",
        f"ALTER SEQUENCE {RUNS}_id_seq INCREMENT BY 1 CACHE 1",
        None,
    ),
    "sequence no longer owned": (
        [f"ALTER SEQUENCE {JOBS}_id_seq OWNED BY NONE"],
        "sequence",
        f"{JOBS}_id_seq",
        "different",
        f"is no longer owned by {JOBS}.id",
        f"ALTER SEQUENCE {JOBS}_id_seq OWNED BY {JOBS}.id",
        None,
    ),
    "foreign key triggers disabled": (
        [f"ALTER TABLE {JOBS} DISABLE TRIGGER ALL"],
        "constraint",
        "outbound_call_jobs_run_id_fkey",
        "disabled",
        "expected its triggers ENABLE",
        f"ALTER TABLE {JOBS} ENABLE TRIGGER ALL",
        None,
    ),
    # Their triggers fire only under session_replication_role = replica: the dialer's writes go unchecked.
    "foreign key triggers ENABLE REPLICA": (
        [fk_triggers(RUNS, "ENABLE REPLICA")],
        "constraint",
        "outbound_call_jobs_run_id_fkey",
        "disabled",
        f"set ENABLE REPLICA on {RUNS}",
        f"ALTER TABLE {RUNS} ENABLE TRIGGER ALL",
        None,
    ),
    "foreign key triggers ENABLE ALWAYS": (
        [fk_triggers(JOBS, "ENABLE ALWAYS")],
        "constraint",
        "outbound_call_jobs_lead_id_fkey",
        "different",
        f"set ENABLE ALWAYS on {JOBS}",
        f"ALTER TABLE {JOBS} ENABLE TRIGGER ALL",
        None,
    ),
    "table in another schema": (
        ["CREATE SCHEMA aux", f"ALTER TABLE {JOBS} SET SCHEMA aux"],
        "table",
        JOBS,
        "elsewhere",
        "missing from schema public, where our other tables are; found in schema aux",
        f"ALTER TABLE aux.{JOBS} SET SCHEMA public",
        "public,aux",
    ),
}


@pytest.mark.parametrize("case", FIXES)
def test_each_fix_is_sql_that_clears_the_drift(db_at_47a: URL, case: str) -> None:
    statements, kind, name, verdict, expected, fix, search_path = FIXES[case]
    url = db_at_47a if search_path is None else db_at_47a.update_query_dict({"options": f"-csearch_path={search_path}"})
    inject(db_at_47a, *statements)

    code, report = check(plain(url))
    assert code == 1 and report["status"] == "drift"
    found = [o for o in drifted(report) if (o["kind"], o["name"]) == (kind, name)]
    assert found, drifted(report)
    assert found[0]["verdict"] == verdict
    detail = found[0]["detail"]
    assert expected in detail and fix in detail, detail

    inject(db_at_47a, fix)  # exactly as printed
    code, report = check(plain(url))
    assert (code, drifted(report)) == (0, []), detail


def test_foreign_key_triggers_enable_replica_let_orphans_in(db_at_47a: URL) -> None:
    """What the ENABLE REPLICA line warns of: an ordinary session's orphan job is not refused."""
    inject(db_at_47a, fk_triggers(JOBS, "ENABLE REPLICA"))
    inject(db_at_47a, f"INSERT INTO {JOBS} (run_id, lead_id) VALUES (999, 999)")  # no such run, no such lead
    code, report = check(plain(db_at_47a))
    assert code == 1
    assert {(o["name"], o["verdict"]) for o in drifted(report)} == {
        ("outbound_call_jobs_run_id_fkey", "disabled"),
        ("outbound_call_jobs_lead_id_fkey", "disabled"),
        ("outbound_call_jobs_call_log_id_fkey", "disabled"),
    }
