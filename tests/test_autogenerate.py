"""`alembic revision --autogenerate` as a developer runs it: a quiet, clean file, nothing that reads as failure."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from alembic.config import CommandLine, Config
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, text
from sqlalchemy.engine import URL

from outbound_schema.config import METADATA_ATTRIBUTE, URL_ATTRIBUTE
from outbound_schema.revisions import next_revision_id
from tests.helpers import BIN, HEAD, REPO, connected, copy_migrations


def test_the_post_write_hooks_print_no_lint_errors(
    head_db: URL, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A generated line longer than the project's limit is formatted, not reported: the hooks' output is
    clean, and the file passes ruff check and ruff format --check."""
    for name in ("alembic.ini", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    location = copy_migrations(tmp_path / "alembic")
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
    alembic_cli = CommandLine(prog="alembic")
    options = alembic_cli.parser.parse_args(
        ["-c", str(tmp_path / "alembic.ini"), "revision", "--autogenerate", "-m", "dial attempts"]
    )
    config = Config(file_=str(tmp_path / "alembic.ini"), cmd_opts=options)
    config.attributes[METADATA_ATTRIBUTE] = models
    config.attributes[URL_ATTRIBUTE] = head_db
    # alembic.ini's logging would outlive the test, its handler bound to this test's captured stderr.
    config.attributes["configure_logger"] = False
    capfd.readouterr()

    alembic_cli.run_cmd(config, options)

    said = "".join(capfd.readouterr())
    assert "E501" not in said and "Line too long" not in said and "error" not in said.lower(), said
    written = location / "versions" / f"{next_revision_id([HEAD])}_dial_attempts.py"
    assert "op.create_table(" in written.read_text()
    for gate in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [str(BIN / "ruff"), *gate, "--config", str(REPO / "pyproject.toml"), str(written)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
