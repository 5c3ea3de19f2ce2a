"""The data guards (outbound_schema.safety.guards): a downgrade never drops a column holding values or a table
holding rows unless told to, online and in the offline script."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from tests.helpers import ScriptError, catalog, cli_here, connected, plain, run_script, version


def test_downgrade_refuses_to_drop_data(legacy_head_db: URL) -> None:
    with connected(legacy_head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        run_id = conn.scalar(text("INSERT INTO outbound_call_runs (business_id) VALUES (1) RETURNING id"))
        conn.execute(
            text("INSERT INTO outbound_call_jobs (run_id, lead_id, dial_lock_token) VALUES (:r, 1, 'w1')"),
            {"r": run_id},
        )
        conn.commit()
    before = catalog(legacy_head_db)

    refused = cli_here("downgrade", "46b", DATABASE_URL=plain(legacy_head_db))
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert "Downgrading 46c would destroy data (column outbound_call_jobs.dial_lock_token holds values)" in message
    assert "nothing was reverted" in message and "--allow-data-loss" in message
    # Refused before anything of the run changed: not even 46d's index was dropped.
    assert version(legacy_head_db) == ["46d"]
    assert catalog(legacy_head_db) == before

    # Columns without values go without asking; a table with rows does not.
    assert cli_here("downgrade", "46c", DATABASE_URL=plain(legacy_head_db)).returncode == 0
    assert cli_here("downgrade", "46a", "--allow-data-loss", DATABASE_URL=plain(legacy_head_db)).returncode == 0
    refused_table = cli_here("downgrade", "base", DATABASE_URL=plain(legacy_head_db))
    assert refused_table.returncode == 1 and "table outbound_call_jobs holds rows" in refused_table.stderr
    assert version(legacy_head_db) == ["46a"]
    allowed = cli_here("downgrade", "base", "--allow-data-loss", DATABASE_URL=plain(legacy_head_db))
    assert allowed.returncode == 0, allowed.stderr
    assert catalog(legacy_head_db).tables == {}


def test_offline_downgrade_script_guards_data(legacy_head_db: URL) -> None:
    with connected(legacy_head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (1); INSERT INTO leads (id) VALUES (1)"))
        conn.execute(text("INSERT INTO outbound_call_runs (id, business_id) VALUES (1, 1)"))
        conn.execute(text("INSERT INTO outbound_call_jobs (run_id, lead_id, dial_lock_token) VALUES (1, 1, 'w1')"))
        conn.commit()
    guarded = cli_here("downgrade", "46d:46b", "--sql")
    assert guarded.returncode == 0, guarded.stderr
    with pytest.raises(ScriptError, match="Downgrading 46c would destroy data"):
        run_script(legacy_head_db, guarded.stdout)
    assert "dial_lock_token" in {c.name for c in catalog(legacy_head_db).tables["outbound_call_jobs"].columns}

    allowed = cli_here("downgrade", "46d:46b", "--sql", "--allow-data-loss")
    assert "RAISE" not in allowed.stdout
    run_script(legacy_head_db, allowed.stdout)
    assert "dial_lock_token" not in {c.name for c in catalog(legacy_head_db).tables["outbound_call_jobs"].columns}
    assert version(legacy_head_db) == ["46b"]
