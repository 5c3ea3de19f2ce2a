"""Every setting is declared once (outbound_schema/settings.py): its flag, -x key and environment variable
reach it with the documented precedence, a bad value names the setting and where it came from, and
docs/settings.md is the table's."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from outbound_schema import settings
from outbound_schema.cli import _parser
from outbound_schema.config import LOCK_KEY
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.settings import RUN_SETTINGS, SETTINGS, Setting, timeout_ms, wait_seconds
from tests.helpers import REPO, alembic_here, cli_here, connected, plain, tables, version

UNREACHABLE = "postgresql://u@127.0.0.1:1/db"

#: For each setting of a run: two good raw values and what they read as, and one bad raw value.
SAMPLES: dict[str, tuple[tuple[str, Any], tuple[str, Any], str]] = {
    "lock_wait": (("10min", 600.0), ("30", 30.0), "soon"),
    "lock_timeout": (("250ms", 250), ("2s", 2000), "soon"),
    "lock_wait_total": (("5min", 300.0), ("90", 90.0), "a while"),
    "lock_retries": (("3", 3), ("20", 20), "many"),
    "statement_timeout": (("1h", 3_600_000), ("45s", 45_000), "0"),
    "allow_data_loss": (("true", True), ("off", False), "maybe"),
    "progress_interval": (("0.5", 0.5), ("2s", 2.0), "0"),
    "pooler": (("session", "session"), ("transaction", "transaction"), "sesion"),
}


def test_every_setting_of_a_run_has_samples() -> None:
    assert set(SAMPLES) == {s.dest for s in RUN_SETTINGS}


def test_the_reference_is_fresh() -> None:
    written = (REPO / settings.DOCS_PATH).read_text() if (REPO / settings.DOCS_PATH).is_file() else ""
    assert written == settings.markdown(), (
        f"{settings.DOCS_PATH} is out of date with outbound_schema/settings.py: regenerate it with "
        f"`{settings.REGENERATE}` and commit the result."
    )


def _subparser(command: str) -> argparse.ArgumentParser:
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    chosen: argparse.ArgumentParser = action.choices[command]
    return chosen


#: Options of the command line that are not settings: how to run, what to show.
NOT_SETTINGS = {"-h", "--help", "-v", "--verbose", "-q", "--quiet", "--sql", "--version-table", "--format", "--check"}


@pytest.mark.parametrize("command", ["upgrade", "downgrade", "status", "check", "snapshot"])
def test_the_command_lines_flags_are_the_tables(command: str) -> None:
    offered = set(_subparser(command)._option_string_actions) - NOT_SETTINGS
    assert offered == {s.flag for s in SETTINGS if s.flag and command in s.commands}


def test_no_setting_is_spelled_outside_the_table() -> None:
    """No environment variable of ours and no ``-x`` key is written anywhere but the table."""
    sources = [*(REPO / "outbound_schema").glob("*.py"), REPO / "alembic" / "env.py"]
    for path in sources:
        if path.name == "settings.py":
            continue
        code = path.read_text()
        assert not re.findall(r"OUTBOUND_SCHEMA_(?!TEST_)\w+", code), path
        for found in re.finditer(r"get_x_argument\(as_dictionary=True\)(.{0,12})", code):
            assert not found.group(1).startswith(".get("), f"{path}: an -x key read outside the table"


def _cli_flags(setting: Setting, raw: str) -> dict[str, Any]:
    command = "downgrade" if "upgrade" not in setting.commands else "upgrade"
    args = [command, *(["base"] if command == "downgrade" else [])]
    args += [setting.flag or ""] if setting.metavar is None else [setting.flag or "", raw]
    return vars(_parser().parse_args(args))


class _Context:
    """Just what ``environment.setting`` reads of ``alembic.context``."""

    def __init__(self, x_args: dict[str, str], handed: dict[str, Any] | None = None) -> None:
        from alembic.config import Config

        from outbound_schema.config import SETTINGS_ATTRIBUTE

        self.config = Config()
        if handed is not None:
            self.config.attributes[SETTINGS_ATTRIBUTE] = handed
        self.x_args = x_args

    def get_x_argument(self, *, as_dictionary: bool) -> dict[str, str]:
        assert as_dictionary
        return self.x_args


@pytest.mark.parametrize("setting", RUN_SETTINGS, ids=lambda s: s.dest)
def test_precedence(setting: Setting, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flag (or -x) over the environment variable over the default; an empty value counts as not given."""
    from outbound_schema.environment import setting as of_the_run

    (raw_a, a), (raw_b, b), _bad = SAMPLES[setting.dest]
    assert setting.env and setting.x_key and setting.flag
    if setting.metavar is None:  # a switch: the flag says true
        raw_a, a = "true", True
    for name in (s.env for s in RUN_SETTINGS if s.env):
        monkeypatch.delenv(name, raising=False)
    # The command line: flag, else environment, else default.
    assert settings.resolve_run(_cli_flags(setting, raw_a), {setting.env: raw_b})[setting.dest] == a
    assert settings.resolve_run({}, {setting.env: raw_b})[setting.dest] == b
    assert settings.resolve_run({}, {setting.env: ""})[setting.dest] == setting.default
    assert settings.resolve_run({}, {})[setting.dest] == setting.default
    # alembic: handed over by our command line, else -x, else environment, else default.
    monkeypatch.setenv(setting.env, raw_b)
    assert of_the_run(_Context({setting.x_key: raw_a}), setting) == a
    assert of_the_run(_Context({setting.x_key: ""}), setting) == b
    assert of_the_run(_Context({}), setting) == b
    assert of_the_run(_Context({setting.x_key: raw_b}, handed={setting.dest: a}), setting) == a
    monkeypatch.delenv(setting.env)
    assert of_the_run(_Context({}), setting) == setting.default


@pytest.mark.parametrize("setting", RUN_SETTINGS, ids=lambda s: s.dest)
def test_a_bad_value_names_the_setting_and_its_source(setting: Setting) -> None:
    bad = SAMPLES[setting.dest][2]
    assert setting.env and setting.x_key and setting.flag
    attempts = [
        (lambda: setting.resolve(bad, environ={}), setting.flag),
        (lambda: setting.resolve(x_args={setting.x_key or "": bad}, environ={}), f"-x {setting.x_key}="),
        (lambda: setting.resolve(environ={setting.env or "": bad}), setting.env),
    ]
    for attempt, source in attempts:
        with pytest.raises(OutboundSchemaError) as refused:
            attempt()
        assert str(refused.value).startswith(f"The {setting.name} '{bad}' (from {source}) ")


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--lock-timeout", "soon"), {}, "The lock timeout 'soon' (from --lock-timeout) is not a duration"),
        ((), {"OUTBOUND_SCHEMA_LOCK_RETRIES": "many"}, "(from OUTBOUND_SCHEMA_LOCK_RETRIES)"),
        (("--pooler", "sesion"), {}, "The pooler 'sesion' (from --pooler) is not a pooling mode"),
        ((), {"OUTBOUND_SCHEMA_PROGRESS_INTERVAL": "0"}, "(from OUTBOUND_SCHEMA_PROGRESS_INTERVAL)"),
    ],
)
def test_the_command_line_refuses_a_bad_value_before_connecting(
    args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    done = cli_here("upgrade", *args, DATABASE_URL=UNREACHABLE, **env)
    assert done.returncode == 1 and named in done.stderr, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "connection" not in done.stderr


def test_a_negative_count_of_retries_is_refused_as_one() -> None:
    with pytest.raises(OutboundSchemaError) as refused:
        settings.LOCK_RETRIES.resolve("-3", environ={})
    assert str(refused.value) == (
        "The lock retries '-3' (from --lock-retries) is not a whole number of retries, 0 or more; give one such as 10."
    )


@pytest.mark.parametrize("command", [("upgrade", "--sql"), ("status",), ("check",), ("plan",), ("snapshot", "--check")])
def test_a_script_location_that_holds_no_migrations_is_named(command: tuple[str, ...], tmp_path: Path) -> None:
    """Before anything connects: the setting, where its value came from, and what the folder must hold."""
    (tmp_path / "versions").mkdir()  # no env.py
    for folder in (tmp_path / "missing", tmp_path):
        done = cli_here(*command, DATABASE_URL=UNREACHABLE, OUTBOUND_SCHEMA_SCRIPT_LOCATION=str(folder))
        said = done.stderr.strip()
        assert done.returncode != 0 and said.count("\n") == 0, said
        assert f"The script location '{folder}' (from OUTBOUND_SCHEMA_SCRIPT_LOCATION) is not a folder of" in said
        assert "Traceback" not in said and "alembic init" not in said and "connect" not in said


@pytest.mark.parametrize("name", ["", " ", "x" * 64])
def test_a_version_table_that_is_no_table_name_is_refused(name: str) -> None:
    done = cli_here("check", "--version-table", name, DATABASE_URL=UNREACHABLE)
    assert done.returncode == 2 and "is not a table name: give one of 1 to 63 bytes" in done.stderr, done.stderr
    assert "connect" not in done.stderr


def test_alembic_refuses_a_bad_x_value() -> None:
    done = alembic_here("-x", "statement_timeout=40d", "upgrade", "head", "--sql")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "The statement timeout '40d' (from -x statement_timeout=) is longer than" in done.stderr


def test_alembic_refuses_an_x_argument_it_would_ignore(host_db: URL) -> None:
    """With our env.py every -x key is ours. A misspelled key (the run would have gone on with DATABASE_URL's
    database, or a default), a key of ours with no value, a key that is not ours, an argument that is no
    KEY=VALUE: each is refused before anything connects, its value never shown, and the database
    DATABASE_URL names is left as it was."""
    secret = "S3cretPW"
    before = tables(host_db)
    for argument, says in [
        (
            f"ur=postgresql://u:{secret}@nowhere/other",
            "'ur=' names no setting of outbound-schema: did you mean -x url=?",
        ),
        ("lock_timout=5s", "did you mean -x lock_timeout=?"),
        ("LOCK_TIMEOUT=5s", "did you mean -x lock_timeout=?"),
        ("lock_timeout", "'lock_timeout' gives no value: write -x lock_timeout=VALUE"),
        ("tenant=acme", "'tenant=' names no setting of outbound-schema"),
        (f"postgresql://u:{secret}@nowhere/other", "(not shown: it may hold a password)"),
    ]:
        done = alembic_here("-x", argument, "upgrade", "head", DATABASE_URL=plain(host_db))
        output = " ".join((done.stdout + done.stderr).split())
        assert done.returncode != 0 and says in output, output
        assert "Nothing was changed. The -x keys are url=, lock_wait=" in output, output
        assert "Traceback" not in output and secret not in output
    assert version(host_db) is None and tables(host_db) == before


def _timeouts(script: str) -> set[str]:
    """The lock timeouts the script's DDL transactions take. A VALIDATE CONSTRAINT's transaction waits
    under the statement timeout instead (its lock blocks neither reads nor writes): a revision's CHECK or
    foreign key on an existing table puts one in the script, whatever the lock timeout."""
    transactions = [t for t in script.split("COMMIT;") if "VALIDATE CONSTRAINT" not in t]
    return {m for t in transactions for m in re.findall(r"SET LOCAL (lock_timeout = '\d+ms')", t)}


def test_the_lock_timeout_reaches_the_script_from_each_source() -> None:
    """The offline script says which lock timeout its transactions take: from the flag over the variable,
    from -x over the variable, from the variable, else the default."""
    env = {"OUTBOUND_SCHEMA_LOCK_TIMEOUT": "2s"}
    assert _timeouts(cli_here("upgrade", "--sql").stdout) == {"lock_timeout = '100ms'"}
    assert _timeouts(cli_here("upgrade", "--sql", **env).stdout) == {"lock_timeout = '2000ms'"}
    assert _timeouts(cli_here("upgrade", "--sql", "--lock-timeout", "250ms", **env).stdout) == {
        "lock_timeout = '250ms'"
    }
    assert _timeouts(alembic_here("upgrade", "head", "--sql", **env).stdout) == {"lock_timeout = '2000ms'"}
    x = alembic_here("-x", "lock_timeout=300ms", "upgrade", "head", "--sql", **env)
    assert _timeouts(x.stdout) == {"lock_timeout = '300ms'"}, x.stderr


def test_the_lock_wait_from_x_and_from_the_environment(head_db: URL) -> None:
    """On a real server, with the migration lock held: -x lock_wait=0 over a variable of 600 s gives up
    at once under alembic, and the variable alone does under our command line."""
    with connected(head_db) as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        holder.commit()
        started = time.monotonic()
        x = alembic_here(
            "-x",
            f"url={plain(head_db)}",
            "-x",
            "lock_wait=0",
            "upgrade",
            "head",
            **{"OUTBOUND_SCHEMA_LOCK_WAIT": "600"},
        )
        assert x.returncode != 0 and "for more than 0 s" in x.stderr, x.stderr
        env = cli_here("upgrade", DATABASE_URL=plain(head_db), OUTBOUND_SCHEMA_LOCK_WAIT="0")
        assert env.returncode == 1 and "for more than 0 s" in env.stderr, env.stderr
        assert time.monotonic() - started < 20
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
        holder.commit()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--statement-timeout", "0", "shorter than a millisecond"),
        ("--lock-timeout", "soon", "is not a duration"),
        ("--lock-retries", "-1", "not a whole number"),
        ("--lock-wait", "nan", "is not a duration"),
        ("--lock-wait-total", "soon", "Give seconds, such as 600"),
        ("--lock-wait", "abc", "Give seconds, such as 600"),  # not milliseconds: a bare number here is seconds
        ("--lock-wait", "1w", "Give seconds, such as 600"),
        ("--statement-timeout", "1w", "units us, ms, s, min, h or d"),
        ("--statement-timeout", "40d", "longer than PostgreSQL allows"),
    ],
)
def test_bad_limits_are_refused(option: str, value: str, message: str) -> None:
    done = cli_here("upgrade", option, value, DATABASE_URL="postgresql://u@127.0.0.1:1/db")
    assert done.returncode == 1 and message in done.stderr


@pytest.mark.parametrize(
    ("value", "milliseconds"),
    [
        ("250ms", 250),
        ("30s", 30_000),
        ("5min", 300_000),
        ("1h", 3_600_000),
        ("1.5h", 5_400_000),
        ("1e3", 1000),
        ("1.5e1s", 15_000),
    ],
)
def test_durations_are_read_as_postgresql_reads_them(value: str, milliseconds: int) -> None:
    assert timeout_ms(value) == milliseconds
    if not value[-1].isdigit():  # a plain number is seconds for the lock wait, milliseconds for a timeout
        assert wait_seconds(value) == milliseconds / 1000
