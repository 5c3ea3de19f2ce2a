"""The models in a host's stack: Flask-SQLAlchemy's db.session, and type checking of consumer code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import Integer, select, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Mapped, mapped_column

from outbound_schema import OutboundCallJob, OutboundCallRun
from tests.helpers import REPO, connected, plain


def test_flask_sqlalchemy_session(head_db: URL) -> None:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = plain(head_db)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"prepare_threshold": None}}
    db = SQLAlchemy(app)

    class Business(db.Model):  # the host's own model of its table
        __tablename__ = "business"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)

    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO leads (id) VALUES (7)"))
        conn.commit()

    with app.app_context():
        db.session.add(Business(id=42))
        db.session.flush()
        run = OutboundCallRun(business_id=42)
        db.session.add(run)
        db.session.flush()
        db.session.add(OutboundCallJob(run_id=run.id, lead_id=7))
        db.session.commit()
        assert run.status == "running" and run.concurrency == 3

        joined = db.session.execute(
            select(Business.id, OutboundCallJob.status)
            .join(OutboundCallRun, OutboundCallRun.business_id == Business.id)
            .join(OutboundCallJob, OutboundCallJob.run_id == OutboundCallRun.id)
        ).all()
        assert [tuple(row) for row in joined] == [(42, "queued")]
        db.session.remove()


def mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def test_consumer_code_passes_mypy_strict() -> None:
    done = mypy(REPO / "tests" / "consumer" / "typed_consumer.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_catches_a_misuse_of_the_models(tmp_path: Path) -> None:
    """The check above can fail: a nullable column is not a str, a NOT NULL one is not Optional."""
    wrong = tmp_path / "wrong_consumer.py"
    wrong.write_text(
        "from outbound_schema import OutboundCallJob\n\n\n"
        "def token(job: OutboundCallJob) -> str:\n"
        "    return job.dial_lock_token\n"
    )
    done = mypy(wrong)
    assert done.returncode == 1
    assert 'Incompatible return value type (got "str | None", expected "str")' in done.stdout
