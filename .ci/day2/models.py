"""Edit a copy's outbound_schema/models.py to match the day-2 revisions (additive.py, contract.py).

Usage: python .ci/day2/models.py COPY/outbound_schema/models.py KIND... (additive, contract): the edits
of those revisions. Each edit must apply exactly once.
"""

import sys
from pathlib import Path

ADDITIVE = [
    ('"OutboundCallJob", "OutboundCallRun",', '"OutboundCallAttempt", "OutboundCallJob", "OutboundCallRun",'),
    (
        "from sqlalchemy import (\n    Column,\n",
        "from sqlalchemy import (\n    CheckConstraint,\n    Column,\n",
    ),
    ("    ForeignKey,\n", "    ForeignKey,\n    Identity,\n"),
    # concurrency's CHECK; total_leads's new default.
    (
        "    total_leads: Mapped[int | None] = mapped_column(server_default=_ZERO)\n",
        '    total_leads: Mapped[int | None] = mapped_column(server_default=text("1"))\n',
    ),
    (
        '        PrimaryKeyConstraint("id", name="outbound_call_runs_pkey"),\n',
        '        PrimaryKeyConstraint("id", name="outbound_call_runs_pkey"),\n'
        '        CheckConstraint("concurrency BETWEEN 1 AND 100", name="outbound_call_runs_concurrency_check"),\n',
    ),
    # status NOT NULL.
    (
        "    status: Mapped[str | None] = mapped_column(String(32), server_default=text(\"'queued'\"))\n",
        "    status: Mapped[str] = mapped_column(String(32), server_default=text(\"'queued'\"))\n",
    ),
    # one job per Twilio call.
    (
        '        Index("idx_outbound_call_jobs_status_twilio_sid", "status", "twilio_call_sid"),\n',
        '        Index("idx_outbound_call_jobs_status_twilio_sid", "status", "twilio_call_sid"),\n'
        "        Index(\n"
        '            "idx_outbound_call_jobs_twilio_call_sid_unique",\n'
        '            "twilio_call_sid",\n'
        "            unique=True,\n"
        '            postgresql_where=text("twilio_call_sid IS NOT NULL"),\n'
        "        ),\n",
    ),
]
CONTRACT = [
    # call_sid and its index are gone.
    ("    call_sid: Mapped[str | None] = mapped_column(String(64))\n", ""),
    ('        Index("idx_outbound_call_jobs_call_sid", "call_sid"),\n', ""),
]

ATTEMPT = '''

class OutboundCallAttempt(Base):
    """One dial of a job (day-2 example revision)."""

    __tablename__ = "outbound_call_attempts"

    id: Mapped[int] = mapped_column(Integer, Identity(always=False), primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("outbound_call_jobs.id", name="outbound_call_attempts_job_id_fkey", ondelete="CASCADE")
    )
    outcome: Mapped[str] = mapped_column(String(32), server_default=text("'pending'"))
    attempted_at: Mapped[datetime] = mapped_column(DateTime, server_default=_NOW)

    __table_args__ = (
        PrimaryKeyConstraint("id", name="outbound_call_attempts_pkey"),
        Index("idx_outbound_call_attempts_job_id", "job_id"),
    )
'''

path, kinds = Path(sys.argv[1]), sys.argv[2:]
source = path.read_text()
for old, new in (ADDITIVE if "additive" in kinds else []) + (CONTRACT if "contract" in kinds else []):
    if source.count(old) != 1:
        sys.exit(f"day2: {path}: expected exactly one {old.strip()!r}, found {source.count(old)}")
    source = source.replace(old, new)
path.write_text(source.rstrip("\n") + "\n" + ATTEMPT if "additive" in kinds else source)
