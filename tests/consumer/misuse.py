"""A deliberate mistake, which tests/test_consumers.py proves mypy --strict catches: a nullable column
is not a ``str``."""

from __future__ import annotations

from outbound_schema import OutboundCallJob


def token(job: OutboundCallJob) -> str:
    return job.dial_lock_token
