"""Every setting of outbound-schema, declared once.

Each :class:`Setting` below names its command-line flag, its ``-x key=value`` for ``alembic`` runs, its
environment variable, its default, how a value is read and which commands it applies to. From this one
table come the command line's options (``outbound_schema.cli``), the reading of ``-x`` and of the
environment (``outbound_schema.environment``, ``alembic/env.py``), the names the error messages give,
and the reference ``docs/settings.md``, regenerated with::

    python -m outbound_schema.settings > docs/settings.md

Precedence, for every setting: the flag (or, under ``alembic``, the ``-x`` key), else the environment
variable, else the default. An empty value counts as not given. A value that cannot be read stops the
command before anything connects, in one paragraph naming the setting and where the value came from.

Import-light on purpose (the standard library only): ``check`` imports it and starts in well under a second.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outbound_schema.errors import OutboundSchemaError

#: The commands of ``outbound-schema``, and ``alembic`` for a run through Alembic's own command line (our
#: ``alembic.ini``, or a host's whose env.py calls ``outbound_schema.environment.run_migrations``).
MIGRATE = ("upgrade", "downgrade", "alembic")
EVERY_COMMAND = ("upgrade", "downgrade", "status", "check", "plan", "snapshot", "alembic")
#: The settings ``plan`` reads to say how long a statement may wait: those of the upgrade it plans.
PLANNED = (*MIGRATE, "plan")

#: PostgreSQL's units for time settings (its "Parameter Names and Values"), case as it takes them.
_DURATION = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(us|ms|s|min|h|d)?\s*$")  # 1e3 too
_UNIT_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_MAX_MS = 2_147_483_647  # PostgreSQL's timeouts are ints of milliseconds
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _milliseconds(raw: str, bare_unit: str) -> float | None:
    """``raw`` in milliseconds, a bare number being in ``bare_unit``; None if it is not a duration."""
    match = _DURATION.match(raw)
    if not match:
        return None
    return float(match.group(1)) * _UNIT_MS[match.group(2) or bare_unit]


# How values are read. Each takes the raw text and returns the value, or the rest of a sentence that starts
# "The <setting> '<raw>' (from <source>)".


class RefusedValueError(ValueError):
    """A value a reader refuses; its text ends the sentence naming the setting and the source."""


def timeout_ms(raw: str) -> int:
    """A PostgreSQL timeout: milliseconds, or a number with a unit (``250ms``, ``30s``, ``5min``, ``1h``)."""
    found = _milliseconds(raw, "ms")
    if found is None:
        raise RefusedValueError(
            "is not a duration. Give milliseconds, or a number with one of PostgreSQL's units us, ms, s, min, h "
            "or d, such as 250ms, 30s, 5min or 1h."
        )
    milliseconds = round(found)
    if milliseconds > _MAX_MS:
        raise RefusedValueError(
            "is longer than PostgreSQL allows for a timeout (about 24 days); give a shorter one, such as 30min or 1h."
        )
    if milliseconds < 1:
        raise RefusedValueError(
            "is shorter than a millisecond. Every DDL statement runs under a limit: give a positive duration "
            "such as 100ms, 2s or 30min."
        )
    return milliseconds


def wait_seconds(raw: str) -> float:
    """A wait: seconds, or a number with a unit (``10min``, ``1h``); zero is allowed."""
    found = _milliseconds(raw, "s")
    if found is None or not math.isfinite(found):
        raise RefusedValueError("is not a duration. Give seconds, such as 600, or a duration such as 10min or 1h.")
    return found / 1000


def interval_seconds(raw: str) -> float:
    """A reporting interval: seconds, or a number with a unit (``500ms``), more than 0 and at most an hour."""
    found = _milliseconds(raw, "s")
    if found is None or not 0 < found <= 3_600_000:
        raise RefusedValueError("is not a number of seconds between 0 and 3600; give one such as 5 or 0.5 (or 500ms).")
    return found / 1000


def count(raw: str) -> int:
    """A whole number, zero or more."""
    if not raw.strip().isdigit():
        raise RefusedValueError("is not a whole number of retries, 0 or more; give one such as 10.")
    return int(raw)


def boolean(raw: str) -> bool:
    """``true``/``false`` (also ``yes``/``no``, ``on``/``off``, ``1``/``0``), in any case."""
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise RefusedValueError("is neither true nor false; give true or false (yes/no, on/off and 1/0 work too).")


POOLING_MODES = ("session", "transaction", "statement", "none")


def pooling_mode(raw: str) -> str:
    """The pooling mode of a connection pooler in between: one of ``POOLING_MODES``."""
    word = raw.strip().lower()
    if word not in POOLING_MODES:
        raise RefusedValueError(f"is not a pooling mode; give one of {', '.join(POOLING_MODES)}.")
    return word


def text(raw: str) -> str:
    """Taken as it is (a URL, a folder): read and checked where it is used."""
    return raw


def migrations_folder(raw: str) -> str:
    """A folder of migrations as Alembic runs them: one holding ``env.py`` and ``versions/``."""
    folder = Path(raw).expanduser()
    if not (folder / "env.py").is_file() or not (folder / "versions").is_dir():
        raise RefusedValueError(
            "is not a folder of migrations: it must hold env.py, versions/ and schema/, as a copy of the "
            "installed ones does. Name such a folder, or unset it to use the migrations installed with the package."
        )
    return str(folder)


@dataclass(frozen=True)
class Setting:
    """One setting: where it may come from, its default, how it is read, what it is for."""

    name: str  #: in messages and in ``docs/settings.md``: "lock timeout"
    flag: str | None  #: the command line's option, ``--lock-timeout``; None: none
    x_key: str | None  #: ``alembic -x <key>=<value>``; None: none
    env: str | None  #: the environment variable; None: none
    default: Any  #: the value when none is given, as the reader returns it
    default_text: str  #: the default as the documentation shows it
    read: Callable[[str], Any]  #: the raw text to a value, raising :class:`RefusedValueError`
    value_text: str  #: what a value looks like, for the documentation
    metavar: str | None  #: the flag's argument in ``--help``; None: a switch (sets it to true)
    help: str  #: one sentence, for ``--help`` and the documentation
    commands: tuple[str, ...]  #: where it applies: ``outbound-schema`` commands, and ``alembic``
    detail: str = ""  #: more, for the documentation only

    @property
    def dest(self) -> str:
        """The attribute the command line's parser stores the flag's value in."""
        return (self.flag or self.name).lstrip("-").replace("-", "_")

    def parse(self, raw: str, source: str) -> Any:
        """``raw`` read as this setting's value, or one paragraph naming the setting and ``source``."""
        try:
            return self.read(raw)
        except RefusedValueError as refused:
            raise OutboundSchemaError(f"The {self.name} '{raw}' (from {source}) {refused}") from None

    def resolve(
        self,
        explicit: str | None = None,
        *,
        x_args: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Any:
        """The value: ``explicit`` (its flag), else its ``-x`` key in ``x_args``, else its environment
        variable, else the default. An empty value counts as not given."""
        environ = os.environ if environ is None else environ
        found = self.given(explicit, x_args=x_args, environ=environ)
        return self.default if found is None else self.parse(*found)

    def given(
        self, explicit: str | None, *, x_args: Mapping[str, str] | None, environ: Mapping[str, str]
    ) -> tuple[str, str] | None:
        """The raw value and where it came from, by precedence; None when it is not given at all."""
        if explicit not in (None, ""):
            return str(explicit), self.flag or "the caller"
        raw = self.from_x(x_args or {})
        if raw:
            return raw, f"-x {self.x_key}="
        raw = environ.get(self.env) if self.env else None
        if raw:
            return raw, self.env or ""
        return None

    def from_x(self, x_args: Mapping[str, str]) -> str | None:
        """Its raw value among Alembic's ``-x`` arguments, if given (empty counts as not given)."""
        return (x_args.get(self.x_key) if self.x_key else None) or None

    def how(self, value: str) -> str:
        """How to give it ``value``: ``--pooler session, -x pooler=session or OUTBOUND_SCHEMA_POOLER=session``."""
        ways = [
            f"{self.flag} {value}" if self.flag else None,
            f"-x {self.x_key}={value}" if self.x_key else None,
            f"{self.env}={value}" if self.env else None,
        ]
        names = [w for w in ways if w]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"

    def sources(self) -> str:
        """Its flag, ``-x`` key and environment variable, as a message names them: ``--lock-wait, -x
        lock_wait= or OUTBOUND_SCHEMA_LOCK_WAIT``."""
        names = [n for n in (self.flag, f"-x {self.x_key}=" if self.x_key else None, self.env) if n]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# The table. The order is the documentation's and ``--help``'s.

DATABASE_URL = Setting(
    name="database URL",
    flag="--database-url",
    x_key="url",
    env="DATABASE_URL",
    default=None,
    default_text="the embedded PostgreSQL",
    read=text,
    value_text="`postgresql://` or `postgresql+psycopg://` URL, or a libpq conninfo",
    metavar="URL",
    help="the database to work on",
    commands=EVERY_COMMAND,
    detail="After it, libpq's own variables (PGHOST, PGDATABASE, PGSERVICE, ...), as psql takes them; read by "
    "libpq (services, .pgpass, several hosts, socket folders: see docs/operations.md). With none of "
    "them, upgrade and downgrade use an embedded PostgreSQL (see the embedded folder), status and "
    "check the one an upgrade made. Prefer the environment variable: a URL on the command line shows in the "
    "process list and the shell history. Under alembic, sqlalchemy.url in the Alembic configuration comes "
    "after -x url= and before the environment variable. Passwords are never printed.",
)
LOCK_WAIT = Setting(
    name="migration lock wait",
    flag="--lock-wait",
    x_key="lock_wait",
    env="OUTBOUND_SCHEMA_LOCK_WAIT",
    default=600.0,
    default_text="600s",
    read=wait_seconds,
    value_text="seconds, or a duration (`10min`, `1h`); 0: do not wait",
    metavar="DURATION",
    help="how long to wait for another migration of the same database before giving up, changing nothing",
    commands=MIGRATE,
)
LOCK_TIMEOUT = Setting(
    name="lock timeout",
    flag="--lock-timeout",
    x_key="lock_timeout",
    env="OUTBOUND_SCHEMA_LOCK_TIMEOUT",
    default=100,
    default_text="100ms",
    read=timeout_ms,
    value_text="milliseconds, or a duration (`250ms`, `2s`)",
    metavar="DURATION",
    help="how long blocking DDL may wait for its lock before giving up and retrying (SET LOCAL lock_timeout)",
    commands=PLANNED,
)
LOCK_WAIT_TOTAL = Setting(
    name="lock wait total",
    flag="--lock-wait-total",
    x_key="lock_wait_total",
    env="OUTBOUND_SCHEMA_LOCK_WAIT_TOTAL",
    default=300.0,
    default_text="5min",
    read=wait_seconds,
    value_text="seconds, or a duration (`5min`, `90s`); 0: one attempt only",
    metavar="DURATION",
    help="how long, in all, blocking DDL keeps trying for its lock, in attempts of at most the lock timeout "
    "each with back-off between them, before the run gives up",
    commands=PLANNED,
    detail="It counts for each statement on its own. Between attempts the run waits 0.5 s doubling to 8 s "
    "(with jitter); the last attempt starts by the end of the total, so a statement gives up after at most "
    "the total plus one lock timeout. However long the total, no attempt makes the dialer's workers queue "
    "behind it for longer than the lock timeout. With the lock retries also given, whichever runs out first "
    "ends the attempts.",
)
LOCK_RETRIES = Setting(
    name="lock retries",
    flag="--lock-retries",
    x_key="lock_retries",
    env="OUTBOUND_SCHEMA_LOCK_RETRIES",
    default=None,
    default_text="no limit",
    read=count,
    value_text="a whole number, 0 or more",
    metavar="N",
    help="at most how many times a statement is retried after a lock timeout, within the lock wait total "
    "(whichever runs out first)",
    commands=PLANNED,
    detail="Not given, only the lock wait total bounds the attempts.",
)
STATEMENT_TIMEOUT = Setting(
    name="statement timeout",
    flag="--statement-timeout",
    x_key="statement_timeout",
    env="OUTBOUND_SCHEMA_STATEMENT_TIMEOUT",
    default=30 * 60_000,
    default_text="30min",
    read=timeout_ms,
    value_text="milliseconds, or a duration (`30min`, `1h`)",
    metavar="DURATION",
    help="the limit for any one DDL statement, index builds included (SET LOCAL statement_timeout)",
    commands=PLANNED,
)
ALLOW_DATA_LOSS = Setting(
    name="allow data loss",
    flag="--allow-data-loss",
    x_key="allow_data_loss",
    env="OUTBOUND_SCHEMA_ALLOW_DATA_LOSS",
    default=False,
    default_text="false",
    read=boolean,
    value_text="true or false (the flag: true)",
    metavar=None,
    help="let a downgrade drop columns and tables even when they hold data (refused otherwise)",
    commands=("downgrade", "alembic"),
)
PROGRESS_INTERVAL = Setting(
    name="progress interval",
    flag="--progress-interval",
    x_key="progress_interval",
    env="OUTBOUND_SCHEMA_PROGRESS_INTERVAL",
    default=5.0,
    default_text="5s",
    read=interval_seconds,
    value_text="seconds (more than 0, at most 3600), or a duration (`500ms`)",
    metavar="DURATION",
    help="after how long a running statement reports what it is doing, and how often",
    commands=MIGRATE,
)
POOLER = Setting(
    name="pooler",
    flag="--pooler",
    x_key="pooler",
    env="OUTBOUND_SCHEMA_POOLER",
    default="none",
    default_text="none",
    read=pooling_mode,
    value_text=", ".join(f"`{mode}`" for mode in POOLING_MODES),
    metavar="MODE",
    help="the pooling mode of a connection pooler between us and PostgreSQL; session lets a migration run "
    "through it, any other refuses one found in between",
    commands=MIGRATE,
    detail="Declare session for a PgBouncer entry with pool_mode = session. With transaction, statement or none, "
    "a pooler found in between (the server process serving the connection is not the one it was opened "
    "with) is refused before anything is locked, set or changed (exit 2). A session declared where the "
    "pooler hands transactions to other server connections after all stops the run at its next statement, "
    "the revision in progress not recorded.",
)
EMBEDDED_DIR = Setting(
    name="embedded folder",
    flag=None,
    x_key=None,
    env="OUTBOUND_SCHEMA_EMBEDDED_DIR",
    default=None,
    default_text="`./.outbound-schema/pgdata`",
    read=text,
    value_text="a folder",
    metavar=None,
    help="where the embedded PostgreSQL keeps its data, used when no database URL is given",
    commands=("upgrade", "downgrade", "status", "check", "plan", "alembic"),
)
SCRIPT_LOCATION = Setting(
    name="script location",
    flag=None,
    x_key=None,
    env="OUTBOUND_SCHEMA_SCRIPT_LOCATION",
    default=None,
    default_text="the migrations installed with the package",
    read=migrations_folder,
    value_text="a folder holding `env.py`, `versions/` and `schema/`",
    metavar=None,
    help="another folder of migrations to use instead of the installed ones (a copy with a revision under trial)",
    commands=("upgrade", "downgrade", "status", "check", "plan", "snapshot"),
)

SETTINGS: tuple[Setting, ...] = (
    DATABASE_URL,
    LOCK_WAIT,
    LOCK_TIMEOUT,
    LOCK_WAIT_TOTAL,
    LOCK_RETRIES,
    STATEMENT_TIMEOUT,
    ALLOW_DATA_LOSS,
    PROGRESS_INTERVAL,
    POOLER,
    EMBEDDED_DIR,
    SCRIPT_LOCATION,
)
#: The settings of a migration run, resolved up front by the command line and handed to the run.
RUN_SETTINGS: tuple[Setting, ...] = (
    LOCK_WAIT,
    LOCK_TIMEOUT,
    LOCK_WAIT_TOTAL,
    LOCK_RETRIES,
    STATEMENT_TIMEOUT,
    ALLOW_DATA_LOSS,
    PROGRESS_INTERVAL,
    POOLER,
)


def add_flags(parser: Any, declared: Iterable[Setting]) -> None:
    """Add the flags of the ``declared`` settings to ``parser`` (an ``argparse.ArgumentParser``), each
    storing the raw text: :func:`resolve_run` reads it, or the environment when it is not given."""
    for setting in declared:
        if not setting.flag:
            continue
        also = ", ".join(n for n in (f"-x {setting.x_key}=" if setting.x_key else None, setting.env) if n)
        help_ = f"{setting.help} (default {setting.default_text.strip('`')}; also {also})"
        if setting.metavar is None:
            parser.add_argument(setting.flag, dest=setting.dest, action="store_const", const="true", help=help_)
        else:
            parser.add_argument(setting.flag, dest=setting.dest, metavar=setting.metavar, help=help_)


def resolve_run(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every setting of a migration run by its ``dest``: from its flag in ``flags`` (a parsed command
    line's ``vars``), else the environment, else the default. A refused value raises before anything
    connects."""
    return {s.dest: s.resolve(flags.get(s.dest), environ=environ) for s in RUN_SETTINGS}


#: How like one of our ``-x`` keys a key must be (difflib's ratio) to be taken for a misspelling of it.
_MISSPELLING = 0.75
_KEY_LIKE = re.compile(r"[A-Za-z_][\w.\-]{0,62}")


def check_x_arguments(given: Sequence[str], *, all_ours: bool) -> None:
    """Refuse Alembic ``-x`` arguments that would otherwise be ignored without a word, before anything
    connects: a key of ours with no ``=value``, and a key like one of ours (``ur=`` for ``url=``,
    ``lock_timout=``: the run would go on with another database, or the default). With ``all_ours`` (our own
    env.py, where every ``-x`` key is ours) any other argument too; a host application's env.py may read keys
    of its own, so there only the likely misspellings are refused. A value is never shown: it may hold a
    password."""
    import difflib  # only where -x is read: a run through Alembic

    ours = [s.x_key for s in SETTINGS if s.x_key]
    listed = f"Nothing was changed. The -x keys are {', '.join(f'{key}=' for key in ours)} ({DOCS_PATH})."
    for argument in given:
        key, equals, _ = argument.partition("=")
        key = key.strip()
        if key in ours:
            if not equals:
                raise OutboundSchemaError(
                    f"Alembic's -x argument '{key}' gives no value: write -x {key}=VALUE. {listed}"
                )
            continue
        shown = key if _KEY_LIKE.fullmatch(key) else None
        close = difflib.get_close_matches(key.lower(), ours, n=1, cutoff=_MISSPELLING) if shown else []
        if close:
            raise OutboundSchemaError(
                f"Alembic's -x argument '{shown}=' names no setting of outbound-schema: did you mean "
                f"-x {close[0]}=? Left as it is, the run would go on without it. {listed}"
            )
        if all_ours:
            what = f"'{shown}{'=' if equals else ''}'" if shown else "(not shown: it may hold a password)"
            raise OutboundSchemaError(
                f"Alembic's -x argument {what} names no setting of outbound-schema; each is KEY=VALUE, KEY one of "
                f"ours. {listed}"
            )


def handed_or_resolved(setting: Setting, handed: Mapping[str, Any] | None, x_args: Mapping[str, str]) -> Any:
    """A setting of a run through Alembic: handed over resolved (by our command line, in ``handed``), else
    from ``-x``, else the environment, else the default."""
    if handed and setting.dest in handed:
        return handed[setting.dest]
    return setting.resolve(x_args=x_args)


# The reference: docs/settings.md.

DOCS_PATH = "docs/settings.md"
REGENERATE = f"python -m outbound_schema.settings > {DOCS_PATH}"


def _code(text_: str | None) -> str:
    return f"`{text_}`" if text_ else "—"


def markdown() -> str:
    """``docs/settings.md``: every setting, from the table."""
    lines = [
        "# Settings",
        "",
        f"<!-- Generated from outbound_schema/settings.py: edit the table there, then run `{REGENERATE}`. "
        "The test suite fails while this file is stale. -->",
        "",
        "Every setting of `outbound-schema` and of `alembic` runs with our migrations, in one table. Each is "
        "given, in order of precedence, by:",
        "",
        "1. its **flag** on the `outbound-schema` command line (`outbound-schema upgrade --lock-timeout 250ms`), "
        "or, under `alembic`, its **`-x` key** (`alembic -x lock_timeout=250ms upgrade head`; the same keys "
        "in a host application's Alembic whose `env.py` runs `outbound_schema.environment.run_migrations`);",
        "2. else its **environment variable** (`OUTBOUND_SCHEMA_LOCK_TIMEOUT=250ms`);",
        "3. else its **default**.",
        "",
        "An empty value counts as not given. Durations take PostgreSQL's units: `us`, `ms`, `s`, `min`, `h`, "
        "`d` (`250ms`, `30s`, `5min`, `1h`); a bare number is in the unit the setting names. A value that "
        "cannot be read stops the command before it connects, with one paragraph naming the setting and "
        "where the value came from (`The lock timeout 'soon' (from --lock-timeout) is not a duration. ...`); "
        "nothing is changed.",
        "",
        "An `-x` argument that would be ignored stops the run the same way: a key of ours with no `=value`, a "
        "key like one of ours (`ur=` for `url=`, `lock_timout=`: the run would otherwise go on with another "
        "database, or the default), and, with our own `env.py`, any key that is not ours. A host "
        "application's `env.py` may read keys of its own: there only the likely misspellings are refused.",
        "",
        "| setting | flag | `-x` key | environment variable | default | value | applies to |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        flag = _code(s.flag) if s.metavar is None or not s.flag else f"`{s.flag} {s.metavar}`"
        x_key = _code(f"{s.x_key}=" if s.x_key else None)
        lines.append(
            f"| {s.name} | {flag} | {x_key} | {_code(s.env)} | {s.default_text} | {s.value_text} | "
            f"{', '.join(s.commands)} |"
        )
    lines += ["", "## What each one does", ""]
    for s in SETTINGS:
        lines += [f"**{s.name}** ({s.sources()}): {s.help}.{' ' + s.detail if s.detail else ''}", ""]
    lines += [
        "`applies to` names the `outbound-schema` commands that read the setting; `alembic` means `alembic` "
        "runs with our `alembic.ini` or a host's `env.py` that calls `run_migrations`. The command line's "
        "other options (`--sql`, `--version-table`, `--format`, `--check`, `-v`, `-q`) are in "
        "`outbound-schema COMMAND --help`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown())
