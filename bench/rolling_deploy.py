"""Benchmark: a rolling deploy, every pod running `outbound-schema upgrade` at once on a database at head.

    python bench/rolling_deploy.py [--pods 8] [--rounds 5]

Each pod is a process of its own, forked from this one with the program
already imported (pods on machines of their own start together; on one
machine, starting 8 Pythons at once would measure their imports); they all
wait for the migration lock, find the schema at head and let the lock go.
Measured: the time from starting the pods to the last one's exit, and each
pod's own time. Against the baseline of polling for the lock every 500 ms from
the first try: the same program with ``locking.FIRST_POLL_INTERVAL`` set to
``POLL_INTERVAL``; the two interleaved, each going first in turn, so that a
busy moment of the machine weighs on both alike.

Uses DATABASE_URL's server if set (it creates and drops a scratch database
there), else an embedded PostgreSQL in a temporary folder (see scratch.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from contextlib import ExitStack

from alembic import command
from scratch import Server, libpq

from outbound_schema import locking
from outbound_schema.cli import main as cli
from outbound_schema.config import alembic_config


def pod(url: str, first_poll: float, errors: int) -> None:
    """In a forked child: one deploy's upgrade, its output discarded but for errors (to ``errors``, a
    file); exits with the command's code."""
    locking.FIRST_POLL_INTERVAL = first_poll
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(errors, 2)
    code = 1
    try:
        code = cli(["upgrade", "-q", "--database-url", url])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os._exit(code)


def deploy(url: str, pods: int, first_poll: float) -> tuple[float, list[float]]:
    """``pods`` upgrades started together; the time to the last exit and each pod's own time."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        children = set()
        for _ in range(pods):
            child = os.fork()
            if child == 0:
                pod(url, first_poll, errors.fileno())
            children.add(child)
        each, failed = [], 0
        while children:  # each pod as it ends, whichever it is: none is left running
            child, status = os.wait()
            children.discard(child)
            each.append(time.perf_counter() - started)
            failed += os.waitstatus_to_exitcode(status) != 0
        total = time.perf_counter() - started
        if failed:
            errors.seek(0)
            raise SystemExit(f"{failed} of {pods} pods failed to upgrade:\n{errors.read().decode(errors='replace')}")
    return total, each


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with ExitStack() as stack:
        url = Server(stack).create_with_host_tables()
        command.upgrade(alembic_config(url), "head")
        plain = libpq(url)
        programs = {
            "polls from 50 ms": locking.FIRST_POLL_INTERVAL,
            "baseline, polls every 500 ms": locking.POLL_INTERVAL,
        }
        deploy(plain, 1, locking.FIRST_POLL_INTERVAL)  # caches warm for both
        last: dict[str, list[float]] = {name: [] for name in programs}
        pods: dict[str, list[float]] = {name: [] for name in programs}
        for round_ in range(args.rounds):
            order = list(programs.items())
            for name, first_poll in order if round_ % 2 == 0 else reversed(order):  # each goes first in turn
                total, each = deploy(plain, args.pods, first_poll)
                last[name].append(total)
                pods[name].extend(each)
    print(f"{args.pods} pods upgrading a database at head at once, {args.rounds} rounds each")
    for name in programs:
        spread = f"min {min(last[name]):.2f}, max {max(last[name]):.2f}"
        print(
            f"{name:>30}: last pod done after median {statistics.median(last[name]):.2f} s ({spread}); "
            f"a pod's median {statistics.median(pods[name]):.2f} s"
        )
    ours, baseline = (statistics.median(last[name]) for name in programs)
    print(f"ratio (ours / baseline, last pod): {ours / baseline:.2f}x")


if __name__ == "__main__":
    main()
