"""The offline scripts pass squawk, with the committed configuration (.squawk.toml)."""

from __future__ import annotations

import pytest

from tests.helpers import ALL_REVISIONS, cli_here, squawk


@pytest.mark.parametrize("start", ["base", *ALL_REVISIONS[:-1]])
def test_offline_upgrade_script_passes_squawk(start: str) -> None:
    script = cli_here("upgrade", "head" if start == "base" else f"{start}:head", "--sql")
    assert script.returncode == 0, script.stderr
    linted = squawk(script.stdout)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_squawk_does_fail_on_a_blocking_index_build() -> None:
    """The lint can fail: the old script's plain CREATE INDEX on a live table is flagged."""
    linted = squawk(
        "SET lock_timeout = '1s';\nSET statement_timeout = '1min';\n"
        "CREATE INDEX IF NOT EXISTS idx_outbound_call_jobs_twilio_sid ON outbound_call_jobs(twilio_call_sid);\n"
    )
    assert linted.returncode != 0
    assert "require-concurrent-index-creation" in linted.stdout
