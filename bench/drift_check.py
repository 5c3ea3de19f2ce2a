"""Benchmark: `outbound-schema check` against `alembic check`, on the same database at head.

    python bench/drift_check.py [--runs 30]

Uses DATABASE_URL's server if set (it creates and drops a scratch database
there), else an embedded PostgreSQL in a temporary folder (see scratch.py). Both checks run
in-process, warm, on the same database; the figures are per check.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack

from alembic import command
from alembic.script import ScriptDirectory
from scratch import Server

from outbound_schema import drift
from outbound_schema.config import alembic_config
from outbound_schema.database import connect, mask


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm: imports, caches, first connection
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with ExitStack() as stack:
        url = Server(stack).create_with_host_tables()
        command.upgrade(alembic_config(url), "head")
        config = alembic_config(url)
        script = ScriptDirectory.from_config(config)

        def ours() -> None:
            with connect(url) as conn:
                report = drift.check(conn, script, mask(url))
            assert not report.drift, report.to_text()

        config.stdout = io.StringIO()  # "No new upgrade operations detected.", once per run

        def alembic_check() -> None:
            command.check(config)

        ours_s = timed(ours, args.runs)
        alembic_s = timed(alembic_check, args.runs)
    ours_med, alembic_med = statistics.median(ours_s), statistics.median(alembic_s)
    print(f"database: fresh, at head ({os.cpu_count()} cores); {args.runs} warm runs each, in-process")
    print(f"outbound-schema check  median {ours_med * 1000:7.1f} ms   p90 {_p90(ours_s) * 1000:7.1f} ms")
    print(f"alembic check          median {alembic_med * 1000:7.1f} ms   p90 {_p90(alembic_s) * 1000:7.1f} ms")
    print(f"ratio: alembic check / outbound-schema check = {alembic_med / ours_med:.1f}x")


def _p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


if __name__ == "__main__":
    main()
