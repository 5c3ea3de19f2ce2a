"""One server and one set of template databases for a whole test run, shared by pytest-xdist's workers.

Each worker bringing up its own server and migrating its own templates repeated the same seconds of
work per worker, on cores the tests need. Under pytest-xdist the main process does it once instead,
in a thread started as the run starts (``start``), while the workers start and collect; the workers'
``pg_server`` fixture waits for it (``wait``). The server lives as long as the main process: it is
stopped when the run ends (``stop``), not when the worker that asked first is done.

Tests only copy the templates (``CREATE DATABASE ... TEMPLATE``), which many sessions may do at once.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TypeVar

from outbound_schema.catalog import Snapshot
from tests.provision import Server

#: Names the folder where the main process leaves the prepared server for the workers (they inherit it).
FOLDER_VAR = "OUTBOUND_SCHEMA_TEST_SHARED_SERVER"
TIMEOUT_S = 600
T = TypeVar("T")


@dataclass(frozen=True)
class Prepared:
    """A server with its templates built, and what building them saw."""

    server: Server
    generated: dict[str, Snapshot] = field(default_factory=dict)  # the catalog after each revision


@dataclass
class Background:
    thread: threading.Thread
    stack: ExitStack
    folder: Path


def start(prepare: Callable[[ExitStack], Prepared]) -> Background:
    """Run ``prepare`` in a thread of this (the main) process; its result lands, whole, in a file of a
    folder the workers find through ``FOLDER_VAR``."""
    folder = Path(tempfile.mkdtemp(prefix="outbound-schema-shared-"))
    os.environ[FOLDER_VAR] = str(folder)
    stack = ExitStack()

    def run() -> None:
        try:
            data = pickle.dumps(prepare(stack))
        except BaseException:  # handed to every worker that asks, as the error of its fixture
            data = pickle.dumps(traceback.format_exc())
        part = folder / "prepared.part"
        part.write_bytes(data)
        part.rename(folder / "prepared")

    thread = threading.Thread(target=run, name="outbound-schema-shared-server", daemon=True)
    thread.start()
    return Background(thread, stack, folder)


@cache  # read once per worker, for the server and again for the templates
def wait() -> Prepared:
    """In a worker: the prepared server, once the main process has it ready."""
    ready = Path(os.environ[FOLDER_VAR]) / "prepared"
    deadline = time.monotonic() + TIMEOUT_S
    while not ready.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the shared test server was not ready within {TIMEOUT_S} s")
        time.sleep(0.05)
    payload = pickle.loads(ready.read_bytes())
    if isinstance(payload, str):
        raise RuntimeError(f"The test run's shared server could not be prepared:\n{payload}")
    assert isinstance(payload, Prepared)
    return payload


def once(name: str, build: Callable[[], T]) -> T:
    """A session fixture's value built once per run: under pytest-xdist by the first worker that asks
    (the others wait, then read it), else here. Only for values every worker may share as they are."""
    if FOLDER_VAR not in os.environ:
        return build()
    folder = Path(os.environ[FOLDER_VAR])
    built = folder / f"{name}.pickle"
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, by this process or its death
        if not built.exists():  # a worker whose build failed left nothing: the next one tries again
            part = folder / f"{name}.part"
            part.write_bytes(pickle.dumps(build()))
            part.rename(built)
        value: T = pickle.loads(built.read_bytes())
        return value


def stop(background: Background, release: Callable[[Prepared], None]) -> None:
    """At the end of the run, in the main process: ``release`` what was prepared, then the server goes."""
    os.environ.pop(FOLDER_VAR, None)  # a later run in this interpreter is no worker of this one
    try:
        background.thread.join()
        ready = background.folder / "prepared"
        payload = pickle.loads(ready.read_bytes()) if ready.exists() else None
        if isinstance(payload, Prepared):
            release(payload)
    finally:
        background.stack.close()
        shutil.rmtree(background.folder, ignore_errors=True)
