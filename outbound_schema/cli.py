"""The ``outbound-schema`` command line: upgrade, downgrade, status, check and snapshot."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outbound_schema import dsn, settings
from outbound_schema.config import VERSION_TABLE, script_location
from outbound_schema.errors import OutboundSchemaError, connection_lost
from outbound_schema.expected import SNAPSHOT_COMMAND
from outbound_schema.history import History, HistoryUnreadable

# The migration commands need Alembic and SQLAlchemy (a second to import); `check` needs neither,
# so they are imported by the commands that use them.
if TYPE_CHECKING:
    from alembic.config import Config

#: The version of ``status --format json``'s output; keys are only ever added within one.
STATUS_FORMAT_VERSION = 1
#: How many of the schema history's last rows ``status`` shows: in JSON, and as text.
HISTORY_SHOWN = 100
HISTORY_SHOWN_AS_TEXT = 5

_VERDICTS = {
    "applied": "applied",
    "present": "present, untracked: upgrade will record it without changes",
    "partial": "partly present: upgrade will complete it",
    "missing": "missing: upgrade will apply it",
    "conflicting": "CONFLICTING: upgrade will refuse until this is resolved",
    "unknown": f"not compared: no expected-schema file (run `{SNAPSHOT_COMMAND}`); upgrade will apply it",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("outbound-schema")
    except PackageNotFoundError:
        return "(not installed)"


class _VersionAction(argparse.Action):
    """``--version``, the release read only when asked for: reading the installed metadata costs every
    other command a few milliseconds (argparse's own version action wants the text up front)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kwargs: object) -> None:
        print(f"{parser.prog} {_version()}")  # on stdout, as argparse's own version action prints it
        parser.exit()


@cache
def _parser() -> argparse.ArgumentParser:
    """Built once per process (mostly argparse looking up translations of its own words): ``main``
    may run many times in one process, as the test suite and a host embedding the command line run it.
    Parsing leaves it unchanged: each ``parse_args`` fills a namespace of its own."""
    parser = argparse.ArgumentParser(
        prog="outbound-schema",
        description="Manage the outbound dialer's tables (outbound_call_runs, outbound_call_jobs).",
        epilog=f"The database is {settings.DATABASE_URL.flag}, else {settings.DATABASE_URL.env}, else libpq's PG* "
        f"variables (PGHOST, PGSERVICE, ...), else an embedded PostgreSQL kept in ./.outbound-schema/ "
        f"({settings.EMBEDDED_DIR.env}). Every setting, its flag, -x key and environment variable: "
        f"{settings.DOCS_PATH}.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the release and exit")
    loudness = argparse.ArgumentParser(add_help=False)
    for parent, default in ((parser, 0), (loudness, argparse.SUPPRESS)):
        parent.add_argument(
            "-v", "--verbose", action="count", default=default, help="say more (-vv: every SQL statement)"
        )
        parent.add_argument(
            "-q", "--quiet", action="count", default=default, help="say less (-q: warnings and errors only)"
        )
    url_option = argparse.ArgumentParser(add_help=False, parents=[loudness])
    settings.add_flags(url_option, [settings.DATABASE_URL])
    migrate_options = argparse.ArgumentParser(add_help=False, parents=[url_option])
    migrate_options.add_argument("--sql", action="store_true", help="print the SQL script instead of running it")
    both = [s for s in settings.RUN_SETTINGS if {"upgrade", "downgrade"} <= set(s.commands)]
    settings.add_flags(migrate_options, both)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upgrade = sub.add_parser("upgrade", parents=[migrate_options], help="migrate the database up (default: head)")
    upgrade.add_argument("revision", nargs="?", default="head")

    downgrade = sub.add_parser("downgrade", parents=[migrate_options], help="migrate the database down")
    downgrade.add_argument("revision", help="target revision, e.g. 46c, -1 or base")
    settings.add_flags(downgrade, [s for s in settings.RUN_SETTINGS if s not in both and "downgrade" in s.commands])

    read_options = argparse.ArgumentParser(add_help=False, parents=[url_option])
    read_options.add_argument(
        "--version-table",
        default=VERSION_TABLE,
        type=_table_name,
        help=f"where our revision is recorded (default {VERSION_TABLE}; alembic_version inside a host's history)",
    )
    status = sub.add_parser("status", parents=[read_options], help="show each step's state; changes nothing")
    status.add_argument(
        "--check", action="store_true", help="exit 0 only at head (1 otherwise, 2 if it could not check)"
    )
    status.add_argument("--format", choices=("text", "json"), default="text")

    check = sub.add_parser(
        "check",
        parents=[read_options],
        help="compare the live schema with its revision: exit 0 no drift (also behind, migrating, ahead), 1 drift, "
        "2 could not check",
    )
    check.add_argument("--format", choices=("text", "json"), default="text")

    plan = sub.add_parser(
        "plan",
        parents=[url_option],
        help="show what an upgrade would do to the database, statement by statement, its locks and how long; "
        "read-only: exit 0 nothing needs a decision, 1 refusals or decisions (or a database at a revision this "
        "release does not have), 2 could not plan",
    )
    plan.add_argument("revision", nargs="?", default="head")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    settings.add_flags(plan, [s for s in settings.RUN_SETTINGS if "plan" in s.commands])

    snapshot = sub.add_parser(
        "snapshot",
        parents=[url_option],
        help="regenerate the expected-schema files (schema/<revision>.sql) from the revisions",
        description="Run the revisions one by one in a scratch database (on the URL's server, else on an embedded "
        "PostgreSQL) and write the catalog each leaves to schema/<revision>.sql, beside versions/.",
    )
    snapshot.add_argument("--check", action="store_true", help="change nothing; exit 1 if any file is stale or missing")
    return parser


def _table_name(raw: str) -> str:
    """A table's name as PostgreSQL keeps it: not empty, and at most 63 bytes (it cuts a longer one short, to a
    name that is another table's)."""
    if not raw.strip() or len(raw.encode()) > 63:
        raise argparse.ArgumentTypeError(
            f"'{raw}' is not a table name: give one of 1 to 63 bytes, such as {VERSION_TABLE} (the default) "
            "or alembic_version (our revisions inside a host's history)"
        )
    return raw


def _url(args: argparse.Namespace, *, offline: bool = False) -> dsn.Target | None:
    """The database configured (--database-url, DATABASE_URL, libpq's PG* variables), else the embedded one;
    None offline (a script is written; no URL is read)."""
    if offline:
        if args.database_url:  # a user may take the script for one checked against that database
            print(
                f"outbound-schema: note: --sql writes the script without connecting; {settings.DATABASE_URL.flag} "
                "is not read (the script is the same for every database at the revision it starts from).",
                file=sys.stderr,
            )
        return None
    target = dsn.configured(args.database_url)
    if target is None:
        from outbound_schema.embedded import default_database_url  # the models, the server wheel: only now

        target = default_database_url()
    return target


def _existing_url(args: argparse.Namespace) -> dsn.Target:
    """For commands that only read: the database configured, or an embedded database an upgrade made."""
    target = dsn.configured(args.database_url)
    if target is not None:
        return target
    from outbound_schema import embedded

    if not (embedded.data_dir() / "PG_VERSION").is_file():
        what = "check" if args.command == "check" else "report on"
        raise OutboundSchemaError(
            f"No database URL is configured, so there is no database to {what}. Set DATABASE_URL (or libpq's "
            f"PGHOST, PGDATABASE, ... or PGSERVICE) or pass --database-url; the embedded database is used only "
            f"once 'outbound-schema upgrade' has created it (it would be in {embedded.data_dir()}).",
            exit_code=2,
        )
    return embedded.default_database_url()


def _status(url: dsn.Target, *, version_table: str, gate: bool, fmt: str = "text") -> int:
    """Each step's state, and the migration running now if one is. Exit 1 on conflicts or an unknown
    revision, or with ``gate`` anywhere but head."""
    from outbound_schema import progress
    from outbound_schema.catalog import existing_relations
    from outbound_schema.config import LOCK_KEY
    from outbound_schema.expected import HistorySchemas, foreign_tables
    from outbound_schema.standing import read_history, stand
    from outbound_schema.takeover import RevisionReport, assess

    revisions = History.read(script_location())
    with url.connect() as connection:
        connection.read_only = True
        running = progress.running(connection, LOCK_KEY)
        connection.commit()
        standing = stand(connection, revisions, version_table)
        history = read_history(connection, limit=HISTORY_SHOWN)
        current = set(standing.current)
        unknown = standing.state in ("ahead", "unknown")
        reports: list[RevisionReport] = []
        missing_host_tables: list[str] = []
        if not unknown:
            expected = HistorySchemas(revisions)
            reports = assess(connection, expected, expected.managed(), revisions.applied(current))
            needed = sorted(
                {t for r in expected.managed() if (snap := expected.at(r.revision)) for t in foreign_tables(snap)}
            )
            present = existing_relations(connection, needed, kinds="rp")
            missing_host_tables = [name for name in needed if name not in present]
    pending = [r.revision for r in reports if r.state != "applied"]
    if running is not None and not unknown:
        # What the running migration has not finished shows as partly present or missing (or, going down,
        # as applied): the state is that it runs.
        state, code = "migrating", 1 if gate else 0
        verdict = (
            f"migrating: {' -> '.join(pending) + ' in progress' if pending else f'by server process {running.pid}'}"
        )
    elif standing.state == "ahead":
        state, verdict, code = "ahead", standing.summary() + "; upgrade has nothing to do", 0
    elif unknown:
        state, code, verdict = "unknown", 1, standing.summary()
    elif any(r.state == "conflicting" for r in reports):
        state, verdict, code = "conflicting", "conflicting objects: upgrade would refuse", 1
    elif pending and missing_host_tables:
        state, code = "refused", 1
        verdict = (
            f"behind head, and upgrade would refuse: the host application's table(s) "
            f"{', '.join(missing_host_tables)} are missing (run the host's migrations first)"
        )
    elif pending:
        state, verdict, code = "behind", "behind head; upgrade would process " + " -> ".join(pending), 1 if gate else 0
    else:
        state, verdict, code = "at_head", "at head", 0
    if fmt == "json":
        print(
            json.dumps(
                {
                    "format": STATUS_FORMAT_VERSION,
                    "database": url.shown,
                    "version": sorted(current),
                    "head": revisions.heads(),
                    "state": state,
                    "summary": verdict,
                    "revisions": [
                        {
                            "revision": r.revision,
                            "state": r.state,
                            "findings": [f.describe() for f in r.findings if r.state in ("partial", "conflicting")],
                        }
                        for r in reports
                    ],
                    "running": None if running is None else running.to_json(),
                    "history": [entry.to_json() for entry in history],
                }
            )
        )
        return code
    print(f"database: {url.shown}")
    print(f"version:  {', '.join(sorted(current)) or f'none recorded (no {version_table} table): untracked'}")
    print(f"head:     {', '.join(revisions.heads())}")
    if running is not None:
        print(f"running:  {running.describe()}")
    for entry in history[-HISTORY_SHOWN_AS_TEXT:]:
        print(f"history:  {entry.describe()}{_took(entry.duration_ms)}")
    for report in reports:
        print(f"  {report.revision}  {_VERDICTS[report.state]}")
        if report.state in ("partial", "conflicting"):
            for finding in report.findings:
                print(f"        {finding.describe()}")
    print(f"state:    {verdict}")
    return code


def _read_failure(exc: BaseException, stopped: str, failed: str, also: tuple[type[Exception], ...] = ()) -> str:
    """Why a read-only command could not tell, in one paragraph: stopped by a signal (``stopped``), refused or
    cut off by the server, a refusal of ours (or of ``also``), or, for anything else, that ``failed`` unexpectedly
    (a bug, or a database holding what no revision writes)."""
    import psycopg

    if isinstance(exc, KeyboardInterrupt):
        return f"{_stopped(exc)}; {stopped}"
    if isinstance(exc, psycopg.Error):
        return _database_refused(exc, reading=True)
    if isinstance(exc, (OutboundSchemaError, HistoryUnreadable, *also)):
        return str(exc)
    return f"{failed} failed unexpectedly ({type(exc).__name__}: {exc}); please report it"


def _report_status(args: argparse.Namespace) -> int:
    """``status``: on psycopg alone, as ``check`` runs; exit 2, with the reason, when it could not tell."""
    try:
        return _status(_existing_url(args), version_table=args.version_table, gate=args.check, fmt=args.format)
    except Exception as exc:  # whatever happens, exit 2 and, asked for JSON, print it (Ctrl-C: main's)
        message = _read_failure(exc, "nothing was changed", "status")
        print(f"outbound-schema: error: {message}", file=sys.stderr)
        if args.format == "json":
            print(json.dumps({"format": STATUS_FORMAT_VERSION, "state": "error", "error": message}))
        return 2  # could not tell


def _plan(args: argparse.Namespace) -> int:
    """``plan``: what ``upgrade`` would do, read-only; exit 0 nothing to decide (a database ``ahead`` among them:
    not planned), 1 decisions (``unknown`` among them: not planned), 2 could not plan."""
    from alembic.util import CommandError

    from outbound_schema.plan import FORMAT_VERSION, make_plan

    try:
        chosen = settings.resolve_run(vars(args))
        config_target = _existing_url(args)
        from outbound_schema.config import alembic_config

        _known_target(alembic_config(None), args.revision)
        plan = make_plan(config_target, args.revision, chosen)
    except (Exception, KeyboardInterrupt) as exc:  # whatever happens, exit 2 and, asked for JSON, print it
        message = " ".join(
            _read_failure(exc, "nothing was planned and nothing was changed", "the plan", (CommandError,)).split()
        )
        if args.format == "json":
            print(json.dumps({"format": FORMAT_VERSION, "state": "error", "error": message}))
        print(f"outbound-schema: could not plan: {message}", file=sys.stderr)
        return _stop_code(exc) if isinstance(exc, KeyboardInterrupt) else 2
    print(plan.to_json() if args.format == "json" else plan.to_text())
    return plan.exit_code()


def _took(duration_ms: int | None) -> str:
    return "" if duration_ms is None else f", in {duration_ms / 1000:.1f} s"


def _check(args: argparse.Namespace) -> int:
    """Exit 0 when nothing drifts (at head, behind, migrating or ahead), 1 on drift, 2 when it could not be checked.

    Runs on psycopg alone: neither Alembic nor SQLAlchemy is imported unless no URL is configured.
    """
    from outbound_schema import drift  # only here: `status` and the migrations do without it

    try:
        report = drift.check_database(_existing_url(args), args.version_table)
    except (Exception, KeyboardInterrupt) as exc:  # whatever happens, exit 2 and, asked for JSON, print it
        message = _read_failure(exc, "nothing was checked and nothing was changed", "the check")
        if args.format == "json":
            print(json.dumps({"format": drift.FORMAT_VERSION, "status": "error", "error": message}))
        print(f"outbound-schema: could not check: {message}", file=sys.stderr)
        return _stop_code(exc) if isinstance(exc, KeyboardInterrupt) else 2
    print(report.to_json() if args.format == "json" else report.to_text())
    return 1 if report.drift else 0


def _snapshot(args: argparse.Namespace) -> int:
    """Exit 0 when the files are (now) up to date; with --check, 1 when any is stale."""
    from outbound_schema.snapshot import regenerate

    outcome = regenerate(dsn.configured(args.database_url), check_only=args.check)
    verb = "stale" if args.check else "written"
    for path in outcome.written:
        print(f"{verb}: {path}")
    for path in outcome.removed:
        print(f"{'no revision for' if args.check else 'removed'}: {path}")
    if args.check and outcome.stale:
        print(f"The expected-schema files are out of date: run `{SNAPSHOT_COMMAND}` and commit the result.")
        return 1
    print(f"{len(outcome.unchanged)} file(s) up to date{'' if args.check else f', {len(outcome.written)} written'}")
    return 0


def _database_refused(exc: BaseException, *, reading: bool = False) -> str:
    """One paragraph for an error the server raised: what it said, and what follows from it."""
    original = getattr(exc, "orig", None) or exc
    detail = " ".join(str(original).split())
    sqlstate = str(getattr(original, "sqlstate", None) or "")
    consequence = "nothing was changed" if reading else "nothing of the revision that failed was recorded"
    if sqlstate == "42501":  # insufficient_privilege
        return (
            f"The database refused a statement: {detail}. Run as a role that may read the catalog, the "
            "outbound tables and the version table (SELECT privilege; pg_read_all_data will do for check and "
            f"status), and for upgrades own the tables; {consequence}."
        )
    if "pooling mode" in detail:  # PgBouncer: "transaction blocks not allowed in statement pooling mode"
        return (
            f"The database is reached through a connection pooler in statement pooling ({detail}), which runs "
            f"no transactions; {consequence}. Run outbound-schema through a direct connection to PostgreSQL or "
            "a pooler entry in session pooling (PgBouncer: pool_mode = session)."
        )
    ended = connection_lost(sqlstate, detail, consequence)
    if ended is not None:
        return ended
    if sqlstate.startswith("57P") or "connection" in type(original).__name__.lower():
        return (
            f"The connection to the database was lost or refused ({detail}); {consequence}. Check that the "
            "server is up and reachable, then run the command again."
        )
    return f"The database refused a statement ({detail}); {consequence}."


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, so that a caller capturing it gets the log too."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _Messages(logging.Formatter):
    """A progress message as it is; a warning or error led by its level in words."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno <= logging.INFO else f"{record.levelname.lower()}: {message}"


class _NoChatter(logging.Filter):
    """Alembic's notes on its own set-up, which say nothing about the database: shown with -v only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("alembic") and record.getMessage().startswith(("Context impl", "Will ")))


_QUIETER = {"alembic.runtime.plugins": logging.WARNING}  # "setup plugin ..." on import


def _configure_logging(command: str, verbosity: int) -> None:
    """Quiet by default: a report command shows its report, a migration one line per step; -v and -q
    move one level (-vv also shows each SQL statement)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(_Messages("%(message)s"))
        root.addHandler(handler)
    for old in [f for f in handler.filters if isinstance(f, _NoChatter)]:
        handler.removeFilter(old)
    if verbosity < 1:
        handler.addFilter(_NoChatter())
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    default = logging.WARNING if command in ("status", "check", "snapshot", "plan") else logging.INFO
    level = min(logging.CRITICAL, max(logging.DEBUG, default - 10 * verbosity))
    for name in ("alembic", "outbound_schema"):
        logging.getLogger(name).setLevel(level)
    for name, quieter in _QUIETER.items():
        logging.getLogger(name).setLevel(max(level, quieter))
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)


class Terminated(KeyboardInterrupt):
    """SIGTERM, which Kubernetes and most process managers send to stop a program: taken as Ctrl-C is, so that
    a run stops the same clean way (a revision running is rolled back, nothing is half-recorded)."""


def _terminate(_signum: int, _frame: object) -> None:
    raise Terminated


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while the command runs. A handler of our own also makes SIGTERM
    count as PID 1 of a container without an init, where the kernel ignores signals left at their default."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a host calling main() from another keeps its own
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(exc: BaseException) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"


def _stop_code(exc: BaseException) -> int:
    """128 + the signal, as a shell reports a program the signal ended: 143 for SIGTERM, 130 for SIGINT."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.command, args.verbose - args.quiet)
    try:
        with _sigterm_as_interrupt():
            if args.command == "check":
                return _check(args)
            if args.command == "status":
                return _report_status(args)
            if args.command == "plan":
                return _plan(args)
            return _change_or_report(args)
    except KeyboardInterrupt as exc:
        _interrupted(args, _stopped(exc))
        return _stop_code(exc)


def _interrupted(args: argparse.Namespace, stopped: str) -> None:
    if args.command in ("status", "snapshot"):
        said = "nothing was changed."
    elif getattr(args, "sql", False):
        said = "the script written to standard output is incomplete: do not run it."
    else:
        said = (
            "a revision that was running was not recorded and is completed by the next run; nothing else was "
            "left half-done."
        )
    print(f"outbound-schema: {stopped}; {said}", file=sys.stderr)
    if args.command == "status" and args.format == "json":  # asked for JSON: it always comes
        error = f"{stopped}; {said}"
        print(json.dumps({"format": STATUS_FORMAT_VERSION, "state": "error", "error": error}))


def _change_or_report(args: argparse.Namespace) -> int:
    from alembic import command
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from outbound_schema.config import SETTINGS_ATTRIBUTE, alembic_config

    try:
        if args.command == "snapshot":
            return _snapshot(args)
        chosen = settings.resolve_run(vars(args))  # a refused value stops here, before anything connects
        url = _url(args, offline=args.sql)
        config = alembic_config(url)
        config.attributes[SETTINGS_ATTRIBUTE] = chosen
        _known_target(config, args.revision)
        if args.command == "upgrade":
            command.upgrade(config, args.revision, sql=args.sql)
        else:
            command.downgrade(config, args.revision, sql=args.sql)
        return 0
    except (OutboundSchemaError, SQLAlchemyError, CommandError, RevisionError, AssertionError) as exc:
        stop = next((cause for cause in _chain(exc) if isinstance(cause, KeyboardInterrupt)), None)
        if stop is not None:
            raise type(stop)() from None  # Ctrl-C or SIGTERM, and the connection broke under it
        reading = args.command == "snapshot"
        if isinstance(exc, OutboundSchemaError):
            message = str(exc)
        elif isinstance(exc, SQLAlchemyError):
            original = next((c for c in _chain(exc) if isinstance(c, DBAPIError)), None)
            message = _database_refused(original or exc, reading=reading)
        else:  # Alembic could not resolve a revision against this database
            detail = " ".join(str(exc).split()) or type(exc).__name__
            message = (
                f"Alembic could not take the database to '{getattr(args, 'revision', '')}' from where it is "
                f"({detail}); nothing was changed. See where it is with `outbound-schema status`, and give a "
                "revision, head, base, or a step that exists from there."
            )
        print(f"outbound-schema: error: {message}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, OutboundSchemaError) else (2 if reading else 1)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or while handling."""
    found: list[BaseException] = []
    while exc is not None and exc not in found:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return found


_RELATIVE = re.compile(r"^(?P<base>.*?)(?P<step>[+-]\d+)$")


def _target_parts(target: str) -> list[str]:
    """The revisions ``target`` names (``a:b`` both; ``head-1`` its base; a bare step, -1 or +1, none)."""
    parts = []
    for whole in target.split(":"):
        relative = _RELATIVE.match(whole)
        part = relative.group("base") if relative else whole  # a step (-1, head+1) counts from where the database is
        if not (relative and not part):
            parts.append(part)
    return parts


def _plainly_known(config: Config, target: str) -> bool:
    """Whether every revision ``target`` names is plainly there: a revision id of the script location's
    history, base, heads, or head with one head. Read from the files' source (``History``), where Alembic
    would load every revision file a second time for the command; anything else Alembic resolves."""
    try:
        history = History.read(Path(config.get_main_option("script_location") or ""))
    except HistoryUnreadable:
        return False
    plain = {"base", "heads", *history.revisions, *(("head",) if len(history.heads()) == 1 else ())}
    return all(part in plain for part in _target_parts(target))


def _known_target(config: Config, target: str) -> None:
    """Refuse a revision this library does not have before anything connects (nothing is written)."""
    if _plainly_known(config, target):
        return
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    script = ScriptDirectory.from_config(config)
    for part in _target_parts(target):
        try:
            if not part:
                raise CommandError("empty")
            script.get_revisions(part)
        except (CommandError, RevisionError):
            known = [rev.revision for rev in reversed(list(script.walk_revisions()))]
            raise OutboundSchemaError(
                f"There is no revision '{part}' in this version of outbound-schema, so nothing was done. Give one "
                f"of {', '.join(known)} (head is {', '.join(script.get_heads())}), or head, base, or a step such as "
                "-1 or +1."
            ) from None


if __name__ == "__main__":
    sys.exit(main())
