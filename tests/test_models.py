"""The models against a real database at head: defaults, nullability, foreign keys.

What holds for every table and column is taken from head's expected-schema file; what a test says of
a particular column (status 'running', concurrency 3) is about the tables as 47a left them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import outbound_schema
from outbound_schema import Base, OutboundCallJob, OutboundCallRun, metadata
from tests.helpers import expected_schema

HEAD_SCHEMA = expected_schema()


def seed_host_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ("business", "leads", "call_log", "outbound_lead_lists"):
            conn.execute(text(f"INSERT INTO {table} (id) VALUES (1)"))


def test_public_api() -> None:
    assert outbound_schema.metadata is Base.metadata is metadata
    assert set(metadata.tables) == set(HEAD_SCHEMA.tables)


def test_no_default_is_computed_in_python() -> None:
    for table in metadata.tables.values():
        for column in table.columns:
            assert column.default is None, f"{table.name}.{column.name} has a Python-side default"


def test_nullability_follows_heads_file() -> None:
    not_null = {f"{t.name}.{c.name}" for t in metadata.tables.values() for c in t.columns if not c.nullable}
    assert not_null == {f"{t.name}.{c.name}" for t in HEAD_SCHEMA.tables.values() for c in t.columns if not c.nullable}
    assert {"outbound_call_runs.business_id", "outbound_call_jobs.run_id"} <= not_null  # production's, since 40a


def _clock(default: str | None) -> bool:
    """Whether a default is read from the clock: rows written a moment apart differ there."""
    return default is not None and re.search(r"now\(\)|CURRENT_|timestamp\(\)", default) is not None


def test_orm_and_raw_sql_rows_get_the_same_database_defaults(head_engine: Engine) -> None:
    seed_host_rows(head_engine)
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5)
    with Session(head_engine) as session:
        orm_run = OutboundCallRun(business_id=1)
        session.add(orm_run)
        session.flush()
        orm_job = OutboundCallJob(run_id=orm_run.id, lead_id=1)
        session.add(orm_job)
        session.commit()
        run_id, job_id = orm_run.id, orm_job.id
    with head_engine.begin() as conn:
        raw_run = conn.scalar(text("INSERT INTO outbound_call_runs (business_id) VALUES (1) RETURNING id"))
        raw_job = conn.scalar(
            text("INSERT INTO outbound_call_jobs (run_id, lead_id) VALUES (:r, 1) RETURNING id"), {"r": raw_run}
        )
    after = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=5)

    # Read back as stored (a column the models leave unmapped too), the row the ORM wrote and the raw one.
    written = {"outbound_call_runs": (run_id, raw_run), "outbound_call_jobs": (job_id, raw_job)}
    given = {"outbound_call_runs": {"id", "business_id"}, "outbound_call_jobs": {"id", "run_id", "lead_id"}}
    with head_engine.connect() as conn:
        for table, ids in written.items():
            orm_row, raw_row = (
                conn.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": i}).mappings().one() for i in ids
            )
            columns = [c for c in HEAD_SCHEMA.tables[table].columns if c.name not in given[table]]
            assert columns
            for column in columns:
                orm_value, raw_value = orm_row[column.name], raw_row[column.name]
                assert orm_value == raw_value or _clock(column.default), column
                if column.default is None:
                    assert orm_value is None, column
                elif _clock(column.default):
                    # Stamped by the database, in UTC whatever the session's time zone (revision 47a).
                    assert all(before <= value <= after for value in (orm_value, raw_value)), column
                else:
                    assert orm_value == conn.scalar(text(f"SELECT {column.default}")), column


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "UTC"])
def test_default_timestamps_are_utc_in_any_session_time_zone(head_engine: Engine, zone: str) -> None:
    seed_host_rows(head_engine)
    with Session(head_engine) as session:
        session.execute(text(f"SET TIME ZONE '{zone}'"))
        run = OutboundCallRun(business_id=1)
        session.add(run)
        session.flush()
        raw = session.execute(
            text("INSERT INTO outbound_call_jobs (run_id, lead_id) VALUES (:r, 1) RETURNING created_at"),
            {"r": run.id},
        ).scalar_one()
        utc_now = datetime.now(UTC).replace(tzinfo=None)
        for stamp in (run.created_at, run.updated_at, raw):
            assert stamp is not None and abs(stamp - utc_now) < timedelta(seconds=30), (zone, stamp, utc_now)
        session.rollback()


def test_server_defaults_are_loaded_on_flush(head_engine: Engine) -> None:
    seed_host_rows(head_engine)
    with Session(head_engine) as session:
        run = OutboundCallRun(business_id=1)
        session.add(run)
        session.flush()
        # Fetched with the INSERT's RETURNING: no extra round trip, no stale None.
        assert not {"status", "concurrency", "created_at", "updated_at"} & inspect(run).unloaded
        assert run.status == "running" and run.concurrency == 3


def test_explicit_values_round_trip(head_engine: Engine) -> None:
    seed_host_rows(head_engine)
    stamp = datetime(2026, 1, 2, 3, 4, 5)
    with Session(head_engine) as session:
        run = OutboundCallRun(business_id=1, outbound_list_id=1, concurrency=7, status="paused")
        session.add(run)
        session.flush()
        job = OutboundCallJob(
            run_id=run.id,
            lead_id=1,
            call_log_id=1,
            twilio_call_sid="CA" + "0" * 32,
            dial_started_at=stamp,
            dial_lock_token="worker-1:abc",
        )
        session.add(job)
        session.commit()
        job_id = job.id
    with Session(head_engine) as session:
        loaded = session.get_one(OutboundCallJob, job_id)
        assert (loaded.twilio_call_sid, loaded.dial_started_at, loaded.dial_lock_token) == (
            "CA" + "0" * 32,
            stamp,
            "worker-1:abc",
        )


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (OutboundCallRun, {"business_id": 999}),
        (OutboundCallRun, {"business_id": 1, "outbound_list_id": 999}),
        (OutboundCallJob, {"run_id": 999, "lead_id": 1}),
        (OutboundCallJob, {"run_id": None, "lead_id": 999}),
        (OutboundCallJob, {"run_id": None, "lead_id": 1, "call_log_id": 999}),
    ],
)
def test_foreign_keys_hold(head_engine: Engine, model: type[Base], values: dict[str, int | None]) -> None:
    seed_host_rows(head_engine)
    with Session(head_engine) as session:
        if values.get("run_id", 0) is None:
            run = OutboundCallRun(business_id=1)
            session.add(run)
            session.flush()
            values = {**values, "run_id": run.id}
        session.add(model(**values))
        with pytest.raises(IntegrityError, match="violates foreign key constraint"):
            session.flush()


def test_not_null_columns_are_enforced(head_engine: Engine) -> None:
    with Session(head_engine) as session:
        session.add(OutboundCallRun())
        with pytest.raises(IntegrityError, match="not-null"):
            session.flush()
