"""``outbound-schema plan``: what an upgrade will do to a live database, before it does it. Read-only.

The statements come from the safety layer itself: the run is generated offline, as ``upgrade --sql`` writes it,
with a :class:`Recorder` attached to the safety layer (``outbound_schema.safety``) that cuts the script into the
changes it is made of (each with its guards, its transaction and its timeouts) and collects the refusals and
opt-outs instead of stopping at the first. Each change is then judged against the live database, with SELECT
alone: the lock it takes and what that lock blocks, how long it may block at most under the run's settings,
whether it scans or rewrites the table, the table's size, and how long it should take, calibrated on this
server by timing the work it does (reading rows, testing a predicate on them, sorting them) on a sample of the
very table it works on, as the changes before it will leave that table.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from outbound_schema.config import PLAN_ATTRIBUTE, SETTINGS_ATTRIBUTE, VERSION_TABLE, alembic_config, script_location
from outbound_schema.ddl import Limits
from outbound_schema.dsn import Target
from outbound_schema.history import History
from outbound_schema.keywords import quote
from outbound_schema.standing import HISTORY_TABLE, Standing, stand

#: The version of ``plan --format json``'s output; keys are only ever added within one.
FORMAT_VERSION = 1

#: Rows of a table read to calibrate (a sample of its blocks beyond that; the whole table below it).
SAMPLE_ROWS = 100_000
#: Times each query on the sample runs; the fastest is kept: the server's own speed, not what else it was doing.
TIMINGS = 5
#: Fitted on real builds and validations (bench/plan_estimates.py) against the work timed on a sample. A
#: concurrent index build reads the table twice (a plain one once), testing a partial index's predicate on
#: every row each time, and sorts the rows it keeps; per row kept it also writes an entry, reads it back and
#: sorts its row pointer for the second read: INDEX_ENTRY_FACTOR times the time a row takes to read.
INDEX_CONCURRENTLY_SCANS = 2.0
INDEX_SCANS = 1.0
INDEX_ENTRY_FACTOR = 3.5
#: VALIDATE of a CHECK reads the table testing its expression on every row, as the sample did, row by row
#: through a slot (CHECK_FACTOR). Of a foreign key, or of a CHECK not found: a read and a look-up per row,
#: VALIDATE_FACTOR reads (no benchmark measures it).
CHECK_FACTOR = 1.2
VALIDATE_FACTOR = 2.0
REWRITE_FACTOR = 4.0

BLOCKS_BOTH = "reads and writes"
BLOCKS_WRITES = "writes"
BLOCKS_NOTHING = "nothing"

_SETUP = re.compile(r"^(BEGIN|COMMIT|SET (LOCAL )?(lock_timeout|statement_timeout)\b)", re.IGNORECASE)
_GUARDED = re.compile(
    r"^DO \$outbound\$ BEGIN IF NOT EXISTS \(.*?\) THEN (?P<inner>.*); END IF; END \$outbound\$$", re.S
)


# Recording the offline script, change by change.


@dataclass
class Change:
    """One change as the safety layer makes it, and what it costs on the live database."""

    revision: str | None
    label: str
    statements: list[str]  #: what changes something (guards, settings, BEGIN and COMMIT left out)
    script: str  #: exactly as ``upgrade --sql`` writes it: guards, BEGIN, SET LOCAL ..., the statements, COMMIT
    in_transaction: bool
    waits_harmlessly: bool = False
    tables: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # Judged on the live database.
    lock: str = ""
    locked_tables: list[str] = field(default_factory=list)
    blocks: str = BLOCKS_NOTHING
    scans: bool = False
    rewrites: bool = False
    work: str = "catalog only"
    table: dict[str, Any] | None = None
    estimate_s: float = 0.0
    lock_wait: dict[str, Any] = field(default_factory=dict)
    blocking_window_s: float = 0.0
    decisions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "sql": self.statements,
            "script": self.script,
            "refused": self.refused,
            "lock": {"mode": self.lock or None, "tables": self.locked_tables, "blocks": self.blocks},
            "lock_wait": self.lock_wait,
            "scans_table": self.scans,
            "rewrites_table": self.rewrites,
            "work": self.work,
            "table": self.table,
            "estimated_s": round(self.estimate_s, 3),
            "blocking_window_s": round(self.blocking_window_s, 3),
            "decisions": self.decisions,
        }


class Recorder:
    """Attached to the safety layer of an offline run (``config.PLAN_ATTRIBUTE``): cuts the script it writes
    into :class:`Change` s, and keeps the refusals and opt-outs planning found."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.rules: dict[str, Any] = {}  # revision -> its Rules, as planned
        self._impl: Any = None
        self._current: Change | None = None
        self._guards: list[str] = []
        self._guards_start: int | None = None

    def attach(self, impl: Any) -> None:
        self._impl = impl
        impl.observer = self
        runner = impl.runner
        buffer = impl.output_buffer
        execute, in_transaction, outside = runner.execute, runner.in_transaction, runner.outside

        def recorded_execute(statement: Any) -> Any:
            start = buffer.tell()
            result = execute(statement)
            written = buffer.getvalue()[start:].strip()
            text = written[:-1] if written.endswith(";") else written
            if self._current is not None:
                if not _SETUP.match(text):
                    self._current.statements.append(text)
            else:  # a guard before the change it guards (an index left INVALID stops the script)
                if self._guards_start is None:
                    self._guards_start = start
                self._guards.append(text)
            return result

        def recorded(run: Any, *, in_tx: bool) -> Any:
            def wrapper(statements: Any, *args: Any, **kwargs: Any) -> Any:
                start = self._guards_start if self._guards_start is not None else buffer.tell()
                rules = impl.rules
                change = Change(
                    revision=rules.revision if rules is not None else None,
                    label=str(kwargs.get("label", "")),
                    statements=[],
                    script="",
                    in_transaction=in_tx,
                    waits_harmlessly=bool(kwargs.get("waits_harmlessly", False)),
                    tables=list(kwargs.get("tables", ())),
                )
                guards, self._guards, self._guards_start = self._guards, [], None
                self._current = change
                try:
                    result = run(statements, *args, **kwargs)
                finally:
                    self._current = None
                change.statements = [*guards, *change.statements]
                change.script = buffer.getvalue()[start:].strip()
                self.changes.append(change)
                return result

            return wrapper

        runner.execute = recorded_execute
        runner.in_transaction = recorded(in_transaction, in_tx=True)
        runner.outside = recorded(outside, in_tx=False)

    # The safety layer's calls (``SafeImpl.observer``).

    def planned(self, planned: dict[str, Any]) -> None:
        """Every revision of the run as planning found it (``safety.planning.prepare``)."""
        self.rules.update(planned)

    def refused(self, construct: Any, messages: Sequence[str]) -> None:
        from outbound_schema.safety.operations import describe, sql_of, table_of

        rules = self._impl.rules
        revision = rules.revision if rules is not None else None
        table = table_of(construct)
        self.changes.append(
            Change(
                revision=revision,
                label=f"{revision}: {describe(construct)}",
                statements=[sql_of(construct)],
                script="",
                in_transaction=True,
                tables=[table] if table else [],
                refused=list(messages),
            )
        )


# The plan.


@dataclass
class RevisionPlan:
    revision: str
    state: str
    changes: list[Change]
    refusals: list[str]
    opt_outs: list[dict[str, str]]


@dataclass
class Plan:
    database: str
    version: list[str]
    target: str
    state: str
    summary_line: str
    limits: Limits
    revisions: list[RevisionPlan]
    calibration: dict[str, Any]
    before: list[Change] = field(default_factory=list)  # changes of no revision: the schema history table
    not_planned: str = ""  #: why nothing could be planned (a database past this release, or at a revision it lacks)

    @property
    def changes(self) -> list[Change]:
        return [*self.before, *(c for r in self.revisions for c in r.changes)]

    @property
    def decisions(self) -> list[str]:
        # Ahead, this release's upgrade changes nothing (a release rollback): nothing to decide, as status
        # and check exit 0 there. Unknown, upgrade refuses: someone must decide which release runs.
        found = [self.not_planned] if self.not_planned and self.state == "unknown" else []
        found += [d for c in self.changes for d in c.decisions]
        for revision in self.revisions:
            found += revision.refusals
            found += [
                f"{revision.revision}: opted out of a refusal: {o['key']} ({o['why']})" for o in revision.opt_outs
            ]
            if revision.state == "conflicting":
                found.append(f"{revision.revision}: the database holds conflicting objects; upgrade refuses it")
        return list(dict.fromkeys(found))

    def total_s(self) -> float:
        return sum(c.estimate_s for c in self.changes)

    def longest_block(self) -> Change | None:
        blocking = [c for c in self.changes if c.blocks != BLOCKS_NOTHING and not c.refused]
        return max(blocking, key=lambda c: c.blocking_window_s, default=None)

    def exit_code(self) -> int:
        return 1 if self.decisions else 0

    def to_json(self) -> str:
        longest = self.longest_block()
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "database": self.database,
                "version": self.version,
                "target": self.target,
                "state": self.state,
                "not_planned": self.not_planned or None,
                "settings": {
                    "lock_timeout_ms": self.limits.lock_timeout_ms,
                    "lock_retries": self.limits.lock_retries,
                    "lock_wait_total_s": self.limits.lock_wait_total_s,
                    "statement_timeout_ms": self.limits.statement_timeout_ms,
                },
                "calibration": self.calibration,
                "before": [c.to_json() for c in self.before],
                "revisions": [
                    {
                        "revision": r.revision,
                        "state": r.state,
                        "refusals": r.refusals,
                        "opt_outs": r.opt_outs,
                        "statements": [c.to_json() for c in r.changes],
                    }
                    for r in self.revisions
                ],
                "summary": {
                    "estimated_s": round(self.total_s(), 3),
                    "longest_blocking_window": None
                    if longest is None
                    else {
                        "label": longest.label,
                        "blocks": longest.blocks,
                        "seconds": round(longest.blocking_window_s, 3),
                    },
                    "decisions": self.decisions,
                    "exit_code": self.exit_code(),
                },
            }
        )

    def to_text(self) -> str:
        limits = self.limits
        retries = "not given" if limits.lock_retries is None else limits.lock_retries
        out = [
            f"database: {self.database}",
            f"version:  {', '.join(self.version) or 'none recorded'}; target {self.target}",
            f"settings: lock timeout {_ms(limits.lock_timeout_ms)}, lock wait total "
            f"{_seconds(limits.lock_wait_total_s)}, lock retries {retries}, statement "
            f"timeout {_ms(limits.statement_timeout_ms)}",
        ]
        for table, rates in self.calibration.get("tables", {}).items():
            out.append(
                f"calibrated on this server, {table}: {rates['sample_rows']:,} rows read in "
                f"{rates['scan_ms']:.1f} ms ({rates['scan_rows_per_s']:,.0f} rows/s), "
                f"sorted in {rates['sort_ms']:.1f} ms"
            )
        out.append(f"state:    {self.summary_line}")
        if self.not_planned:
            return "\n".join([*out, "", f"not planned: {self.not_planned}"])
        for change in self.before:
            out += _change_text(change, "  ")
        for revision in self.revisions:
            out.append("")
            out.append(f"{revision.revision}  ({revision.state})")
            for opt in revision.opt_outs:
                out.append(f"  opt-out: {opt['key']}, refused by default, allowed by the revision: {opt['why']}")
            for change in revision.changes:
                out += _change_text(change, "  ")
        longest = self.longest_block()
        out.append("")
        out.append("summary:")
        out.append(
            f"  estimated time: {_seconds(self.total_s())} (index builds also wait for transactions open before them)"
        )
        if longest is None:
            out.append("  blocking: no statement blocks reads or writes")
        else:
            out.append(
                f"  longest blocking window: {_seconds(longest.blocking_window_s)}, blocking {longest.blocks} "
                f"({longest.label})"
            )
        decisions = self.decisions
        out.append("  needs a human decision: " + ("nothing" if not decisions else f"{len(decisions)}"))
        out += [f"    - {d}" for d in decisions]
        return "\n".join(out)


def _change_text(change: Change, indent: str) -> list[str]:
    lines = [f"{indent}{change.label}"]
    if change.refused:
        lines += [f"{indent}  REFUSED: {message}" for message in change.refused]
        lines += [f"{indent}  (would run) {s}" for s in change.statements]
        return lines
    lines += [f"{indent}  | {line}" for line in change.script.splitlines() if line.strip()]
    table = change.table
    where = ", ".join(change.locked_tables) or "no existing table"
    if change.lock:
        lines.append(f"{indent}  lock: {change.lock} on {where}: blocks {change.blocks}")
    wait = change.lock_wait
    if wait:
        lines.append(f"{indent}  {wait['text']}")
    if table is not None:
        size = "size unknown" if table["bytes"] is None else _bytes(table["bytes"])
        lines.append(f"{indent}  table: {table['name']}, ~{table['rows']:,} rows, {size}")
    what = "rewrites the table" if change.rewrites else ("scans the table" if change.scans else "no scan, no rewrite")
    lines.append(f"{indent}  {what}; {change.work}; estimate {_seconds(change.estimate_s)}")
    lines += [f"{indent}  DECISION: {d}" for d in change.decisions]
    return lines


def _ms(ms: int) -> str:
    return f"{ms} ms" if ms < 10_000 else _seconds(ms / 1000)


def _seconds(s: float) -> str:
    if s < 0.1:
        return "< 0.1 s"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min"


def _bytes(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"  # pragma: no cover


# What each statement locks, blocks, scans.


@dataclass(frozen=True)
class Effect:
    lock: str
    blocks: str
    scans: bool = False
    rewrites: bool = False
    work: str = "catalog only"  # or: index build, validation scan, scan, rewrite
    table: str | None = None
    others: tuple[str, ...] = ()  #: other tables locked (a foreign key's referenced table)
    others_lock: str = ""
    unknown: bool = False


_NAME = r'((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)'
_ALTER = re.compile(rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?{_NAME}\s+(?P<rest>.*)$", re.I | re.S)
_INDEX = re.compile(
    rf"^CREATE (?:UNIQUE )?INDEX (?P<cc>CONCURRENTLY )?(?:IF NOT EXISTS )?{_NAME}? ?ON (?:ONLY )?{_NAME}"
    r"\s*(?P<rest>.*)$",
    re.I | re.S,
)
_REFERENCES = re.compile(rf"REFERENCES {_NAME}", re.I)


def effect_of(sql: str) -> Effect:
    """What one statement of the script locks and does, read from its words."""
    sql = " ".join(sql.split())
    guarded = _GUARDED.match(sql)
    if guarded:
        sql = guarded.group("inner")
    upper = sql.upper()
    if upper.startswith("DO $OUTBOUND$") and "RAISE EXCEPTION" in upper and "PG_INDEX" in upper:
        return Effect("", BLOCKS_NOTHING, work="catalog check")
    index = _INDEX.match(sql)
    if index:
        table = _unquote(index.group(3))
        if index.group("cc"):
            return Effect("SHARE UPDATE EXCLUSIVE", BLOCKS_NOTHING, scans=True, work="index build", table=table)
        return Effect("SHARE", BLOCKS_WRITES, scans=True, work="index build", table=table)
    if upper.startswith("DROP INDEX"):
        if "CONCURRENTLY" in upper:
            return Effect("SHARE UPDATE EXCLUSIVE", BLOCKS_NOTHING)
        return Effect("ACCESS EXCLUSIVE", BLOCKS_BOTH)
    if upper.startswith("CREATE TABLE"):
        refs = tuple(dict.fromkeys(_unquote(m) for m in _REFERENCES.findall(sql)))
        return Effect("", BLOCKS_NOTHING, others=refs, others_lock="SHARE ROW EXCLUSIVE" if refs else "")
    if upper.startswith("DROP TABLE"):
        return Effect("ACCESS EXCLUSIVE", BLOCKS_BOTH, table=_unquote(sql.split()[-1]))
    alter = _ALTER.match(sql)
    if alter:
        table, rest = _unquote(alter.group(1)), alter.group("rest").upper()
        if rest.startswith("VALIDATE CONSTRAINT"):
            return Effect("SHARE UPDATE EXCLUSIVE", BLOCKS_NOTHING, scans=True, work="validation scan", table=table)
        if rest.startswith("ADD CONSTRAINT") or rest.startswith("ADD CHECK") or rest.startswith("ADD FOREIGN"):
            refs = tuple(_unquote(m) for m in _REFERENCES.findall(alter.group("rest")))
            not_valid = rest.rstrip().endswith("NOT VALID")
            if "FOREIGN KEY" in rest:
                scans = not not_valid
                return Effect(
                    "SHARE ROW EXCLUSIVE",
                    BLOCKS_WRITES,
                    scans=scans,
                    work="validation scan" if scans else "catalog only",
                    table=table,
                    others=refs,
                    others_lock="SHARE ROW EXCLUSIVE",
                )
            if "UNIQUE" in rest or "PRIMARY KEY" in rest:
                using = "USING INDEX" in rest
                return Effect(
                    "ACCESS EXCLUSIVE",
                    BLOCKS_BOTH,
                    scans=not using,
                    work="catalog only" if using else "index build",
                    table=table,
                )
            return Effect(
                "ACCESS EXCLUSIVE",
                BLOCKS_BOTH,
                scans=not not_valid,
                work="catalog only" if not_valid else "validation scan",
                table=table,
            )
        if re.search(r"\bSET NOT NULL\b", rest):
            return Effect("ACCESS EXCLUSIVE", BLOCKS_BOTH, scans=True, work="scan", table=table)
        if re.search(r"\bTYPE\b", rest) and "ALTER COLUMN" in rest:
            return Effect("ACCESS EXCLUSIVE", BLOCKS_BOTH, scans=True, rewrites=True, work="rewrite", table=table)
        if rest.startswith("ADD COLUMN") and re.search(r"\b(PRIMARY KEY|UNIQUE|GENERATED .* STORED|SERIAL)\b", rest):
            return Effect("ACCESS EXCLUSIVE", BLOCKS_BOTH, scans=True, rewrites=True, work="rewrite", table=table)
        if rest.startswith("DROP CONSTRAINT") or "OWNER TO" in rest or rest.startswith(("ADD COLUMN", "DROP COLUMN")):
            return Effect("ACCESS EXCLUSIVE", BLOCKS_BOTH, table=table)
        if rest.startswith(("ALTER COLUMN", "RENAME")):
            return Effect("ACCESS EXCLUSIVE", BLOCKS_BOTH, table=table)
        return Effect("ACCESS EXCLUSIVE", BLOCKS_BOTH, table=table, unknown=True)
    if upper.startswith("COMMENT ON"):
        return Effect("SHARE UPDATE EXCLUSIVE", BLOCKS_NOTHING)
    return Effect("unknown", BLOCKS_BOTH, unknown=True)


def _unquote(name: str) -> str:
    last = name.rsplit(".", 1)[-1]
    return last[1:-1] if last.startswith('"') else last


_INDEX_COLUMNS = re.compile(
    r"^(?:USING \w+\s*)?\((?P<cols>.*)\)(?:\s+INCLUDE\s*\(.*?\))?(?:\s+WHERE\s+(?P<where>.*))?$", re.I | re.S
)


def _index_keys(sql: str) -> tuple[str, str | None] | None:
    """The keys (an ORDER BY list) and predicate of a CREATE INDEX statement."""
    match = _INDEX.match(" ".join(sql.split()))
    if not match:
        return None
    rest = match.group("rest").strip()
    keys = _INDEX_COLUMNS.match(rest)
    if not keys:
        return None
    cols = keys.group("cols")
    depth = 0
    for i, char in enumerate(cols):  # the key list ends at the parenthesis that closes it
        depth += (char == "(") - (char == ")")
        if depth < 0:
            cols = cols[:i]
            break
    return cols, keys.group("where")


# Reading the live database, with SELECT alone.


def table_size(connection: psycopg.Connection[Any], table: str) -> dict[str, Any] | None:
    row = connection.execute(
        "SELECT c.reltuples::bigint, pg_total_relation_size(c.oid), pg_relation_size(c.oid) FROM pg_class c "
        "WHERE c.oid = to_regclass(%s)",
        (table,),
    ).fetchone()
    if row is None:
        return None
    reltuples, total, heap = row
    return {
        "name": table,
        "rows": max(int(reltuples), 0),
        "rows_counted": reltuples >= 0,
        "bytes": total,
        "heap_bytes": heap,
    }


def _columns(connection: psycopg.Connection[Any], table: str) -> list[str]:
    found = connection.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (table,),
    ).fetchall()
    return [str(name) for (name,) in found]


def _explained(connection: psycopg.Connection[Any], sql: str) -> tuple[float, int, int]:
    """Run ``sql`` (a count or a sort, over a sample) under EXPLAIN ANALYZE: the server's time for it in ms, the
    rows its scans read, and the rows the count or the sort got (those a predicate kept)."""
    # BUFFERS OFF: counting buffers per row (the default from PostgreSQL 18) costs more than the work measured.
    found = connection.execute(f"EXPLAIN (ANALYZE, TIMING OFF, BUFFERS OFF, FORMAT JSON) {sql}").fetchone()
    (document,) = found  # type: ignore[misc]
    if isinstance(document, str):
        document = json.loads(document)
    top = document[0]

    def rows(node: dict[str, Any], *, removed: bool = False) -> float:
        got = node.get("Actual Rows", 0) + (node.get("Rows Removed by Filter", 0) if removed else 0)
        return float(got) * float(node.get("Actual Loops", 1))

    def read(node: dict[str, Any]) -> float:
        below = node.get("Plans")
        return sum(read(child) for child in below) if below else rows(node, removed=True)

    plan = top["Plan"]
    kept = rows(plan["Plans"][0]) if plan.get("Plans") else rows(plan)
    return float(top["Execution Time"]), round(read(plan)), round(kept)


def _timed(connection: psycopg.Connection[Any], sql: str) -> tuple[float, int, int]:
    """:func:`_explained`, the fastest of :data:`TIMINGS` runs: one run alone may catch the server busy, and the
    first reads the sample's blocks into shared_buffers, as the others find them."""
    runs = [_explained(connection, sql) for _ in range(TIMINGS)]
    return min(run[0] for run in runs), runs[-1][1], runs[-1][2]


@dataclass
class Calibration:
    """Work timed on this server on a sample of one table, and scaled to the whole table: reading the sample,
    testing a predicate on its rows (an index's WHERE, a CHECK's expression), sorting them by an index's keys."""

    table: str
    rows: int  #: the table's estimated rows
    sample_rows: int
    scan_ms: float  #: counting the sample's rows: reading them and nothing else
    filter_ms: float = 0.0  #: beyond reading them, testing the predicate on each
    kept_rows: int = 0  #: the rows of the sample the predicate keeps (all of them, without one)
    sort_ms: float = 0.0  #: beyond reading (and testing) them, sorting the rows kept
    sorted_rows: int = 0

    @property
    def scan_rows_per_s(self) -> float:
        return self.sample_rows / max(self.scan_ms / 1000, 1e-6)

    @property
    def _scale(self) -> float:
        return self.rows / self.sample_rows if self.sample_rows else 0.0

    def per_row_s(self) -> float:
        """The time a row takes to read: also the unit of the work no query times (writing an index)."""
        return self.scan_ms / 1000 / self.sample_rows if self.sample_rows else 0.0

    def scan_s(self) -> float:
        return self.scan_ms / 1000 * self._scale

    def filter_s(self) -> float:
        """Reading the table testing the predicate on every row."""
        return (self.scan_ms + self.filter_ms) / 1000 * self._scale

    def kept(self) -> float:
        """The share of the table's rows the predicate keeps."""
        return self.kept_rows / self.sample_rows if self.sample_rows else 1.0

    def sort_s(self) -> float:
        n = self.sorted_rows
        total = self.rows * self.kept()
        if n < 2 or total < 2:
            return 0.0
        return self.sort_ms / 1000 * (total * math.log2(total)) / (n * math.log2(n))

    def to_json(self) -> dict[str, Any]:
        return {
            "sample_rows": self.sample_rows,
            "scan_ms": round(self.scan_ms, 3),
            "scan_rows_per_s": round(self.scan_rows_per_s),
            "sort_ms": round(self.sort_ms, 3),
            "sorted_rows": self.sorted_rows,
        }


#: Rows a block holds, for a table never analyzed (reltuples unknown): only to choose the sample.
_ROWS_PER_BLOCK_GUESS = 60
#: The runs of consecutive blocks the sample of a large table is made of, spread evenly over it.
_RUNS = 8
_WORD = re.compile(r'"([^"]+)"|([A-Za-z_][A-Za-z0-9_$]*)')


def _sample(
    size: dict[str, Any], columns: Sequence[str] = (), values: Mapping[str, str] | None = None
) -> tuple[str, float]:
    """The sample of a table to time, as a FROM item holding ``columns`` and the columns ``values`` gives (a
    column an earlier change adds: the value each row gets), and the share of the table it is (percent).

    A large table's sample is runs of consecutive blocks spread evenly over it, read by ctid range, not
    TABLESAMPLE: a sequential scan reads ahead and combines reads, and so does a run; scattered blocks are read
    one by one, which costs more per row, the more so once the table outgrows shared_buffers."""
    table = size["name"]
    listed = ", ".join([*map(quote, columns), *(f"{value} AS {quote(name)}" for name, value in (values or {}).items())])
    blocks = max((size["heap_bytes"] or 0) // 8192, 1)
    rows = (size["rows"] if size["rows_counted"] else 0) or blocks * _ROWS_PER_BLOCK_GUESS
    if rows <= SAMPLE_ROWS:
        # OFFSET 0: the subquery's columns stay columns; folded in as constants, an ORDER BY of them is dropped.
        return f"(SELECT {listed} FROM {table} OFFSET 0) AS {quote(table)}", 100.0
    length = max(round(SAMPLE_ROWS / _RUNS / (rows / blocks)), 1)
    starts = [blocks * (2 * i + 1) // (2 * _RUNS) for i in range(_RUNS)]
    runs = " UNION ALL ".join(
        f"SELECT {listed} FROM {table} WHERE ctid >= '({start},0)' AND ctid < '({start + length},0)'"
        for start in starts
    )
    return f"({runs}) AS {quote(table)}", min(100.0 * _RUNS * length / blocks, 100.0)


def calibrate(
    connection: psycopg.Connection[Any],
    size: dict[str, Any],
    *,
    keys: str | None = None,
    predicate: str | None = None,
    added: Mapping[str, str] | None = None,
) -> Calibration:
    """Time, on a sample of a table, reading its rows, testing ``predicate`` on them and sorting the rows kept
    by ``keys`` (an index's); ``added``: columns an earlier change adds, with their values. Read-only."""
    table, rows = size["name"], size["rows"]
    named = {a or b for text in (keys, predicate) if text for a, b in _WORD.findall(text)}
    existing = _columns(connection, table)
    columns = [name for name in existing if name in named]
    values = {name: value for name, value in (added or {}).items() if name in named and name not in existing}
    bare, percent = _sample(size)
    source, _ = _sample(size, columns, values)
    with connection.transaction():
        for setting, value in (
            ("work_mem", "current_setting('maintenance_work_mem')"),  # the sort an index build makes, in memory
            ("max_parallel_workers_per_gather", "'0'"),
            ("enable_indexscan", "'off'"),  # the table's rows are read, as a build or a validation reads them
            ("enable_indexonlyscan", "'off'"),
            ("enable_bitmapscan", "'off'"),
        ):
            connection.execute(f"SELECT set_config('{setting}', {value}, true)")
        scan_ms, sample_rows, _ = _timed(connection, f"SELECT count(*) FROM {bare}")
        calibration = Calibration(table, rows, sample_rows, scan_ms, kept_rows=sample_rows)
        try:
            with connection.transaction():
                # Each cost is what a query costs beyond the plain read, the columns it reads included.
                read_ms = scan_ms
                where = f" WHERE {predicate}" if predicate else ""
                if predicate:
                    read_ms, _, calibration.kept_rows = _timed(connection, f"SELECT count(*) FROM {source}{where}")
                    calibration.filter_ms = max(read_ms - scan_ms, 0.0)
                if keys is not None:
                    sort_total, _, sorted_rows = _timed(
                        connection, f"SELECT {keys} FROM {source}{where} ORDER BY {keys}"
                    )
                    calibration.sort_ms = max(sort_total - read_ms, 0.0)
                    calibration.sorted_rows = sorted_rows
        except psycopg.Error:
            pass  # keys or a predicate the sample's query cannot take (an operator class): the read alone
    if not size["rows_counted"]:  # never analyzed: the sample says how many rows it holds
        calibration.rows = round(sample_rows * 100 / percent)
    return calibration


def _judged(
    connection: psycopg.Connection[Any],
    change: Change,
    limits: Limits,
    calibrations: dict[str, Any],
    planned: Planned | None = None,
) -> None:
    """:func:`judge`, its reads never queued without a bound behind another session's lock (they take ACCESS
    SHARE on the table: its size, its sample), and ended with their transaction: the plan holds no lock, and
    no snapshot a concurrent index build would wait for, from one change to the next."""
    from outbound_schema.catalog.reading import patiently

    tables = list(dict.fromkeys([*change.tables, *(t for s in change.statements for t in _named_tables(s))]))
    patiently(connection, tables or ["(the catalog)"], lambda: judge(connection, change, limits, calibrations, planned))
    connection.commit()


def _named_tables(statement: str) -> list[str]:
    """The tables a statement names (ON t, ALTER TABLE t), for naming who holds them if a read must wait."""
    return re.findall(r"(?:\bON|ALTER TABLE(?: IF EXISTS)?)\s+([A-Za-z_][A-Za-z0-9_]*)", statement)


_ADD_COLUMN = re.compile(
    rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?{_NAME}\s+ADD COLUMN (?:IF NOT EXISTS )?{_NAME}\s+(?P<type>.+?)"
    r"(?:\s+DEFAULT\s+(?P<default>.+?))?"
    r"(?:\s+(?:NOT NULL|NULL|CONSTRAINT|REFERENCES|CHECK|PRIMARY KEY|UNIQUE|GENERATED|COLLATE)\b.*)?$",
    re.I | re.S,
)
_ADD_CHECK = re.compile(rf"ADD CONSTRAINT {_NAME}\s+CHECK\s*\((?P<expr>.*)\)(?:\s+NOT VALID)?$", re.I | re.S)
_VALIDATE = re.compile(r"\bVALIDATE CONSTRAINT\s+(\"[^\"]+\"|[\w$]+)", re.I)


def _unguarded(statement: str) -> str:
    """The statement a guard (``DO ... IF NOT EXISTS ... THEN``) runs, on one line."""
    sql = " ".join(statement.split())
    guarded = _GUARDED.match(sql)
    return guarded.group("inner") if guarded else sql


@dataclass
class Planned:
    """What the changes before the one judged leave that the live database does not hold yet."""

    added: dict[str, dict[str, str]] = field(default_factory=dict)  #: table -> column -> the value rows get
    checks: dict[str, str] = field(default_factory=dict)  #: "table.constraint" -> its CHECK's expression

    def note(self, change: Change) -> None:
        for statement in change.statements:
            sql = _unguarded(statement)
            column = _ADD_COLUMN.match(sql)
            if column:
                value = column.group("default") or "NULL"
                name = _unquote(column.group(2))
                self.added.setdefault(_unquote(column.group(1)), {})[name] = f"CAST({value} AS {column.group('type')})"
            alter = _ALTER.match(sql)
            check = _ADD_CHECK.match(alter.group("rest")) if alter else None
            if alter and check:
                self.checks[f"{_unquote(alter.group(1))}.{_unquote(check.group(1))}"] = check.group("expr")

    def check_of(self, connection: psycopg.Connection[Any], table: str, statement: str) -> str | None:
        """The expression a statement validates: an ADD CONSTRAINT ... CHECK's own, or the CHECK a VALIDATE
        CONSTRAINT names (added earlier in the plan, or found in the database); None for a foreign key."""
        sql = _unguarded(statement)
        alter = _ALTER.match(sql)
        check = _ADD_CHECK.match(alter.group("rest")) if alter else None
        if check:
            return check.group("expr")
        validate = _VALIDATE.search(sql)
        if not validate:
            return None
        name = _unquote(validate.group(1))
        if f"{table}.{name}" in self.checks:
            return self.checks[f"{table}.{name}"]
        found = connection.execute(
            "SELECT pg_get_expr(conbin, conrelid) FROM pg_constraint WHERE conrelid = to_regclass(%s) "
            "AND conname = %s AND contype = 'c'",
            (table, name),
        ).fetchone()
        return str(found[0]) if found else None


def _calibrated(
    connection: psycopg.Connection[Any],
    calibrations: dict[str, Any],
    size: dict[str, Any],
    planned: Planned,
    keys: str | None = None,
    predicate: str | None = None,
) -> Calibration:
    added = planned.added.get(size["name"], {})
    key = f"{size['name']}|{keys}|{predicate}|{sorted(added.items())}"
    calibration = calibrations.get(key)
    if calibration is None:
        calibration = calibrations[key] = calibrate(connection, size, keys=keys, predicate=predicate, added=added)
        if not size["rows_counted"]:
            size["rows"] = calibration.rows
    return calibration


def judge(
    connection: psycopg.Connection[Any],
    change: Change,
    limits: Limits,
    calibrations: dict[str, Any],
    planned: Planned | None = None,
) -> None:
    """Fill in the lock, the blocking, the size and the estimate of ``change`` from the live database;
    ``planned``: what the changes before it add that the database does not hold yet."""
    planned = planned or Planned()
    effects = [effect_of(s) for s in change.statements]
    strongest = max(effects, key=lambda e: _ORDER.index(e.blocks), default=None)
    if strongest is None:
        return
    main = [e for e in effects if e.lock and e.lock != "unknown"]
    change.lock = (
        " + ".join(dict.fromkeys(e.lock for e in main))
        if main
        else ("unknown" if any(e.unknown for e in effects) else "")
    )
    change.blocks = strongest.blocks
    locked = [e.table for e in effects if e.table] + [t for e in effects for t in e.others]
    change.locked_tables = list(dict.fromkeys(t for t in locked if t))
    change.scans = any(e.scans for e in effects)
    change.rewrites = any(e.rewrites for e in effects)
    works = [e.work for e in effects if e.work not in ("catalog only", "catalog check")]
    change.work = ", ".join(dict.fromkeys(works)) or "catalog only"
    if any(e.unknown for e in effects):
        change.decisions.append(
            f"{change.label}: what this statement locks is not known to the planner; review it by hand"
        )
    table_name = next((e.table for e in effects if e.table), None)
    estimate = 0.0
    if table_name is not None:
        size = table_size(connection, table_name)
        change.table = size
        if size is not None:
            for statement, effect in zip(change.statements, effects, strict=True):
                if effect.scans:
                    estimate += _estimate(connection, calibrations, size, planned, statement, effect)
    change.estimate_s = estimate
    if change.blocks == BLOCKS_NOTHING:
        if change.in_transaction and not change.waits_harmlessly:
            change.lock_wait = _retries(limits)
        else:
            change.lock_wait = {
                "per_attempt_ms": limits.statement_timeout_ms,
                "attempts": 1,
                "text": f"waits for its lock up to the statement timeout ({_ms(limits.statement_timeout_ms)}), "
                "blocking nobody meanwhile",
            }
        return
    change.lock_wait = _retries(limits)
    # While it waits for its lock, and while it holds it, the sessions that need the table wait behind it.
    change.blocking_window_s = limits.lock_timeout_ms / 1000 + estimate
    if estimate >= 1.0:
        change.decisions.append(
            f"{change.label}: blocks {change.blocks} on {', '.join(change.locked_tables)} for about "
            f"{_seconds(estimate)} while it {change.work}s"
        )


def _estimate(
    connection: psycopg.Connection[Any],
    calibrations: dict[str, Any],
    size: dict[str, Any],
    planned: Planned,
    statement: str,
    effect: Effect,
) -> float:
    """How long one statement that reads the table should take, from work timed on a sample of it."""
    if effect.work == "index build":
        keys = _index_keys(statement)
        cols, where = keys if keys is not None else (None, None)
        calibration = _calibrated(connection, calibrations, size, planned, cols, where)
        scans = INDEX_CONCURRENTLY_SCANS if effect.lock == "SHARE UPDATE EXCLUSIVE" else INDEX_SCANS
        # Each read of the table tests a partial index's predicate on every row; only the rows kept are sorted,
        # written to the index, and read back from it.
        entries = INDEX_ENTRY_FACTOR * calibration.per_row_s() * calibration.rows * calibration.kept()
        return scans * calibration.filter_s() + calibration.sort_s() + entries
    if effect.work == "validation scan":
        check = planned.check_of(connection, size["name"], statement)
        if check is not None:
            calibration = _calibrated(connection, calibrations, size, planned, predicate=f"NOT ({check})")
            if calibration.filter_ms:
                return CHECK_FACTOR * calibration.filter_s()
        return VALIDATE_FACTOR * _calibrated(connection, calibrations, size, planned).scan_s()
    scan = _calibrated(connection, calibrations, size, planned).scan_s()
    return REWRITE_FACTOR * scan if effect.rewrites else scan


_ORDER = [BLOCKS_NOTHING, BLOCKS_WRITES, BLOCKS_BOTH]


def _retries(limits: Limits) -> dict[str, Any]:
    """How the run keeps trying for a lock that blocks (``ddl.DDLRunner.in_transaction``): attempts of at most
    the lock timeout, back-off between them, until the lock wait total (or the lock retries, given) runs out."""
    per_attempt = limits.lock_timeout_ms / 1000
    total = limits.lock_wait_total_s
    retries = limits.lock_retries
    waited, attempts = 0.0, 0
    while True:
        attempts += 1
        waited += per_attempt
        left = total - waited
        if left <= 0 or (retries is not None and attempts > retries) or attempts >= 100_000:
            break
        waited += min(limits.backoff_s(attempts), left)
    return {
        "per_attempt_ms": limits.lock_timeout_ms,
        "attempts": attempts,
        "max_waiting_s": round(attempts * per_attempt, 3),
        "max_with_backoff_s": round(waited, 3),
        "text": f"waits for its lock at most {_ms(limits.lock_timeout_ms)} per attempt (the longest the workers "
        f"queue behind it), up to {attempts} attempts over {_seconds(waited)} with back-off, then gives up",
    }


# Putting it together.


def record(starts: Sequence[str], target: str, chosen: dict[str, Any]) -> tuple[Recorder, str]:
    """The offline script from ``starts`` (the version table's rows; none: from base) to ``target``, as ``upgrade
    --sql`` writes it, and its changes, recorded."""
    from outbound_schema.safety.alembic_api import upgrade_script

    config = alembic_config(None)
    config.attributes[SETTINGS_ATTRIBUTE] = chosen
    recorder = Recorder()
    config.attributes[PLAN_ATTRIBUTE] = recorder
    buffer = io.StringIO()
    config.output_buffer = buffer
    upgrade_script(config, starts, target)
    return recorder, buffer.getvalue()


def make_plan(url: Target, target: str, chosen: dict[str, Any]) -> Plan:
    """What ``upgrade target`` would do to ``url``'s database; reads it with SELECT alone, changes nothing."""
    from outbound_schema.expected import HistorySchemas
    from outbound_schema.takeover import assess

    limits = Limits.of(lambda setting: chosen[setting.dest])
    history = History.read(script_location())
    with url.connect() as connection:
        connection.read_only = True
        standing = stand(connection, history, VERSION_TABLE)
        connection.commit()
        current = list(standing.current)
        if standing.state in ("ahead", "unknown"):
            summary = standing.summary()
            return Plan(
                url.shown, current, target, standing.state, summary, limits, [], {}, not_planned=_past(standing)
            )
        expected = HistorySchemas(history)
        reports = {
            r.revision: r.state for r in assess(connection, expected, expected.managed(), history.applied(set(current)))
        }
        connection.commit()
        # Every row: a version table at two heads of a branched history has both applied.
        recorder, _script = record(current, target, chosen)
        history_exists = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (HISTORY_TABLE,)).fetchone()
        calibrations: dict[str, Calibration] = {}
        before = [c for c in recorder.changes if c.revision is None and not (history_exists and history_exists[0])]
        revisions: list[RevisionPlan] = []
        for change in recorder.changes:
            if change.revision is None:
                continue
            if not revisions or revisions[-1].revision != change.revision:
                revisions.append(_revision(change.revision, reports, recorder))
            revisions[-1].changes.append(change)
        for name in recorder.rules:  # a revision that changes nothing still shows
            if all(r.revision != name for r in revisions):
                revisions.append(_revision(name, reports, recorder))
        order = list(recorder.rules) or [r.revision for r in revisions]
        revisions.sort(key=lambda r: order.index(r.revision) if r.revision in order else len(order))
        planned = Planned()
        for revision in revisions:
            for change in revision.changes:
                if revision.state == "present":
                    change.work = "found complete in the database: recorded without running"
                    continue
                if not change.refused:
                    _judged(connection, change, limits, calibrations, planned)
                    planned.note(change)
        for change in before:
            _judged(connection, change, limits, calibrations)
        connection.rollback()
    pending = [r.revision for r in revisions]
    summary = "at target: nothing to do" if not pending else "upgrade would process " + " -> ".join(pending)
    tables: dict[str, Any] = {}
    for calibration in calibrations.values():
        tables.setdefault(calibration.table, calibration.to_json())
        if calibration.sorted_rows:
            tables[calibration.table] = calibration.to_json()
    return Plan(url.shown, current, target, standing.state, summary, limits, revisions, {"tables": tables}, before)


def _past(standing: Standing) -> str:
    """Why a database this release cannot plan for was not planned, in one paragraph."""
    if standing.state == "unknown":
        return standing.unknown_error_text(planning=True)
    newer = ", ".join(entry.revision for entry in standing.newer)
    releases = ", ".join(sorted({entry.release or "unnamed" for entry in standing.newer}))
    return (
        f"The database is {standing.summary()}. This release does not have revision(s) {newer}, so it cannot say "
        "what they did or what an upgrade past them would do: its own upgrade would change nothing (a release "
        f"rollback). Nothing was planned. Plan with the release that applied them ({releases}) or a later one."
    )


def _revision(revision: str, reports: Mapping[str, str], recorder: Recorder) -> RevisionPlan:
    rules = recorder.rules.get(revision)
    refusals = list(rules.refusals) if rules is not None else []
    opt_outs = [{"key": key, "why": rules.allowed[key]} for key in sorted(rules.used)] if rules is not None else []
    return RevisionPlan(revision, reports.get(revision, "missing"), [], refusals, opt_outs)
