"""SQLAlchemy 2.x models of the two tables, matching production exactly.

Every default lives in the database (``server_default``), so rows written by
the ORM, by raw SQL and by other services get the same values. Timestamps are
``TIMESTAMP WITHOUT TIME ZONE`` holding UTC (see docs/operations.md, "Time zone"). Names are the
ones PostgreSQL gave production: ``<table>_pkey``, ``<table>_<column>_fkey``,
``<table>_id_seq`` and the legacy script's ``idx_*`` indexes.

The referenced tables ``business``, ``leads``, ``call_log`` and
``outbound_lead_lists`` belong to the host application. Our foreign keys point
at stand-ins for them kept in :data:`host_metadata`, a MetaData of its own: the
ORM can resolve and order them, while :data:`metadata` (and so ``create_all``,
``drop_all`` and every comparison) holds only our two tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from outbound_schema.config import HOST_TABLES

# Server-side defaults, written as PostgreSQL stores and prints them.
_NOW = text("timezone('utc', now())")  # UTC whatever the session's TimeZone (revision 47a)
_ZERO = text("0")


#: What ``outbound_schema`` exports from here: a new model is exported by adding its name.
__all__ = ["Base", "OutboundCallJob", "OutboundCallRun", "metadata"]

#: The host application's tables, reduced to the key our foreign keys reference.
host_metadata = MetaData()
business, leads, call_log, outbound_lead_lists = (
    Table(name, host_metadata, Column("id", Integer, primary_key=True)) for name in HOST_TABLES
)


class Base(DeclarativeBase):
    """Declarative base whose :attr:`metadata` holds only this library's tables."""

    metadata = MetaData()


metadata = Base.metadata


class OutboundCallRun(Base):
    """One dialing campaign run (legacy migration 40a)."""

    __tablename__ = "outbound_call_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey(business.c.id, name="outbound_call_runs_business_id_fkey"))
    outbound_list_id: Mapped[int | None] = mapped_column(
        ForeignKey(outbound_lead_lists.c.id, name="outbound_call_runs_outbound_list_id_fkey")
    )
    concurrency: Mapped[int | None] = mapped_column(server_default=text("3"))
    total_leads: Mapped[int | None] = mapped_column(server_default=_ZERO)
    queued_count: Mapped[int | None] = mapped_column(server_default=_ZERO)
    in_progress_count: Mapped[int | None] = mapped_column(server_default=_ZERO)
    completed_count: Mapped[int | None] = mapped_column(server_default=_ZERO)
    failed_count: Mapped[int | None] = mapped_column(server_default=_ZERO)
    status: Mapped[str | None] = mapped_column(String(32), server_default=text("'running'"))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(DateTime, server_default=_NOW)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, server_default=_NOW)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        PrimaryKeyConstraint("id", name="outbound_call_runs_pkey"),
        Index("idx_outbound_call_runs_business_id", "business_id"),
        Index("idx_outbound_call_runs_status", "status"),
        Index("idx_outbound_call_runs_created_at", "created_at"),
    )

    def __repr__(self) -> str:
        return f"OutboundCallRun(id={self.id!r}, business_id={self.business_id!r}, status={self.status!r})"


class OutboundCallJob(Base):
    """One lead to dial within a run (legacy migrations 40b and 46a-46d)."""

    __tablename__ = "outbound_call_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("outbound_call_runs.id", name="outbound_call_jobs_run_id_fkey"))
    lead_id: Mapped[int] = mapped_column(ForeignKey(leads.c.id, name="outbound_call_jobs_lead_id_fkey"))
    call_log_id: Mapped[int | None] = mapped_column(
        ForeignKey(call_log.c.id, name="outbound_call_jobs_call_log_id_fkey")
    )
    status: Mapped[str | None] = mapped_column(String(32), server_default=text("'queued'"))
    error_message: Mapped[str | None] = mapped_column(Text)
    call_sid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime | None] = mapped_column(DateTime, server_default=_NOW)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Added by 46a-46c, so they come last in the table, as in production.
    twilio_call_sid: Mapped[str | None] = mapped_column(String(64))
    dial_started_at: Mapped[datetime | None] = mapped_column(DateTime)
    dial_lock_token: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        PrimaryKeyConstraint("id", name="outbound_call_jobs_pkey"),
        Index("idx_outbound_call_jobs_run_id", "run_id"),
        Index("idx_outbound_call_jobs_lead_id", "lead_id"),
        Index("idx_outbound_call_jobs_status", "status"),
        Index("idx_outbound_call_jobs_call_sid", "call_sid"),
        Index("idx_outbound_call_jobs_twilio_sid", "twilio_call_sid"),
        Index("idx_outbound_call_jobs_lock_token", "dial_lock_token"),
        Index("idx_outbound_call_jobs_status_twilio_sid", "status", "twilio_call_sid"),
    )

    def __repr__(self) -> str:
        return f"OutboundCallJob(id={self.id!r}, run_id={self.run_id!r}, status={self.status!r})"
