"""Print pip constraints pinning every dependency to the lowest release pyproject.toml allows.

For each requirement of ``[project] dependencies`` and of the ``test`` extra (following the extras the
project names of itself, e.g. ``outbound-schema[embedded]``), one ``name==version`` line: the version
of its ``>=`` floor, or of its ``==`` pin. A requirement with neither is an error: CI's lowest-versions
session (.ci/run) must know what to install, and a floor nobody tests is a promise nobody keeps.

Read from pyproject.toml on every run, so the lowest-versions session cannot drift from what we
declare. Only the standard library and pip's own ``packaging``: it runs before any venv is made.

    python3 .ci/lowest.py > lowest.txt && pip install -c lowest.txt -e '.[test]'

A floor must name a published, installable release (``1.14`` is read as ``1.14``, which pip finds as
``1.14.0``). Extras are dropped (constraints take none): ``psycopg[binary]>=3.2`` gives
``psycopg==3.2``, and psycopg's own ``binary`` extra pins ``psycopg-binary`` to the same release.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a bare interpreter: pip's copy, which reads requirements as pip does
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("test",)


def requirements(project: dict[str, object]) -> list[Requirement]:
    """The project's dependencies and those of ``EXTRAS``, the project's references to itself followed."""
    name = canonicalize_name(str(project["name"]))
    optional = project.get("optional-dependencies", {})
    assert isinstance(optional, dict)
    found: list[Requirement] = []
    seen_extras: set[str] = set()
    pending = [Requirement(line) for line in project.get("dependencies", [])]  # type: ignore[attr-defined]
    pending += [Requirement(f"{name}[{extra}]") for extra in EXTRAS]
    while pending:
        requirement = pending.pop(0)
        if canonicalize_name(requirement.name) != name:
            found.append(requirement)
            continue
        for extra in sorted(requirement.extras - seen_extras):
            seen_extras.add(extra)
            if extra not in optional:
                raise SystemExit(f"lowest: pyproject.toml names the extra {extra!r}, which it does not declare")
            pending += [Requirement(line) for line in optional[extra]]
    return found


def floor(requirement: Requirement) -> str:
    """The lowest version ``requirement`` allows: its ``>=`` floor or its ``==`` pin."""
    for spec in requirement.specifier:
        if spec.operator in (">=", "==", "==="):
            return spec.version
    raise SystemExit(f"lowest: {requirement} has no >= floor and no == pin: say which versions it supports")


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins: dict[str, str] = {}
    for requirement in requirements(project):
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # not for this interpreter or platform
        key = canonicalize_name(requirement.name)
        version = floor(requirement)
        if pins.setdefault(key, version) != version:
            raise SystemExit(f"lowest: {key} has two floors, {pins[key]} and {version}")
    for key, version in pins.items():
        print(f"{key}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
