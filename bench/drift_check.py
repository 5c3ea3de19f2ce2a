"""Benchmark: `outbound-schema check` against `alembic check`, on the same database at head; and
`outbound-schema status` against `check`.

    python bench/drift_check.py [--runs 15]

Uses DATABASE_URL's server if set (it creates and drops a scratch database
there), else an embedded PostgreSQL in a temporary folder (see scratch.py).
Each command runs as a new process each time, start-up included, all of them
interleaved so that a busy moment of the machine weighs on each alike. Beside
them, the floor any command of ours stands on: a Python that imports psycopg,
connects and runs SELECT 1. Also prints each check's in-process time, warm,
without start-up.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from alembic import command
from scratch import Server
from sqlalchemy.engine import URL

from outbound_schema import drift, dsn
from outbound_schema.config import alembic_config, script_location
from outbound_schema.history import History

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FLOOR = "python, psycopg, SELECT 1"


def commands(url: URL) -> dict[str, list[str]]:
    plain = url.render_as_string(hide_password=False)
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return {
        "outbound-schema check": [str(BIN / "outbound-schema"), "check", "--database-url", plain],
        "alembic check": [str(BIN / "alembic"), "-x", f"url={plain}", "check"],
        "outbound-schema status": [str(BIN / "outbound-schema"), "status", "--database-url", plain],
        FLOOR: [sys.executable, "-c", f"import psycopg; psycopg.connect({libpq!r}).execute('SELECT 1')"],
    }


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    # As a user runs them: bytecode cached (an installed package's is compiled at install; a checkout's is
    # written on its first run, unless PYTHONDONTWRITEBYTECODE, set on some CI machines, says not to).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env={**env, "PYTHONWARNINGS": ""})
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stdout}{done.stderr}")
    return took


def warm(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # imports, caches, first connection
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with ExitStack() as stack:
        url = Server(stack).create_with_host_tables()
        command.upgrade(alembic_config(url), "head")
        argvs = commands(url)
        cold: dict[str, list[float]] = {name: [] for name in argvs}
        for argv in argvs.values():
            wall(argv)  # the first run of each fills the OS caches
        for _ in range(args.runs):
            for name, argv in argvs.items():
                cold[name].append(wall(argv))

        config = alembic_config(url)
        raw = url.render_as_string(hide_password=False)

        def ours() -> None:
            history = History.read(script_location())
            with dsn.connect(raw, source="the benchmark") as conn:
                report = drift.check(conn, history, dsn.mask(raw))
            assert not report.drift, report.to_text()

        config.stdout = io.StringIO()  # "No new upgrade operations detected.", once per run
        in_process = {
            "outbound-schema check": warm(ours, args.runs),
            "alembic check": warm(lambda: command.check(config), args.runs),
        }

    print(f"database: fresh, at head ({os.cpu_count()} cores); {args.runs} runs each")
    print(f"{'':26} {'command, median':>16} {'p90':>9} {'in-process, median':>19}")
    for name in argvs:
        median, p90 = statistics.median(cold[name]), statistics.quantiles(cold[name], n=10)[-1]
        warm_text = f"{statistics.median(in_process[name]) * 1000:16.1f} ms" if name in in_process else ""
        print(f"{name:26} {median * 1000:13.0f} ms {p90 * 1000:6.0f} ms {warm_text}")
    med = {name: statistics.median(samples) for name, samples in cold.items()}
    ours_warm, theirs_warm = (statistics.median(in_process[name]) for name in in_process)
    check = med["outbound-schema check"]
    print(
        f"ratio outbound-schema check / alembic check: command {check / med['alembic check']:.2f}x, "
        f"in-process {ours_warm / theirs_warm:.2f}x (under 1 is faster)"
    )
    print(
        f"ratio outbound-schema status / check: {med['outbound-schema status'] / check:.2f}x; "
        f"the floor ({FLOOR}) / alembic check: {med[FLOOR] / med['alembic check']:.2f}x"
    )


if __name__ == "__main__":
    main()
