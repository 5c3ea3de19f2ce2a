"""outbound-schema: the PostgreSQL schema of the outbound dialer.

Import the models from here::

    from outbound_schema import Base, OutboundCallJob, OutboundCallRun, metadata

Every name is loaded on first use: the migrations, which import helpers from
this package, never import the ORM models, and ``import outbound_schema`` (or
of a light module in it, such as ``outbound_schema.history``) imports neither
SQLAlchemy nor Alembic. The models exported are those ``outbound_schema.models``
lists in its ``__all__``: a new model is exported by adding it there, and
nothing here changes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from outbound_schema.config import VERSION_TABLE as VERSION_TABLE
    from outbound_schema.config import alembic_config as alembic_config
    from outbound_schema.errors import OutboundSchemaError as OutboundSchemaError
    from outbound_schema.health import current_revisions as current_revisions
    from outbound_schema.health import head_revision as head_revision
    from outbound_schema.health import is_at_head as is_at_head
    from outbound_schema.health import is_migrated as is_migrated
    from outbound_schema.models import *  # noqa: F403 (every name models.__all__ lists)

#: Where each public name but the models comes from.
_SOURCES = {
    "VERSION_TABLE": "outbound_schema.config",
    "alembic_config": "outbound_schema.config",
    "OutboundSchemaError": "outbound_schema.errors",
    "current_revisions": "outbound_schema.health",
    "head_revision": "outbound_schema.health",
    "is_at_head": "outbound_schema.health",
    "is_migrated": "outbound_schema.health",
}
_MODELS = "outbound_schema.models"
_HERE = Path(__file__).parent


def _is_submodule(name: str) -> bool:
    return (_HERE / f"{name}.py").is_file() or (_HERE / name / "__init__.py").is_file()


def _model_names() -> list[str]:
    names: list[str] = importlib.import_module(_MODELS).__all__
    return names


def __getattr__(name: str) -> Any:
    if name == "__all__":  # `from outbound_schema import *`: the names above and the models
        return [*_SOURCES, *_model_names()]
    source = _SOURCES.get(name)
    # A submodule (`from outbound_schema import dsn`) is the import system's to load: no models for it.
    if source is None and not name.startswith("_") and not _is_submodule(name) and name in _model_names():
        source = _MODELS
    if source is None:
        raise AttributeError(f"module 'outbound_schema' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SOURCES, *_model_names()})
