"""One ``mypy --strict`` run for the whole test run: the package (the quality gate) and the consumer code
of tests/consumer/ (the models' types as a service sees them).

Most of a run is reading SQLAlchemy's types, which separate runs would each repeat. It starts in the
background as the test run starts (``start``, from conftest's pytest_configure, in the main process
only), and the tests that read it wait for it at the end of the line; pytest-xdist workers find it
through an environment variable they inherit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECKED = ("outbound_schema", "tests/consumer/typed_consumer.py", "tests/consumer/misuse.py")
OUTPUT_VAR = "OUTBOUND_SCHEMA_TEST_MYPY_OUTPUT"
TIMEOUT_S = 600


@dataclass(frozen=True)
class Report:
    output: str

    def errors(self, prefix: str) -> list[str]:
        """mypy's error lines for the files under ``prefix`` (a path relative to the repository)."""
        return [line for line in self.output.splitlines() if line.startswith(prefix) and ": error:" in line]

    def ran(self) -> bool:
        """mypy got to the end: it prints a summary, found errors or not."""
        return any(line.startswith(("Found ", "Success:")) for line in self.output.splitlines())


USERS = ("tests/test_quality.py", "tests/test_consumers.py")  # the tests that read the report


def wanted(args: list[str]) -> bool:
    """Whether the test run named by these command-line paths includes a test that reads the report."""
    for arg in args:
        target = (REPO / arg.split("::")[0]).resolve()
        if any((REPO / user).resolve().is_relative_to(target) for user in USERS):
            return True
    return False


def start() -> subprocess.Popen[bytes]:
    """Start mypy; its output lands, complete, in the file named by ``OUTPUT_VAR``."""
    folder = Path(tempfile.mkdtemp(prefix="outbound-schema-mypy-"))
    final = folder / "mypy.out"
    os.environ[OUTPUT_VAR] = str(final)
    # mypy's own incremental cache (.mypy_cache): a repeat run re-reads only what changed (from scratch,
    # most of the time goes to SQLAlchemy's types); a clean checkout, as in CI, checks
    # everything. The output is renamed into place only once mypy has finished, so a reader never sees
    # half of it.
    command = " ".join([sys.executable, "-m", "mypy", "--strict", *CHECKED])
    return subprocess.Popen(
        ["sh", "-c", f'{command} > "$0.part" 2>&1; mv "$0.part" "$0"', str(final)],
        cwd=REPO,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """At the end of the test run: mypy stopped if it still runs, its output removed."""
    if process.poll() is None:
        process.kill()
        process.wait()
    shutil.rmtree(Path(os.environ[OUTPUT_VAR]).parent, ignore_errors=True)


def report() -> Report:
    """The run's mypy output, waiting for it if it is still running (running it, if it was not started)."""
    if OUTPUT_VAR not in os.environ:
        start()
    final = Path(os.environ[OUTPUT_VAR])
    deadline = time.monotonic() + TIMEOUT_S
    while not final.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"mypy did not finish within {TIMEOUT_S} s (its output: {final}.part)")
        time.sleep(0.1)
    return Report(final.read_text())
