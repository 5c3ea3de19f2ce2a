"""One warm process that forks the test run's processes: pytest-xdist's workers, and the children the tests
start (``cli_forked``, ``python_forked``).

Each of those would otherwise be a new Python importing pytest, SQLAlchemy, Alembic, psycopg and our
package, some 0.6 s of CPU each; the children before came from a fork server per worker, which paid the
same imports once per worker. This process (the zygote) imports them once per run, then forks: a fork
shares the imported modules with its parent. It never runs a thread, so forking it is safe (Python 3.12+
warns of forking a threaded process, and the test processes all run threads).

The main process starts it (:func:`start`) as the run starts; pytest-xdist starts each worker through
:func:`worker_python`, a small launcher (``python -S this-file``) that hands the zygote its standard input,
output and error, its arguments, environment and folder, then waits for the worker it forked and exits with
its exit code, as the worker's Python would. Workers and tests ask for children with :func:`spawn`.

This file runs as the launcher without ``site``: at module level it imports nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import os
import pickle
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

#: Names the zygote's socket; the processes of the run inherit it from the main process.
SOCKET_VAR = "OUTBOUND_SCHEMA_TEST_ZYGOTE"
#: What every worker and child imports: imported once, here. Not the modules of a distribution that is a
#: pytest plugin (pytest-xdist, pytest-alembic, platformdirs): pytest rewrites those modules' assertions when
#: it loads the plugin, and warns of any it finds imported already.
PRELOAD = (
    "pytest",
    "execnet",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql.psycopg",
    "alembic.command",
    "alembic.config",
    "alembic.autogenerate",
    "alembic.runtime.migration",
    "alembic.ddl.postgresql",
    "psycopg",
    "packaging.requirements",
    "outbound_schema",
    "tests.helpers",
    "tests.provision",
    "tests.session_server",
    "tests.legacy",
    "tests.pgbouncer",
    "tests.typecheck",
)
_HEADER = struct.Struct("!Q")  # a request's length, sent with its file descriptors
_STATUS = struct.Struct("!i")  # a child's pid, then its exit code: -N for signal N, as Popen says it
_MAX_FDS = 8
START_TIMEOUT_S = 120


# -- the zygote --------------------------------------------------------------------------------------------


def main(path: str, alive_fd: int) -> int:
    """The zygote's life (see :func:`_serve`); a process it forks returns from here too, with its work's exit
    code, and ends as any Python does (threads joined, exit handlers run)."""
    try:
        served = _serve(path, alive_fd)
    except BaseException:
        Path(f"{path}.failed").touch()  # whoever waits for the socket stops waiting; the log says why
        raise
    return served if isinstance(served, int) else served()  # the zygote's frames left behind


def _serve(path: str, alive_fd: int) -> int | Callable[[], int]:
    """Import, listen on ``path``, fork one process per request and report each one's exit to whoever asked,
    until ``alive_fd`` (the main process's end of a pipe) closes. In a forked process: its work."""
    from _pytest.config import default_plugins  # the plugins every pytest process loads

    for name in (*PRELOAD, *(f"_pytest.{plugin}" for plugin in default_plugins)):
        importlib.import_module(name)
    _import_package("outbound_schema")  # its lazily imported modules too
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the run's processes; this one ends with it
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wake-up descriptor hears of exits
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    part = f"{path}.part"
    Path(part).unlink(missing_ok=True)  # left by a run killed with this pid
    listener.bind(part)
    listener.listen(64)
    os.rename(part, path)  # a process that finds the socket finds it listening
    selector = selectors.DefaultSelector()
    for source in (listener, wake_r, alive_fd):
        selector.register(source, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}  # pid -> the connection of whoever asked for it
    gc.freeze()  # what is loaded stays: the children's collections leave the pages they share unwritten
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is listener:
                    connection, _ = listener.accept()
                    forked = _fork(connection)
                    if isinstance(forked, int):
                        waiting[forked] = connection
                    elif forked is not None:  # in the forked process: none of the zygote's descriptors
                        for other in (listener, selector, *waiting.values()):
                            other.close()
                        for fd in (wake_r, wake_w, alive_fd):
                            os.close(fd)
                        return forked
                elif key.fileobj == wake_r:
                    while len(os.read(wake_r, 512)) == 512:
                        pass
                    _reap(waiting)
                else:  # the main process is done, or gone
                    listener.close()
                    Path(path).unlink(missing_ok=True)
                    return 0
    except KeyboardInterrupt:  # only if the handler was not in place yet
        return 1


def _import_package(name: str) -> None:
    """``name`` and all of its submodules."""
    import pkgutil

    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(package.__path__, f"{name}."):
        importlib.import_module(info.name)


def _fork(connection: socket.socket) -> int | Callable[[], int] | None:
    """Read one request from ``connection`` and fork its process. In the zygote: the pid (None: no request
    came). In the forked process, its work, to run once the zygote's frames are left behind."""
    try:
        header, fds, _, _ = socket.recv_fds(connection, _HEADER.size, _MAX_FDS, socket.MSG_WAITALL)
        if len(header) < _HEADER.size:
            raise EOFError("the request ended early")
        (length,) = _HEADER.unpack(header)
        target, args = pickle.loads(_read_exactly(connection, length))
    except Exception:
        traceback.print_exc()
        connection.close()
        return None
    if threading.active_count() != 1:  # never: a fork of a threaded process may deadlock
        raise RuntimeError("the test zygote runs a thread; it may not fork")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered here is written twice
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):  # who asked is gone; the process is reaped all the same
            connection.sendall(_STATUS.pack(pid))
        return pid
    connection.close()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    module, function = target.split(":")
    work: Callable[..., int] = getattr(importlib.import_module(module), function)
    return lambda: work(fds, *args)


def _reap(waiting: dict[int, socket.socket]) -> None:
    """Every child that has exited: its exit code to whoever asked for it."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = waiting.pop(pid, None)
        if connection is not None:
            with contextlib.suppress(OSError):  # who asked is gone
                connection.sendall(_STATUS.pack(os.waitstatus_to_exitcode(status)))
            connection.close()


def _read_exactly(connection: socket.socket, length: int) -> bytes:
    chunks, left = [], length
    while left:
        chunk = connection.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the connection ended early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# -- asking for a process ----------------------------------------------------------------------------------


class Child:
    """A process the zygote forked: its ``pid``, and its exit code once it has exited."""

    def __init__(self, connection: socket.socket, pid: int) -> None:
        self._connection = connection
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        try:
            return self.wait(0)
        except TimeoutError:
            return None

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; raises TimeoutError after ``timeout`` seconds (0: at once)."""
        if self.returncode is None:
            self._connection.settimeout(timeout)
            try:
                self._read()
            except (TimeoutError, BlockingIOError):  # a timeout of 0 makes the socket non-blocking
                self._connection.settimeout(None)
                raise TimeoutError(f"process {self.pid} still runs after {timeout} s") from None
        assert self.returncode is not None
        return self.returncode

    def _read(self) -> None:
        """The exit code, which the zygote sends when the process has exited; then the connection is done."""
        data = self._connection.recv(_STATUS.size, socket.MSG_WAITALL)
        if len(data) < _STATUS.size:
            raise RuntimeError(f"the test zygote ended before process {self.pid} did")
        (self.returncode,) = _STATUS.unpack(data)
        self._connection.close()


def spawn(target: str, args: tuple[Any, ...], fds: Sequence[int], path: str | None = None) -> Child:
    """A process forked by the zygote that runs ``target`` (``"module:function"``, called with the received
    copies of ``fds``, then ``args``; what it returns is the process's exit code)."""
    path = path or os.environ[SOCKET_VAR]
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:  # the zygote may still be importing
        try:
            connection.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline or os.path.exists(f"{path}.failed"):
                raise RuntimeError(f"The test zygote did not start listening on {path}.{_log(path)}") from None
            time.sleep(0.01)
    payload = pickle.dumps((target, args))
    socket.send_fds(connection, [_HEADER.pack(len(payload))], list(fds))
    connection.sendall(payload)
    data = connection.recv(_STATUS.size, socket.MSG_WAITALL)
    if len(data) < _STATUS.size:
        raise RuntimeError(f"The test zygote could not start the process.{_log(path)}")
    (pid,) = _STATUS.unpack(data)
    return Child(connection, pid)


def _log(path: str) -> str:
    """What the zygote wrote (its errors), to quote."""
    try:
        said = Path(f"{path}.log").read_text(errors="replace").strip()
    except OSError:
        return ""
    return f" It said:\n{said[-4000:]}" if said else ""


# -- the main process's side -------------------------------------------------------------------------------


def start(repo: Path) -> Callable[[], None]:
    """Start the zygote (the main process, as the run starts); returns what stops it. Its socket is named in
    ``SOCKET_VAR``, which the run's processes inherit."""
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    path = str(folder / f"outbound-schema-zygote-{os.getpid()}.sock")
    alive_r, alive_w = os.pipe()
    # Its own output to a file: this process's are pytest's capture by now. An error there is quoted by spawn.
    with open(f"{path}.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", f"import sys; from tests.zygote import main; sys.exit(main({path!r}, {alive_r}))"],
            cwd=repo,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(alive_r,),
        )
    os.close(alive_r)
    os.environ[SOCKET_VAR] = path

    def stop() -> None:
        os.close(alive_w)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for leftover in (path, f"{path}.log", f"{path}.failed"):
            Path(leftover).unlink(missing_ok=True)
        os.environ.pop(SOCKET_VAR, None)

    return stop


def worker_python() -> str:
    """What pytest-xdist starts as a worker's Python (its ``popen//python=``): this file as the launcher."""
    import shlex

    return shlex.join([sys.executable, "-S", __file__])


# -- a pytest-xdist worker ---------------------------------------------------------------------------------


def _launch(argv: list[str]) -> NoReturn:
    """The launcher: a worker forked by the zygote in this process's place, with its standard streams,
    arguments, environment and folder; this process then waits for it and exits as it does."""
    child = spawn("tests.zygote:_worker", (argv, dict(os.environ), os.getcwd()), (0, 1, 2))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the worker holds the pipes now: their ends close when it exits
        os.dup2(devnull, fd)
    # A terminal's Ctrl-C reaches the worker directly (the same process group); SIGTERM is passed on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, _: os.kill(child.pid, signum))
    code = child.wait()
    os._exit(code if code >= 0 else 128 - code)


def _worker(fds: list[int], argv: list[str], environ: dict[str, str], cwd: str) -> int:
    """In the forked worker: ``python -u -c CODE`` (pytest-xdist's bootstrap), as a new Python would run it."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    code_at = argv.index("-c") + 1
    if "-B" in argv[:code_at]:
        sys.dont_write_bytecode = True
    sys.argv = ["-c", *argv[code_at + 1 :]]
    sys.path[0] = ""  # as for python -c: the current folder
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    exec(compile(argv[code_at], "<string>", "exec"), main.__dict__)
    return 0


if __name__ == "__main__":
    _launch(sys.argv[1:])
