"""The README's examples and commands are the ones that work."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from tests.helpers import BIN, HEAD, REPO, cli, connected, plain, python_forked, run

README = (REPO / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```$", README, flags=re.S | re.M)
SH_COMMANDS = re.findall(r"^```sh\n(.*?)^```$", README, flags=re.S | re.M)


@pytest.mark.parametrize("example", range(len(PYTHON_BLOCKS)))
@pytest.mark.heavy
def test_python_examples_run(head_db: URL, example: int) -> None:
    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (42); INSERT INTO leads (id) VALUES (7)"))
        conn.commit()
    # A process of its own, the block run as `python -c` runs it, in a namespace of its own: a block that
    # forgets an import or a setting fails as in a fresh Python. The modules are loaded already (the
    # zygote's), which spares each block a new Python importing SQLAlchemy; test_imports imports them in
    # fresh Pythons.
    child = python_forked(PYTHON_BLOCKS[example], DATABASE_URL=plain(head_db), PATH="/usr/bin:/bin")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, out + err


def test_there_are_examples() -> None:
    assert len(PYTHON_BLOCKS) >= 2


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = SH_COMMANDS[1].strip()
    assert "pytest" in test_command
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert any(line.startswith(f"{test_command} || status=1") for line in ci_lines)


@pytest.mark.heavy
def test_the_main_job_runs_against_the_embedded_default(tmp_path: Path) -> None:
    """The README's first command, minus the install: `alembic upgrade head` with no URL makes an
    embedded server and migrates it. Then the installed console script, with no URL either, in a folder
    of its own: it finds the server that command left in ./.outbound-schema/pgdata, and says so once.
    Each a process, as typed: the embedded server a command starts lives as long as that process. One
    server for the two (the code that makes one, ``embedded.default_database_url``, is the same for
    both), where a test each made two."""
    assert SH_COMMANDS[0].strip().endswith(".venv/bin/alembic upgrade head")
    folder = tmp_path / ".outbound-schema" / "pgdata"  # the console script's default, run in tmp_path
    done = run(str(BIN / "alembic"), "upgrade", "head", OUTBOUND_SCHEMA_EMBEDDED_DIR=str(folder))
    assert done.returncode == 0, done.stderr
    assert f"-> {HEAD}, " in done.stderr
    assert (folder / "PG_VERSION").is_file()

    upgrade, status = cli("upgrade", cwd=tmp_path), cli("status", cwd=tmp_path)
    for command in (done, upgrade, status):
        assert command.returncode == 0, command.stderr
        notices = [line for line in command.stderr.splitlines() if "embedded PostgreSQL" in line]
        assert len(notices) == 1 and notices[0].endswith(f"using the embedded PostgreSQL in {folder}")
    assert "Migrating " in upgrade.stderr and "Running upgrade" not in upgrade.stderr  # found at head
    assert "at head" in status.stdout
    # With the server and its host stand-ins found, status loads neither SQLAlchemy nor Alembic, as with a URL.
    code = (
        "import sys\nfrom outbound_schema.cli import main\nassert main(['status']) == 0\n"
        "print('heavy:', *sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'alembic'}))"
    )
    light = run(sys.executable, "-c", code, cwd=tmp_path)
    assert light.returncode == 0 and light.stdout.splitlines()[-1] == "heavy:", light.stdout + light.stderr
