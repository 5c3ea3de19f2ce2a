"""Database URLs for a plain psycopg connection, without SQLAlchemy.

The same URLs, checks and messages as :mod:`outbound_schema.database`, which
needs SQLAlchemy (about a second to import), for the commands that only read
the catalog through psycopg. A URL is read as SQLAlchemy's ``make_url`` reads
it and handed to libpq as the keywords SQLAlchemy's psycopg dialect would
give it. Like :func:`outbound_schema.database.engine_for`, a connection sends no
startup ``options`` of its own and prepares no statements, so that it works through
a default PgBouncer in transaction pooling.

Importing this module imports neither SQLAlchemy nor Alembic, nor psycopg,
which :func:`connect` imports.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from outbound_schema.errors import OutboundSchemaError
from outbound_schema.settings import DATABASE_URL

if TYPE_CHECKING:
    import psycopg

URL_ENV_VAR = str(DATABASE_URL.env)
APPLICATION_NAME = "outbound-schema"

_ACCEPTED_DRIVERS = frozenset({"postgresql", "postgres", "postgresql+psycopg"})

#: SQLAlchemy's own pattern (sqlalchemy.engine.url._parse_url), so that a URL means here what it means there.
_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)
_SCHEME = re.compile(r"[\w+.\-]+://")
#: A password given as a parameter: ``?password=...`` in a URL (up to the next ``&``), ``password=...`` in a
#: key/value string (a quoted value, or up to the next blank).
_QUERY_PARAMETER = re.compile(r"([?&])([^=&#]*)=([^&]*)")  # a key percent-encoded ("%70assword") is one too
_KEYWORD_PASSWORD = re.compile(r"""(?i)((?:^|\s)(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|\S*)""")
_PORT = re.compile(r"[0-9]+")
_HOST_PORT = re.compile(r"[a-zA-Z0-9\-\.]*:[0-9]*")  # SQLAlchemy's test for a single host=HOST:PORT


def configured(explicit: str | None, *, explicit_source: str = "--database-url") -> tuple[str, str] | None:
    """The URL to use and where it came from: ``explicit`` first, then ``DATABASE_URL``; None if neither is set."""
    if explicit:
        return explicit, explicit_source
    from_env = os.environ.get(URL_ENV_VAR)
    if from_env:
        return from_env, f"the {URL_ENV_VAR} environment variable"
    return None


def conninfo(raw: str, *, source: str) -> str:
    """``raw`` as a libpq URI (``postgresql://...``), or a clear error naming ``source``.

    Accepts what :func:`outbound_schema.database.parse_url` accepts: ``postgresql://``,
    ``postgres://`` and ``postgresql+psycopg://`` URLs naming a database.
    """
    text = raw.strip()
    match = _URL.match(text)
    port = match["port"] if match else None
    if match is None or (port is not None and not _PORT.fullmatch(port)):
        raise OutboundSchemaError(
            f"The database URL from {source} could not be parsed. Give a URL of the form "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME (postgresql+psycopg:// works too)."
        )
    if "@" in (match["ipv4host"] or "") + (match["username"] or ""):
        raise OutboundSchemaError(
            f"The database URL from {source} ({mask(text)}) has more than one '@': a password or user name holding "
            "'@' must be percent-encoded, as %40 (postgresql://USER:p%40ss@HOST/DBNAME)."
        )
    driver = match["name"]
    if driver not in _ACCEPTED_DRIVERS:
        raise OutboundSchemaError(
            f"The database URL from {source} ({mask(text)}) uses the driver '{driver}', "
            "but outbound-schema only works with PostgreSQL through psycopg 3. Use a URL that "
            "starts with postgresql:// or postgresql+psycopg://."
        )
    database = unquote(match["database"] or "")
    if not database:
        raise OutboundSchemaError(
            f"The database URL from {source} ({mask(text)}) names no database. Add the database "
            "name after the host, as in postgresql://USER:PASSWORD@HOST:5432/DBNAME."
        )
    user = unquote(match["username"] or "")
    password = unquote(match["password"] or "")
    userinfo = ""
    if user or password:  # SQLAlchemy leaves out an empty user or password
        userinfo = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "") + "@"
    host = ""
    if match["ipv6host"]:
        host = f"[{quote(match['ipv6host'], safe=':')}]"
    elif match["ipv4host"]:
        host = quote(match["ipv4host"], safe="")
    if port:
        host += f":{port}"
    query = _query(match["query"])
    return f"postgresql://{userinfo}{host}/{quote(database, safe='')}" + (
        f"?{urlencode(query, quote_via=quote)}" if query else ""
    )


def _query(raw: str | None) -> list[tuple[str, str]]:
    """The URL's query as libpq parameters, each once.

    As SQLAlchemy's psycopg dialect reads it: ``host=h1:p1&host=h2:p2`` (or a
    single ``host=h:p`` without ``port``) becomes ``host=h1,h2&port=p1,p2``, and
    ``options`` given more than once are joined, as :mod:`outbound_schema.database`
    joins them; any other parameter given more than once keeps its last value, as
    libpq does.
    """
    if raw is None:
        return []
    values: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw):
        values.setdefault(key, []).append(value)
    params = {key: found[-1] for key, found in values.items()}
    if len(values.get("options", ())) > 1:
        params["options"] = " ".join(values["options"])
    hosts = values.get("host", [])
    if "port" not in values and (len(hosts) > 1 or (len(hosts) == 1 and _HOST_PORT.fullmatch(hosts[0]))):
        pairs = [host.split(":", 1) if ":" in host else [host, ""] for host in hosts]
        params["host"] = ",".join(pair[0] for pair in pairs)
        if any(pair[1] for pair in pairs):
            params["port"] = ",".join(pair[1] for pair in pairs)
    return list(params.items())


def mask(raw: str) -> str:
    """``raw`` with any password replaced by ``***``; safe to print, however malformed ``raw`` is.

    The password runs from the first ``:`` after the scheme (or from the start,
    without one) to the last ``@``, so unescaped ``@``, ``:`` or ``/`` in it are
    hidden too; ``password=`` parameters are hidden as well. When in doubt, more
    is hidden, never less. One string is ambiguous: ``USER://REST@HOST`` without
    a scheme, a password starting with ``//``, reads as a URL with scheme USER
    and user REST (REST is hidden only when it is empty or starts with ``/``).
    """
    text = raw.strip()
    scheme = _SCHEME.match(text)
    start = scheme.end() if scheme else 0
    at = text.rfind("@")
    if at >= start:
        colon = text.find(":", start, at)
        if colon == -1 and scheme and (at == start or text[start] == "/"):
            colon = text.index(":")  # no user information after the scheme: read the scheme as a user
        if colon != -1:
            text = f"{text[: colon + 1]}***{text[at:]}"
    return _KEYWORD_PASSWORD.sub(r"\1***", _QUERY_PARAMETER.sub(_masked_parameter, text))


def _masked_parameter(match: re.Match[str]) -> str:
    separator, key, value = match.groups()
    secret = unquote(key).strip().lower() in ("password", "sslpassword")
    return f"{separator}{key}={'***' if secret else value}"


def connect(
    raw: str,
    *,
    source: str,
    application_name: str = APPLICATION_NAME,
    connect_timeout: int = 10,
    **kwargs: Any,
) -> psycopg.Connection[tuple[Any, ...]]:
    """A psycopg connection (not autocommit, unless ``autocommit=True``) to ``raw``; failing to connect is a
    clear error (exit code 2).

    ``application_name`` and ``connect_timeout`` (seconds) apply unless the URL
    gives its own; statements are never prepared on the server (a pooler may hand the
    next one to another server connection). ``kwargs`` go to :func:`psycopg.connect`.
    """
    uri = conninfo(raw, source=source)
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(uri)
        params.setdefault("application_name", application_name)
        params.setdefault("connect_timeout", connect_timeout)
        connection = psycopg.connect(make_conninfo("", **params), **{"autocommit": False, **kwargs})
        connection.prepare_threshold = None
        return connection
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split())
        for password in _passwords(raw):
            if len(password) >= 4:  # libpq never prints one; make sure
                detail = detail.replace(password, "***")
        raise could_not_connect(mask(raw), detail) from None


def could_not_connect(masked_url: str, detail: str) -> OutboundSchemaError:
    """The one message for a connection that failed, from either kind of connection."""
    return OutboundSchemaError(
        f"Could not connect to the database at {masked_url} ({detail}). "
        "Check that the server is running and reachable and that the URL's host, port, user, "
        "password and database name are right.",
        exit_code=2,
    )


def _passwords(raw: str) -> list[str]:
    """The passwords ``raw`` gives, in its user information and as a ``password`` parameter."""
    match = _URL.match(raw.strip())
    if match is None:
        return []
    given = [unquote(match["password"] or "")]
    given += [value for key, value in parse_qsl(match["query"] or "") if key in ("password", "sslpassword")]
    return [password for password in given if password]
