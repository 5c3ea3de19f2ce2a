"""A real PgBouncer in front of the test server, started and stopped like the server itself.

Debian's ``pgbouncer`` package (``apt-get install -y pgbouncer``; ``.ci/run`` installs it). It
refuses to run as root, so as root it runs as the user owning the server's socket folder (the
embedded server's), or ``nobody`` for a TCP server or a folder root owns. Its configuration is
PgBouncer's defaults but for where to listen and what to reach: in particular
``ignore_startup_parameters`` is left empty, so a client sending startup ``options`` is refused, as a
default PgBouncer refuses it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from outbound_schema import database

#: Set by .ci/run: there a missing PgBouncer is a failure, not a skip.
REQUIRED_VAR = "OUTBOUND_SCHEMA_REQUIRE_PGBOUNCER"
HOW_TO_GET_IT = "install Debian's pgbouncer package (apt-get install -y pgbouncer), as .ci/run does"


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (str(p) for p in (Path("/usr/sbin/pgbouncer"), Path("/usr/bin/pgbouncer")) if p.exists()), None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class _Reached:
    """Where libpq reached the server: a port or host given in the URL's query (``?host=/run/pg&port=5433``),
    a service file or ``PG*`` variables count as they count for every connection of the suite."""

    host: str
    port: int
    user: str
    password: str

    def address(self) -> str:
        """libpq keywords for PgBouncer to reach the server."""
        secret = f" password={self.password}" if self.password else ""
        return f"host={self.host} port={self.port} user={self.user}{secret}"

    def run_as(self) -> list[str]:
        """The prefix PgBouncer runs under: as root, the owner of the server's socket folder (to reach it), or
        nobody for TCP or a folder root owns (PgBouncer refuses to run as root); as another user, nothing."""
        if os.geteuid() != 0:
            return []
        owner = Path(self.host).stat().st_uid if self.host.startswith("/") else 0
        return ["runuser", "-u", pwd.getpwuid(owner).pw_name if owner else "nobody", "--"]


def _reached(server: URL) -> _Reached:
    with database.target(server).connect() as conn:
        info = conn.info
        return _Reached(info.host, info.port, info.user, info.password or "")


#: Each running PgBouncer's log, by the port it listens on: a failing test quotes it (:func:`log_tail`).
_LOGS: dict[int, Path] = {}


def log_tail(url: URL, characters: int = 3000) -> str:
    """The end of the log of the PgBouncer ``url`` goes through, for a failing test's message."""
    path = _LOGS.get(url.port or 0)
    try:
        return f"PgBouncer's log ends: {path.read_text()[-characters:]}" if path else "(no PgBouncer log)"
    except OSError as exc:
        return f"(PgBouncer's log unreadable: {exc})"


@contextmanager
def pgbouncer(server: URL, pool_mode: str) -> Iterator[URL]:
    """A PgBouncer in ``pool_mode`` in front of ``server``; yields the URL of its maintenance database."""
    program = binary()
    assert program is not None, HOW_TO_GET_IT
    port = _free_port()
    work = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    work.chmod(0o777)
    reached = _reached(server)
    user = reached.user
    (work / "userlist.txt").write_text(f'"{user}" ""\n')
    (work / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = {reached.address()}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        f"unix_socket_dir = {work}\n"
        "auth_type = trust\n"
        f"auth_file = {work / 'userlist.txt'}\n"
        f"pool_mode = {pool_mode}\n"
        "default_pool_size = 4\n"
        "max_client_conn = 200\n"
        f"logfile = {work / 'pgbouncer.log'}\n"
        f"pidfile = {work / 'pgbouncer.pid'}\n"
    )
    for path in work.iterdir():
        path.chmod(0o666)
    process = subprocess.Popen(
        [*reached.run_as(), program, str(work / "pgbouncer.ini")], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (work / "pgbouncer.log").read_text() if (work / "pgbouncer.log").exists() else ""
                    message = f"PgBouncer did not start: {process.stderr and process.stderr.read()} {log}"
                    raise RuntimeError(message) from None
                time.sleep(0.1)
        _LOGS[port] = work / "pgbouncer.log"
        yield URL.create("postgresql+psycopg", username=user, host="127.0.0.1", port=port, database="postgres")
    finally:
        _LOGS.pop(port, None)
        # Signalled itself: through runuser, stopping it waited on runuser.
        pidfile = work / "pgbouncer.pid"
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(work, ignore_errors=True)
