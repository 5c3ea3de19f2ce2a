"""The built wheel, installed in a clean virtualenv far from the source tree, against a real database."""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy.engine import URL

from tests.helpers import HEAD, REPO, plain


@pytest.fixture(scope="module")
def installed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with only the wheel and its dependencies; yields its bin folder."""
    root = _beside_the_packages(tmp_path_factory.mktemp("wheel"))
    failed_before = request.session.testsfailed
    # The PEP 517 hook pip calls, of the backend pyproject.toml names, called as pip would without build
    # isolation (the backend is in the test extra): one process where `pip wheel` starts three.
    backend = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["build-backend"]
    built = subprocess.run(
        [sys.executable, "-c", f"import sys, {backend}; {backend}.build_wheel(sys.argv[1])", root / "dist"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "dist").glob("outbound_schema-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "outbound_schema/py.typed" in names
    assert "outbound_schema/_alembic/env.py" in names
    assert "outbound_schema/_alembic/versions/46d_status_twilio_sid_index.py" in names
    assert f"outbound_schema/_alembic/schema/{HEAD}.sql" in names
    # A venv without a pip of its own (installing pip into it is most of a venv's making): this one's
    # pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    bin_dir = root / "venv" / "bin"
    pip = [sys.executable, "-m", "pip", "--python", str(bin_dir / "python")]
    # The dependencies the wheel declares, and theirs, are the very distributions installed here (this
    # venv was resolved from the same pyproject.toml): linked over (see copy_distribution), compiled
    # files included, where pip would download, unpack and compile them again. Only they are brought over;
    # pip installs the wheel itself, with no index to fetch from: its resolver must find every requirement
    # of the wheel, and of each distribution it requires, met by those brought over, or it fails.
    site_packages = next((root / "venv" / "lib").glob("python3*/site-packages"))
    for dist in declared_dependencies(wheel):
        copy_distribution(dist, site_packages)
    install = subprocess.run([*pip, "install", "-q", "--no-index", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    yield bin_dir
    # Thousands of files: removed here, while other workers test on, not at the end of a later run by
    # pytest's clean-up of old temporary folders, while every other process waits. Kept if a test failed.
    if request.session.testsfailed == failed_before:
        shutil.rmtree(root, ignore_errors=True)


def _beside_the_packages(folder: Path) -> Path:
    """Where the venv is made: ``folder``, or, where that is not on the file system of this environment's
    packages (the run's temporary files are in memory, tests/conftest.py), a temporary folder that is, so that
    the packages are linked over rather than copied (some 1,100 files, half a core-second)."""
    device = Path(sysconfig.get_paths()["purelib"]).stat().st_dev
    if folder.stat().st_dev == device:
        return folder
    for candidate in (Path("/var/tmp"), Path("/tmp")):
        if candidate.is_dir() and candidate.stat().st_dev == device and os.access(candidate, os.W_OK):
            folder.rmdir()
            return Path(tempfile.mkdtemp(prefix="outbound-schema-wheel-", dir=candidate))
    return folder


def declared_dependencies(wheel: Path) -> list[metadata.Distribution]:
    """The installed distributions the wheel's Requires-Dist names, and theirs (with the extras asked
    for: ``psycopg[binary]`` brings psycopg-binary), each checked against the versions it may be."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        wanted = email.message_from_bytes(archive.read(name)).get_all("Requires-Dist") or []
    todo = [Requirement(line) for line in wanted if _applies(Requirement(line), {""})]
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()  # (distribution, extra) whose requirements were followed
    while todo:
        requirement = todo.pop()
        dist = metadata.distribution(requirement.name)
        assert requirement.specifier.contains(dist.version, prereleases=True), (requirement, dist.version)
        key = canonicalize_name(dist.metadata["Name"])
        found[key] = dist
        extras = {""} | set(requirement.extras)
        for extra in extras - {e for k, e in done if k == key}:
            done.add((key, extra))
            todo.extend(r for line in dist.requires or [] if _applies(r := Requirement(line), {extra}))
    assert {"sqlalchemy", "alembic", "psycopg", "psycopg-binary"} <= found.keys()
    return list(found.values())


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    """Whether ``requirement`` holds here, for one of ``extras`` ("" for none)."""
    marker = requirement.marker
    return marker is None or any(marker.evaluate({"extra": extra}) for extra in extras)


def copy_distribution(dist: metadata.Distribution, site_packages: Path) -> None:
    """The distribution's files, as its RECORD lists them, under ``site_packages``. Its console scripts
    (outside site-packages) are left out: they would start this venv's Python.

    Hard links where the file system allows (a tenth of the time of some 1,100 copies): nothing in the
    venv writes into them, as Python and pip replace a file rather than rewrite it."""
    home = Path(str(dist.locate_file("")))
    for file in dist.files or []:
        source = home / file
        if file.parts[0] == ".." or not source.is_file():
            continue
        (site_packages / file).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, site_packages / file)
        except OSError:  # another file system, or links not allowed: a copy
            shutil.copy2(source, site_packages / file)


def run_installed(bin_dir: Path, cwd: Path, *args: str, url: URL | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(cwd)}
    if url is not None:
        env["DATABASE_URL"] = plain(url)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# The package's commands as the console script runs them (main(argv)), each one's exit code and output: in one
# Python of the venv, where a process each cost a fresh interpreter importing SQLAlchemy and Alembic again.
IN_THE_VENV = """
import contextlib, io, json, sys
import outbound_schema, psycopg
from outbound_schema.cli import main

done = {"where": [outbound_schema.__file__, psycopg.pq.__impl__]}
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    done[" ".join(args)] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(done))
"""


@pytest.mark.heavy
def test_the_installed_wheel_migrates_and_checks(installed: Path, host_db: URL, tmp_path: Path) -> None:
    """The console script migrates; then, in one Python of the venv, the installed package writes the offline
    script, and status and check find the database at head."""
    upgrade = run_installed(installed, tmp_path, "outbound-schema", "upgrade", url=host_db)
    assert upgrade.returncode == 0, upgrade.stderr

    commands = [["upgrade", "--sql"], ["status", "--check"], ["check"]]
    ran = run_installed(installed, tmp_path, "python", "-c", IN_THE_VENV, json.dumps(commands), url=host_db)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    done = json.loads(ran.stdout.splitlines()[-1])
    where, impl = done["where"]
    assert where.startswith(str(installed.parent)) and str(REPO) not in where
    # psycopg[binary]: its own libpq, so that a machine with only Python and pip needs nothing else.
    assert impl == "binary"
    for args in commands:
        code, out, err = done[" ".join(args)]
        assert code == 0, (args, out, err)
    assert f"version_num='{HEAD}'" in done["upgrade --sql"][1]
    assert "at head" in done["status --check"][1]
    assert done["check"][1].splitlines()[-1].startswith("OK: all ")
