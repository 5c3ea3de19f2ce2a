"""What a long statement of a migration is doing, as PostgreSQL reports it.

While a statement of an upgrade or downgrade runs, a watcher thread with a
connection of its own reads, every few seconds, the migration's server process
in ``pg_stat_activity``, its index build in ``pg_stat_progress_create_index``
and whoever it waits for (``pg_blocking_pids``, the build's current locker).
The migration's connection names what it runs in ``application_name``
(``outbound-schema 46d: create index ...``), so that ``outbound-schema
status`` in another shell finds it (the holder of the migration lock) and
shows the same progress, without writing anything.

Between the short attempts of a statement whose lock was not granted, the migration's session is idle;
the last statement it ran, which ``pg_stat_activity`` shows as its ``query``, is the look-up of who holds
the lock, headed by a comment saying what it waits for (:data:`LOCK_WAIT_MARK`, see
:func:`lock_wait_sql`). ``status`` reads that comment, and who holds the lock now: nothing is held or
written to say it, and nothing needs giving back.

Other sessions are described by who they are, never by their SQL, which may
hold personal data.
"""

from __future__ import annotations

import heapq
import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from outbound_schema.query import fetch

if TYPE_CHECKING:
    from outbound_schema.query import Queryable

log = logging.getLogger("outbound_schema.progress")

JOIN_TIMEOUT_S = 1.0  # the longest a statement's end waits for its watcher
ALARM_IDLE_S = 1.0  # how long the thread timing the statements outlives the last of them
READING_TIMEOUT_MS = 2000  # a reading that takes longer is given up
#: What the migration's connection is called while it runs a statement: ``outbound-schema <label>``.
APPLICATION_PREFIX = "outbound-schema "
_NAMEDATALEN = 63  # PostgreSQL keeps this many bytes of an application_name

_ACTIVITY = """
    SELECT EXTRACT(EPOCH FROM clock_timestamp() - a.query_start)::float8, a.state, a.wait_event_type, a.wait_event,
           p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total,
           p.lockers_done, p.lockers_total, p.current_locker_pid,
           pg_blocking_pids(a.pid), a.application_name, p.index_relid::regclass::text,
           CASE WHEN a.state = 'idle' AND left(a.query, length(%(mark)s)) = %(mark)s THEN a.query END
    FROM pg_stat_activity a LEFT JOIN pg_stat_progress_create_index p ON p.pid = a.pid
    WHERE a.pid = %(pid)s
"""
_SESSIONS = """
    SELECT pid, usename, application_name, state, EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8,
           backend_type
    FROM pg_stat_activity WHERE pid = ANY(%(pids)s) ORDER BY pid
"""
#: What heads the migration's look-up of a lock's holders between attempts: ``/* outbound-schema lock wait
#: {"statement": ..., "lock_on": [...], "attempts": 3, "waited": 4.2} */ SELECT ...``.
LOCK_WAIT_MARK = "/* outbound-schema lock wait "
_ESCAPED_END = "*\\/"  # JSON's escape of "/": the comment does not end inside the mark
_LABEL_KEPT = 300  # characters of a statement's label in the mark: pg_stat_activity keeps 1 kB of a query


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``, ``2 h 04 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


@dataclass(frozen=True)
class Session:
    """Another server session, as an operator needs to know it: who, never what SQL."""

    pid: int  # 0: a prepared transaction, which has no session
    user: str | None  # None: no user (a background process), or a prepared transaction
    application: str | None
    state: str | None  # None: hidden from a role without pg_read_all_stats
    in_transaction_s: float | None
    kind: str | None = None  # pg_stat_activity.backend_type: what a session without a user is
    holding: str | None = None  # the lock modes it holds on the tables a statement waits for

    def describe(self) -> str:
        holding = f", holding {self.holding}" if self.holding else ""
        if self.pid == 0:
            return f"a prepared transaction (see pg_prepared_xacts){holding}"
        who = f"user {self.user}" if self.user else (self.kind or "no user")
        application = f"application '{self.application}'" if self.application else "no application name"
        if self.state is None:
            details = "its state hidden from this role (grant it pg_read_all_stats to see it)"
        elif self.in_transaction_s is not None:
            since = time.strftime("%H:%M:%S", time.localtime(time.time() - self.in_transaction_s))
            details = f"{self.state}, in its transaction for {duration(self.in_transaction_s)}, since {since}"
        else:
            details = f"{self.state}, in no transaction"
        return f"pid {self.pid} ({who}, {application}, {details}{holding})"

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "user": self.user,
            "application": self.application,
            "state": self.state,
            "in_transaction_s": None if self.in_transaction_s is None else round(self.in_transaction_s, 1),
            "holding": self.holding,
        }


def sessions(found: Sequence[Session], *, shown: int = 3) -> str:
    """The first ``shown`` of ``found`` described, and how many more there are."""
    text = "; ".join(session.describe() for session in found[:shown])
    more = len(found) - shown
    return f"{text}; and {more} more session{'s' if more > 1 else ''}" if more > 0 else text


def ending(found: Sequence[Session]) -> str:
    """How to end what ``found`` hold: ``SELECT pg_terminate_backend(N)``, for each."""
    ends = [f"SELECT pg_terminate_backend({s.pid})" for s in found if s.pid]
    if any(s.pid == 0 for s in found):
        ends.append("COMMIT PREPARED or ROLLBACK PREPARED '<gid>'")
    return " and ".join(ends)


def queued_behind(queued: int) -> str:
    return f"{queued} session{'s' if queued > 1 else ''} queued behind it" if queued else "none queued behind it"


@dataclass(frozen=True)
class Progress:
    """One reading of a running statement."""

    seconds: float
    phase: str
    done: int | None = None
    total: int | None = None
    unit: str | None = None
    waiting_for: tuple[Session, ...] = ()
    statement: str = ""  # our own label for it, from the connection's application_name
    #: Between a statement's attempts at a lock (``waiting_for`` holds it): the tables, how many sessions
    #: queue for a lock there, how many attempts were made.
    lock_on: tuple[str, ...] = ()
    queued: int | None = None
    attempts: int | None = None

    @property
    def share(self) -> float | None:
        return self.done / self.total if self.done is not None and self.total else None

    def describe(self, *, advice: bool = True) -> str:
        if self.attempts is not None:
            return self._between_attempts(advice=advice)
        parts = [self.phase]
        if self.share is not None:
            parts.append(f"{self.share:.0%} ({self.done:,} of {self.total:,} {self.unit})")
        parts.append(duration(self.seconds))
        text = ", ".join(parts)
        if self.waiting_for:
            text += f"; {self.waiting(advice=advice)}"
        return text

    def waiting(self, *, advice: bool = True) -> str:
        """Whom it waits on, and (``advice``) what the operator can do about it."""
        who = "; ".join(session.describe() for session in self.waiting_for)
        if not advice:
            return f"waiting on {who}"
        return f"waiting on {who}. {self._advice()}"

    def _advice(self) -> str:
        return (
            f"It goes on by itself once that transaction ends; ask its owner to finish it, or end it with "
            f"{ending(self.waiting_for)}. Stopping the upgrade instead is safe: the next run completes the step"
        )

    def _between_attempts(self, *, advice: bool) -> str:
        """``waiting for a lock on outbound_call_jobs held by pid 4242 (...); 2 sessions queued behind it;
        5 attempts in 41 s, the next by itself``, and what to do."""
        text = self.phase
        if self.waiting_for:
            text += f" held by {sessions(self.waiting_for)}; {queued_behind(self.queued or 0)}"
        elif self.lock_on:
            text += "; no session holds a lock there any more"
        attempts = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        text += f"; {attempts} of at most the lock timeout each in {duration(self.seconds)}, the next by itself"
        return f"{text}. {self._advice()}" if advice and self.waiting_for else text

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "phase": self.phase,
            "seconds": round(self.seconds, 1),
            "done": self.done,
            "total": self.total,
            "unit": self.unit,
            "share": None if self.share is None else round(self.share, 4),
            "waiting_for": [session.to_json() for session in self.waiting_for],
            "lock_on": list(self.lock_on),
            "queued": self.queued,
            "attempts": self.attempts,
        }


def read(connection: Queryable, pid: int) -> Progress | None:
    """What server process ``pid`` is doing now, or None when it runs nothing."""
    # PostgreSQL reads every session's activity and progress once per transaction and keeps them: an
    # earlier query of this transaction (who holds the lock) would leave this one reading a build as it
    # was then, beside whom it waits on now (pg_blocking_pids is read live).
    fetch(connection, "SELECT pg_stat_clear_snapshot()", {})
    rows = fetch(connection, _ACTIVITY, {"pid": pid, "mark": LOCK_WAIT_MARK})
    if not rows:
        return None
    (seconds, state, wait_type, wait_event, phase, blocks_done, blocks_total, tuples_done, tuples_total) = rows[0][:9]
    lockers_done, lockers_total, locker, blocking, application, index, marked = rows[0][9:]
    if state is None:  # another role's session, and this one lacks pg_read_all_stats
        return Progress(0.0, HIDDEN)
    if marked is not None:  # seconds: since the look-up the mark heads began
        return _between_attempts(connection, marked, float(seconds or 0))
    if state != "active":
        return None
    done = total = unit = None
    if phase is not None:
        # PostgreSQL keeps a phase's counters into the next phases: read the ones this phase reports.
        counters = {
            "transactions": (lockers_done, lockers_total),
            "blocks": (blocks_done, blocks_total),
            "tuples": (tuples_done, tuples_total),
        }
        unit = _phase_unit(str(phase))
        if unit is not None and counters[unit][1]:
            done, total = int(counters[unit][0] or 0), int(counters[unit][1])
        else:
            unit = None
    elif wait_type == "Lock":
        phase = f"waiting for a lock ({wait_event})"
    else:
        phase = "running"
    pids = sorted({*(blocking or []), *([locker] if locker else [])} - {pid})
    found = {row[0]: Session(*row) for row in fetch(connection, _SESSIONS, {"pids": pids})} if pids else {}
    # pid 0: a prepared transaction, which no session holds.
    waiting_for = tuple(found.get(p, Session(p, None, None, None, None)) for p in pids if p in found or p == 0)
    label = application[len(APPLICATION_PREFIX) :] if (application or "").startswith(APPLICATION_PREFIX) else ""
    cut_short = len((application or "").encode()) >= _NAMEDATALEN
    if cut_short and index not in (None, "-", "0") and ":" in label:  # the build names its index in full
        label = f"{label.split(':')[0]}: create index {index}"
    return Progress(float(seconds or 0), str(phase), done, total, unit, waiting_for, label)


HIDDEN = "details hidden from this role: grant it pg_read_all_stats to see them"


def lock_wait_sql(tables: str) -> str:
    """Who holds or queues for a lock on the tables ``tables`` (an SQL expression of a ``text[]``) in this
    database, other than this session: one row per session, holders first, oldest transaction first.
    Read with :func:`lock_wait`."""
    return f"""
    SELECT h.pid, h.usename, h.application_name, h.state,
           EXTRACT(EPOCH FROM clock_timestamp() - h.xact_start)::float8, h.backend_type, h.holding, h.holds
    FROM (
        SELECT coalesce(l.pid, 0) AS pid, a.usename, a.application_name, a.state, a.xact_start, a.backend_type,
               string_agg(DISTINCT l.mode, ', ') FILTER (WHERE l.granted) AS holding, bool_or(l.granted) AS holds
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.pid IS DISTINCT FROM pg_backend_pid()
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.relation = ANY(SELECT to_regclass(quote_ident(t)) FROM unnest({tables}) AS t)
        GROUP BY 1, 2, 3, 4, 5, 6
    ) AS h
    ORDER BY h.holds DESC, h.xact_start NULLS LAST, h.pid
    """


@dataclass(frozen=True)
class LockWait:
    """Who holds or queues for a lock on some tables, as :func:`lock_wait_sql` read it."""

    holders: tuple[Session, ...]
    queued: int


def lock_wait(rows: Sequence[Sequence[Any]]) -> LockWait:
    """The rows of :func:`lock_wait_sql`."""
    holders = tuple(Session(*row[:7]) for row in rows if row[7])
    return LockWait(holders, sum(1 for row in rows if not row[7]))


def lock_wait_mark(label: str, lock_on: Sequence[str], attempts: int, waited: float) -> str:
    """The comment heading the look-up between attempts (:data:`LOCK_WAIT_MARK`): what waits, and for how
    long so far (status adds the time since the look-up). Escaped so that it stays one comment."""
    said = {"statement": label[:_LABEL_KEPT], "lock_on": list(lock_on), "attempts": attempts, "waited": waited}
    return f"{LOCK_WAIT_MARK}{json.dumps(said).replace('*/', _ESCAPED_END)} */"


def _between_attempts(connection: Queryable, marked: str, since_mark: float) -> Progress:
    """The reading of a migration between attempts at a lock, from the comment heading its last query."""
    try:
        said = json.loads(marked[len(LOCK_WAIT_MARK) : marked.index(" */")])
        lock_on, label = tuple(str(t) for t in said["lock_on"]), str(said["statement"])
        attempts, waited = int(said["attempts"]), float(said["waited"])
    except (ValueError, KeyError, TypeError):  # cut short (track_activity_query_size): say what is known
        return Progress(0.0, "waiting for a lock, between attempts", attempts=0)
    found = lock_wait(fetch(connection, lock_wait_sql("%(tables)s::text[]"), {"tables": list(lock_on)}))
    phase = f"waiting for a lock on {', '.join(lock_on)}" if lock_on else "waiting for a lock"
    return Progress(
        waited + since_mark,
        phase,
        waiting_for=found.holders,
        statement=label,
        lock_on=lock_on,
        queued=found.queued,
        attempts=attempts,
    )


def _phase_unit(phase: str) -> str | None:
    """Which counters ``pg_stat_progress_create_index`` advances in ``phase`` (PostgreSQL's "CREATE
    INDEX Phases"): the transactions it waits for, the blocks it scans, the tuples it loads."""
    if phase.startswith("waiting for"):
        return "transactions"
    if phase.endswith(("scanning table", "scanning index")):
        return "blocks"
    if phase.endswith("loading tuples in tree"):
        return "tuples"
    return None


def application_name(label: str) -> str:
    """``outbound-schema <label>``, cut to what PostgreSQL keeps (63 bytes), for the connection running it."""
    name = (APPLICATION_PREFIX + label).encode()[:_NAMEDATALEN].decode(errors="ignore")
    return name.replace("'", "")


@dataclass
class Reporter:
    """Where readings go: plain log lines (deploy logs), or one redrawn line with a bar on a terminal."""

    stream: TextIO | None = None  # None: sys.stderr at the time
    drawn: bool = field(default=False, init=False)
    advised: tuple[int, ...] = field(default=(), init=False)  # the blockers last explained on a terminal

    @property
    def out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def terminal(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    def update(self, label: str, progress: Progress) -> None:
        if not log.isEnabledFor(logging.INFO):
            return  # -q
        if not self.terminal():
            log.info("%s: %s", label, progress.describe())
            return
        blockers = tuple(session.pid for session in progress.waiting_for)
        if blockers and blockers != self.advised:  # said once in full, above the redrawn line
            self.out.write(f"\r\x1b[K{label}: {progress.waiting()}\n")
            self.advised = blockers
        bar = ""
        if progress.share is not None:
            filled = round(progress.share * 20)
            bar = f"[{'#' * filled}{'.' * (20 - filled)}] "
        line = f"{label}: {bar}{progress.describe(advice=False)}"
        if width := self.width():
            line = line[: width - 1]  # one row: a wrapped line cannot be redrawn in place
        self.out.write(f"\r\x1b[K{line}")
        self.out.flush()
        self.drawn = True

    def width(self) -> int | None:
        """The terminal's width, when it says (a terminal of unknown size reports 0)."""
        try:
            columns = os.get_terminal_size(self.out.fileno()).columns
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None
        return columns if columns >= 40 else None

    def finish(self, label: str, seconds: float, *, done: bool = True) -> None:
        """The statement ended: the redrawn line cleared (an error is printed on a clean row), and, if it
        ran long enough to report and succeeded, how long it took."""
        if self.drawn:
            self.drawn = False
            with suppress(OSError, ValueError):  # a closed stderr must not fail a statement that committed
                self.out.write("\r\x1b[K")
                self.out.flush()
        if done:
            log.info("%s: done in %s", label, duration(seconds))


class _Alarm:
    """One thread per process that calls each callback given to :meth:`at` at its time, unless cancelled: a
    statement's watcher starts a thread of its own only once the statement outlasts the interval, not
    for each of an upgrade's hundred short statements (a thread started and joined for each cost a tenth
    of an upgrade's Python time). Started by the first statement, ended :data:`ALARM_IDLE_S` after the
    last; a forked child starts its own."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._count = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def at(self, when: float, callback: Callable[[], None]) -> int:
        """Call ``callback`` at ``when`` (``time.monotonic()``); the handle cancels it."""
        with self._changed:
            self._count += 1
            heapq.heappush(self._due, (when, self._count, callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outbound-schema progress", daemon=True)
                self._thread.start()
            self._changed.notify()
            return self._count

    def cancel(self, handle: int) -> None:
        with self._changed:
            kept = [entry for entry in self._due if entry[1] != handle]
            if len(kept) < len(self._due):
                self._due = kept
                heapq.heapify(self._due)
                self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    if self._due:
                        self._changed.wait(self._due[0][0] - time.monotonic())
                    elif not self._changed.wait(ALARM_IDLE_S) and not self._due:
                        # Nothing to time since: gone, so that a process forked after its migrations (a server
                        # preloading its application) forks no thread of ours. The next statement starts one.
                        self._thread = None
                        return
                _, _, callback = heapq.heappop(self._due)
            with suppress(Exception):  # a watcher that fails to start leaves the migration unwatched
                callback()


_alarm = _Alarm()


def _new_alarm_after_fork() -> None:
    global _alarm
    _alarm = _Alarm()  # the parent's thread does not exist in the child


os.register_at_fork(after_in_child=_new_alarm_after_fork)


class Watch:
    """Reports on server process ``pid`` running ``label`` every ``interval`` seconds while the block runs.

    The readings come from a thread and a connection of their own (``connect``), both started at the first
    reading, so a statement that ends within the interval costs nothing. A reading that fails stops the
    watching, never the migration.
    """

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[Any]],
        pid: int,
        label: str,
        interval: float,
        reporter: Reporter,
    ) -> None:
        self.connect, self.pid, self.label, self.interval, self.reporter = connect, pid, label, interval, reporter
        self._stop = threading.Event()
        self._lock = threading.Lock()  # a reading is reported whole, or not at all once the statement ended
        self._connection: Any = None
        self._thread: threading.Thread | None = None
        self.reported = False

    def __enter__(self) -> Watch:
        self.started = time.monotonic()
        self._alarm = _alarm.at(self.started + self.interval, self._start)
        return self

    def _start(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._watch, name=f"outbound-schema progress {self.label}", daemon=True
            )
            self._thread.start()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._stop.set()
            thread = self._thread
        _alarm.cancel(self._alarm)
        # The migration never waits on its watcher: a reading still running is cancelled, and a watcher
        # still connecting is left to give up on its own (it reports nothing once stopped).
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive() and (connection := self._connection) is not None:
                with suppress(Exception):
                    connection.cancel_safe(timeout=JOIN_TIMEOUT_S)
        with self._lock:
            self.reporter.finish(self.label, time.monotonic() - self.started, done=self.reported and exc[0] is None)

    def _watch(self) -> None:
        try:
            with self.connect() as connection:
                self._connection = connection
                connection.execute(f"SET statement_timeout = '{READING_TIMEOUT_MS}ms'")
                while not self._stop.is_set():
                    progress = read(connection, self.pid)
                    with self._lock:
                        if self._stop.is_set():
                            return
                        if progress is not None:
                            self.reporter.update(self.label, progress)
                            self.reported = True
                    if self._stop.wait(self.interval):
                        return
        except Exception as exc:  # the migration goes on unwatched
            log.debug("%s: progress readings stopped (%s)", self.label, exc)


@contextmanager
def watching(
    connect: Callable[[], AbstractContextManager[Any]] | None,
    pid: int | None,
    label: str,
    interval: float,
    reporter: Reporter,
) -> Iterator[None]:
    """A :class:`Watch` when there is something to watch (online), else nothing."""
    if connect is None or pid is None:
        yield
        return
    with Watch(connect, pid, label, interval, reporter):
        yield


@dataclass(frozen=True)
class Running:
    """A migration running now, as another session sees it: the holder of the migration lock."""

    pid: int
    user: str
    client: str | None  # None: hidden from a role without pg_read_all_stats
    connected_s: float | None  # how long ago its connection was opened (a host's may be older than the run)
    progress: Progress | None

    def describe(self) -> str:
        if self.client is None or self.connected_s is None:
            return f"migration running: server process {self.pid} (user {self.user}); {HIDDEN}"
        head = (
            f"migration running: server process {self.pid} (user {self.user}, from {self.client}), "
            f"connected {duration(self.connected_s)} ago"
        )
        if self.progress is None:
            return f"{head}; between statements"
        statement = self.progress.statement or "a statement"
        return f"{head}; {statement}: {self.progress.describe()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "user": self.user,
            "client": self.client,
            "connected_s": None if self.connected_s is None else round(self.connected_s, 1),
            "progress": None if self.progress is None else self.progress.to_json(),
        }


# The holder's activity by its pid (pg_stat_get_activity(pid)), not through pg_stat_activity: the view
# reads every backend's entry first, which costs a read-only command more than the rest of this query.
_LOCK_HOLDER = """
    SELECT a.pid, pg_get_userbyid(a.usesysid),
           CASE WHEN a.backend_start IS NOT NULL THEN coalesce(host(a.client_addr), 'local socket') END,
           EXTRACT(EPOCH FROM clock_timestamp() - a.backend_start)::float8
    FROM pg_locks l CROSS JOIN LATERAL pg_stat_get_activity(l.pid) a
    WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
            SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = CAST(%(high)s AS oid) AND l.objid = CAST(%(low)s AS oid) AND l.objsubid = 1
"""


def running(connection: Queryable, lock_key: int) -> Running | None:
    """The migration holding the lock ``lock_key`` on this database, with what it does now; read-only."""
    rows = fetch(connection, _LOCK_HOLDER, {"high": lock_key >> 32, "low": lock_key & 0xFFFFFFFF})
    if not rows:
        return None
    pid, user, client, seconds = rows[0]
    return Running(int(pid), str(user), client, None if seconds is None else float(seconds), read(connection, pid))
