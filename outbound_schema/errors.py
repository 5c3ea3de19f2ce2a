"""The one exception type users of the command line see."""

from alembic.util import CommandError


class OutboundSchemaError(CommandError):
    """A problem the operator can fix; the message says what is wrong and what to do.

    It is an Alembic ``CommandError`` so that ``alembic upgrade head`` prints it
    as one ``FAILED:`` paragraph without a traceback and exits 1. Our own command
    line exits with :attr:`exit_code`: 1 for a refused change, 2 when the
    database could not be reached or used at all.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
