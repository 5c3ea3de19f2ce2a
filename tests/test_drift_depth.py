"""The drift check's depth: every class of change that alters how our tables behave, named in words,
and no alarm for what only looks different.

Each case changes a database at head the way an operator or another tool would, then reads
``outbound-schema check --format json``: the class must come out as its own verdict on the object
changed, with a detail an operator can act on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from outbound_schema.catalog import Snapshot, snapshot
from outbound_schema.config import VERSION_TABLE
from outbound_schema.expected import parse, render
from tests.helpers import (
    HEAD,
    check_both_ways,
    cli_here,
    connected,
    copy_migrations,
    drifted,
    in_location,
    inject,
    our_tables,
    plain,
)
from tests.helpers import check_report as check

JOBS = "outbound_call_jobs"
RUNS = "outbound_call_runs"
TOUCH = "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$"


def no_drift_but_behind(code: int, report: dict[str, object]) -> bool:
    """A database at 47a matches its own revision's file: no drift but, once head is further on, the
    revision line says it is behind (exit 0 all the same)."""
    others = [o for o in drifted(report) if o["kind"] != "revision"]
    assert not others, others
    return code == 0 and report["status"] in ("ok", "behind")


CLASSES: dict[str, tuple[list[str], str, str, str, str]] = {
    # case: (statements, kind, name, verdict, words the detail must hold)
    "unlogged table": (
        [f"ALTER TABLE {JOBS} SET UNLOGGED"],
        "table",
        JOBS,
        "different",
        "is UNLOGGED: PostgreSQL empties it after a crash",
    ),
    "row-level security": (
        [f"ALTER TABLE {RUNS} ENABLE ROW LEVEL SECURITY"],
        "table",
        RUNS,
        "different",
        "row-level security enabled",
    ),
    "row-level security forced": (
        [f"ALTER TABLE {RUNS} FORCE ROW LEVEL SECURITY"],
        "table",
        RUNS,
        "different",
        "forces row-level security on its owner",
    ),
    "policy": (
        [f"CREATE POLICY only_one ON {RUNS} FOR SELECT USING (business_id = 1)"],
        "policy",
        f"only_one on {RUNS}",
        "extra",
        "FOR SELECT TO PUBLIC USING ((business_id = 1))",
    ),
    "trigger": (
        [TOUCH, f"CREATE TRIGGER touch_jobs BEFORE UPDATE ON {JOBS} FOR EACH ROW EXECUTE FUNCTION touch()"],
        "trigger",
        f"touch_jobs on {JOBS}",
        "extra",
        f"BEFORE UPDATE ON {JOBS} FOR EACH ROW EXECUTE FUNCTION touch()",
    ),
    "constraint trigger": (
        [TOUCH, f"CREATE CONSTRAINT TRIGGER late AFTER INSERT ON {JOBS} FOR EACH ROW EXECUTE FUNCTION touch()"],
        "trigger",
        f"late on {JOBS}",
        "extra",
        "CONSTRAINT TRIGGER late AFTER INSERT",
    ),
    "rule": (
        [f"CREATE RULE keep_jobs AS ON DELETE TO {JOBS} DO INSTEAD NOTHING"],
        "rule",
        f"keep_jobs on {JOBS}",
        "extra",
        "DO INSTEAD NOTHING",
    ),
    "foreign key triggers disabled": (
        [f"ALTER TABLE {RUNS} DISABLE TRIGGER ALL"],
        "constraint",
        "outbound_call_jobs_run_id_fkey",
        "disabled",
        "is not enforced: the triggers that enforce it are disabled",
    ),
    "column collation": (
        [f'ALTER TABLE {JOBS} ALTER COLUMN status TYPE varchar(32) COLLATE "C"'],
        "column",
        f"{JOBS}.status",
        "different",
        'has collation "C", expected the default',
    ),
    "storage parameters": (
        [f"ALTER TABLE {JOBS} SET (fillfactor = 70, autovacuum_enabled = false)"],
        "table",
        JOBS,
        "different",
        "has storage parameters (autovacuum_enabled=false, fillfactor=70), expected none",
    ),
    "column storage": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN error_message SET STORAGE EXTERNAL"],
        "column",
        f"{JOBS}.error_message",
        "different",
        f"has SET STORAGE EXTERNAL, expected STORAGE EXTENDED (its type's) (ALTER TABLE {JOBS} ALTER COLUMN "
        "error_message SET STORAGE EXTENDED)",
    ),
    "column statistics": (
        [f"ALTER TABLE {JOBS} ALTER COLUMN status SET STATISTICS 1000"],
        "column",
        f"{JOBS}.status",
        "different",
        f"has SET STATISTICS 1000, expected STATISTICS -1 (the default) (ALTER TABLE {JOBS} ALTER COLUMN status "
        "SET STATISTICS -1)",
    ),
    "replica identity": (
        [f"ALTER TABLE {JOBS} REPLICA IDENTITY FULL"],
        "table",
        JOBS,
        "different",
        "has REPLICA IDENTITY FULL, expected DEFAULT",
    ),
    "inherited by another table": (
        [f"CREATE TABLE jobs_archive () INHERITS ({JOBS})"],
        "table",
        JOBS,
        "different",
        "is inherited by (jobs_archive), expected none: queries on it also read the rows of its children",
    ),
    "identity column": (
        [
            f"ALTER TABLE {RUNS} ALTER COLUMN concurrency SET NOT NULL",
            f"ALTER TABLE {RUNS} ALTER COLUMN concurrency DROP DEFAULT",
            f"ALTER TABLE {RUNS} ALTER COLUMN concurrency ADD GENERATED BY DEFAULT AS IDENTITY",
        ],
        "column",
        f"{RUNS}.concurrency",
        "different",
        "is an identity column GENERATED BY DEFAULT, expected a plain column with DEFAULT 3",
    ),
    "unique constraint": (
        [f"ALTER TABLE {JOBS} ADD CONSTRAINT jobs_call_sid_key UNIQUE (call_sid)"],
        "constraint",
        "jobs_call_sid_key",
        "extra",
        "UNIQUE (call_sid)",
    ),
    "exclusion constraint": (
        [f"ALTER TABLE {JOBS} ADD CONSTRAINT one_lock EXCLUDE USING btree (dial_lock_token WITH =)"],
        "constraint",
        "one_lock",
        "extra",
        "EXCLUDE USING btree (dial_lock_token WITH =)",
    ),
    "check constraint changed": (
        [
            f"ALTER TABLE {RUNS} DROP CONSTRAINT outbound_call_runs_business_id_fkey",
            f"ALTER TABLE {RUNS} ADD CONSTRAINT outbound_call_runs_business_id_fkey CHECK (business_id > 0)",
        ],
        "constraint",
        "outbound_call_runs_business_id_fkey",
        "different",
        "is CHECK ((business_id > 0)) on outbound_call_runs, expected FOREIGN KEY",
    ),
    "foreign key action": (
        [
            f"ALTER TABLE {JOBS} DROP CONSTRAINT outbound_call_jobs_run_id_fkey",
            f"ALTER TABLE {JOBS} ADD CONSTRAINT outbound_call_jobs_run_id_fkey FOREIGN KEY (run_id) "
            f"REFERENCES {RUNS}(id) ON DELETE CASCADE",
        ],
        "constraint",
        "outbound_call_jobs_run_id_fkey",
        "different",
        "is ON DELETE CASCADE, expected ON DELETE NO ACTION",
    ),
    "deferrable foreign key": (
        [f"ALTER TABLE {JOBS} ALTER CONSTRAINT outbound_call_jobs_run_id_fkey DEFERRABLE INITIALLY DEFERRED"],
        "constraint",
        "outbound_call_jobs_run_id_fkey",
        "different",
        "is DEFERRABLE INITIALLY DEFERRED, expected NOT DEFERRABLE",
    ),
    "NOT VALID foreign key": (
        [
            f"ALTER TABLE {JOBS} DROP CONSTRAINT outbound_call_jobs_lead_id_fkey",
            f"ALTER TABLE {JOBS} ADD CONSTRAINT outbound_call_jobs_lead_id_fkey FOREIGN KEY (lead_id) "
            "REFERENCES leads(id) NOT VALID",
        ],
        "constraint",
        "outbound_call_jobs_lead_id_fkey",
        "invalid",
        f"is NOT VALID: new rows are checked but the rows that existed when it was added never were "
        f"(ALTER TABLE {JOBS} VALIDATE CONSTRAINT outbound_call_jobs_lead_id_fkey",
    ),
    "sequence no longer owned": (
        [f"ALTER SEQUENCE {JOBS}_id_seq OWNED BY NONE"],
        "sequence",
        f"{JOBS}_id_seq",
        "different",
        f"is no longer owned by {JOBS}.id: it still exists and feeds its default",
    ),
    "sequence options": (
        [f"ALTER SEQUENCE {RUNS}_id_seq INCREMENT BY 2 CACHE 20"],
        "sequence",
        f"{RUNS}_id_seq",
        "different",
        "has INCREMENT BY 2, expected 1; has CACHE 20, expected 1",
    ),
    "sequence cycles": (
        [f"ALTER SEQUENCE {RUNS}_id_seq CYCLE"],
        "sequence",
        f"{RUNS}_id_seq",
        "different",
        "cycles: past its maximum it starts again",
    ),
    "sequence behind the largest id": (
        [
            "INSERT INTO business (id) VALUES (1)",
            f"INSERT INTO {RUNS} (business_id) VALUES (1), (1)",
            f"INSERT INTO {RUNS} (id, business_id) VALUES (50, 1)",
        ],
        "position",
        f"{RUNS}_id_seq",
        "behind",
        f"it would hand out 3, but {RUNS}.id already holds values up to 50, so the next insert that takes the "
        f"default fails on the unique key. Move it past them: SELECT setval('{RUNS}_id_seq', "
        f"(SELECT max(id) FROM {RUNS}))",
    ),
    "index definition": (
        [
            "DROP INDEX idx_outbound_call_jobs_status",
            f"CREATE INDEX idx_outbound_call_jobs_status ON {JOBS} (status) WHERE status = 'queued'",
        ],
        "index",
        "idx_outbound_call_jobs_status",
        "different",
        "WHERE ((status)::text = 'queued'::text), expected btree",
    ),
    "index invalid": (
        ["UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx_outbound_call_jobs_lead_id'::regclass"],
        "index",
        "idx_outbound_call_jobs_lead_id",
        "invalid",
        "Drop it (DROP INDEX CONCURRENTLY idx_outbound_call_jobs_lead_id) and build it again "
        f"(CREATE INDEX CONCURRENTLY idx_outbound_call_jobs_lead_id ON {JOBS} USING btree (lead_id))",
    ),
}


@pytest.mark.parametrize("case", CLASSES)
def test_each_class_is_reported_by_name_in_words(db_at_47a: URL, case: str) -> None:
    statements, kind, name, verdict, words = CLASSES[case]
    inject(db_at_47a, *statements)

    code, report, text_lines = check_both_ways(db_at_47a)

    assert code == 1 and report["status"] == "drift"
    found = [o for o in drifted(report) if (o["kind"], o["name"]) == (kind, name)]
    assert found, drifted(report)
    assert found[0]["verdict"] == verdict
    assert words in found[0]["detail"], found[0]["detail"]
    assert f"❌ {kind} {name}: {found[0]['detail']}" in text_lines


def test_a_sequence_after_the_largest_id_is_fine(db_at_47a: URL) -> None:
    inject(db_at_47a, "INSERT INTO business (id) VALUES (1)", f"INSERT INTO {RUNS} (business_id) VALUES (1), (1)")
    code, report = check(db_at_47a)
    assert no_drift_but_behind(code, report)
    positions = {o["name"]: o["found"] for o in report["objects"] if o["kind"] == "position"}  # type: ignore[union-attr]
    assert positions == {
        f"{JOBS}_id_seq": f"next value 1; {JOBS}.id is empty",
        f"{RUNS}_id_seq": f"next value 3; {RUNS}.id holds values up to 2",
    }


EQUIVALENT = {
    "now() AT TIME ZONE, as PostgreSQL 16+ prints it": (
        f"ALTER TABLE {RUNS} ALTER COLUMN created_at SET DEFAULT (now() AT TIME ZONE 'UTC')"
    ),
    "CURRENT_TIMESTAMP in UTC": (
        f"ALTER TABLE {RUNS} ALTER COLUMN updated_at SET DEFAULT timezone('UTC', CURRENT_TIMESTAMP)"
    ),
    "transaction_timestamp() in UTC": (
        f"ALTER TABLE {JOBS} ALTER COLUMN created_at SET DEFAULT timezone('utc', transaction_timestamp())"
    ),
    "a text literal on a varchar column": f"ALTER TABLE {JOBS} ALTER COLUMN status SET DEFAULT 'queued'::text",
    "a quoted number": f"ALTER TABLE {RUNS} ALTER COLUMN concurrency SET DEFAULT '3'",
    "a numeric literal": f"ALTER TABLE {RUNS} ALTER COLUMN total_leads SET DEFAULT 0.0",
}


def test_equivalent_spellings_are_no_drift(db_at_47a: URL) -> None:
    inject(db_at_47a, *EQUIVALENT.values())
    code, report = check(db_at_47a)
    assert no_drift_but_behind(code, report)


def test_now_and_current_timestamp_are_one_default(legacy_head_db: URL) -> None:
    """At 46d the defaults are CURRENT_TIMESTAMP, which now() and transaction_timestamp() equal."""
    inject(
        legacy_head_db,
        f"ALTER TABLE {RUNS} ALTER COLUMN created_at SET DEFAULT now()",
        f"ALTER TABLE {RUNS} ALTER COLUMN updated_at SET DEFAULT transaction_timestamp()",
        f"ALTER TABLE {JOBS} ALTER COLUMN created_at SET DEFAULT now()::timestamp without time zone",
    )
    code, report = check(legacy_head_db)
    assert [o for o in drifted(report) if o["kind"] != "revision"] == []
    assert (code, report["status"]) == (0, "behind")  # behind head, and only that


def test_a_different_default_is_still_drift(db_at_47a: URL) -> None:
    inject(
        db_at_47a,
        f"ALTER TABLE {RUNS} ALTER COLUMN created_at SET DEFAULT statement_timestamp()",
        f"ALTER TABLE {JOBS} ALTER COLUMN status SET DEFAULT 'queued '::text",
        f"ALTER TABLE {RUNS} ALTER COLUMN total_leads SET DEFAULT 0.5",
    )
    _, report = check(db_at_47a)
    assert {o["name"] for o in drifted(report) if o["kind"] != "revision"} == {
        f"{RUNS}.created_at",
        f"{JOBS}.status",
        f"{RUNS}.total_leads",
    }


def test_comments_grants_owners_and_other_schemas_are_no_drift(head_db: URL) -> None:
    inject(
        head_db,
        "DROP ROLE IF EXISTS dialer_app",
        "CREATE ROLE dialer_app",
        f"COMMENT ON TABLE {JOBS} IS 'one call per lead'",
        f"COMMENT ON COLUMN {RUNS}.status IS 'running, done'",
        "COMMENT ON INDEX idx_outbound_call_jobs_status IS 'hot'",
        f"GRANT SELECT, INSERT ON {JOBS} TO dialer_app",
        f"GRANT USAGE ON SEQUENCE {JOBS}_id_seq TO dialer_app",
        f"ALTER TABLE {RUNS} OWNER TO dialer_app",
        # Off the search path: another schema's tables of our names are not ours, and never read.
        "CREATE SCHEMA archive",
        f"CREATE UNLOGGED TABLE archive.{JOBS} (id bigint)",
        f"CREATE TRIGGER archive_touch BEFORE UPDATE ON archive.{JOBS} FOR EACH ROW EXECUTE FUNCTION "
        "suppress_redundant_updates_trigger()",
    )
    try:
        code, report = check(head_db)
        assert code == 0, drifted(report)
        assert "archive" not in json.dumps(report)
    finally:
        inject(head_db, f"ALTER TABLE {RUNS} OWNER TO CURRENT_USER", "DROP OWNED BY dialer_app", "DROP ROLE dialer_app")


def with_search_path(url: URL, path: str) -> str:
    return plain(url.update_query_dict({"options": f"-csearch_path={path}"}))


def test_a_shadowing_table_is_named(head_db: URL) -> None:
    inject(head_db, "CREATE SCHEMA shadow", f"CREATE TABLE shadow.{JOBS} (id integer)")
    code, report = check(with_search_path(head_db, "shadow,public"))
    assert code == 1
    shadowed = [o for o in drifted(report) if o["kind"] == "search_path"]
    assert shadowed == [
        {
            "kind": "search_path",
            "name": JOBS,
            "verdict": "shadowed",
            "expected": "public",
            "found": "shadow, public",
            "detail": f"resolves to shadow.{JOBS}, which hides public.{JOBS} further down the search_path "
            "(shadow, public): the dialer, upgrades and this check all use shadow's. Drop or rename the one that "
            "is not ours, or fix the search_path",
        }
    ]
    # Without the shadow first on the path, nothing is wrong.
    assert check(with_search_path(head_db, "public,shadow"))[0] == 1  # still two of that name on the path
    assert check(head_db)[0] == 0


def test_a_table_found_in_another_schema_is_named(db_at_47a: URL) -> None:
    inject(db_at_47a, "CREATE SCHEMA aux", f"ALTER TABLE {JOBS} SET SCHEMA aux")
    code, report = check(with_search_path(db_at_47a, "public,aux"))
    assert code == 1
    # Said as the table, none of its objects compared (none said ok): they are not where the dialer's are.
    assert [(o["kind"], o["name"], o["verdict"], o["expected"], o["found"]) for o in drifted(report)] == [
        ("table", JOBS, "elsewhere", "in schema public", "in schema aux")
    ]
    assert not [o for o in report["objects"] if JOBS in str(o["name"])[: len(JOBS)] and o["kind"] != "table"]  # type: ignore[union-attr]
    assert f"ALTER TABLE aux.{JOBS} SET SCHEMA public" in drifted(report)[0]["detail"]


def test_our_tables_in_a_schema_of_their_own(host_db: URL) -> None:
    """A database whose search_path puts our tables in schema dialer, the host's staying in public."""
    database = host_db.database
    inject(host_db, "CREATE SCHEMA dialer", f'ALTER DATABASE "{database}" SET search_path = dialer, public')

    upgraded = cli_here("upgrade", DATABASE_URL=plain(host_db))
    assert upgraded.returncode == 0, upgraded.stderr

    with connected(host_db) as conn:
        homes = dict(
            conn.execute(
                text(
                    "SELECT relname, relnamespace::regnamespace::text FROM pg_class "
                    "WHERE relname = ANY(:names) AND relkind = 'r'"
                ),
                {"names": [JOBS, RUNS, VERSION_TABLE, "business"]},
            ).all()
        )
    assert homes == {JOBS: "dialer", RUNS: "dialer", VERSION_TABLE: "dialer", "business": "public"}
    code, report = check(host_db)
    assert code == 0, drifted(report)
    paths = [o for o in report["objects"] if o["kind"] == "search_path"]  # type: ignore[union-attr]
    assert [(o["name"], o["found"]) for o in paths] == [("dialer, public", "our tables resolve to schema dialer")]


def test_check_needs_only_pg_read_all_data(head_db: URL) -> None:
    inject(
        head_db,
        "DROP ROLE IF EXISTS auditor",
        "CREATE ROLE auditor LOGIN PASSWORD 'auditor-pw' IN ROLE pg_read_all_data",
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC",
        "INSERT INTO business (id) VALUES (1)",
        f"INSERT INTO {RUNS} (id, business_id) VALUES (7, 1)",
    )
    try:
        auditor = plain(head_db.set(username="auditor", password="auditor-pw"))
        code, report = check(auditor)
        assert code == 1, report
        assert [(o["kind"], o["name"], o["verdict"]) for o in drifted(report)] == [
            ("position", f"{RUNS}_id_seq", "behind")
        ]
        inject(head_db, f"SELECT setval('{RUNS}_id_seq', 7)")
        assert check(auditor)[0] == 0
    finally:
        inject(head_db, "DROP OWNED BY auditor", "DROP ROLE auditor")


# What a future revision may create: held by the expected file, it is no drift; changed, it is.
RICH = [
    TOUCH,
    f"ALTER TABLE {JOBS} ADD COLUMN json jsonb",
    f"CREATE INDEX ix_jobs_json ON {JOBS} (json) WHERE json IS NOT NULL",
    f"ALTER TABLE {JOBS} ADD CONSTRAINT jobs_run_positive CHECK (run_id > 0) NOT VALID",
    f"ALTER TABLE {JOBS} ADD COLUMN kind text DEFAULT CASE WHEN random() > 2 THEN 'never' ELSE 'call' END",
    f"CREATE POLICY own_business ON {RUNS} USING (business_id IN (SELECT id FROM business WHERE id > 0))",
    f"CREATE RULE keep_queued AS ON DELETE TO {JOBS} WHERE OLD.status = 'queued  now' DO INSTEAD NOTHING",
    f"CREATE TRIGGER touch_status BEFORE UPDATE OF status ON {JOBS} FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION touch('a  b')",
    "CREATE SEQUENCE lead_numbers OWNED BY leads.id",
    f"ALTER TABLE {JOBS} ADD COLUMN lead_number bigint DEFAULT nextval('lead_numbers')",
    "CREATE TYPE job_channel AS ENUM ('call', 'sms''s')",
    f"ALTER TABLE {JOBS} ADD COLUMN channel job_channel DEFAULT 'call', ADD COLUMN also_via job_channel[]",
    "CREATE DOMAIN attempt_count AS smallint NOT NULL DEFAULT 0 CONSTRAINT attempt_count_range "
    "CHECK (VALUE BETWEEN 0 AND 10)",
    f"ALTER TABLE {JOBS} ADD COLUMN attempts attempt_count",
    # A check PostgreSQL prints on several lines, a label holding a backslash, an enum under a domain.
    "CREATE DOMAIN cased AS int CHECK (CASE WHEN VALUE > 0 THEN true ELSE false END)",
    "CREATE TYPE pathy AS ENUM ('C:\\new')",
    "CREATE TYPE mood AS ENUM ('calm')",
    "CREATE DOMAIN mood_d AS mood",
    f"ALTER TABLE {JOBS} ADD COLUMN cased cased, ADD COLUMN pathy pathy, ADD COLUMN mood mood_d",
    # A function body holding a form feed; a function of the same name in another schema.
    "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN /* \f */ RETURN NEW; END$$",
    f"CREATE TRIGGER stamp BEFORE INSERT ON {JOBS} FOR EACH ROW EXECUTE FUNCTION stamp()",
    "CREATE SCHEMA audit",
    "CREATE FUNCTION audit.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN OLD; END$$",
    f"CREATE TRIGGER audit_touch BEFORE DELETE ON {JOBS} FOR EACH ROW EXECUTE FUNCTION audit.touch()",
]


def expect_current_catalog(url: URL, location: Path) -> Snapshot:
    """Make ``location``'s file for head hold what ``url`` holds now, as a revision creating it would."""
    with connected(url) as conn:
        snap = snapshot(conn, our_tables())
    text_ = render(snap, HEAD)
    assert render(parse(text_), HEAD) == text_  # every definition survives the file, multi-line ones included
    (location / "schema" / f"{HEAD}.sql").write_text(text_)
    return snap


def test_objects_a_revision_creates_are_no_drift_and_their_changes_are(head_db: URL, tmp_path: Path) -> None:
    location = copy_migrations(tmp_path / "alembic")
    inject(head_db, *RICH)
    expected = expect_current_catalog(head_db, location)
    assert expected.types["job_channel"].labels == ("call", "sms's")
    assert expected.types["pathy"].labels == ("C:\\new",)
    assert set(expected.types) == {"job_channel", "attempt_count", "cased", "pathy", "mood", "mood_d"}
    assert set(expected.functions) == {"touch", "stamp", "audit.touch"}

    done = cli_here("check", "--format", "json", DATABASE_URL=plain(head_db), **in_location(location))
    assert done.returncode == 0, drifted(json.loads(done.stdout))

    inject(
        head_db,
        f"CREATE OR REPLACE RULE keep_queued AS ON DELETE TO {JOBS} WHERE OLD.status = 'queued now' DO INSTEAD NOTHING",
        f"ALTER TABLE {JOBS} VALIDATE CONSTRAINT jobs_run_positive",  # stricter than expected: still fine
        # What the trigger runs, and what the columns accept, changed without touching the tables:
        "CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$",
        "ALTER TYPE job_channel ADD VALUE 'email'",
        "ALTER DOMAIN attempt_count DROP NOT NULL",
        "ALTER TYPE mood ADD VALUE 'tense'",  # under a domain
    )
    done = cli_here("check", "--format", "json", DATABASE_URL=plain(head_db), **in_location(location))
    found = drifted(json.loads(done.stdout))
    assert [(o["kind"], o["name"], o["verdict"]) for o in found] == [
        ("rule", f"keep_queued on {JOBS}", "different"),
        ("type", "attempt_count", "different"),
        ("type", "job_channel", "different"),
        ("type", "mood", "different"),
        ("function", "touch", "different"),
    ]
    details = {o["name"]: o["detail"] for o in found}
    assert "accepts 'email', which no revision added" in details["job_channel"]
    assert "NOT NULL" in details["attempt_count"].split("expected")[1]
    assert "RETURN NULL" in details["touch"] and "RETURN NEW" in details["touch"]


def test_a_column_named_by_a_newer_keyword_reads_the_same_on_every_version(head_db: URL) -> None:
    inject(head_db, *RICH[1:3])
    with connected(head_db) as conn:
        snap = snapshot(conn, our_tables())
    # PostgreSQL 17 and later quote json, 15 and 16 do not: the catalog reads it bare on all.
    assert snap.indexes["ix_jobs_json"].using == "btree (json) WHERE (json IS NOT NULL)"


def test_an_index_named_with_using_in_it_reads_right(head_db: URL) -> None:
    inject(
        head_db,
        f'CREATE INDEX "jobs USING hash (x)" ON {JOBS} USING hash (status)',
        f"CREATE INDEX json ON {JOBS} (status)",  # a name only newer servers quote
    )
    with connected(head_db) as conn:
        indexes = snapshot(conn, our_tables()).indexes
    assert (indexes["jobs USING hash (x)"].method, indexes["jobs USING hash (x)"].using) == ("hash", "hash (status)")
    assert indexes["json"].using == "btree (status)"


def test_types_rules_policies_and_triggers_are_read_wherever_the_tables_have_some(head_db: URL) -> None:
    """The snapshot reads enums and domains, rules, policies and triggers only when the tables show some (a
    column of a type past PostgreSQL's bootstrap catalog; a table's rules, policies, triggers of its own): a
    domain PostgreSQL itself makes at initdb, past the bootstrap catalog yet short of the first user OID, is
    read all the same."""
    with connected(head_db) as conn:
        at_head = snapshot(conn, our_tables())
    assert (at_head.types, at_head.rules, at_head.policies, at_head.triggers) == ({}, {}, {}, {})
    inject(
        head_db,
        f"ALTER TABLE {JOBS} ADD COLUMN tries information_schema.cardinal_number",
        f"CREATE RULE keep_jobs AS ON DELETE TO {JOBS} DO INSTEAD NOTHING",
        f"CREATE POLICY own_runs ON {RUNS} USING (business_id > 0)",
        "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
        f"CREATE TRIGGER stamp BEFORE INSERT ON {RUNS} FOR EACH ROW EXECUTE FUNCTION stamp()",
    )
    with connected(head_db) as conn:
        snap = snapshot(conn, our_tables())
    assert list(snap.types) == ["information_schema.cardinal_number"]
    assert list(snap.rules) == [f"{JOBS}.keep_jobs"]
    assert list(snap.policies) == [f"{RUNS}.own_runs"]
    assert (list(snap.triggers), list(snap.functions)) == ([f"{RUNS}.stamp"], ["stamp"])


class DropsAfter:
    """A psycopg connection that, right after the statement reading ``catalog`` has run, drops ``relation``
    from another session: a concurrent change landing between two of the snapshot's statements."""

    def __init__(self, connection: psycopg.Connection[tuple[object, ...]], url: URL, catalog: str, relation: str):
        self.connection, self.url, self.catalog, self.relation, self.dropped = connection, url, catalog, relation, False

    def cursor(self) -> object:
        outer, cursor = self, self.connection.cursor()

        class Dropping:
            def __enter__(self) -> Dropping:
                return self

            def __exit__(self, *_exc: object) -> None:
                cursor.close()

            def execute(self, sql: str, params: object) -> None:
                cursor.execute(sql, params)
                if re.search(rf"\bFROM {outer.catalog}\b", sql) and not outer.dropped:
                    outer.dropped = True
                    with psycopg.connect(plain(outer.url.set(drivername="postgresql")), autocommit=True) as other:
                        other.execute(f"DROP {outer.relation}")

            def fetchall(self) -> list[tuple[object, ...]]:
                return cursor.fetchall()

        return Dropping()


@pytest.mark.parametrize(
    ("catalog", "relation", "gone"),
    [
        ("pg_index", "INDEX idx_outbound_call_jobs_status", "idx_outbound_call_jobs_status"),
        ("pg_depend", "TABLE outbound_call_jobs", "outbound_call_jobs_id_seq"),
    ],
)
def test_what_a_concurrent_change_drops_while_the_snapshot_is_read_is_left_out(
    db_at_47a: URL, catalog: str, relation: str, gone: str
) -> None:
    """The snapshot reads one catalog at a time: an index, or a whole table with its sequence, dropped by
    another session between two of its statements is left out, as a moment later it would be. (At 47a: the
    objects named are that revision's.)"""
    with psycopg.connect(plain(db_at_47a.set(drivername="postgresql")), autocommit=True) as conn:
        reader = DropsAfter(conn, db_at_47a, catalog, relation)
        snap = snapshot(reader, [RUNS, JOBS])  # type: ignore[arg-type]
    assert reader.dropped
    found = {*snap.indexes, *snap.sequences}
    assert gone not in found and "outbound_call_runs_pkey" in found


def test_an_unreadable_expected_file_cannot_be_checked(head_db: URL, tmp_path: Path) -> None:
    location = copy_migrations(tmp_path / "alembic")
    with (location / "schema" / f"{HEAD}.sql").open("a") as file:
        file.write("CREATE POLICY broken ON\n")
    for args in (("check", "--format", "json"), ("status",)):
        done = cli_here(*args, DATABASE_URL=plain(head_db), **in_location(location))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and "Regenerate it with `outbound-schema snapshot`" in done.stderr


def test_a_default_out_of_range_is_reported_not_a_failed_check(head_db: URL) -> None:
    inject(head_db, f"ALTER TABLE {RUNS} ALTER COLUMN concurrency TYPE bigint")
    inject(head_db, f"ALTER TABLE {RUNS} ALTER COLUMN concurrency SET DEFAULT 99999999999")
    code, report = check(head_db)
    assert code == 1
    assert [o["name"] for o in drifted(report)] == [f"{RUNS}.concurrency"]


def test_take_over_agrees_with_check_on_equivalent_defaults(db_at_47a: URL) -> None:
    inject(db_at_47a, f"DROP TABLE {VERSION_TABLE}", *EQUIVALENT.values())
    status = cli_here("status", DATABASE_URL=plain(db_at_47a))
    assert status.returncode == 0, status.stdout
    assert "CONFLICTING" not in status.stdout
    assert cli_here("upgrade", DATABASE_URL=plain(db_at_47a)).returncode == 0
    assert check(db_at_47a)[0] == 0


def test_a_descending_sequence_behind_its_column(head_db: URL) -> None:
    inject(
        head_db,
        f"ALTER SEQUENCE {RUNS}_id_seq INCREMENT BY -1 MINVALUE -1000 MAXVALUE -1 START WITH -1 RESTART",
        "INSERT INTO business (id) VALUES (1)",
        f"INSERT INTO {RUNS} (id, business_id) VALUES (-10, 1)",
    )
    _, report = check(head_db)
    behind = [o for o in drifted(report) if o["kind"] == "position"]
    assert len(behind) == 1
    assert "holds values down to -10" in behind[0]["detail"]
    assert f"(SELECT min(id) FROM {RUNS})" in behind[0]["detail"]
