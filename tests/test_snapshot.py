"""outbound-schema snapshot: the expected-schema files, regenerated from the revisions on the run's server, come
out as committed."""

from __future__ import annotations

import difflib
from pathlib import Path

from sqlalchemy.engine import URL

from outbound_schema.catalog import Snapshot
from outbound_schema.expected import SNAPSHOT_COMMAND, render
from tests.helpers import ALL_REVISIONS, HEAD, MIGRATIONS, cli_here, copy_migrations, in_location, plain


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


def test_snapshot_check_reports_a_hand_edited_file_stale(head_db: URL, tmp_path: Path) -> None:
    """`snapshot --check` builds every revision on the server and compares what they build with the committed
    files: one default changed by hand in head's file (of a copy of the migrations) is stale, exit 1; the
    command without --check writes it back as the revisions build it."""
    location = copy_migrations(tmp_path / "alembic")
    head_file = location / "schema" / f"{HEAD}.sql"
    committed = head_file.read_text()
    assert committed.count("concurrency integer DEFAULT 3,") == 1
    head_file.write_text(committed.replace("concurrency integer DEFAULT 3,", "concurrency integer DEFAULT 4,"))

    done = cli_here("snapshot", "--check", DATABASE_URL=plain(head_db), **in_location(location))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"stale: {head_file}",
        f"The expected-schema files are out of date: run `{SNAPSHOT_COMMAND}` and commit the result.",
    ]

    written = cli_here("snapshot", DATABASE_URL=plain(head_db), **in_location(location))
    assert written.returncode == 0, written.stdout + written.stderr
    assert head_file.read_text() == committed
