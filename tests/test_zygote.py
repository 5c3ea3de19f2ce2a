"""The run's zygote (tests/zygote.py): the processes it forks behave as the Pythons they stand for."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import zygote
from tests.helpers import python_forked

#: What a process prints about itself: its parent, what it has loaded, how many threads it runs.
ABOUT = (
    "import json, os, sys, threading\n"
    "loaded = 'sqlalchemy.orm' in sys.modules\n"
    "print(json.dumps([os.getppid(), loaded, threading.active_count(), sys.argv, sys.path[0]]))\n"
)


def test_a_worker_launched_as_pytest_xdist_launches_one() -> None:
    """The launcher pytest-xdist starts (``popen//python=``, then ``-u -c CODE``): the code runs in a process the
    zygote forked, with the imports done, reading the launcher's input and writing its output, in its folder
    and environment; the launcher exits with the worker's exit code."""
    code = f"{ABOUT}print(sys.stdin.readline().strip(), os.getcwd(), os.environ['ZYGOTE_TEST'])\nsys.exit(7)\n"
    done = subprocess.run(
        [*shlex.split(zygote.worker_python()), "-u", "-c", code, "an-argument"],
        input="a line\n",
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "ZYGOTE_TEST": "seen"},
        timeout=60,
    )
    assert done.returncode == 7, done.stderr
    about, echoed = done.stdout.splitlines()
    parent, loaded, threads, argv, path = json.loads(about)
    assert parent != os.getpid()  # the zygote: not the test process, nor a new Python the launcher started
    assert (loaded, threads) == (True, 1)
    assert (argv, path) == (["-c", "an-argument"], "")  # as python -c has them
    assert echoed == "a line / seen"


def test_a_child_reports_its_exit_as_popen_does() -> None:
    """A test's child (``python_forked``): forked with the imports done, its exit code, or -N when signal N
    ended it."""
    child = python_forked(f"{ABOUT}import sys\nsys.exit(3)\n")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 3, err
    parent, loaded, threads, _, _ = json.loads(out)
    assert parent != os.getpid() and (loaded, threads) == (True, 1)

    sleeper = python_forked("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    assert sleeper.stdout is not None and sleeper.stdout.readline() == "up\n"
    assert sleeper.poll() is None
    sleeper.kill()
    sleeper.communicate(timeout=60)
    assert sleeper.returncode == -signal.SIGKILL


def test_the_zygote_is_named_to_the_run() -> None:
    assert os.path.exists(os.environ[zygote.SOCKET_VAR])
    assert sys.executable in zygote.worker_python()


def test_a_zygote_that_could_not_start_is_reported_at_once(tmp_path: Path) -> None:
    """A zygote whose imports failed leaves its error in its log: whoever asks for a process gets it at once,
    rather than after waiting for a socket that never comes."""
    path = tmp_path / "zygote.sock"
    Path(f"{path}.log").write_text("Traceback (most recent call last):\nImportError: no module named 'nothing'\n")
    Path(f"{path}.failed").touch()
    with pytest.raises(RuntimeError, match=r"(?s)did not start listening.*no module named 'nothing'"):
        zygote.spawn("tests.zygote:_worker", (), (), path=str(path))
