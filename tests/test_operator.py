"""What an operator can type or cause, and what each gets: re-runnable offline scripts, a damaged
version table, unknown revisions, bad URLs and durations, hung servers, Ctrl-C, and the output's
own manners (-v, -q, --version). Nothing here may end in a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outbound_schema.config import VERSION_TABLE
from tests.helpers import (
    ALL_REVISIONS,
    BIN,
    HEAD,
    backends,
    catalog_text,
    cli,
    cli_forked,
    cli_here,
    connected,
    copy_migrations,
    expected_text,
    in_location,
    inject,
    plain,
    psql,
    python_forked,
    rows,
    script_steps,
    version,
    wait_for,
)


def run_psql_style(url: URL, script: list[str], *, stop_after: int | None = None) -> list[str]:
    """Send ``script`` (:func:`script_steps`) through psql as its default runs it, on past errors, dying after
    ``stop_after`` steps; the errors it met."""
    done = psql(url, "\n\n".join(script[:stop_after]) + "\n", stop_on_error=False)
    return [line for line in done.stderr.splitlines() if "ERROR:" in line or "error:" in line]


def offline(*args: str) -> list[str]:
    done = cli_here("upgrade", *args, "--sql")
    assert done.returncode == 0, done.stderr
    return script_steps(done.stdout)


def test_the_offline_script_runs_again_after_a_shorter_one(host_db: URL) -> None:
    assert run_psql_style(host_db, offline("46b")) == []
    assert version(host_db) == ["46b"]
    full = offline()
    assert run_psql_style(host_db, full) == []
    assert run_psql_style(host_db, full) == []  # and again, at head
    assert version(host_db) == [HEAD]
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)


@pytest.mark.parametrize("share", [0.2, 0.5, 0.8])
def test_the_offline_script_runs_again_after_dying_at_any_statement(host_db: URL, share: float) -> None:
    full = offline()
    stop = max(1, int(len(full) * share))
    run_psql_style(host_db, full, stop_after=stop)
    assert run_psql_style(host_db, full) == []
    assert version(host_db) == [HEAD]
    assert catalog_text(host_db, HEAD) == expected_text(HEAD)


def test_two_version_rows_are_an_error_never_at_head(head_db: URL) -> None:
    with connected(head_db) as conn:
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES ('{ALL_REVISIONS[0]}')"))
        conn.commit()
    rows = f"{ALL_REVISIONS[0]}, {HEAD}"
    check = cli_here("check", "--format", "json", DATABASE_URL=plain(head_db))
    assert check.returncode == 2 and json.loads(check.stdout)["status"] == "error"
    assert f"holds the rows {rows} where it should hold one" in check.stderr
    status = cli_here("status", "--check", DATABASE_URL=plain(head_db))
    assert status.returncode == 2 and "at head" not in status.stdout
    upgrade = cli_here("upgrade", DATABASE_URL=plain(head_db))
    assert upgrade.returncode == 2 and f"DELETE FROM {VERSION_TABLE} WHERE version_num IN ('{ALL_REVISIONS[0]}')" in (
        upgrade.stderr
    )
    assert "Traceback" not in check.stderr + status.stderr + upgrade.stderr
    assert sorted(version(head_db) or []) == sorted([ALL_REVISIONS[0], HEAD])  # nothing changed


@pytest.mark.parametrize("blank", ["NULL", "''"])
@pytest.mark.parametrize("beside_head", [True, False])
def test_a_version_row_naming_no_revision_is_an_error(head_db: URL, blank: str, beside_head: bool) -> None:
    """A NULL or empty row, alone or beside head's, is never read as 'at head' or as 'untracked'."""
    statements = [
        f"ALTER TABLE {VERSION_TABLE} DROP CONSTRAINT {VERSION_TABLE}_pkc",
        f"ALTER TABLE {VERSION_TABLE} ALTER COLUMN version_num DROP NOT NULL",
        f"INSERT INTO {VERSION_TABLE} VALUES ({blank})"
        if beside_head
        else f"UPDATE {VERSION_TABLE} SET version_num = {blank}",
    ]
    inject(head_db, *statements)
    before = rows(head_db)
    check = cli_here("check", "--format", "json", DATABASE_URL=plain(head_db))
    assert check.returncode == 2 and json.loads(check.stdout)["status"] == "error"
    status = cli_here("status", "--format", "json", DATABASE_URL=plain(head_db))
    assert status.returncode == 2 and json.loads(status.stdout)["state"] == "error"
    for args in (("upgrade",), ("downgrade", "46c")):
        done = cli_here(*args, DATABASE_URL=plain(head_db))
        assert done.returncode == 2, done.stderr
        assert "names no revision" in done.stderr and "WHERE version_num IS NULL OR btrim(version_num) = ''" in (
            done.stderr
        )
    for done in (check, status):
        assert "names no revision" in done.stderr + json.loads(done.stdout)["error"]
        assert "Traceback" not in done.stderr
    assert rows(head_db) == before and catalog_text(head_db, HEAD) == expected_text(HEAD)  # nothing changed


@pytest.mark.parametrize("command", [("upgrade", "99z"), ("downgrade", "99z"), ("upgrade", "46d:99z", "--sql")])
def test_an_unknown_revision_changes_nothing(host_db: URL, command: tuple[str, ...]) -> None:
    done = cli_here(*command, DATABASE_URL=plain(host_db))
    assert done.returncode == 1
    assert "There is no revision '99z' in this version of outbound-schema, so nothing was done" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    assert version(host_db) is None  # no version table was created


def test_head_with_two_heads_is_refused_before_anything_changes(host_db: URL, tmp_path: Path) -> None:
    """``head`` names one revision only while there is one head: with a second one beside it, the command
    stops before it connects, naming both; a revision id still takes the database there."""
    location = copy_migrations(tmp_path / "migrations")
    (location / "versions" / "48z_beside.py").write_text(
        f'revision = "48z"\ndown_revision = {ALL_REVISIONS[-2]!r}\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    done = cli_here("upgrade", "head", DATABASE_URL=plain(host_db), **in_location(location))
    assert done.returncode == 1
    assert "There is no revision 'head'" in done.stderr and f"(head is {', '.join(sorted([HEAD, '48z']))})" in (
        done.stderr
    )
    assert version(host_db) is None  # no version table was created
    sql = cli_here("upgrade", HEAD, "--sql", **in_location(location))
    assert sql.returncode == 0 and f"version_num='{HEAD}'" in sql.stdout, sql.stderr


PASSWORD = "s3cret-pw"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://app:{PASSWORD}@127.0.0.1:54x2/db", "could not be parsed"),
        (f"postgresql://app:p@ss{PASSWORD}@127.0.0.1:1/db", "more than one '@'"),
    ],
)
def test_bad_urls_in_every_command(url: str, expected: str) -> None:
    for args in (("upgrade",), ("status",), ("check", "--format", "json")):
        done = cli_here(*args, DATABASE_URL=url)
        assert done.returncode in (1, 2), done.stderr
        assert expected in done.stderr, done.stderr
        assert PASSWORD not in done.stderr + done.stdout and "ss" + PASSWORD[:2] not in done.stderr
        assert "Traceback" not in done.stderr
        if args[0] == "check":
            assert done.returncode == 2 and json.loads(done.stdout)["status"] == "error"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers, as a hung server or a dead proxy does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.mark.waits
def test_a_server_that_never_answers_is_given_up_on(silent_server: int) -> None:
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{silent_server}/db"
    started = time.monotonic()
    # The three at once, each a process of its own, the default connect timeout shortened in each.
    shortened = {"outbound_schema.dsn.DEFAULT_CONNECT_TIMEOUT": 1}
    waiting = [
        cli_forked(*args, patches=shortened, DATABASE_URL=given)
        for args, given in ((("upgrade",), url), (("status",), url), (("check",), f"{url}?connect_timeout=1"))
    ]
    for process in waiting:
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 2, stderr
        assert "Could not connect" in stderr or "connection" in stderr
        assert PASSWORD not in stderr and "Traceback" not in stderr
    assert time.monotonic() - started < 8


@pytest.mark.heavy
def test_ctrl_c_is_one_line_and_records_nothing(host_db: URL) -> None:
    from outbound_schema.config import LOCK_KEY

    holder = create_engine(host_db)
    try:
        with holder.connect() as conn:  # another migration holds the lock: the upgrade waits
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            conn.commit()
            # The installed program, as a process: SIGINT is delivered to a real one, as at a terminal.
            process = subprocess.Popen(
                [str(BIN / "outbound-schema"), "upgrade", "--database-url", plain(host_db)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
                # As at a terminal: a run started in the background (CI) inherits SIGINT ignored.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            deadline = time.monotonic() + 60
            while "another migration holds the lock" not in (
                line := process.stderr.readline() if process.stderr else ""
            ):
                assert time.monotonic() < deadline and line != "", "the upgrade never waited for the lock"
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
    finally:
        holder.dispose()
    assert process.returncode == 130
    assert err.strip().startswith("outbound-schema: interrupted; a revision") and err.strip().count("\n") == 0, err
    assert version(host_db) is None


@pytest.mark.parametrize("as_pid_1", [False, True], ids=["process", "pid-1"])
def test_sigterm_is_taken_as_ctrl_c(host_db: URL, as_pid_1: bool) -> None:
    """What Kubernetes sends to stop a pod: one line, nothing recorded, exit 143 (128 + SIGTERM). Also as PID 1
    of a PID namespace (a container without an init), where the kernel ignores a signal left at its default."""
    from outbound_schema.config import LOCK_KEY

    command = [str(BIN / "outbound-schema"), "upgrade", "--database-url", plain(host_db)]
    if as_pid_1:
        unshare = shutil.which("unshare")
        assert unshare, "util-linux's unshare is needed to run the program as PID 1"
        # The shell says its PID inside the namespace, then becomes the program (exec keeps the PID).
        inside = ["sh", "-c", 'echo "pid $$" >&2; exec "$@"', "sh"]
        command = [unshare, "--pid", "--fork", "--kill-child", *inside, *command]
    holder = create_engine(host_db)
    try:
        with holder.connect() as conn:  # another migration holds the lock: the upgrade waits
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            conn.commit()
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            )
            deadline, before = time.monotonic() + 60, []
            while "another migration holds the lock" not in (
                line := process.stderr.readline() if process.stderr else ""
            ):
                assert time.monotonic() < deadline and line != "", "the upgrade never waited for the lock"
                before.append(line.strip())
            target = process.pid
            if as_pid_1:  # unshare's child: the program, PID 1 inside its namespace
                (target,) = map(int, Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split())
                assert before[0] == "pid 1", before
            os.kill(target, signal.SIGTERM)
            _, err = process.communicate(timeout=30)
    finally:
        holder.dispose()
    assert process.returncode == 143, err
    assert err.strip() == (
        "outbound-schema: terminated (SIGTERM); a revision that was running was not recorded and is completed by "
        "the next run; nothing else was left half-done."
    )
    assert version(host_db) is None


def test_ctrl_c_during_status_still_prints_its_json(head_db: URL) -> None:
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal\n"
        "from outbound_schema.cli import main\n"
        f"sys.exit(main(['status', '--format', 'json', '--database-url', {plain(head_db)!r}]))\n"
    )
    with connected(head_db) as conn:  # status waits to read the version table
        conn.execute(text(f"LOCK TABLE {VERSION_TABLE} IN ACCESS EXCLUSIVE MODE"))
        status = python_forked(code)
        wait_for(lambda: backends(head_db, "wait_event_type = 'Lock'") == 1)
        status.send_signal(signal.SIGINT)
        out, err = status.communicate(timeout=30)
        conn.rollback()
    assert status.returncode == 130, err
    assert json.loads(out) == {"format": 1, "state": "error", "error": "interrupted; nothing was changed."}
    assert err.strip() == "outbound-schema: interrupted; nothing was changed."


@pytest.mark.parametrize("command", ["upgrade", "status", "check"])
def test_an_option_libpq_does_not_know_is_a_failure_to_connect(command: str) -> None:
    """Not a connection lost halfway through a revision: nothing was ever connected."""
    url = "postgresql://u:hunter2@127.0.0.1:1/db?bogusparam=1"
    done = cli_here(command, DATABASE_URL=url)
    assert done.returncode == 2, done.stderr
    assert "Could not connect to the database at postgresql" in done.stderr
    assert '"bogusparam"' in done.stderr  # libpq's own words for it
    assert "hunter2" not in done.stderr and "revision" not in done.stderr


def test_quiet_by_default_louder_and_quieter_on_request(host_db: URL) -> None:
    first = cli_here("upgrade", DATABASE_URL=plain(host_db))
    assert first.returncode == 0
    assert "Migrating postgresql+psycopg://" in first.stderr and "Running upgrade" in first.stderr
    assert "Will assume" not in first.stderr and "Context impl" not in first.stderr
    assert "WARNI " not in first.stderr and "[alembic" not in first.stderr
    assert cli_here("-q", "upgrade", DATABASE_URL=plain(host_db)).stderr == ""
    assert cli_here("upgrade", "-q", DATABASE_URL=plain(host_db)).stderr == ""
    assert "Context impl PostgresqlImpl" in cli_here("upgrade", "-v", DATABASE_URL=plain(host_db)).stderr
    assert cli_here("status", "-q", DATABASE_URL=plain(host_db)).stderr == ""


def test_a_written_script_does_not_say_it_changed_anything() -> None:
    """``--sql`` writes statements; nothing is created until someone runs them, and stderr says no more."""
    script = cli_here("upgrade", "--sql")
    assert script.returncode == 0 and "CREATE TABLE" in script.stdout
    assert "Running upgrade" in script.stderr
    assert not [line for line in script.stderr.splitlines() if ": created " in line or ": added " in line]
    louder = cli_here("upgrade", "--sql", "-v")
    assert "40a: created table outbound_call_runs" in louder.stderr
    back = cli_here("downgrade", f"{HEAD}:46d", "--sql")
    assert back.returncode == 0 and "Running downgrade" in back.stderr and ": reverted" not in back.stderr


def test_version() -> None:
    from importlib.metadata import version as installed

    done = cli("--version")  # the installed console script: its version comes from the installed metadata
    assert done.returncode == 0 and done.stdout.strip() == f"outbound-schema {installed('outbound-schema')}"


def test_status_says_upgrade_would_refuse_without_the_host_tables(empty_db: URL) -> None:
    done = cli_here("status", DATABASE_URL=plain(empty_db))
    assert done.returncode == 1
    assert "upgrade would refuse: the host application's table(s) business, call_log, leads" in done.stdout
    assert "upgrade would process" not in done.stdout


def test_passwords_in_query_parameters_are_masked(host_db: URL) -> None:
    url = (
        f"{plain(host_db)}&password=SECRET-IN-QUERY&sslpassword=SECRET-SSL"
        if "?" in plain(host_db)
        else (f"{plain(host_db)}?password=SECRET-IN-QUERY&sslpassword=SECRET-SSL")
    )
    for args in (("upgrade",), ("status",), ("check",)):
        done = cli_here(*args, DATABASE_URL=url)
        assert "SECRET" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "password=***" in cli_here("status", DATABASE_URL=url).stdout


def test_a_percent_encoded_at_in_the_user_name_is_a_user_name() -> None:
    from outbound_schema import dsn

    params = dsn.parse("postgresql://app%40srv:p%40ss@db.example/app", source="a test").params()
    assert (params["user"], params["password"], params["host"]) == ("app@srv", "p@ss", "db.example")


@pytest.mark.parametrize("target", ["abc-1", "head+5", "47z+1", ""])
def test_odd_targets_are_one_paragraph_and_change_nothing(host_db: URL, target: str) -> None:
    done = cli_here("-q", "upgrade", target, DATABASE_URL=plain(host_db))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert "nothing was" in done.stderr
    assert version(host_db) is None


def test_a_version_table_holding_what_no_revision_writes(head_db: URL) -> None:
    with connected(head_db) as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        conn.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num integer)"))
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES (47), (NULL)"))
        conn.commit()
    check = cli_here("check", "--format", "json", DATABASE_URL=plain(head_db))
    assert check.returncode in (1, 2) and json.loads(check.stdout)["status"] in ("drift", "error")
    status = cli_here("status", DATABASE_URL=plain(head_db))
    assert status.returncode in (1, 2)
    assert "Traceback" not in check.stderr + status.stderr
