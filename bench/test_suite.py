"""Benchmark: the README's test command, wall time, against the same suite run serially, or against
another commit.

    python bench/test_suite.py [--runs 3] [--cold] [--no-baseline]
    python bench/test_suite.py --against REF [--runs 3]
    python bench/test_suite.py --speed

Runs ``python -m pytest`` (the README's test command, installs excluded) in this checkout ``--runs``
times and prints each run's wall time and the CPU the machine used meanwhile (all processes: the
suite, its server, its children), their min/median/max, the per-test database provisioning median
the suite prints, and how long a fixed loop (``REFERENCE_LOOP``) took just before: the machine's
speed. The baseline is the same suite with ``-n 0``: one process, one server, the design before the
tests ran in parallel and shared a server. ``--cold`` removes mypy's cache before each run,
as in a clean checkout (CI); without it, a run after the first finds the cache, as a developer's
repeat run does.

``--against REF`` compares with a commit instead: a git worktree at REF, run with this environment
(its packages must be those REF needs), its runs alternated with this checkout's, so that both meet
the machine at the same moments. The speed of these machines drifts by a fifth within an hour; a
change's effect is the ratio of the two medians, not a figure measured at another time. Each side
first runs once untimed, so that neither pays for compiling its bytecode.

``--speed`` prints only the seconds the reference loop took, now (``.ci/run`` prints it around the
README's test command, so that CI's figure says at what speed it was measured).

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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROVISIONING = re.compile(r"per-test database: median ([\d.]+) ms over (\d+)")
SUMMARY = re.compile(r"^=*\s*(\d+ passed.*?) in [\d.]+s", re.M)


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float  # core-seconds the whole machine used during the run
    provisioning: str
    summary: str
    loop: float  # the machine's speed just before: seconds of the reference loop


#: A fixed piece of CPU work. These machines' speed drifts within the hour (the loop took from 0.55 s to
#: 1.15 s over one afternoon): each run is printed with the time the loop took just before it, so a figure
#: says at what speed it was measured.
REFERENCE_LOOP = "sum(i * i for i in range(10**7))"


def reference_loop() -> float:
    """Seconds a new Python takes over ``REFERENCE_LOOP``, by the clock (a machine whose cores are shared
    with others' is slow by the clock, whatever the CPU time says)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import time\nstart = time.perf_counter()\n{REFERENCE_LOOP}\nprint(time.perf_counter() - start)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout)


def busy_seconds() -> float:
    """CPU time the machine has spent busy, all cores (Linux's /proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def run(extra: list[str], cold: bool, checkout: Path = REPO) -> Run:
    if cold:
        shutil.rmtree(checkout / ".mypy_cache", ignore_errors=True)
    # As a developer runs it: Python writes its bytecode (PYTHONDONTWRITEBYTECODE, set on some CI
    # machines, would have every process compile the checkout's modules again).
    env = {key: value for key, value in os.environ.items() if key not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")}
    if checkout != REPO:  # the other commit's package and tests, before this checkout's (installed editable)
        env["PYTHONPATH"] = str(checkout)
    loop = reference_loop()
    cpu, start = busy_seconds(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=env,
    )
    took, cpu = time.perf_counter() - start, busy_seconds() - cpu
    if done.returncode != 0:
        raise SystemExit(f"the test command failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr}")
    provisioning = PROVISIONING.search(done.stdout)
    summary = SUMMARY.search(done.stdout)
    return Run(
        took,
        cpu,
        f"{provisioning.group(1)} ms over {provisioning.group(2)}" if provisioning else "?",
        summary.group(1) if summary else "?",
        loop,
    )


def spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def against(ref: str, runs: int) -> None:
    """This checkout against a worktree at ``ref``, runs alternated."""
    folder = Path(tempfile.mkdtemp(prefix="outbound-schema-bench-"))
    other = folder / "checkout"
    subprocess.run(["git", "worktree", "add", "--detach", str(other), ref], cwd=REPO, check=True, capture_output=True)
    try:
        if (REPO / ".mypy_cache").is_dir():  # as warm as this checkout's: what differs is re-checked
            shutil.copytree(REPO / ".mypy_cache", other / ".mypy_cache")
        sides = {"this checkout": REPO, ref: other}
        for checkout in sides.values():
            run([], False, checkout)  # untimed: bytecode compiled, mypy's cache filled
        series: dict[str, list[Run]] = {name: [] for name in sides}
        for number in range(1, runs + 1):
            for name, checkout in sides.items():
                done = run([], False, checkout)
                series[name].append(done)
                print(
                    f"run {number}, {name}: {done.wall:6.1f} s, {done.cpu:5.1f} core-s, reference loop "
                    f"{done.loop:.2f} s  ({done.summary})",
                    flush=True,
                )
        medians = {}
        for name, done_runs in series.items():
            walls, cpus = [r.wall for r in done_runs], [r.cpu for r in done_runs]
            medians[name] = (statistics.median(walls), statistics.median(cpus))
            print(f"{name}: min / median / max {spread(walls)} s; CPU {spread(cpus)} core-s")
        (wall, cpu), (ref_wall, ref_cpu) = medians["this checkout"], medians[ref]
        print(f"ratio this checkout / {ref}: wall {wall / ref_wall:.2f}x, CPU {cpu / ref_cpu:.2f}x (under 1 is faster)")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=REPO, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="no mypy cache in any run (a clean checkout)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the serial run")
    parser.add_argument("--against", metavar="REF", help="compare with this commit, runs alternated")
    parser.add_argument("--speed", action="store_true", help="print the reference loop's seconds, nothing else")
    args = parser.parse_args()
    if args.speed:
        print(f"{reference_loop():.2f}")
        return
    print(f"the README's test command in {REPO} ({os.cpu_count()} cores); {args.runs} runs")
    if args.against:
        against(args.against, args.runs)
        return
    done_runs = []
    for number in range(1, args.runs + 1):
        done = run([], args.cold)
        done_runs.append(done)
        print(
            f"run {number}: {done.wall:6.1f} s, {done.cpu:5.1f} core-s, reference loop {done.loop:.2f} s  "
            f"({done.summary}; per-test database: median {done.provisioning})",
            flush=True,
        )
    walls, cpus = [r.wall for r in done_runs], [r.cpu for r in done_runs]
    median = statistics.median(walls)
    print(f"min / median / max: {spread(walls)} s; CPU {spread(cpus)} core-s")
    if not args.no_baseline:
        serial = run(["-n", "0"], args.cold)
        print(
            f"baseline, serial (-n 0): {serial.wall:6.1f} s, {serial.cpu:5.1f} core-s, reference loop "
            f"{serial.loop:.2f} s  ({serial.summary}; per-test database: median {serial.provisioning})"
        )
        print(f"ratio median / serial: {median / serial.wall:.2f}x (under 1 is faster)")


if __name__ == "__main__":
    main()
