"""outbound-schema: the PostgreSQL schema of the outbound dialer.

Import the models from here::

    from outbound_schema import Base, OutboundCallJob, OutboundCallRun, metadata

Every name is loaded on first use: the migrations, which import helpers from
this package, never import the ORM models, and ``import outbound_schema`` (or
of a light module in it, such as ``outbound_schema.history``) imports neither
SQLAlchemy nor Alembic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from outbound_schema.config import VERSION_TABLE, alembic_config
    from outbound_schema.errors import OutboundSchemaError
    from outbound_schema.health import current_revisions, head_revision, is_at_head, is_migrated
    from outbound_schema.models import Base, OutboundCallJob, OutboundCallRun, metadata

#: Where each public name comes from.
_SOURCES = {
    "VERSION_TABLE": "outbound_schema.config",
    "alembic_config": "outbound_schema.config",
    "OutboundSchemaError": "outbound_schema.errors",
    "current_revisions": "outbound_schema.health",
    "head_revision": "outbound_schema.health",
    "is_at_head": "outbound_schema.health",
    "is_migrated": "outbound_schema.health",
    "Base": "outbound_schema.models",
    "OutboundCallJob": "outbound_schema.models",
    "OutboundCallRun": "outbound_schema.models",
    "metadata": "outbound_schema.models",
}

__all__ = [
    "VERSION_TABLE",
    "Base",
    "OutboundCallJob",
    "OutboundCallRun",
    "OutboundSchemaError",
    "alembic_config",
    "current_revisions",
    "head_revision",
    "is_at_head",
    "is_migrated",
    "metadata",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'outbound_schema' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
