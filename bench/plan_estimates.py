"""How close `outbound-schema plan`'s estimates come to real durations: index builds and VALIDATE on millions of rows.

    python bench/plan_estimates.py [--rows 1000000 3000000]

For each row count: a database at 46b holding that many jobs, the migrations with tests/example_revision.py
on top of head (a CHECK added NOT VALID then validated, a partial index). `plan` estimates each change; then
each change's statements, exactly as the plan shows them, run one after the other and are timed. Prints, for
every change that reads the table, the estimate, the actual duration and their ratio (the goal: within
0.5-1.5).

Uses DATABASE_URL's server if set (it creates and drops a scratch database there), else an embedded
PostgreSQL in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
from scratch import Server, libpq

from outbound_schema import dsn, settings
from outbound_schema.plan import make_plan
from outbound_schema.revisions import next_revision_id

REPO = Path(__file__).resolve().parent.parent


def migrations_with_example(folder: Path) -> Path:
    """A copy of the migrations with tests/example_revision.py on top of head."""
    from alembic.script import ScriptDirectory

    location = folder / "alembic"
    shutil.copytree(REPO / "alembic", location, ignore=shutil.ignore_patterns("__pycache__"))
    heads = ScriptDirectory(str(location)).get_heads()
    revision = next_revision_id(heads)
    source = (REPO / "tests" / "example_revision.py").read_text()
    source = re.sub(r"(?m)^revision = .*$", f"revision = {revision!r}", source)
    source = re.sub(r"(?m)^down_revision = .*$", f"down_revision = {heads[0]!r}", source)
    (location / "versions" / f"{revision}_example.py").write_text(source)
    return location


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    args = parser.parse_args()
    results: list[tuple[int, str, float, float]] = []
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="outbound-plan-bench-")))
        os.environ[settings.SCRIPT_LOCATION.env or ""] = str(migrations_with_example(folder))
        server = Server(stack)
        chosen = settings.resolve_run({})
        for rows in args.rows:
            print(f"# a database at 46b with {rows:,} jobs ...", flush=True)
            url = server.with_jobs("46b", rows)
            target = dsn.configured(libpq(url))
            assert target is not None
            started = time.monotonic()
            plan = make_plan(target, "head", chosen)
            print(f"# planned in {time.monotonic() - started:.1f} s; running each change as planned ...", flush=True)
            with psycopg.connect(libpq(url), autocommit=True) as conn:
                for change in plan.changes:
                    began = time.monotonic()
                    if change.in_transaction:
                        with conn.transaction():
                            for statement in change.statements:
                                conn.execute(statement)  # type: ignore[call-overload]
                    else:
                        for statement in change.statements:
                            conn.execute(statement)  # type: ignore[call-overload]
                    actual = time.monotonic() - began
                    if change.scans:
                        results.append((rows, change.label, change.estimate_s, actual))
                        said = f"estimate {change.estimate_s:.2f} s, actual {actual:.2f} s"
                        print(f"  {change.label}: {said}", flush=True)
    print()
    print(f"{'rows':>10}  {'change':<75} {'estimate':>9} {'actual':>8} {'ratio':>6}")
    outside = 0
    for rows, label, estimate, actual in results:
        ratio = estimate / actual if actual > 0 else float("inf")
        outside += not 0.5 <= ratio <= 1.5
        print(f"{rows:>10,}  {label:<75} {estimate:>8.2f}s {actual:>7.2f}s {ratio:>6.2f}")
    print(f"\n{len(results) - outside} of {len(results)} within ±50 %")
    return 0 if outside == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
