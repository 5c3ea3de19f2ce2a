"""The quality gates, run by the same command as the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.typecheck import Report

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("gate", [("ruff", "check", "."), ("ruff", "format", "--check", ".")], ids=["check", "format"])
def test_ruff(gate: tuple[str, ...]) -> None:
    done = subprocess.run([sys.executable, "-m", *gate], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict(mypy_report: Report) -> None:
    """``mypy --strict outbound_schema``, in the session's one mypy run (tests/typecheck.py)."""
    assert mypy_report.ran(), mypy_report.output
    assert mypy_report.errors("outbound_schema/") == [], mypy_report.output
