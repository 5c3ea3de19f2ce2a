"""Sum the JUnit reports of the CI runs into one closing line of totals.

Each run's line: passed, failed, skipped, pytest's time, the server and the versions it ran on. A run
that is missing, or in which no test passed, fails the totals, as any failure or skip does.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(paths: list[str]) -> int:
    passed = failed = skipped = 0
    for path in paths:
        if not Path(path).is_file():
            print(f"run {Path(path).stem}: did not run")
            failed += 1
            continue
        root = ET.parse(path).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        assert suite is not None, f"{path}: no testsuite"
        tests, errors = int(suite.get("tests", 0)), int(suite.get("errors", 0))
        failures, skips = int(suite.get("failures", 0)), int(suite.get("skipped", 0))
        found = {p.get("name"): p.get("value") for p in suite.iter("property")}
        server, versions = found.get("database_server", "?"), found.get("versions", "?")
        run_passed = tests - errors - failures - skips
        print(
            f"run {Path(path).stem}: {run_passed} passed, {failures + errors} failed, {skips} skipped "
            f"in {float(suite.get('time', 0)):.0f} s ({server}; {versions})"
        )
        passed, failed, skipped = passed + run_passed, failed + failures + errors, skipped + skips
        if run_passed == 0:  # a session that ran nothing proves nothing
            print(f"run {Path(path).stem}: no test passed")
            failed += 1
    if not paths or passed == 0:
        print("totals: 0 passed, 1 failed (no test ran)")
        return 1
    print(f"totals: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or skipped else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
