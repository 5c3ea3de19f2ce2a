"""Benchmark: the README's test command, wall time, against the same suite run serially.

    python bench/test_suite.py [--runs 3] [--cold] [--no-baseline]

Runs ``python -m pytest`` (the README's test command, installs excluded) in this checkout ``--runs``
times and prints each run's wall time, their min/median/max, and the per-test database provisioning
median the suite prints. The baseline is the same suite with ``-n 0``: one process, one server, the
design before the tests ran in parallel and shared a server. ``--cold`` removes mypy's cache before
each run, as in a clean checkout (CI); without it, a run after the first finds the cache, as a
developer's repeat run does.

Nothing is measured inside the tests: the figures are the command's own wall time, start-up and
shutdown included.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROVISIONING = re.compile(r"per-test database: median ([\d.]+) ms over (\d+)")
SUMMARY = re.compile(r"^=*\s*(\d+ passed.*?) in [\d.]+s", re.M)


def run(extra: list[str], cold: bool) -> tuple[float, str, str]:
    if cold:
        shutil.rmtree(REPO / ".mypy_cache", ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        # As a developer runs it: Python writes its bytecode (PYTHONDONTWRITEBYTECODE, set on some CI
        # machines, would have every process compile the checkout's modules again).
        env={
            key: value for key, value in os.environ.items() if key not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")
        },
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the test command failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr}")
    provisioning = PROVISIONING.search(done.stdout)
    summary = SUMMARY.search(done.stdout)
    return (
        took,
        f"{provisioning.group(1)} ms over {provisioning.group(2)}" if provisioning else "?",
        summary.group(1) if summary else "?",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="no mypy cache in any run (a clean checkout)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the serial run")
    args = parser.parse_args()
    print(f"the README's test command in {REPO} ({os.cpu_count()} cores); {args.runs} runs")
    walls = []
    for number in range(1, args.runs + 1):
        took, provisioning, summary = run([], args.cold)
        walls.append(took)
        print(f"run {number}: {took:6.1f} s  ({summary}; per-test database: median {provisioning})", flush=True)
    median = statistics.median(walls)
    print(f"min / median / max: {min(walls):.1f} / {median:.1f} / {max(walls):.1f} s")
    if not args.no_baseline:
        took, provisioning, summary = run(["-n", "0"], args.cold)
        print(f"baseline, serial (-n 0): {took:6.1f} s  ({summary}; per-test database: median {provisioning})")
        print(f"ratio median / serial: {median / took:.2f}x (under 1 is faster)")


if __name__ == "__main__":
    main()
