"""pytest-alembic's built-in checks, on a real PostgreSQL database holding the host tables."""

from __future__ import annotations

from collections.abc import Iterator

import alembic.config
import pytest
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from outbound_schema.config import alembic_config as our_alembic_config
from outbound_schema.database import engine_for

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


@pytest.fixture
def alembic_config() -> alembic.config.Config:
    return our_alembic_config()


@pytest.fixture
def alembic_engine(host_db: URL) -> Iterator[Engine]:
    engine = engine_for(host_db)
    yield engine
    engine.dispose()
