"""A service's code using the models, checked with mypy --strict by tests/test_consumers.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from outbound_schema import OutboundCallJob, OutboundCallRun, is_at_head


def start_run(session: Session, business_id: int, list_id: int | None) -> OutboundCallRun:
    run = OutboundCallRun(business_id=business_id, outbound_list_id=list_id, concurrency=5)
    session.add(run)
    session.flush()
    return run


def stuck_jobs(session: Session, minutes: int = 10) -> list[OutboundCallJob]:
    cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=minutes)
    query = select(OutboundCallJob).where(OutboundCallJob.status == "dialing", OutboundCallJob.dial_started_at < cutoff)
    return list(session.scalars(query))


def run_id_of(job: OutboundCallJob) -> int:
    return job.run_id  # NOT NULL column: a plain int


def lock_token_of(job: OutboundCallJob) -> str | None:
    return job.dial_lock_token  # nullable column: Optional


def ready(engine: Engine) -> bool:
    return is_at_head(engine)
