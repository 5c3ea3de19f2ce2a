"""The one exception type users of the command line see."""

from alembic.util import CommandError


class OutboundSchemaError(CommandError):
    """A problem the operator can fix; the message says what is wrong and what to do.

    It is an Alembic ``CommandError`` so that ``alembic upgrade head`` prints it
    as one ``FAILED:`` paragraph without a traceback and exits 1, as our own
    command line does.
    """
