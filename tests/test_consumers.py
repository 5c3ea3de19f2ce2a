"""The models in a host's stack: Flask-SQLAlchemy's db.session, and type checking of consumer code."""

from __future__ import annotations

from sqlalchemy import Integer, select, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Mapped, mapped_column

from outbound_schema import OutboundCallJob, OutboundCallRun
from tests.helpers import connected, plain
from tests.typecheck import Report


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


def test_consumer_code_passes_mypy_strict(mypy_report: Report) -> None:
    assert mypy_report.ran(), mypy_report.output
    assert mypy_report.errors("tests/consumer/typed_consumer.py") == [], mypy_report.output


def test_mypy_catches_a_misuse_of_the_models(mypy_report: Report) -> None:
    """The check above can fail: a nullable column is not a str (tests/consumer/misuse.py)."""
    (error,) = mypy_report.errors("tests/consumer/misuse.py")
    assert 'Incompatible return value type (got "str | None", expected "str")' in error
