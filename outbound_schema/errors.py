"""The one exception type users of the command line see."""


class OutboundSchemaError(Exception):
    """A problem the operator can fix; the message says what is wrong and what to do.

    Our own command line prints it as one paragraph and exits with :attr:`exit_code`:
    1 for a refused change, 2 when the database could not be reached or used at all.
    Under Alembic's command line it becomes an Alembic ``CommandError``
    (``outbound_schema.environment.alembic_errors``), which Alembic prints as one
    ``FAILED:`` paragraph without a traceback. It is not one itself so that a
    read-only check never has to import Alembic.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: What ended a session, by the SQLSTATE the server sent as it did, and what to do about it.
_ENDED_BY = {
    "57P05": (
        "because it sat idle longer than the server's idle_session_timeout",
        "Migrations turn that timeout off for their own sessions once connected, so it came from a setting "
        "in force before that, or from a pooler in between: remove it for the role that migrates (ALTER ROLE "
        "<role> RESET idle_session_timeout, or IN DATABASE), then run the command again.",
    ),
    "25P03": (
        "because it sat idle inside a transaction longer than the server's idle_in_transaction_session_timeout",
        "Migrations turn that timeout off for their own sessions once connected, so it came from a setting "
        "in force before that, or from a pooler in between: remove it for the role that migrates (ALTER ROLE "
        "<role> RESET idle_in_transaction_session_timeout), then run the command again.",
    ),
    "25P04": (
        "because a transaction of it ran longer than the server's transaction_timeout",
        "Migrations turn that timeout off for their own sessions once connected, so it came from a setting "
        "in force before that: remove it for the role that migrates (ALTER ROLE <role> RESET "
        "transaction_timeout), then run the command again.",
    ),
    "57P01": (
        "by an administrator command: someone ended it with pg_terminate_backend(), or the server is shutting down",
        "Ask who ended it (the server log names the shutdown; pg_terminate_backend is a superuser's or the "
        "role's own), then run the command again once the server is up.",
    ),
    "57P02": (
        "because the server restarted after another of its processes crashed",
        "Run the command again once the server is back (see the server log for the crash).",
    ),
    "57P03": (
        "because the server is starting up, shutting down or recovering",
        "Run the command again once the server accepts connections.",
    ),
}


def connection_lost(sqlstate: str, detail: str, consequence: str) -> str | None:
    """One paragraph for a session that ended under a command, telling the server's timeouts and an
    administrator's command (by ``sqlstate``) from a network failure (a connection error, or no SQLSTATE
    at all); None when ``sqlstate`` says the session did not end."""
    if sqlstate in _ENDED_BY:
        why, what_to_do = _ENDED_BY[sqlstate]
        return f"The server ended the session {why} ({sqlstate}: {detail}); {consequence}. {what_to_do}"
    if sqlstate.startswith("08") or not sqlstate:
        return (
            f"The connection to the database broke ({detail}); {consequence}. Nothing in the server ended the "
            "session: the network between here and the server failed, or the server went away (a crash, a "
            "restart, a failover), or a proxy, pooler or firewall closed the connection. Check that the server "
            "is up and reachable from here (and any idle-connection limit of what is in between), then run the "
            "command again."
        )
    return None
