"""`alembic revision --autogenerate` as a developer runs it: a quiet, clean file, nothing that reads as failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, text
from sqlalchemy.engine import URL

from outbound_schema.revisions import next_revision_id
from tests.helpers import HEAD, assert_lint_clean, autogenerate, connected


def test_the_post_write_hooks_print_no_lint_errors(
    head_db: URL, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A generated line longer than the project's limit is formatted, not reported: the hooks' output is
    clean, and the file passes ruff check and ruff format --check."""
    models = MetaData()
    with connected(head_db) as conn:
        models.reflect(conn, only=["outbound_call_runs", "outbound_call_jobs"], resolve_fks=True)
    Table(
        "outbound_dial_attempts",
        models,
        Column("id", Integer, primary_key=True),
        Column("job_id", Integer, ForeignKey("outbound_call_jobs.id", ondelete="CASCADE"), nullable=False),
        Column(
            "outcome", String(200), server_default=text("'no answer from the callee within the configured ring time'")
        ),
    )
    capfd.readouterr()

    written = autogenerate(tmp_path, models, head_db, "dial attempts")

    said = "".join(capfd.readouterr())
    assert "E501" not in said and "Line too long" not in said and "error" not in said.lower(), said
    assert written.name == f"{next_revision_id([HEAD])}_dial_attempts.py"
    assert "op.create_table(" in written.read_text()
    assert_lint_clean(written)
