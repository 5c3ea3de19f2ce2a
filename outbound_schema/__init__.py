"""outbound-schema: the PostgreSQL schema of the outbound dialer.

Import the models from here::

    from outbound_schema import Base, OutboundCallJob, OutboundCallRun, metadata

The models are loaded on first use, so that the migrations, which import
helpers from this package, never import the ORM models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from outbound_schema.config import VERSION_TABLE, alembic_config
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.health import current_revisions, head_revision, is_at_head, is_migrated

if TYPE_CHECKING:
    from outbound_schema.models import Base, OutboundCallJob, OutboundCallRun, metadata

_FROM_MODELS = {"Base", "OutboundCallJob", "OutboundCallRun", "metadata"}

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
    if name in _FROM_MODELS:
        return getattr(importlib.import_module("outbound_schema.models"), name)
    raise AttributeError(f"module 'outbound_schema' has no attribute {name!r}")
