"""Stopping a command: Ctrl-C and SIGTERM, one line each, nothing half-recorded, the exit code a shell
reports for the signal."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outbound_schema.config import VERSION_TABLE
from tests.helpers import BIN, Forked, backends, connected, plain, python_forked, version, wait_for

STOPS = {
    # Ctrl-C at a terminal: the process group gets SIGINT (a run started in the background, as CI starts
    # one, inherits SIGINT ignored: it is reset to the default, as at a terminal).
    "ctrl-c": (signal.SIGINT, False, "interrupted"),
    # What Kubernetes sends to stop a pod.
    "sigterm": (signal.SIGTERM, False, "terminated (SIGTERM)"),
    # The same as PID 1 of a PID namespace (a container without an init), where the kernel ignores a signal
    # left at its default.
    "sigterm-pid-1": (signal.SIGTERM, True, "terminated (SIGTERM)"),
}


def _at_a_terminal(*args: str) -> Forked:
    """Our command line in a child of the run's zygote (tests/zygote.py), Ctrl-C taken as at a terminal:
    Python's own handler, whatever the child inherited."""
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from outbound_schema.cli import main\n"
        f"sys.exit(main({list(args)!r}))\n"
    )
    return python_forked(code)


def _upgrade(url: URL, as_pid_1: bool) -> subprocess.Popen[str] | Forked:
    """An upgrade of ``url`` in a process of its own. As PID 1 of a PID namespace it is the installed program,
    exec'd by a shell there: the console script, as a container without an init starts it. Otherwise a child
    of the run's zygote, its Ctrl-C handling as at a terminal; the same ``main`` without a new Python
    importing SQLAlchemy and Alembic again."""
    if not as_pid_1:
        return _at_a_terminal("upgrade", "--database-url", plain(url))
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is needed to run the program as PID 1"
    # The shell says its PID inside the namespace, then becomes the program (exec keeps the PID).
    inside = ["sh", "-c", 'echo "pid $$" >&2; exec "$@"', "sh"]
    # A PID namespace is root's to make; another user makes one inside a user namespace of its own, as itself.
    as_user = [] if os.geteuid() == 0 else ["--user", "--map-current-user"]
    program = [str(BIN / "outbound-schema"), "upgrade"]
    command = [unshare, *as_user, "--pid", "--fork", "--kill-child", *inside, *program]
    return subprocess.Popen(
        [*command, "--database-url", plain(url)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.heavy
@pytest.mark.parametrize("stop", STOPS)
def test_a_stopped_upgrade_says_one_line_and_records_nothing(host_db: URL, stop: str) -> None:
    """An upgrade, stopped while it waits for the migration lock: one line, nothing recorded, the exit code a
    shell reports for the signal (128 + its number)."""
    from outbound_schema.config import LOCK_KEY

    signum, as_pid_1, said = STOPS[stop]
    holder = create_engine(host_db)
    try:
        with holder.connect() as conn:  # another migration holds the lock: the upgrade waits
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            conn.commit()
            process = _upgrade(host_db, as_pid_1)
            deadline, before = time.monotonic() + 60, []
            while "another migration holds the lock" not in (
                line := process.stderr.readline() if process.stderr else ""
            ):
                assert not line.startswith("unshare:"), f"{line.strip()} (a PID namespace: root, or user namespaces)"
                assert time.monotonic() < deadline and line != "", "the upgrade never waited for the lock"
                before.append(line.strip())
            target = process.pid
            if as_pid_1:  # unshare's child: the program, PID 1 inside its namespace
                (target,) = map(int, Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split())
                assert before[0] == "pid 1", before
            os.kill(target, signum)
            _, err = process.communicate(timeout=30)
    finally:
        holder.dispose()
    assert process.returncode == 128 + signum, err
    assert err.strip() == (
        f"outbound-schema: {said}; a revision that was running was not recorded and is completed by the next "
        "run; nothing else was left half-done."
    )
    assert version(host_db) is None


def test_ctrl_c_during_status_still_prints_its_json(head_db: URL) -> None:
    with connected(head_db) as conn:  # status waits to read the version table
        conn.execute(text(f"LOCK TABLE {VERSION_TABLE} IN ACCESS EXCLUSIVE MODE"))
        status = _at_a_terminal("status", "--format", "json", "--database-url", plain(head_db))
        wait_for(lambda: backends(head_db, "wait_event_type = 'Lock'") == 1)
        status.send_signal(signal.SIGINT)
        out, err = status.communicate(timeout=30)
        conn.rollback()
    assert status.returncode == 130, err
    assert json.loads(out) == {"format": 1, "state": "error", "error": "interrupted; nothing was changed."}
    assert err.strip() == "outbound-schema: interrupted; nothing was changed."
