"""A real PgBouncer in front of the test server, started and stopped like the server itself.

Debian's ``pgbouncer`` package (``apt-get install -y pgbouncer``; ``.ci/run`` installs it). It
refuses to run as root, so as root it runs as the user owning the server's socket folder (the
embedded server's), or ``nobody`` for a TCP server. Its configuration is PgBouncer's defaults but
for where to listen and what to reach: in particular ``ignore_startup_parameters`` is left empty,
so a client sending startup ``options`` is refused, as a default PgBouncer refuses it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def _server_address(server: URL) -> str:
    """libpq keywords for PgBouncer to reach ``server`` (host or socket folder, port, user, password), as
    libpq itself reached it: a port or host given in the URL's query (``?host=/run/pg&port=5433``), a
    service file or ``PG*`` variables count as they count for every connection of the suite."""
    with database.target(server).connect() as conn:
        info = conn.info
        parts = [f"host={info.host}", f"port={info.port}", f"user={info.user}"]
        if info.password:
            parts.append(f"password={info.password}")
    return " ".join(parts)


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "nobody", "--"]


@contextmanager
def pgbouncer(server: URL, pool_mode: str, *, run_as: str | None = None) -> Iterator[URL]:
    """A PgBouncer in ``pool_mode`` in front of ``server``; yields the URL of its maintenance database."""
    program = binary()
    assert program is not None, HOW_TO_GET_IT
    port = _free_port()
    work = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    work.chmod(0o777)
    user = server.username or "postgres"
    (work / "userlist.txt").write_text(f'"{user}" ""\n')
    (work / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = {_server_address(server)}\n"
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
    prefix = ["runuser", "-u", run_as, "--"] if run_as and os.geteuid() == 0 else _run_as()
    process = subprocess.Popen([*prefix, program, str(work / "pgbouncer.ini")], stderr=subprocess.PIPE, text=True)
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
        yield URL.create("postgresql+psycopg", username=user, host="127.0.0.1", port=port, database="postgres")
    finally:
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


def socket_owner(server: URL) -> str | None:
    """The user owning the server's socket folder, which PgBouncer must run as to reach it (None: root's, or a
    TCP server; PgBouncer refuses to run as root, and runs as nobody)."""
    host = server.host or server.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    if not host or not str(host).startswith("/"):
        return None
    import pwd

    owner = Path(str(host)).stat().st_uid
    return None if owner == 0 else pwd.getpwuid(owner).pw_name
