"""The models against a real database at head: defaults, nullability, foreign keys.

What holds for every table and column is taken from head's expected-schema file; what a test says of
a particular column (status 'running', concurrency 3) is about the tables as 47a left them."""

from __future__ import annotations

import importlib.util
import re
import sys
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy.orm
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError, SADeprecationWarning
from sqlalchemy.orm import Session

import outbound_schema
from outbound_schema import Base, OutboundCallJob, OutboundCallRun, metadata
from outbound_schema.catalog import Snapshot, snapshot
from outbound_schema.expected import SNAPSHOT_COMMAND, render
from tests.helpers import HEAD, expected_schema, expected_text, our_tables

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


def _jobs_column_to_unmap() -> tuple[str, str, str]:
    """A nullable column of the jobs at head without a default, and its line in models.py: (name, its
    Python type, the mapped_column arguments)."""
    source = MODELS.read_text()
    for column in HEAD_SCHEMA.tables["outbound_call_jobs"].columns:
        line = re.search(rf"(?m)^    {column.name}: Mapped\[(.+)\] = mapped_column\((.*)\)$", source)
        if column.nullable and column.default is None and line is not None:
            return column.name, line.group(1), line.group(2)
    raise AssertionError("no nullable column of outbound_call_jobs without a default is mapped on one line")


MODELS = Path(outbound_schema.__file__).parent / "models.py"


#: How a release stops mapping a column: exclude_properties on SQLAlchemy 2.0 and 2.1 (2.1 deprecates it), and
#: 2.1's unmapped_column where the installed SQLAlchemy has it (CI runs both: the lowest versions and the newest).
UNMAPPING_FORMS = ["exclude_properties"] + (["unmapped_column"] if hasattr(sqlalchemy.orm, "unmapped_column") else [])


@pytest.mark.parametrize("form", UNMAPPING_FORMS)
def test_models_may_stop_mapping_a_column_the_table_keeps(
    host_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """Expand/contract without a revision (docs/changing-the-schema.md): the release after the one that
    stopped using a column no longer maps it, while the table keeps it until a later revision drops it.
    create_all still builds head's file, column in its place, and the ORM writes rows without it."""
    name, python_type, arguments = _jobs_column_to_unmap()
    source = MODELS.read_text()
    mapped = f"    {name}: Mapped[{python_type}] = mapped_column({arguments})\n"
    if form == "exclude_properties":  # SQLAlchemy 2.0 and 2.1 (2.1 deprecates it for unmapped_column)
        source = source.replace(
            '    __tablename__ = "outbound_call_jobs"\n',
            f'    __tablename__ = "outbound_call_jobs"\n    __mapper_args__ = {{"exclude_properties": ["{name}"]}}\n',
        )
    else:  # SQLAlchemy 2.1
        source = source.replace(mapped, f"    {name}: Unmapped[{python_type}] = unmapped_column({arguments})\n")
        source = source.replace("from sqlalchemy.orm import ", "from sqlalchemy.orm import Unmapped, unmapped_column, ")
    assert source != MODELS.read_text(), f"models.py's {name} was not changed"
    path = tmp_path / "models_without_the_column.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("models_without_the_column", path)
    assert spec is not None and spec.loader is not None
    models = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, models)  # the annotations are resolved in its namespace
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SADeprecationWarning)  # 2.1's note on exclude_properties
        spec.loader.exec_module(models)

    assert name in models.metadata.tables["outbound_call_jobs"].c
    assert name not in inspect(models.OutboundCallJob).attrs
    with host_engine.begin() as conn:
        models.metadata.create_all(conn)
        assert render(snapshot(conn, our_tables()), HEAD) == expected_text(HEAD)
    seed_host_rows(host_engine)
    with Session(host_engine) as session:
        run = models.OutboundCallRun(business_id=1)
        session.add(run)
        session.flush()
        job = models.OutboundCallJob(run_id=run.id, lead_id=1)
        session.add(job)
        session.commit()
        assert session.scalar(text(f"SELECT {name} FROM outbound_call_jobs WHERE id = :id"), {"id": job.id}) is None


def models_against_heads_file(built: Snapshot, head: Snapshot) -> list[str]:
    """What the models' ``create_all`` built that head's file does not hold, or the reverse: one line per
    object, naming it and the fix."""
    where = f"head's file (alembic/schema/{HEAD}.sql)"
    regenerate = f"then `{SNAPSHOT_COMMAND}`"
    found: list[str] = []

    def compare(kind: str, name: str, file_has: str | None, models_build: str | None, *, unmap: str) -> None:
        if file_has == models_build:
            return
        if models_build is None:
            found.append(f"{kind} {name}: in {where} but not in the models: {unmap}")
        elif file_has is None:
            found.append(
                f"{kind} {name}: in the models but not in {where}: write a revision that adds it "
                f"(alembic revision --autogenerate), {regenerate}; or take it out of the models"
            )
        else:
            found.append(
                f"{kind} {name}: {where} has {file_has}, the models build {models_build}: change the model "
                f"to match, or write a revision that changes it, {regenerate}"
            )

    for table in sorted(head.tables.keys() | built.tables.keys()):
        want, have = head.tables.get(table), built.tables.get(table)
        compare(
            "table",
            table,
            None if want is None else "it",
            None if have is None else "it",
            unmap="add its model, or write a revision that drops it",
        )
        if want is None or have is None:
            continue
        for column in [*want.columns, *(c for c in have.columns if want.column(c.name) is None)]:
            file_col, model_col = want.column(column.name), have.column(column.name)
            compare(
                "column",
                f"{table}.{column.name}",
                None if file_col is None else file_col.describe(),
                None if model_col is None else model_col.describe(),
                unmap="map it, or keep it on the Table and exclude it from the mapper with "
                "exclude_properties (docs/changing-the-schema.md), or write a revision that drops it",
            )
        if not found and [c.name for c in want.columns] != [c.name for c in have.columns]:
            found.append(
                f"table {table}: {where} orders its columns {', '.join(c.name for c in want.columns)}; the models "
                f"{', '.join(c.name for c in have.columns)}: declare them in the file's order (a column added by "
                "a revision goes last)"
            )
        if want.settings() != have.settings():
            found.append(f"table {table}: {where} has {want.settings()}, the models build {have.settings()}")
    for kind, objects in (("constraint", "constraints"), ("index", "indexes"), ("sequence", "sequences")):
        # A constraint's own index is the constraint's (the file lists it as the constraint).
        want_objects, have_objects = (
            {n: o for n, o in getattr(snap, objects).items() if getattr(o, "constraint", None) is None}
            for snap in (head, built)
        )
        for name in sorted(want_objects.keys() | have_objects.keys()):
            want_obj, have_obj = want_objects.get(name), have_objects.get(name)
            compare(
                kind,
                name,
                None if want_obj is None else want_obj.describe(),
                None if have_obj is None else have_obj.describe(),
                unmap="declare it in the model's __table_args__, or write a revision that drops it",
            )
    return found


def test_the_models_build_heads_file(host_engine: Engine) -> None:
    """The models alone, through create_all, give head's catalog: names, order, defaults. A difference
    is named object by object, with what to do about it."""
    with host_engine.begin() as conn:
        metadata.create_all(conn)
        built = snapshot(conn, our_tables())
    mismatches = models_against_heads_file(built, expected_schema())
    assert not mismatches, "The models' create_all differs from head's file:\n" + "\n".join(mismatches)
    assert render(built, HEAD) == expected_text(HEAD)


def test_a_mismatch_between_the_models_and_heads_file_names_the_object_and_the_fix() -> None:
    head = expected_schema()
    table = next(iter(head.tables.values()))
    gone = table.columns[-1]
    built = replace(head, tables={**head.tables, table.name: replace(table, columns=table.columns[:-1])})
    assert models_against_heads_file(built, head) == [
        f"column {table.name}.{gone.name}: in head's file (alembic/schema/{HEAD}.sql) but not in the models: map "
        "it, or keep it on the Table and exclude it from the mapper with exclude_properties "
        "(docs/changing-the-schema.md), or write a revision that drops it"
    ]
    assert models_against_heads_file(head, head) == []
