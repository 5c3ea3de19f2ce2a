"""Where the database is: the one place that reads database URLs, masks them and opens connections.

Everything that connects goes through here: the commands (``check`` with psycopg alone, the others
through :func:`outbound_schema.database.engine_for`, whose engines connect with :meth:`Target.connect`),
Alembic's ``env.py``, the progress watcher's second connection (:func:`following`) and the embedded
server's connections. A URL is read once, by libpq (``psycopg.conninfo.conninfo_to_dict``), and handed to
libpq as the conninfo string it was read into; SQLAlchemy's own URL parsing never decides where we
connect, so a URL means the same on every SQLAlchemy release.

libpq's conventions hold, as for psql: the ``PG*`` environment fills in what a URL leaves out (and is a
target of its own when no URL is given: ``PGHOST=db PGDATABASE=app``), ``service=`` and ``PGSERVICE``
read ``pg_service.conf`` (``PGSERVICEFILE``), passwords come from ``PGPASSWORD`` or ``.pgpass``
(``PGPASSFILE``), ``postgresql://h1:p1,h2:p2/db`` tries each host in turn, and a socket folder is a host
(``?host=%2Fvar%2Frun%2Fpostgresql``). A key/value conninfo (``host=db dbname=app``) works as well as a URL.

Our connections name themselves ``outbound-schema`` (libpq's ``fallback_application_name``: a name the URL,
``PGAPPNAME`` or the service gives wins), give up connecting after ``DEFAULT_CONNECT_TIMEOUT`` seconds per
address unless the URL or ``PGCONNECT_TIMEOUT`` says otherwise, send no startup ``options`` of their own and
prepare no statements, so that they work through a default PgBouncer in transaction pooling.

What is shown is masked (:func:`mask`): no password, from a URL, a ``password=`` parameter or ``PGPASSWORD``,
is ever printed, nor the value of any parameter but libpq's own that hold no secret (a misspelled
``passwrd=`` too); a service file's contents never are.

Importing this module imports neither SQLAlchemy nor Alembic, nor psycopg, which reading a URL imports.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from outbound_schema.errors import OutboundSchemaError
from outbound_schema.settings import DATABASE_URL

if TYPE_CHECKING:
    import psycopg

URL_ENV_VAR = str(DATABASE_URL.env)
APPLICATION_NAME = "outbound-schema"
#: Seconds to wait for a server to answer a connection, per address tried (libpq's connect_timeout).
DEFAULT_CONNECT_TIMEOUT = 10

_ACCEPTED_DRIVERS = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
#: libpq's variables that are not a connection parameter's: the service file's name.
_MORE_VARIABLES = ("PGSERVICEFILE",)
#: libpq's connection keywords whose values are shown: its list, less those that hold a secret (password,
#: sslpassword, oauth_client_secret, scram_client_key, scram_server_key). Any other key, a misspelled one
#: (``passwrd=``) among them, has its value hidden: what it holds may be a password.
_SHOWN_KEYS = frozenset(
    {
        "service", "user", "passfile", "channel_binding", "connect_timeout", "dbname", "host", "hostaddr", "port",
        "client_encoding", "options", "application_name", "fallback_application_name", "keepalives",
        "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "sslmode",
        "sslnegotiation", "sslcompression", "sslcert", "sslkey", "sslcertmode", "sslrootcert", "sslcrl",
        "sslcrldir", "sslsni", "requirepeer", "require_auth", "min_protocol_version", "max_protocol_version",
        "ssl_min_protocol_version", "ssl_max_protocol_version", "gssencmode", "krbsrvname", "gsslib",
        "gssdelegation", "replication", "target_session_attrs", "load_balance_hosts", "oauth_issuer",
        "oauth_client_id", "oauth_scope", "sslkeylogfile", "requiressl",
    }
)  # fmt: skip
_SECRET_VARIABLES = frozenset({"PGPASSWORD"})

_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DBNAME (postgresql+psycopg:// works too)"
_SCHEME = re.compile(r"[\w+.\-]+://")
#: A parameter: ``?key=...`` in a URL (up to the next ``&``), ``key=...`` in a key/value string (a quoted
#: value, or up to the next blank).
_QUERY_PARAMETER = re.compile(r"([?&])([^=&#]*)=([^&]*)")  # a key percent-encoded ("%70assword") is one too
_KEYWORD_PARAMETER = re.compile(r"""((?:^|\s)([^\s=:/?@&#]+)\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)""")
_PORT = re.compile(r"[0-9]*")
#: ``host=NAME:PORT``, as SQLAlchemy's multi-host URLs spell a host in the query; a host name to libpq.
_HOST_WITH_PORT = re.compile(r"[A-Za-z0-9\-.]+:[0-9]+")


@dataclass(frozen=True)
class Target:
    """A database to connect to: what libpq is handed, where it was configured, and what may be shown.

    ``conninfo`` holds the password when one was given: never print it; print ``shown``.
    """

    conninfo: str
    source: str
    shown: str

    def params(self) -> dict[str, str]:
        """The parameters given (not those libpq adds from the environment, a service file or .pgpass)."""
        from psycopg.conninfo import conninfo_to_dict

        return {key: str(value) for key, value in conninfo_to_dict(self.conninfo).items()}

    def with_database(self, name: str) -> Target:
        """The same server, user and settings, another database."""
        from psycopg.conninfo import make_conninfo

        conninfo = make_conninfo(self.conninfo, dbname=name)
        return Target(conninfo, self.source, mask(conninfo))

    def libpq(self, *, application_name: str = APPLICATION_NAME, connect_timeout: int | None = None) -> str:
        """The conninfo our connections use: ``conninfo`` with our name and connect timeout as defaults."""
        from psycopg.conninfo import make_conninfo

        params = self.params()
        params.setdefault("fallback_application_name", application_name)
        if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
            params["connect_timeout"] = str(DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout)
        return make_conninfo("", **params)

    def connect(
        self, *, application_name: str = APPLICATION_NAME, connect_timeout: int | None = None, **kwargs: Any
    ) -> psycopg.Connection[tuple[Any, ...]]:
        """A psycopg connection (not autocommit, unless ``autocommit=True``); failing to connect is a clear
        error (exit code 2). Statements are never prepared on the server (a pooler may hand the next one to
        another server connection). ``kwargs`` go to :func:`psycopg.connect`."""
        import psycopg

        try:
            conninfo = self.libpq(application_name=application_name, connect_timeout=connect_timeout)
            connection = psycopg.connect(conninfo, **{"autocommit": False, **kwargs})
        except psycopg.Error as exc:
            raise could_not_connect(self.shown, _scrubbed(str(exc), self._secrets())) from None
        connection.prepare_threshold = None
        return connection

    def _secrets(self) -> list[str]:
        given = [value for key, value in self.params().items() if _hidden(key)]
        return given + [os.environ[name] for name in _SECRET_VARIABLES if os.environ.get(name)]


def configured(explicit: str | None, *, explicit_source: str = "--database-url") -> Target | None:
    """The database configured, in order: ``explicit``, ``DATABASE_URL``, libpq's ``PG*`` variables; None when
    nothing names one (only then may the embedded database be used)."""
    if explicit:
        return parse(explicit, source=explicit_source)
    from_env = os.environ.get(URL_ENV_VAR)
    if from_env:
        return parse(from_env, source=f"the {URL_ENV_VAR} environment variable")
    variables = libpq_variables()
    if variables:
        return _from_environment(variables)
    return None


def libpq_variables() -> dict[str, str]:
    """libpq's connection variables that are set (``PGHOST``, ``PGSERVICE``, ``PGSSLMODE``, ...): each one is
    configuration, as it is to psql."""
    from psycopg import pq

    names = {d.envvar.decode() for d in pq.Conninfo.get_defaults() if d.envvar} | set(_MORE_VARIABLES)
    return {name: os.environ[name] for name in sorted(names) if os.environ.get(name)}


def _from_environment(variables: dict[str, str]) -> Target:
    shown = " ".join(f"{name}={'***' if name in _SECRET_VARIABLES else value}" for name, value in variables.items())
    source = f"libpq's environment variables ({', '.join(variables)})"
    if not (variables.get("PGDATABASE") or variables.get("PGSERVICE")):
        raise OutboundSchemaError(
            f"The database is configured through {source}, but none names a database, so nothing was done. "
            "Set PGDATABASE (or PGSERVICE, or DATABASE_URL) to name it; to use the embedded PostgreSQL instead, "
            f"unset {', '.join(variables)}.",
            exit_code=2,
        )
    return Target("", source, shown)


def parse(raw: str, *, source: str) -> Target:
    """``raw``, a URL (``postgresql://``, ``postgres://``, ``postgresql+psycopg://``) or a key/value conninfo,
    read by libpq; a clear error naming ``source`` (exit code 2) when it is not one or names no database."""
    text = raw.strip()
    shown = mask(text)
    scheme = _SCHEME.match(text)
    if scheme is not None:
        driver = scheme.group()[:-3]
        if driver not in _ACCEPTED_DRIVERS:
            raise _bad(
                f"The database URL from {source} ({shown}) uses the driver '{driver}', but outbound-schema only "
                "works with PostgreSQL through psycopg 3. Use a URL that starts with postgresql:// or "
                "postgresql+psycopg://."
            )
        if text.split("?", 1)[0].count("@") > 1:
            raise _bad(
                f"The database URL from {source} ({shown}) has more than one '@': a password or user name "
                "holding '@' must be percent-encoded, as %40 (postgresql://USER:p%40ss@HOST/DBNAME)."
            )
        conninfo = "postgresql://" + text[scheme.end() :]
    elif "=" in text and "://" not in text:
        conninfo = text  # host=... dbname=...
    else:
        raise _bad(f"The database URL from {source} could not be parsed. Give a URL of the form {_FORM}.")
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = {key: str(value) for key, value in conninfo_to_dict(conninfo).items()}
    except psycopg.Error as exc:
        # libpq quotes what it could not read, which may be part of a password: only what is shown anyway stays.
        detail = re.sub(r'"([^"]*)"', lambda m: m[0] if m[1] in shown else '"***"', str(exc))
        detail = _scrubbed(detail, _raw_secrets(text))
        if "invalid URI query parameter" in detail or "invalid connection option" in detail:
            raise OutboundSchemaError(  # libpq's words for an option it does not know
                f"The database URL from {source} ({shown}) names a connection option libpq does not know "
                f"({detail}). Check its spelling against libpq's parameter key words (sslmode, "
                'connect_timeout, application_name, ...: PostgreSQL\'s documentation, "Connection Strings"); '
                "its value is not shown, in case it is a password.",
                exit_code=2,
            ) from None
        raise _bad(
            f"The database URL from {source} ({shown}) could not be parsed ({detail}). Give a URL of the form "
            f"{_FORM}, its user, password and database name percent-encoded."
        ) from None
    _check_query(text if scheme else "", source, shown)
    _check_hosts(params, source, shown, _raw_secrets(text))
    named = params.get("dbname") or params.get("service")
    if not (named or os.environ.get("PGDATABASE") or os.environ.get("PGSERVICE")):
        raise _bad(
            f"The database URL from {source} ({shown}) names no database. Add the database name after the host, "
            "as in postgresql://USER:PASSWORD@HOST:5432/DBNAME (or set PGDATABASE)."
        )
    return Target(make_conninfo("", **params), source, shown)


def _bad(message: str) -> OutboundSchemaError:
    return OutboundSchemaError(message, exit_code=2)


def _check_query(url: str, source: str, shown: str) -> None:
    """A parameter given twice is refused: libpq would keep the last silently (SQLAlchemy joined them)."""
    query = url.split("?", 1)[1] if "?" in url else ""
    seen: set[str] = set()
    for key, _value in parse_qsl(query.split("#", 1)[0], keep_blank_values=True):
        if key in seen:
            raise _bad(
                f"The database URL from {source} ({shown}) gives '{key}' more than once; libpq would use only the "
                f"last. Give it once (several hosts: postgresql://USER@HOST1:PORT1,HOST2:PORT2/DBNAME, or "
                "?host=HOST1,HOST2&port=PORT1,PORT2)."
            )
        seen.add(key)


def _check_hosts(params: dict[str, str], source: str, shown: str, secrets: list[str]) -> None:
    """A port that is no number, or a host written ``NAME:PORT``: what libpq read is not what was meant (a
    password holding ``/`` or ``@``, unescaped, reads as a host and port)."""
    for port in params.get("port", "").split(","):
        if not _PORT.fullmatch(port.strip()):
            raise _bad(
                f"The database URL from {source} ({shown}) could not be parsed: a port in it is not a number. "
                f"Give a URL of the form {_FORM}, its user, password and database name percent-encoded."
            )
    for host in params.get("host", "").split(","):
        if _HOST_WITH_PORT.fullmatch(host):
            raise _bad(
                _scrubbed(
                    f"The database URL from {source} ({shown}) gives the host '{host}': libpq reads a host there, "
                    "not HOST:PORT. Give the ports apart, as in ?host=HOST1,HOST2&port=PORT1,PORT2, or write "
                    "postgresql://USER@HOST1:PORT1,HOST2:PORT2/DBNAME.",
                    secrets,
                )
            )


def following(info: Any, base: Target | None = None, **overrides: Any) -> Target:
    """A target for another connection to the server and database the connection ``info`` (a psycopg
    ``ConnectionInfo``) is on: ``base``'s parameters (service, TLS, ...) when it was opened from ``base``,
    else those libpq reports, with the host, port and database it reached (one of several hosts); a
    password libpq used (from the URL, PGPASSWORD or .pgpass) is kept. ``overrides`` are parameters."""
    from psycopg.conninfo import make_conninfo

    params: dict[str, Any] = base.params() if base is not None else {**info.get_parameters()}
    for key in ("host", "hostaddr", "port"):
        params.pop(key, None)
    params.update(host=info.host, port=info.port, dbname=info.dbname)
    if getattr(info, "hostaddr", ""):
        params["hostaddr"] = info.hostaddr
    if info.password and "password" not in params:
        params["password"] = info.password
    params.update(overrides)
    conninfo = make_conninfo("", **params)
    return Target(conninfo, base.source if base is not None else "the migration's connection", mask(conninfo))


def mask(raw: str) -> str:
    """``raw`` with any password replaced by ``***``; safe to print, however malformed ``raw`` is.

    The password runs from the first ``:`` after the scheme (or from the start,
    without one) to the last ``@``, so unescaped ``@``, ``:`` or ``/`` in it are
    hidden too; so is the value of every parameter but libpq's own keywords that
    hold no secret (``password=``, and a misspelled ``passwrd=``). When in doubt, more
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
    return _KEYWORD_PARAMETER.sub(_masked_keyword, _QUERY_PARAMETER.sub(_masked_parameter, text))


def _hidden(key: str) -> bool:
    """Whether a parameter's value is hidden: any but those libpq shows (a misspelled key's too)."""
    return unquote(key).strip().lower() not in _SHOWN_KEYS


def _masked_parameter(match: re.Match[str]) -> str:
    separator, key, value = match.groups()
    return f"{separator}{key}={'***' if _hidden(key) else value}"


def _masked_keyword(match: re.Match[str]) -> str:
    before, key, value = match.groups()
    return f"{before}{'***' if _hidden(key) else value}"


def _raw_secrets(text: str) -> list[str]:
    """What may be a password in ``text``, read as :func:`mask` reads it, for a message about ``text``."""
    found = [match.group(3) for match in _QUERY_PARAMETER.finditer(text) if _hidden(match.group(2))]
    found += [match.group(3).strip("'") for match in _KEYWORD_PARAMETER.finditer(text) if _hidden(match.group(2))]
    scheme = _SCHEME.match(text)
    start = scheme.end() if scheme else 0
    at = text.rfind("@")
    colon = text.find(":", start, at) if at >= start else -1
    if colon != -1:
        found.append(text[colon + 1 : at])
    return found + [unquote(secret) for secret in found]


def _scrubbed(detail: str, secrets: list[str]) -> str:
    """libpq's message in one line, any of ``secrets`` in it hidden (libpq never prints a password it was
    given to connect with; a URL it could not read, it may quote)."""
    detail = " ".join(detail.split())
    for secret in sorted({s for s in secrets if len(s) >= 2}, key=len, reverse=True):
        detail = detail.replace(secret, "***")
    return detail


def could_not_connect(masked: str, detail: str) -> OutboundSchemaError:
    """The one message for a connection that failed."""
    return OutboundSchemaError(
        f"Could not connect to the database at {masked} ({detail}). "
        "Check that the server is running and reachable and that the URL's host, port, user, "
        "password and database name are right.",
        exit_code=2,
    )


def connect(
    target: Target | str,
    *,
    source: str = "the URL given",
    application_name: str = APPLICATION_NAME,
    connect_timeout: int | None = None,
    **kwargs: Any,
) -> psycopg.Connection[tuple[Any, ...]]:
    """:meth:`Target.connect` for ``target``, or for the URL ``target`` read as :func:`parse` reads it."""
    if isinstance(target, str):
        target = parse(target, source=source)
    return target.connect(application_name=application_name, connect_timeout=connect_timeout, **kwargs)
