"""outbound-schema: the PostgreSQL schema of the outbound dialer.

Import the models from here::

    from outbound_schema import Base, OutboundCallJob, OutboundCallRun, metadata
"""

from outbound_schema.config import VERSION_TABLE, alembic_config
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.models import Base, OutboundCallJob, OutboundCallRun, metadata

__all__ = [
    "VERSION_TABLE",
    "Base",
    "OutboundCallJob",
    "OutboundCallRun",
    "OutboundSchemaError",
    "alembic_config",
    "metadata",
]
