"""Benchmark: a dialer worker's write latency while the schema is upgraded under it.

    python bench/live_upgrade.py [--rows 1000000]

A database at 46b holding ``--rows`` jobs; a writer inserting and updating
jobs throughout; then the upgrade to head (46c, 46d: a column and two indexes
on the big table). Twice, on identical copies: once with ``outbound-schema
upgrade``, once with the plain statements the old script ran (ADD COLUMN and
CREATE INDEX, in one transaction per migration). Prints the writer's maximum
and p99 latency during each, and the ratio. Target: the writer never stalls
more than 100 ms during our upgrade.

Uses DATABASE_URL's server if set (it creates and drops scratch databases
there), else an embedded PostgreSQL in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import psycopg
from scratch import Server, libpq
from sqlalchemy.engine import URL

LEGACY_46C_46D = (
    (
        "ALTER TABLE outbound_call_jobs ADD COLUMN dial_lock_token VARCHAR(64) NULL",
        "CREATE INDEX idx_outbound_call_jobs_lock_token ON outbound_call_jobs(dial_lock_token)",
    ),
    ("CREATE INDEX idx_outbound_call_jobs_status_twilio_sid ON outbound_call_jobs(status, twilio_call_sid)",),
)


class Writer(threading.Thread):
    """A dialer worker: insert a job, update another, one short transaction each, as fast as it can."""

    def __init__(self, url: URL, rows: int) -> None:
        super().__init__(daemon=True)
        self.url, self.rows = url, rows
        self.samples: list[tuple[float, float]] = []  # (start, latency)
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(libpq(self.url), autocommit=True) as conn:
            while not self.stop.is_set():
                start = time.perf_counter()
                conn.execute(
                    "INSERT INTO outbound_call_jobs (run_id, lead_id) VALUES (%s, %s)",
                    (random.randint(1, 100), random.randint(1, 10000)),
                )
                conn.execute(
                    "UPDATE outbound_call_jobs SET status = 'dialing', dial_started_at = now() WHERE id = %s",
                    (random.randint(1, self.rows),),
                )
                self.samples.append((start, time.perf_counter() - start))


def measure(url: URL, rows: int, migrate: Callable[[], None]) -> tuple[float, float, float, int]:
    """Writer's (max, p99) latency in seconds during ``migrate``, its duration, and the writes done."""
    writer = Writer(url, rows)
    writer.start()
    time.sleep(1.0)  # the writer is in its stride before the migration starts
    began = time.perf_counter()
    migrate()
    ended = time.perf_counter()
    time.sleep(0.2)
    writer.stop.set()
    writer.join()
    during = [latency for start, latency in writer.samples if start + latency >= began and start <= ended]
    p99 = statistics.quantiles(during, n=100, method="inclusive")[98] if len(during) >= 2 else max(during)
    return max(during), p99, ended - began, len(during)


def ours(url: URL) -> Callable[[], None]:
    def migrate() -> None:
        env = {**os.environ, "DATABASE_URL": url.render_as_string(hide_password=False)}
        done = subprocess.run(
            [str(Path(sys.executable).parent / "outbound-schema"), "upgrade"], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr)

    return migrate


def legacy(url: URL) -> Callable[[], None]:
    def migrate() -> None:
        with psycopg.connect(libpq(url)) as conn:
            for migration in LEGACY_46C_46D:  # each wrapped in its transaction, as the old script did
                with conn.transaction():
                    for statement in migration:
                        conn.execute(statement)

    return migrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with ExitStack() as stack:
        server = Server(stack)
        started = time.perf_counter()
        template = server.with_jobs("46b", args.rows)
        print(f"database at 46b with {args.rows:,} jobs built in {time.perf_counter() - started:.1f} s")
        results = {}
        for name, make in (("outbound-schema upgrade", ours), ("old script's plain DDL", legacy)):
            url = server.create(template=str(template.database))
            results[name] = measure(url, args.rows, make(url))
    print(f"{'':24} {'writer max':>11} {'writer p99':>11} {'migration':>10} {'writes':>7}")
    for name, (worst, p99, took, count) in results.items():
        print(f"{name:24} {worst * 1000:8.1f} ms {p99 * 1000:8.1f} ms {took:8.2f} s {count:7}")
    (our_max, our_p99, _, _), (old_max, old_p99, _, _) = results.values()
    print(f"ratio old/ours: max {old_max / our_max:.1f}x, p99 {old_p99 / our_p99:.1f}x")
    print(f"target (writer never stalls > 100 ms during our upgrade): {'met' if our_max < 0.1 else 'NOT met'}")


if __name__ == "__main__":
    main()
