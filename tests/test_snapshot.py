"""outbound-schema snapshot: the expected-schema files, regenerated from the revisions on the run's server, come
out as committed."""

from __future__ import annotations

import difflib

from outbound_schema.catalog import Snapshot
from outbound_schema.expected import SNAPSHOT_COMMAND, render
from tests.helpers import ALL_REVISIONS, MIGRATIONS


def test_the_expected_schema_files_are_fresh(generated_catalogs: dict[str, Snapshot]) -> None:
    """Regenerated from the revisions on this server, every file comes out as committed."""
    stale = []
    for revision in ALL_REVISIONS:
        path = MIGRATIONS / "schema" / f"{revision}.sql"
        fresh = render(generated_catalogs[revision], revision)
        if not path.is_file() or path.read_text() != fresh:
            old = path.read_text().splitlines(keepends=True) if path.is_file() else []
            stale.append(f"{path.name}:\n" + "".join(difflib.unified_diff(old, fresh.splitlines(keepends=True))))
    extra = sorted(p.name for p in (MIGRATIONS / "schema").glob("*.sql") if p.stem not in ALL_REVISIONS)
    assert not stale and not extra, (
        f"The expected-schema files are stale: run `{SNAPSHOT_COMMAND}` and commit the result.\n"
        + "\n".join(stale)
        + (f"\nFiles of no revision: {', '.join(extra)}" if extra else "")
    )
