"""Alembic configuration for this library's migrations, usable from any directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from outbound_schema.settings import SCRIPT_LOCATION

if TYPE_CHECKING:  # Alembic and SQLAlchemy are imported when a Config is made, not to read a name
    from alembic.config import Config

    from outbound_schema.database import Where

#: The host application's tables that our foreign keys reference. We never
#: create, alter, drop or compare them in a real database.
HOST_TABLES: tuple[str, ...] = ("business", "leads", "call_log", "outbound_lead_lists")

#: "outbound" in ASCII: the advisory lock key every outbound-schema migration takes (read by ``status`` too,
#: which loads no SQLAlchemy: it lives here, not in ``locking``).
LOCK_KEY = 0x6F75_7462_6F75_6E64

#: Our own version table, so that a host application's ``alembic_version``
#: (and its heads) never collide with ours in a shared database.
VERSION_TABLE = "outbound_schema_version"

#: Keys in ``Config.attributes`` under which callers hand env.py a URL and a lock wait (seconds).
URL_ATTRIBUTE = "outbound_schema.url"
LOCK_WAIT_ATTRIBUTE = "outbound_schema.lock_wait"
#: Key under which env.py (or our command line) hands the safety layer its DDL limits.
LIMITS_ATTRIBUTE = "outbound_schema.limits"
#: Key under which our command line hands a run its settings, resolved (``settings.resolve_run``).
SETTINGS_ATTRIBUTE = "outbound_schema.settings"
#: Keys under which ``outbound-schema snapshot`` hands over the catalogs it has just generated, and turns
#: off the comparison of a scratch database with the (possibly stale) files before each revision.
EXPECTED_ATTRIBUTE = "outbound_schema.expected"
PREFLIGHT_ATTRIBUTE = "outbound_schema.preflight"
#: Key under which ``outbound-schema plan`` hands an offline run its recorder (``outbound_schema.plan``): it sees
#: each statement the safety layer writes, and the refused operations, which then do not stop the script.
PLAN_ATTRIBUTE = "outbound_schema.plan"
#: Key under which a caller hands env.py the metadata autogenerate compares with (default: our models').
METADATA_ATTRIBUTE = "outbound_schema.target_metadata"
#: Another folder of migrations (env.py, versions/, schema/) to use instead of the installed one.
SCRIPT_LOCATION_ENV_VAR = str(SCRIPT_LOCATION.env)

_PACKAGE_DIR = Path(__file__).resolve().parent


def script_location() -> Path:
    """The folder holding env.py, versions/ and schema/: shipped inside the wheel, or the repository's.

    The ``script location`` setting names another (a copy with a revision under trial, say).
    """
    override = SCRIPT_LOCATION.resolve()
    if override:
        return Path(override).resolve()
    for candidate in (_PACKAGE_DIR / "_alembic", _PACKAGE_DIR.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"outbound-schema's migrations are missing from {_PACKAGE_DIR}; reinstall the package.")


def alembic_config(url: Where | None = None, *, lock_wait: float | None = None) -> Config:
    """A Config for our migrations; ``url`` None means what env.py finds configured (DATABASE_URL, libpq's
    PG* variables), else the embedded default."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.attributes[URL_ATTRIBUTE] = url
    if lock_wait is not None:
        config.attributes[LOCK_WAIT_ATTRIBUTE] = lock_wait
    return config
