"""What importing the package costs: ``import outbound_schema`` and its light modules load neither
SQLAlchemy nor Alembic, and psycopg only when a connection is made; every public name
is still there, loaded on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy.engine import URL

import outbound_schema
from tests.helpers import REPO, plain

HEAVY = {"sqlalchemy", "alembic"}


def loaded_modules(*statements: str) -> set[str]:
    """The modules a fresh Python has loaded after running ``statements``."""
    code = "\n".join([*statements, "import sys", "print('\\n'.join(sys.modules))"])
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "statement",
    [
        "import outbound_schema",
        "import outbound_schema.history",
        "import outbound_schema.dsn",
        "import outbound_schema.keywords",
        "import outbound_schema.errors",
        "import outbound_schema.history, outbound_schema.dsn, outbound_schema.keywords",
    ],
)
def test_light_imports(statement: str) -> None:
    modules = loaded_modules(statement)
    assert not top_level(modules) & {*HEAVY, "psycopg"}, sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_the_light_modules_at_work() -> None:
    """Masking a URL, refusing a wrong driver and quoting a name import nothing heavy, nor psycopg; reading a
    URL needs psycopg (libpq reads it), still neither SQLAlchemy nor Alembic."""
    modules = loaded_modules(
        "from outbound_schema import dsn, keywords",
        "dsn.mask('postgresql://u:p@h/db')",
        "keywords.quote('user')",
        "try:",
        "    dsn.parse('mysql://h/db', source='here')",
        "except Exception as exc:",
        "    assert type(exc).__name__ == 'OutboundSchemaError'",
    )
    assert not top_level(modules) & {*HEAVY, "psycopg"}
    modules = loaded_modules(
        "from outbound_schema import dsn",
        "dsn.parse('postgresql://u:p@h/db?options=-csearch_path%3Dx', source='here')",
    )
    assert not top_level(modules) & HEAVY
    assert "psycopg" in top_level(modules)


def test_every_public_name_is_there() -> None:
    from outbound_schema import models

    assert set(outbound_schema.__all__) == {*outbound_schema._SOURCES, *models.__all__}
    assert set(outbound_schema.__all__) <= set(dir(outbound_schema))
    for name in outbound_schema.__all__:
        value = getattr(outbound_schema, name)
        source = outbound_schema._SOURCES.get(name, "outbound_schema.models")
        assert value is getattr(sys.modules[source], name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = outbound_schema.nope


def test_every_model_is_exported() -> None:
    """A new model is exported by listing it in models.__all__, beside its class: nothing else to edit."""
    from outbound_schema import models

    mapped = {mapper.class_.__name__ for mapper in models.Base.registry.mappers}
    missing = sorted(mapped - set(models.__all__))
    assert not missing, f"add {missing} to __all__ in outbound_schema/models.py, and outbound_schema exports them"


def test_star_import_and_submodules() -> None:
    modules = loaded_modules(
        "from outbound_schema import *",
        "from outbound_schema import keywords",
        "import outbound_schema",
        "assert is_migrated is outbound_schema.health.is_migrated",
        "assert OutboundCallRun.__tablename__ == 'outbound_call_runs'",
        "assert keywords is outbound_schema.keywords",
    )
    assert "sqlalchemy" in top_level(modules)  # asked for, so loaded
    assert "alembic" not in top_level(modules)  # the start-up gate reads the revision files, not Alembic


def test_a_service_gating_its_start_up_loads_no_alembic() -> None:
    modules = loaded_modules(
        "from outbound_schema import OutboundCallJob, OutboundCallRun, is_migrated",
        "from outbound_schema.health import standing",
    )
    assert "alembic" not in top_level(modules)
    # Nor the catalog's descriptions, which the read-only commands and migrations need, not a service.
    assert not {m for m in modules if m.startswith("outbound_schema.catalog")}


def test_the_read_only_commands_load_neither_alembic_nor_sqlalchemy(head_db: URL) -> None:
    """`check` and `status` read the revision files' ids and the catalog through psycopg alone: each command
    in turn in one fresh Python, what it loaded read right after it."""
    url = plain(head_db)
    commands = [["check"], ["status"], ["status", "--check", "--format", "json"]]
    code = [
        "import contextlib, io, sys",
        "from outbound_schema.cli import main",
        f"for command in {commands!r}:",
        "    with contextlib.redirect_stdout(io.StringIO()):",
        f"        assert main([*command, '--database-url', {url!r}]) == 0, command",
        "    heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'sqlalchemy', 'alembic'})",
        "    assert not heavy, (command, heavy)",
    ]
    loaded_modules(*code)
