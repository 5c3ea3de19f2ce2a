"""The built wheel, installed in a clean virtualenv far from the source tree, against a real database."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.helpers import HEAD, REPO, plain


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with only the wheel and its dependencies; returns its bin folder."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        # The backend is in the test extra: no isolated build environment to set up (3 s) first.
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(root / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (root / "dist").glob("outbound_schema-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "outbound_schema/py.typed" in names
    assert "outbound_schema/_alembic/env.py" in names
    assert "outbound_schema/_alembic/versions/46d_status_twilio_sid_index.py" in names
    assert f"outbound_schema/_alembic/schema/{HEAD}.sql" in names
    # A venv without a pip of its own (installing pip into it is most of a venv's making): this one's
    # pip installs into it. The wheel and its dependencies are all that venv gets. (Installed without
    # compiling, the commands below compiled what they import, which cost more than pip compiling all.)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    bin_dir = root / "venv" / "bin"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return bin_dir


def run_installed(bin_dir: Path, cwd: Path, *args: str, url: URL | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(cwd)}
    if url is not None:
        env["DATABASE_URL"] = plain(url)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.heavy
def test_the_installed_wheel_migrates_and_checks(installed: Path, host_db: URL, tmp_path: Path) -> None:
    where = run_installed(
        installed, tmp_path, "python", "-c", "import outbound_schema; print(outbound_schema.__file__)"
    )
    assert str(installed.parent) in where.stdout and str(REPO) not in where.stdout

    sql = run_installed(installed, tmp_path, "outbound-schema", "upgrade", "--sql")
    assert sql.returncode == 0, sql.stderr
    assert f"version_num='{HEAD}'" in sql.stdout

    upgrade = run_installed(installed, tmp_path, "outbound-schema", "upgrade", url=host_db)
    assert upgrade.returncode == 0, upgrade.stderr
    status = run_installed(installed, tmp_path, "outbound-schema", "status", "--check", url=host_db)
    assert status.returncode == 0 and "at head" in status.stdout
    check = run_installed(installed, tmp_path, "outbound-schema", "check", url=host_db)
    assert check.returncode == 0, check.stdout
    assert check.stdout.splitlines()[-1].startswith("OK: all ")
