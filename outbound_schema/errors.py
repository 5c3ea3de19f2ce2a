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
