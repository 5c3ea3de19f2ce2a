"""The connection layer (``outbound_schema.dsn``): one reading of a database URL, libpq's.

A URL (or a key/value conninfo) means what it means to libpq and psql, on every SQLAlchemy release: the
PG* variables fill in what it leaves out and are a target of their own, services come from
``pg_service.conf``, passwords from ``.pgpass``, several hosts are tried in turn, a socket folder is a host.
Bad input is one paragraph, exit code 2, never showing a password. Every command (``check`` on psycopg,
``status`` and ``upgrade`` through SQLAlchemy engines) reaches the same database for the same URL, and the
embedded database is never used when libpq is configured. A server that never answers is given up on.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from outbound_schema import database, dsn
from outbound_schema.errors import OutboundSchemaError
from tests import session_server
from tests.conftest import TEMPLATE_HOST, Databases
from tests.helpers import HEAD, alembic_here, cli_forked, cli_here, plain, version
from tests.provision import Server, own_server

SOURCE = "the test's URL"

#: URLs in the forms people write them, and what libpq reads in each.
GOOD: list[tuple[str, dict[str, str]]] = [
    (
        "postgresql://user:pw@db.example.com:5432/app",
        {"user": "user", "password": "pw", "host": "db.example.com", "port": "5432", "dbname": "app"},
    ),
    (
        "postgres://user:pw@db.example.com/app",
        {"user": "user", "password": "pw", "host": "db.example.com", "dbname": "app"},
    ),
    (
        "postgresql+psycopg://user:pw@db.example.com:5432/app?sslmode=require&application_name=mine",
        {
            "user": "user",
            "password": "pw",
            "host": "db.example.com",
            "port": "5432",
            "dbname": "app",
            "sslmode": "require",
            "application_name": "mine",
        },
    ),
    (
        "  postgresql://user:pw@db.example.com/app\n",
        {"user": "user", "password": "pw", "host": "db.example.com", "dbname": "app"},
    ),
    (
        "postgresql://user:p%40ss%3Aw%2Frd@db.example.com/app",
        {"user": "user", "password": "p@ss:w/rd", "host": "db.example.com", "dbname": "app"},
    ),
    # libpq decodes %20; a '+' is a '+' (SQLAlchemy's reading made it a blank).
    (
        "postgresql://user:p%20w@db.example.com/my%20app?application_name=a%20b+c",
        {"user": "user", "password": "p w", "host": "db.example.com", "dbname": "my app", "application_name": "a b+c"},
    ),
    (
        "postgresql://user@/app?host=/var/run/postgresql",
        {"user": "user", "host": "/var/run/postgresql", "dbname": "app"},
    ),
    ("postgresql:///app?host=%2Ftmp&port=5433", {"host": "/tmp", "port": "5433", "dbname": "app"}),
    (
        "postgresql://%2Fvar%2Frun%2Fpostgresql:5433/app",
        {"host": "/var/run/postgresql", "port": "5433", "dbname": "app"},
    ),
    ("postgresql://user:@db.example.com/app", {"user": "user", "host": "db.example.com", "dbname": "app"}),
    ("postgresql://:pw@db.example.com/app", {"password": "pw", "host": "db.example.com", "dbname": "app"}),
    ("postgresql://[::1]:5432/app", {"host": "::1", "port": "5432", "dbname": "app"}),
    (
        "postgresql://user:pw@db.example.com/app?options=-csearch_path%3Dfoo",
        {"user": "user", "password": "pw", "host": "db.example.com", "dbname": "app", "options": "-csearch_path=foo"},
    ),
    (
        "postgresql://user:pw@h1,h2:5432/app?target_session_attrs=read-write",
        {
            "user": "user",
            "password": "pw",
            "host": "h1,h2",
            "port": ",5432",
            "dbname": "app",
            "target_session_attrs": "read-write",
        },
    ),
    (
        "postgresql://user:pw@h1:5432,h2:5433/app",
        {"user": "user", "password": "pw", "host": "h1,h2", "port": "5432,5433", "dbname": "app"},
    ),
    (
        "postgresql://user:pw@/app?host=h1,h2&port=5432,5433",
        {"user": "user", "password": "pw", "host": "h1,h2", "port": "5432,5433", "dbname": "app"},
    ),
    (
        "postgresql://user:pw@db.example.com/app?password=other",
        {"user": "user", "password": "other", "host": "db.example.com", "dbname": "app"},
    ),
    (
        "postgresql://user:pw@db.example.com/a%2Fb",
        {"user": "user", "password": "pw", "host": "db.example.com", "dbname": "a/b"},
    ),
    (
        "postgresql://user:hunter2@h:/app",
        {"user": "user", "password": "hunter2", "host": "h", "dbname": "app"},
    ),  # libpq: the default port
    ("postgresql://?service=outbound", {"service": "outbound"}),  # the service names the database
    ("postgresql:///app?service=outbound", {"service": "outbound", "dbname": "app"}),
    (
        "host=db.example.com dbname=app user=u password='a b'",
        {"host": "db.example.com", "dbname": "app", "user": "u", "password": "a b"},
    ),
    ("service=outbound", {"service": "outbound"}),
]


@pytest.fixture(autouse=True)
def _no_libpq_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit tests read URLs on their own: no PG* variable of the machine fills anything in."""
    for name in dsn.libpq_variables():
        monkeypatch.delenv(name)


@pytest.mark.parametrize(("raw", "params"), GOOD, ids=[raw.strip()[:60] for raw, _ in GOOD])
def test_a_url_means_what_it_means_to_libpq(raw: str, params: dict[str, str]) -> None:
    target = dsn.parse(raw, source=SOURCE)
    assert target.params() == params
    assert target.source == SOURCE
    assert target.shown == dsn.mask(raw)


def shows_password(password: str | None, text: str) -> bool:
    """Whether ``text`` shows ``password`` as a value (``PGPASSWORD=...``, ``password=...``, ``:...@``): a
    test server's password may be a word that a database or user name also holds (testcontainers': user
    ``test``, password ``test``, which ``PGUSER=test`` shows)."""
    value = re.escape(password or "")
    return bool(password) and re.search(rf"(?:(?i:password)=|:){value}(?=[@\s&'\"]|$)", text, re.M) is not None


def test_an_engine_and_a_url_object_read_the_same() -> None:
    """A SQLAlchemy URL object (a test's, a host's) is taken apart, never rendered and read again."""
    url = URL.create("postgresql+psycopg", "u", "p@ss", "db.example.com", 5433, "floor app", {"sslmode": "require"})
    assert database.target(url).params() == {
        "user": "u",
        "password": "p@ss",
        "host": "db.example.com",
        "port": "5433",
        "dbname": "floor app",
        "sslmode": "require",
    }
    assert "p@ss" not in database.mask(url)
    raw = "postgresql://u:p%40ss@db.example.com:5433/floor%20app?sslmode=require"
    assert database.target(raw).params() == database.target(url).params()


def test_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/app")
    given = dsn.configured("postgresql://given/app")
    assert given is not None and (given.params()["host"], given.source) == ("given", "--database-url")
    given = dsn.configured("postgresql://given/app", explicit_source="-x url")
    assert given is not None and given.source == "-x url"
    for explicit in (None, ""):
        from_env = dsn.configured(explicit)
        assert from_env is not None and from_env.params()["host"] == "env"
        assert from_env.source == "the DATABASE_URL environment variable"
    monkeypatch.setenv("DATABASE_URL", "")
    assert dsn.configured(None) is None
    monkeypatch.delenv("DATABASE_URL")
    assert dsn.configured(None) is None
    assert dsn.URL_ENV_VAR == database.URL_ENV_VAR == "DATABASE_URL"


def test_libpq_variables_are_a_target_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "db.example.com")
    monkeypatch.setenv("PGDATABASE", "app")
    monkeypatch.setenv("PGPASSWORD", "hunter2")
    target = dsn.configured(None)
    assert target is not None
    assert target.conninfo == ""  # libpq reads them itself
    assert target.shown == "PGDATABASE=app PGHOST=db.example.com PGPASSWORD=***"
    assert "PGHOST" in target.source
    monkeypatch.setenv("DATABASE_URL", "postgresql://given/app")
    url = dsn.configured(None)
    assert url is not None and url.params() == {"host": "given", "dbname": "app"}  # libpq adds the rest


@pytest.mark.parametrize("variable", ["PGHOST", "PGSERVICEFILE", "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGPORT"])
def test_a_libpq_variable_naming_no_database_is_refused(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, "hunter2-value")
    with pytest.raises(OutboundSchemaError) as caught:
        dsn.configured(None)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert f"libpq's environment variables ({variable})" in message and "names a database" in message
    assert "Set PGDATABASE" in message and "embedded" in message
    assert "hunter2" not in message


def test_a_url_naming_no_database_is_completed_by_pgdatabase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDATABASE", "app")
    assert dsn.parse("postgresql://user:hunter2@h", source=SOURCE).params() == {
        "user": "user",
        "password": "hunter2",
        "host": "h",
    }


UNPARSEABLE = ["", "   ", "not a url", "hunter2", "postgresql//user:hunter2@h/app", "://user:hunter2@h/app"]
WRONG_DRIVER = [
    "mysql://root:hunter2@h/app",
    "postgresql+asyncpg://user:hunter2@h/app",
    "postgresql+psycopg2://user:hunter2@h:5432/app",
    "sqlite:///app.db",
]
NO_DATABASE = [
    "postgresql://user:hunter2@h",
    "postgresql://user:hunter2@h:5432/",
    "postgresql://user:hunter2@h/?sslmode=require",
    "host=h user=u password=hunter2",
]
#: What SQLAlchemy read one way and libpq another, or libpq would read silently otherwise than meant.
MISREAD = {
    "postgresql://user:pw@/app?host=h1:5432&host=h2:5433": "more than once",
    "postgresql://user:pw@/app?host=h1:5433": "not HOST:PORT",
    "postgresql://h/app?options=-ca%3D1&options=-cb%3D2": "'options' more than once",
    "postgresql://user:hunter2@h:x/app": "a port in it is not a number",
    "postgresql://user:p@ss:w/rd@h/app": "more than one '@'",
    "postgresql://user:hunter2@h/app?password=hunter2&bogus": "could not be parsed",
}
if psycopg.pq.version() >= 180000:  # libpq 18 refuses a space in a URL; 17 (psycopg-binary 3.2.4's) reads it
    MISREAD["postgresql://user:p w hunter2@h/app"] = "could not be parsed (unexpected spaces"


def refused(raw: str) -> OutboundSchemaError:
    with pytest.raises(OutboundSchemaError) as caught:
        dsn.parse(raw, source=SOURCE)
    assert caught.value.exit_code == 2  # bad input: nothing was done
    message = str(caught.value)
    assert "hunter2" not in message and "\n" not in message
    with pytest.raises(OutboundSchemaError) as theirs:  # the same reading for the engines
        database.engine_for(database.target(raw, source=SOURCE))
    assert str(theirs.value) == message
    return caught.value


@pytest.mark.parametrize("raw", UNPARSEABLE)
def test_unparseable(raw: str) -> None:
    assert str(refused(raw)) == (
        f"The database URL from {SOURCE} could not be parsed. Give a URL of the form "
        "postgresql://USER:PASSWORD@HOST:PORT/DBNAME (postgresql+psycopg:// works too)."
    )


@pytest.mark.parametrize("raw", WRONG_DRIVER)
def test_a_wrong_driver_is_named(raw: str) -> None:
    message = str(refused(raw))
    assert f"{SOURCE} ({dsn.mask(raw)}) uses the driver '{raw.split(':')[0]}'" in message
    assert "postgresql://" in message


@pytest.mark.parametrize("raw", NO_DATABASE)
def test_no_database(raw: str) -> None:
    message = str(refused(raw))
    assert f"{SOURCE} ({dsn.mask(raw)}) names no database" in message
    assert "or set PGDATABASE" in message


@pytest.mark.parametrize(("raw", "said"), MISREAD.items())
def test_what_libpq_would_misread_is_refused(raw: str, said: str) -> None:
    message = str(refused(raw))
    assert said in message, message
    assert message.startswith(f"The database URL from {SOURCE} (")


@pytest.mark.parametrize(
    ("raw", "shown", "option"),
    [
        ("postgresql://u:hunter2@h/db?bogusparam=1", "postgresql://u:***@h/db?bogusparam=***", "bogusparam"),
        # A misspelled password key: its value is hidden as a password's is.
        (
            "postgresql://u@h/db?pasword=hunter2&sslmode=require",
            "postgresql://u@h/db?pasword=***&sslmode=require",
            "pasword",
        ),
        ("host=h passwrd=hunter2 dbname=db", "host=h passwrd=*** dbname=db", "passwrd"),
        ("postgresql://u@h/db?sslmod=disable", "postgresql://u@h/db?sslmod=***", "sslmod"),
    ],
)
def test_an_option_libpq_does_not_know(raw: str, shown: str, option: str) -> None:
    message = str(refused(raw))
    assert message.startswith(
        f"The database URL from {SOURCE} ({shown}) names a connection option libpq does not know ("
    )
    assert f'"{option}"' in message and "Check its spelling" in message


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("postgresql://user:hunter2@h:5432/app", "postgresql://user:***@h:5432/app"),
        ("postgresql://user:p@ss:w/rd@h:5432/app", "postgresql://user:***@h:5432/app"),
        ("postgresql://user:p%40ss%3Aw%2Frd@h/app", "postgresql://user:***@h/app"),
        ("postgresql+psycopg://user:a:b@c/d?e#f@h/app?x=1", "postgresql+psycopg://user:***@h/app?x=***"),
        ("postgresql://user:@h/app", "postgresql://user:***@h/app"),
        ("postgresql://user@h/app", "postgresql://user@h/app"),
        ("postgresql://h/app", "postgresql://h/app"),
        ("postgresql://h/app?sslmode=require&password=hunter2", "postgresql://h/app?sslmode=require&password=***"),
        (
            "postgresql://u:pw1@h/app?password=hunter2&sslmode=require",
            "postgresql://u:***@h/app?password=***&sslmode=require",
        ),
        ("postgresql://h/app?PASSWORD=hunter2", "postgresql://h/app?PASSWORD=***"),
        # libpq decodes the key: %70assword is password.
        ("postgresql://h/app?%70assword=hunter2", "postgresql://h/app?%70assword=***"),
        ("postgresql://h/app?x=1&sslpass%77ord=hunter2", "postgresql://h/app?x=***&sslpass%77ord=***"),
        ("user:hunter2@h/app", "user:***@h/app"),
        ("user:p@ss:w/rd@h/app", "user:***@h/app"),
        ("user:a://b@h", "user:***@h"),
        ("mysql://root:hunter2@h/app", "mysql://root:***@h/app"),
        ("  postgresql://user:hunter2@h/app\n", "postgresql://user:***@h/app"),
        ("host=h password=hunter2 dbname=app", "host=h password=*** dbname=app"),
        ("host=h password='hunter 2' dbname=app", "host=h password=*** dbname=app"),
        ("host=h sslpassword=hunter2 dbname=app", "host=h sslpassword=*** dbname=app"),
        # Any key but libpq's own that hold no secret: a misspelled password key's value is hidden too.
        ("host=h passwrd=hunter2 dbname=app", "host=h passwrd=*** dbname=app"),
        ("host=h PASSWORD = hunter2 port=5432", "host=h PASSWORD = *** port=5432"),
        ("postgresql://h/app?pasword=hunter2&sslmode=require", "postgresql://h/app?pasword=***&sslmode=require"),
        ("postgresql://h/app?oauth_client_secret=hunter2", "postgresql://h/app?oauth_client_secret=***"),
        ("not a url", "not a url"),
    ],
)
def test_mask(raw: str, masked: str) -> None:
    assert dsn.mask(raw) == masked


def test_what_a_target_shows_is_masked() -> None:
    assert dsn.parse("host=h password=hunter2 dbname=app", source=SOURCE).shown == "host=h password=*** dbname=app"
    other = dsn.parse("postgresql://u:hunter2@h/app", source=SOURCE).with_database("floor app")
    assert other.params()["dbname"] == "floor app" and "hunter2" not in other.shown and "***" in other.shown


NASTY = ["p@ss:w/rd", "p%40ss", "a:b@c/d?e#f", "@@@", "::", "//", "/", "pass word", "ünïcødé", "x@y:5432/z?w=1"]


@pytest.mark.parametrize("password", NASTY)
@pytest.mark.parametrize("scheme", ["postgresql://", "postgresql+asyncpg://", "mysql://", ""])
def test_no_character_of_a_password_is_shown(scheme: str, password: str) -> None:
    assert dsn.mask(f"{scheme}user:{password}@db.example.com:5432/app?sslmode=require") == (
        f"{scheme}user:***@db.example.com:5432/app?sslmode=require"
    )
    if "&" not in password and "#" not in password and "?" not in password:
        assert dsn.mask(f"{scheme}user@h/app?password={password}&sslmode=require") == (
            f"{scheme}user@h/app?password=***&sslmode=require"
        )


@pytest.mark.parametrize("password", NASTY)
@pytest.mark.parametrize(
    "template",
    [
        "mysql://user:{}@h/app",
        "postgresql+asyncpg://user:{}@h:5432/app",
        "sqlite://user:{}@h/app",
        "postgresql://user:{}@h/app",
        "postgresql://user@h/app?password={}",
        "host=h dbname=app password='{}'",
    ],
)
def test_an_error_never_shows_the_password(template: str, password: str) -> None:
    marked = f"Zq{password}Zq"  # no error message has Zq in it otherwise
    try:
        dsn.parse(template.format(marked), source=SOURCE)
    except OutboundSchemaError as exc:
        assert "Zq" not in str(exc)


# On a real server.


@dataclass(frozen=True)
class Address:
    """Where the test server is, as libpq reached it: a host name, an address or a socket folder."""

    host: str
    port: str
    user: str
    password: str

    def url(self, dbname: str, *, user: str | None = None, password: str | None = None, first: str = "") -> str:
        """A URL to ``dbname`` (percent-encoded here), with ``first`` (``HOST:PORT``) tried before the server."""
        userinfo = quote(user or self.user, safe="")
        secret = self.password if user is None else password
        if secret:
            userinfo += ":" + quote(secret, safe="")
        host = quote(self.host, safe="") if self.host.startswith("/") else self.host
        hosts = f"{first}," if first else ""
        return f"postgresql://{userinfo}@{hosts}{host}:{self.port}/{quote(dbname, safe='')}"

    def environment(self, dbname: str) -> dict[str, str]:
        env = {"PGHOST": self.host, "PGPORT": self.port, "PGUSER": self.user, "PGDATABASE": dbname}
        return {**env, "PGPASSWORD": self.password} if self.password else env


def _address_of(url: URL) -> Address:
    with database.target(url).connect() as conn:
        info = conn.info
        return Address(info.host, str(info.port), info.user, info.password or "")


@pytest.fixture(scope="session")
def address(pg_server: Server) -> Address:
    return _address_of(pg_server.url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DEAD = "127.0.0.1"


def settings(raw: str, **kwargs: Any) -> dict[str, str]:
    with dsn.connect(raw, source=SOURCE, **kwargs) as conn:
        assert conn.autocommit is False
        rows = conn.execute(
            "SELECT name, setting || ' (' || source || ')' FROM pg_settings"
            " WHERE name IN ('TimeZone', 'application_name', 'search_path', 'statement_timeout')"
        ).fetchall()
        return {str(name): str(value) for name, value in rows}


def with_query(url: URL, **params: str) -> str:
    raw = plain(url)
    extra = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{raw}{'&' if '?' in raw else '?'}{extra}"


def test_sessions_are_named_and_send_no_options_of_their_own(empty_db: URL) -> None:
    """No startup options (a default PgBouncer refuses them): the session keeps the server's TimeZone."""
    found = settings(plain(empty_db))
    assert not found["TimeZone"].endswith("(client)")
    assert found["application_name"] == "outbound-schema (client)"


def test_the_urls_own_options_are_kept(empty_db: URL) -> None:
    found = settings(with_query(empty_db, options="-csearch_path%3Dfoo%20-cstatement_timeout%3D1234"))
    assert found["search_path"] == "foo (client)"
    assert found["statement_timeout"] == "1234 (client)"


def test_the_urls_application_name_wins(empty_db: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(with_query(empty_db, application_name="mine"))["application_name"] == "mine (client)"
    named = settings(plain(empty_db), application_name="outbound-schema check")
    assert named["application_name"] == "outbound-schema check (client)"
    monkeypatch.setenv("PGAPPNAME", "from-the-environment")  # as libpq has it: PGAPPNAME too
    assert settings(plain(empty_db))["application_name"] == "from-the-environment (client)"


def test_postgres_scheme(empty_db: URL) -> None:
    assert settings(plain(empty_db.set(drivername="postgres")))["application_name"] == "outbound-schema (client)"


def test_a_refused_connection() -> None:
    raw = f"postgresql://outbound:hunter2-secret@{DEAD}:{free_port()}/app"
    with pytest.raises(OutboundSchemaError) as caught:
        dsn.connect(raw, source=SOURCE, connect_timeout=5)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert "hunter2" not in message
    assert message.startswith(f"Could not connect to the database at {dsn.mask(raw)} (")
    assert message.endswith(
        "). Check that the server is running and reachable and that the URL's host, port, user, "
        "password and database name are right."
    )
    # The engines connect through the same layer: the same words.
    with pytest.raises(OutboundSchemaError) as theirs, database.connect(raw):
        pass
    assert str(theirs.value) == message


def test_a_database_that_does_not_exist(empty_db: URL) -> None:
    raw = plain(empty_db.set(database="outbound_no_such_database"))
    with pytest.raises(OutboundSchemaError, match='database "outbound_no_such_database" does not exist') as caught:
        dsn.connect(raw, source=SOURCE)
    assert caught.value.exit_code == 2
    assert not empty_db.password or f":{empty_db.password}@" not in str(caught.value)  # the user may equal it


@pytest.fixture
def floor_app(databases: Databases) -> Iterator[URL]:
    """A database whose name holds blanks, holding the host tables: ``floor app <hex>``."""
    url = databases.create(TEMPLATE_HOST, name=f"floor app {uuid.uuid4().hex[:8]}")
    yield url
    databases.release(url)


def test_a_percent_encoded_database_name_is_one_database_for_every_command(floor_app: URL, address: Address) -> None:
    """``floor%20app``: check (psycopg), status and upgrade (SQLAlchemy engines) all reach ``floor app``."""
    name = str(floor_app.database)
    raw = address.url(name)
    assert "floor%20app%20" in raw
    upgrade = cli_here("upgrade", DATABASE_URL=raw)
    assert upgrade.returncode == 0, upgrade.stderr
    status = cli_here("status", "--check", DATABASE_URL=raw)
    assert status.returncode == 0, status.stdout + status.stderr
    check = cli_here("check", DATABASE_URL=raw)
    assert check.returncode == 0, check.stdout + check.stderr
    alembic = alembic_here("-x", f"url={raw}", "current")
    assert alembic.returncode == 0 and HEAD in alembic.stdout, alembic.stderr
    assert version(floor_app) == [HEAD]
    engine = database.engine_for(raw)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT current_database()")) == name
    finally:
        engine.dispose()


def test_several_hosts_the_first_one_dead(host_db: URL, address: Address) -> None:
    raw = address.url(str(host_db.database), first=f"{DEAD}:{free_port()}")
    upgrade = cli_here("upgrade", DATABASE_URL=raw)
    assert upgrade.returncode == 0, upgrade.stderr
    for args in (("status", "--check"), ("check",)):
        done = cli_here(*args, DATABASE_URL=raw)
        assert done.returncode == 0, done.stdout + done.stderr
    # The progress watcher's second connection follows the first to the host it reached.
    with dsn.connect(raw, source=SOURCE) as conn:
        follower = dsn.following(conn.info, dsn.parse(raw, source=SOURCE), application_name="watcher")
        # Pinned to the live one (the dead one's address may be the live one's, on another port).
        params = follower.params()
        assert (params["host"], str(params["port"])) == (address.host, str(address.port))
        with follower.connect() as second:
            row = second.execute("SELECT current_database(), current_setting('application_name')").fetchone()
            assert row == (host_db.database, "watcher")


def test_the_servers_address_in_every_form_libpq_takes(head_db: URL, address: Address) -> None:
    """A socket folder percent-encoded in the host part or the query, or plain in the query; a key/value
    conninfo. (On a server reached over TCP, the same forms with its host name.)"""
    name = str(head_db.database)
    host = address.host
    secret = f":{quote(address.password, safe='')}" if address.password else ""
    forms = [
        address.url(name),
        f"postgresql://{address.user}{secret}@/{name}?host={quote(host, safe='')}&port={address.port}",
        f"postgresql:///{name}?host={host}&port={address.port}&user={address.user}"
        + (f"&password={quote(address.password, safe='')}" if address.password else ""),
        f"host={host} port={address.port} dbname={name} user={address.user}"
        + (f" password={address.password}" if address.password else ""),
    ]
    for raw in forms:
        with dsn.connect(raw, source=SOURCE) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    for raw in forms[1:3]:
        done = cli_here("check", DATABASE_URL=raw)
        assert done.returncode == 0, done.stdout + done.stderr
    status = cli_here("status", "--check", DATABASE_URL=forms[3])
    assert status.returncode == 0, status.stdout + status.stderr


def test_libpq_variables_alone(host_db: URL, address: Address) -> None:
    """PGHOST, PGPORT, PGUSER, PGDATABASE (PGPASSWORD): as psql takes them, with no URL at all."""
    env = address.environment(str(host_db.database))
    for done in (cli_here("upgrade", **env), cli_here("status", "--check", **env), cli_here("check", **env)):
        assert done.returncode == 0, done.stdout + done.stderr
        assert "embedded" not in done.stderr
        assert not shows_password(address.password, done.stdout + done.stderr)
    assert f"database: PGDATABASE={host_db.database} PGHOST={address.host}" in cli_here("status", **env).stdout
    assert version(host_db) == [HEAD]


def test_the_embedded_database_is_never_used_when_libpq_is_configured(tmp_path: Path) -> None:
    """PGHOST at a server that is down: every command says it could not connect there (exit 2), and no
    embedded server is started, made, or read, even where an upgrade once made one."""
    folder = tmp_path / "embedded"
    dead = {
        "PGHOST": DEAD,
        "PGPORT": str(free_port()),
        "PGDATABASE": "app",
        "OUTBOUND_SCHEMA_EMBEDDED_DIR": str(folder),
    }
    for args in (("upgrade",), ("status", "--check"), ("check",), ("downgrade", "base")):
        done = cli_here(*args, cwd=tmp_path, **dead)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"Could not connect to the database at PGDATABASE=app PGHOST={DEAD} PGPORT=" in done.stderr
        assert "embedded" not in done.stderr
    alembic = alembic_here("upgrade", "head", **dead)
    assert alembic.returncode != 0 and "Could not connect" in alembic.stderr and "embedded" not in alembic.stderr
    assert not folder.exists()
    folder.mkdir()
    (folder / "PG_VERSION").write_text("18\n")  # as if an upgrade had made one: still not used
    for args in (("status", "--check"), ("check",)):
        done = cli_here(*args, cwd=tmp_path, **dead)
        assert done.returncode == 2 and "Could not connect" in done.stderr and "embedded" not in done.stderr
    only_host = {"PGHOST": DEAD, "OUTBOUND_SCHEMA_EMBEDDED_DIR": str(folder)}
    for args in (("upgrade",), ("status", "--check"), ("check",)):
        done = cli_here(*args, cwd=tmp_path, **only_host)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "(PGHOST), but none names a database, so nothing was done" in done.stderr
        assert done.stderr.strip().count("\n") == 0


# A role with a password, on a server that asks for it: .pgpass and service files.

ROLE = "outbound_pw"
ROLE_PASSWORD = "Zq-pgpass-secret-9"


def _require_passwords(pg_server: Server) -> str:
    """The role, made once per run; on a server of our own, one that must give its password (pg_hba.conf
    asks it of this role alone). Returns its name."""
    target = database.target(pg_server.url)
    with target.connect(autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
            admin.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}' IN ROLE pg_read_all_data")
        hba = Path(str(admin.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        if pg_server.provider != "url" and hba.is_file():
            rules = f"local all {ROLE} scram-sha-256\nhost all {ROLE} all scram-sha-256\n"
            old = hba.read_text()
            if not old.startswith(rules):
                before = hba.stat()
                part = hba.with_name(f"{hba.name}.part")
                part.write_text(rules + old)
                os.chown(part, before.st_uid, before.st_gid)
                part.chmod(stat.S_IMODE(before.st_mode))
                part.rename(hba)
                admin.execute("SELECT pg_reload_conf()")
    return ROLE


@pytest.fixture(scope="session")
def password_role(pg_server: Server) -> str:
    return session_server.once("password_role", lambda: _require_passwords(pg_server))


def _asks_password(address: Address, dbname: str, role: str, nowhere: Path) -> bool:
    """Whether the server asks ``role`` for its password (none given, no password file to find it in)."""
    try:
        _connected_with(address.url(dbname, user=role), PGPASSFILE=str(nowhere)).close()
    except OutboundSchemaError:
        return True
    return False


@pytest.fixture
def asking(head_db: URL, address: Address, password_role: str, tmp_path: Path) -> Iterator[tuple[Address, str]]:
    """Where the password role must give its password, and a database at head there: the run's server; or,
    where it lets the role in without one (a server given by TEST_DATABASE_URL with trust authentication,
    which the suite never reconfigures), a server of the test's own that asks."""
    if _asks_password(address, str(head_db.database), password_role, tmp_path / "none"):
        yield address, str(head_db.database)
        return
    with ExitStack() as stack:
        own = own_server(stack, at_head="outbound_head")
        _require_passwords(own)
        yield _address_of(own.url), "outbound_head"


def test_pgpass(asking: tuple[Address, str], password_role: str, tmp_path: Path) -> None:
    address, dbname = asking
    raw = address.url(dbname, user=password_role)
    assert ROLE_PASSWORD not in raw
    nowhere = str(tmp_path / "none")
    asked = cli_here("check", DATABASE_URL=raw, PGPASSFILE=nowhere)
    assert asked.returncode == 2 and "Could not connect" in asked.stderr, asked.stderr  # the server asks
    pgpass = tmp_path / "pgpass"
    host = address.host.replace("\\", "\\\\").replace(":", "\\:")
    pgpass.write_text(f"# the test role\n{host}:{address.port}:*:{password_role}:{ROLE_PASSWORD}\n")
    pgpass.chmod(0o600)
    for args in (("check",), ("status", "--check")):
        done = cli_here(*args, DATABASE_URL=raw, PGPASSFILE=str(pgpass))
        assert done.returncode == 0, done.stdout + done.stderr
        assert ROLE_PASSWORD not in done.stdout + done.stderr
    with _connected_with(raw, PGPASSFILE=str(pgpass)) as conn:
        assert conn.info.user == password_role and conn.info.password == ROLE_PASSWORD  # libpq read .pgpass
    wrong = tmp_path / "wrong"
    wrong.write_text(f"*:*:*:{password_role}:not-the-password\n")
    wrong.chmod(0o600)
    refused = cli_here("check", DATABASE_URL=raw, PGPASSFILE=str(wrong))
    assert refused.returncode == 2 and "not-the-password" not in refused.stderr


def _connected_with(raw: str, **env: str) -> Any:
    """A connection to ``raw`` made while ``env`` is set (libpq reads its variables as it connects)."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return dsn.connect(raw, source=SOURCE)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_a_service_file(head_db: URL, host_db: URL, address: Address, password_role: str, tmp_path: Path) -> None:
    """PGSERVICE and ``service=`` read pg_service.conf (PGSERVICEFILE), whose passwords are never shown."""
    services = tmp_path / "pg_service.conf"
    admin_password = f"password={address.password}\n" if address.password else ""
    services.write_text(
        f"[outbound]\nhost={address.host}\nport={address.port}\ndbname={head_db.database}\n"
        f"user={password_role}\npassword={ROLE_PASSWORD}\n\n"
        f"[outbound_admin]\nhost={address.host}\nport={address.port}\ndbname={host_db.database}\n"
        f"user={address.user}\n{admin_password}"
    )
    file = {"PGSERVICEFILE": str(services)}
    runs = [
        cli_here("check", PGSERVICE="outbound", **file),
        cli_here("status", "--check", DATABASE_URL="postgresql://?service=outbound", **file),
        cli_here("check", "--database-url", "service=outbound", **file),
        cli_here("upgrade", PGSERVICE="outbound_admin", **file),
        cli_here("status", "--check", DATABASE_URL="postgresql://?service=outbound_admin", **file),
    ]
    for done in runs:
        assert done.returncode == 0, done.stdout + done.stderr
        assert ROLE_PASSWORD not in done.stdout + done.stderr
        assert not shows_password(address.password, done.stdout + done.stderr)
    assert "database: PGSERVICE=outbound PGSERVICEFILE=" in runs[0].stdout
    assert version(host_db) == [HEAD]
    missing = cli_here("check", PGSERVICE="no_such_service", **file)
    assert missing.returncode == 2 and 'definition of service "no_such_service" not found' in missing.stderr


PASSWORD = "s3cret-pw"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://app:{PASSWORD}@127.0.0.1:54x2/db", "could not be parsed"),
        (f"postgresql://app:p@ss{PASSWORD}@127.0.0.1:1/db", "more than one '@'"),
    ],
)
def test_bad_urls_in_every_command(url: str, expected: str) -> None:
    for args in (("upgrade",), ("status",), ("check", "--format", "json")):
        done = cli_here(*args, DATABASE_URL=url)
        assert done.returncode in (1, 2), done.stderr
        assert expected in done.stderr, done.stderr
        assert PASSWORD not in done.stderr + done.stdout and "ss" + PASSWORD[:2] not in done.stderr
        assert "Traceback" not in done.stderr
        if args[0] == "check":
            assert done.returncode == 2 and json.loads(done.stdout)["status"] == "error"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers, as a hung server or a dead proxy does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.mark.waits
def test_a_server_that_never_answers_is_given_up_on(silent_server: int) -> None:
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{silent_server}/db"
    started = time.monotonic()
    # The three at once, each a process of its own, the default connect timeout shortened in each.
    shortened = {"outbound_schema.dsn.DEFAULT_CONNECT_TIMEOUT": 1}
    waiting = [
        cli_forked(*args, patches=shortened, DATABASE_URL=given)
        for args, given in ((("upgrade",), url), (("status",), url), (("check",), f"{url}?connect_timeout=1"))
    ]
    for process in waiting:
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 2, stderr
        assert "Could not connect" in stderr or "connection" in stderr
        assert PASSWORD not in stderr and "Traceback" not in stderr
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("command", ["upgrade", "status", "check"])
def test_an_option_libpq_does_not_know_is_a_failure_to_connect(command: str) -> None:
    """Not a connection lost halfway through a revision: nothing was ever connected."""
    for url in (
        "postgresql://u:hunter2@127.0.0.1:1/db?bogusparam=1",
        "host=127.0.0.1 port=1 passwrd=hunter2 dbname=db",
    ):
        done = cli_here(command, DATABASE_URL=url)
        assert done.returncode == 2, done.stderr
        assert "names a connection option libpq does not know" in done.stderr
        assert done.stderr.strip().count("\n") == 0, done.stderr
        assert "hunter2" not in done.stderr and "revision" not in done.stderr


def test_passwords_in_query_parameters_are_masked(host_db: URL) -> None:
    """The query's password replaces the URL's: on a server with a password (testcontainers') it is that one."""
    password = host_db.password or "SECRET-IN-QUERY"
    base = plain(host_db.set(password=None))
    url = f"{base}{'&' if '?' in base else '?'}password={quote(str(password), safe='')}&sslpassword=SECRET-SSL"
    for args in (("upgrade",), ("status",), ("check",)):
        done = cli_here(*args, DATABASE_URL=url)
        shown = done.stdout + done.stderr
        assert "SECRET" not in shown and not shows_password(str(password), shown), shown
    assert "password=***" in cli_here("status", DATABASE_URL=url).stdout


def test_a_percent_encoded_at_in_the_user_name_is_a_user_name() -> None:
    from outbound_schema import dsn

    params = dsn.parse("postgresql://app%40srv:p%40ss@db.example/app", source="a test").params()
    assert (params["user"], params["password"], params["host"]) == ("app@srv", "p@ss", "db.example")
