"""Database URLs for psycopg without SQLAlchemy (``outbound_schema.dsn``).

A URL means to ``dsn.conninfo`` what it means to SQLAlchemy's ``make_url`` and
psycopg dialect, is refused with the sentences ``outbound_schema.database``
uses, and never shows its password. ``dsn.connect`` gives sessions in UTC named
``outbound-schema``, keeping the URL's own options.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import URL, make_url

from outbound_schema import database, dsn
from outbound_schema.errors import OutboundSchemaError
from tests.helpers import plain

SOURCE = "the test's URL"

#: URLs SQLAlchemy accepts, in the forms people write them.
GOOD = [
    "postgresql://user:pw@db.example.com:5432/app",
    "postgres://user:pw@db.example.com/app",
    "postgresql+psycopg://user:pw@db.example.com:5432/app?sslmode=require&application_name=mine",
    "  postgresql://user:pw@db.example.com/app\n",
    "postgresql://user:p%40ss%3Aw%2Frd@db.example.com/app",
    "postgresql://user:p w@db.example.com/my%20app?application_name=a%20b+c",
    "postgresql://user@/app?host=/var/run/postgresql",
    "postgresql:///app?host=%2Ftmp&port=5433",
    "postgresql://user:@db.example.com/app",
    "postgresql://:pw@db.example.com/app",
    "postgresql://[::1]:5432/app",
    "postgresql://user:pw@db.example.com/app?options=-csearch_path%3Dfoo",
    "postgresql://user:pw@h1,h2:5432/app?target_session_attrs=read-write",
    "postgresql://user:pw@/app?host=h1:5432&host=h2:5433",
    "postgresql://user:pw@/app?host=h1:5433",
    "postgresql://user:pw@/app?host=h1,h2&port=5432,5433",
    "postgresql://user:pw@db.example.com/app?password=other",
    "postgresql://user:pw@db.example.com/a%2Fb",
]


def sqlalchemy_params(raw: str) -> dict[str, str]:
    """What SQLAlchemy's psycopg dialect hands psycopg for ``raw``."""
    url = make_url(raw.strip()).set(drivername="postgresql+psycopg")
    _, params = PGDialect_psycopg().create_connect_args(url)  # type: ignore[no-untyped-call]
    return {key: str(value) for key, value in params.items()}


@pytest.mark.parametrize("raw", GOOD)
def test_a_url_means_what_it_means_to_sqlalchemy(raw: str) -> None:
    uri = dsn.conninfo(raw, source=SOURCE)
    assert uri.startswith("postgresql://")
    assert {key: str(value) for key, value in conninfo_to_dict(uri).items()} == sqlalchemy_params(raw)


def test_options_given_twice_are_joined_as_database_joins_them() -> None:
    uri = dsn.conninfo("postgresql://h/app?options=-ca%3D1&options=-cb%3D2", source=SOURCE)
    assert conninfo_to_dict(uri)["options"] == "-ca=1 -cb=2"


def test_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/app")
    assert dsn.configured("postgresql://given/app") == ("postgresql://given/app", "--database-url")
    assert dsn.configured("postgresql://given/app", explicit_source="-x url") == ("postgresql://given/app", "-x url")
    assert dsn.configured(None) == ("postgresql://env/app", "the DATABASE_URL environment variable")
    assert dsn.configured("") == ("postgresql://env/app", "the DATABASE_URL environment variable")
    monkeypatch.setenv("DATABASE_URL", "")
    assert dsn.configured(None) is None
    monkeypatch.delenv("DATABASE_URL")
    assert dsn.configured(None) is None
    assert dsn.URL_ENV_VAR == database.URL_ENV_VAR == "DATABASE_URL"


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
]


def database_message(raw: str) -> str:
    """The message ``outbound_schema.database.parse_url`` gives for ``raw``, its URL replaced by <URL>."""
    with pytest.raises(OutboundSchemaError) as caught:
        database.parse_url(raw, source=SOURCE)
    message = str(caught.value)
    if raw in UNPARSEABLE:
        return message
    return message.replace(database.mask(make_url(raw.strip())), "<URL>")


def dsn_message(raw: str) -> OutboundSchemaError:
    with pytest.raises(OutboundSchemaError) as caught:
        dsn.conninfo(raw, source=SOURCE)
    return caught.value


@pytest.mark.parametrize("raw", UNPARSEABLE + WRONG_DRIVER + NO_DATABASE)
def test_a_refused_url_says_what_database_says(raw: str) -> None:
    error = dsn_message(raw)
    assert error.exit_code == 1
    message = str(error)
    assert SOURCE in message and "hunter2" not in message
    if raw not in UNPARSEABLE:  # the others show the URL, each module masking it its own way
        message = message.replace(dsn.mask(raw), "<URL>")
    assert message == database_message(raw)


@pytest.mark.parametrize("raw", WRONG_DRIVER)
def test_a_wrong_driver_is_named(raw: str) -> None:
    message = str(dsn_message(raw))
    assert f"({dsn.mask(raw)}) uses the driver '{raw.split(':')[0]}'" in message
    assert "postgresql://" in message


@pytest.mark.parametrize("raw", NO_DATABASE)
def test_no_database(raw: str) -> None:
    message = str(dsn_message(raw))
    assert f"({dsn.mask(raw)}) names no database" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("raw", ["postgresql://user:p@ss:w/rd@h/app", "postgresql://user:hunter2@h:/app"])
def test_a_port_that_is_no_number_is_unparseable(raw: str) -> None:
    # SQLAlchemy reads "p" as the password, "ss" as the host and "w" as the port in the first (and fails on both).
    message = str(dsn_message(raw))
    assert message == (
        f"The database URL from {SOURCE} could not be parsed. Give a URL of the form "
        "postgresql://USER:PASSWORD@HOST:PORT/DBNAME (postgresql+psycopg:// works too)."
    )


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("postgresql://user:hunter2@h:5432/app", "postgresql://user:***@h:5432/app"),
        ("postgresql://user:p@ss:w/rd@h:5432/app", "postgresql://user:***@h:5432/app"),
        ("postgresql://user:p%40ss%3Aw%2Frd@h/app", "postgresql://user:***@h/app"),
        ("postgresql+psycopg://user:a:b@c/d?e#f@h/app?x=1", "postgresql+psycopg://user:***@h/app?x=1"),
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
        ("postgresql://h/app?x=1&sslpass%77ord=hunter2", "postgresql://h/app?x=1&sslpass%77ord=***"),
        ("user:hunter2@h/app", "user:***@h/app"),
        ("user:p@ss:w/rd@h/app", "user:***@h/app"),
        ("user:a://b@h", "user:***@h"),
        ("mysql://root:hunter2@h/app", "mysql://root:***@h/app"),
        ("  postgresql://user:hunter2@h/app\n", "postgresql://user:***@h/app"),
        ("host=h password=hunter2 dbname=app", "host=h password=*** dbname=app"),
        ("host=h password='hunter 2' dbname=app", "host=h password=*** dbname=app"),
        ("not a url", "not a url"),
    ],
)
def test_mask(raw: str, masked: str) -> None:
    assert dsn.mask(raw) == masked


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
    ["mysql://user:{}@h/app", "postgresql+asyncpg://user:{}@h:5432/app", "sqlite://user:{}@h/app"],
)
def test_an_error_never_shows_the_password(template: str, password: str) -> None:
    marked = f"Zq{password}Zq"  # no error message has Zq in it otherwise
    message = str(dsn_message(template.format(marked)))
    assert "Zq" not in message


# On a real server.


def with_query(url: URL, **params: str) -> str:
    raw = plain(url)
    extra = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{raw}{'&' if '?' in raw else '?'}{extra}"


def settings(raw: str, **kwargs: Any) -> dict[str, str]:
    with dsn.connect(raw, source=SOURCE, **kwargs) as conn:
        assert conn.autocommit is False
        rows = conn.execute(
            "SELECT name, setting || ' (' || source || ')' FROM pg_settings"
            " WHERE name IN ('TimeZone', 'application_name', 'search_path', 'statement_timeout')"
        ).fetchall()
        return {str(name): str(value) for name, value in rows}


def test_sessions_are_named_and_send_no_options_of_their_own(empty_db: URL) -> None:
    """No startup options (a default PgBouncer refuses them): the session keeps the server's TimeZone."""
    found = settings(plain(empty_db))
    assert not found["TimeZone"].endswith("(client)")
    assert found["application_name"] == "outbound-schema (client)"


def test_the_urls_own_options_are_kept(empty_db: URL) -> None:
    found = settings(with_query(empty_db, options="-csearch_path%3Dfoo%20-cstatement_timeout%3D1234"))
    assert found["search_path"] == "foo (client)"
    assert found["statement_timeout"] == "1234 (client)"


def test_the_urls_application_name_wins(empty_db: URL) -> None:
    assert settings(with_query(empty_db, application_name="mine"))["application_name"] == "mine (client)"
    named = settings(plain(empty_db), application_name="outbound-schema check")
    assert named["application_name"] == "outbound-schema check (client)"


def test_postgres_scheme(empty_db: URL) -> None:
    assert settings(plain(empty_db.set(drivername="postgres")))["application_name"] == "outbound-schema (client)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGHOST", "PGPORT", "PGPASSWORD", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    raw = f"postgresql://outbound:hunter2-secret@127.0.0.1:{free_port()}/app"
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

    # What outbound_schema.database says for the same URL, but for the driver in it.
    with pytest.raises(OutboundSchemaError) as theirs, database.connect(database.parse_url(raw, source=SOURCE)):
        pass
    assert str(theirs.value).replace("postgresql+psycopg://", "postgresql://") == message


def test_a_database_that_does_not_exist(empty_db: URL) -> None:
    raw = plain(empty_db.set(database="outbound_no_such_database"))
    with pytest.raises(OutboundSchemaError, match='database "outbound_no_such_database" does not exist') as caught:
        dsn.connect(raw, source=SOURCE)
    assert caught.value.exit_code == 2
    assert not empty_db.password or f":{empty_db.password}@" not in str(caught.value)  # the user may equal it
