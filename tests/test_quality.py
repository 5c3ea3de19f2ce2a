"""The quality gates, run by the same command as the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "gate",
    [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        ("mypy", "--strict", "outbound_schema"),
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_gate(gate: tuple[str, ...]) -> None:
    done = subprocess.run([sys.executable, "-m", *gate], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
