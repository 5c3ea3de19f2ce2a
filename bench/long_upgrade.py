"""A transcript: an upgrade from 46c to head on a jobs table of millions of rows, as an operator sees it.

    python bench/long_upgrade.py [--rows 3000000] [--hold 20]

A database at 46c holding ``--rows`` jobs. A dialer worker opens a transaction that writes to the jobs
table and keeps it open for ``--hold`` seconds; meanwhile ``outbound-schema upgrade`` runs as a deploy
runs it (stderr to a log, not a terminal), and ``outbound-schema status`` is run from another shell
while it waits and while it builds. Prints both, each line stamped with the seconds since the upgrade
started.

Uses DATABASE_URL's server if set (it creates and drops a scratch database there), else an embedded
PostgreSQL in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
from scratch import Server, libpq

BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds the worker's transaction stays open")
    args = parser.parse_args()
    with ExitStack() as stack:
        server = Server(stack)
        print(f"# building a database at 46c with {args.rows:,} jobs ...", flush=True)
        url = server.with_jobs("46c", args.rows)
        env = {**os.environ, "DATABASE_URL": libpq(url)}

        started = time.monotonic()

        def stamp(line: str) -> None:
            print(f"[{time.monotonic() - started:6.1f} s] {line}", flush=True)

        worker = psycopg.connect(libpq(url), application_name="dialer-worker")
        worker.execute("UPDATE outbound_call_jobs SET status = 'dialing' WHERE id = 1")  # then stays open
        stamp(f"dialer-worker (pid {worker.info.backend_pid}) holds a transaction that wrote to outbound_call_jobs")
        release = threading.Timer(args.hold, lambda: (worker.commit(), stamp("dialer-worker commits")))
        release.start()

        def status(when: str) -> None:
            done = subprocess.run([str(BIN / "outbound-schema"), "status"], env=env, capture_output=True, text=True)
            stamp(f"--- another shell, {when}: outbound-schema status ---")
            for line in done.stdout.splitlines():
                stamp(f"    {line}")

        threading.Timer(8.0, status, ("while it waits",)).start()
        deploy = subprocess.Popen(
            [str(BIN / "outbound-schema"), "upgrade"], env=env, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        assert deploy.stderr is not None
        building_seen = False
        for line in deploy.stderr:
            stamp(line.rstrip("\n"))
            if "building index" in line and not building_seen:
                building_seen = True
                threading.Thread(target=status, args=("while it builds",)).start()
        stamp(f"upgrade exited with {deploy.wait()}")
        release.join()
        worker.close()
        time.sleep(1)  # a status thread still printing
    return 0


if __name__ == "__main__":
    sys.exit(main())
