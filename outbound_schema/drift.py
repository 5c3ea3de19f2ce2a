"""The schema-drift check: a live database against the expected schema of its revision.

Reads PostgreSQL's catalog once (a handful of queries) and compares every
object of our tables with the committed expected-schema file
(``outbound_schema.expected``) of the revision the database is at (of head
when it is untracked, or at a revision this library does not know). The test
suite proves head's file equal to the models, so a green check means the
database holds what the code expects.

Everything about our tables that changes how they behave is compared: columns
(type, collation, nullability, default, identity, generation, per-column
settings), table settings (logged or not, storage parameters, row-level
security, replica identity, inheritance), every constraint (definition with
its actions and deferrability, NOT VALID, triggers disabled), indexes
(definition, validity), sequences (options, ownership, and whether one feeding
a unique column has fallen behind its values), policies, triggers and rules,
the enums and domains the columns are of (labels, definition) and the
functions the triggers run (their whole definition); then where the search
path finds our tables, and where the version table stands. Comments, grants
and owners are not compared: they do not change what the tables hold or do.
Nothing of the host application's tables, nor of schemas off the search path,
is read.

The check needs no SQLAlchemy and no Alembic at run time: it reads the
revision graph from the revision files (``outbound_schema.history``) and talks
to PostgreSQL through psycopg, with SELECT privileges only (a role with
``pg_read_all_data`` will do).

The JSON report (``--format json``) has this shape, stable within ``format`` 1::

    {"format": 1, "status": "ok" | "drift" | "behind" | "migrating" | "ahead" | "error", "database": "<masked URL>",
     "revision": {"state": "at_head" | "behind" | "ahead" | "unknown" | "untracked",
                  "current": ["46d"], "head": "46d", "pending": [], "compared_with": "46d",
                  "newer": [{"revision": ..., "parents": [...], "action": ..., "applied_at": ...,
                             "duration_ms": ..., "release": ..., "host": ...}]  (ahead only)},
     "objects": [{"kind": "table" | "column" | "constraint" | "index" | "sequence" | "position"
                          | "policy" | "trigger" | "rule" | "search_path" | "revision",
                  "name": "...",
                  "verdict": "ok" | "missing" | "different" | "extra" | "invalid" | "renamed" | "disabled"
                             | "behind" | "ahead" | "unknown" | "untracked" | "shadowed" | "elsewhere"
                             | "unjudged" | "migrating" | "unread",
                  "expected": "..." | null, "found": "..." | null,
                  "detail": "what differs, in words, and what to do" | null}],
     "summary": {"ok": 40, "drift": 0, "not_judged": 0 (when any object is neither)},
     "running": null | {"pid": ..., "user": ..., "client": ..., "connected_s": ..., "progress": {...} | null,
                        "revisions": ["46d", ...]}}

Exit codes: 1 drift; 2 could not check; 0 otherwise: ``ok``; ``behind`` (at a revision before head, its
objects matching that revision's file: an upgrade is pending, nothing is wrong); ``migrating`` (a
migration holds the lock: the objects of the revisions it applies are reported ``migrating``, not judged,
so a deploy's index mid-build pages no one; drift elsewhere is still drift); ``ahead`` (a newer release
migrated the database: the objects of this release's head are compared, and what differs is reported
``unjudged``, since a later revision this release does not have may have made it so; the newer release's
check judges it). A sequence position this role may not read is ``unread``, with the GRANT that lets it.

On error: ``{"format": 1, "status": "error", "error": "<message>"}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from outbound_schema.catalog import (
    KINDS,
    CatalogKind,
    CatalogObject,
    Resolution,
    SequencePosition,
    Snapshot,
    objects,
    same,
    survey,
)
from outbound_schema.config import LOCK_KEY, VERSION_TABLE, script_location
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.expected import SNAPSHOT_COMMAND, load_file
from outbound_schema.history import History
from outbound_schema.keywords import literal, quote
from outbound_schema.progress import Running, running
from outbound_schema.standing import Standing, stand

if TYPE_CHECKING:
    from outbound_schema.catalog import Queryable
    from outbound_schema.dsn import Target

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Verdict:
    kind: str
    name: str
    verdict: str
    expected: str | None = None
    found: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def drifted(self) -> bool:
        """Whether it is drift: neither ok nor something this check does not judge (see :data:`NOT_JUDGED`)."""
        return not self.ok and self.verdict not in NOT_JUDGED and (self.kind, self.verdict) != ("revision", "behind")

    def line(self) -> str:
        if self.ok:
            return f"✅ {self.kind} {self.name}: {self.found}"
        if not self.drifted:
            return f"⚠️ {self.kind} {self.name}: {self.detail}"
        return f"❌ {self.kind} {self.name}: {self.detail}"


@dataclass
class Report:
    database: str
    revision: Standing
    objects: list[Verdict]
    #: The migration holding the lock while the check read the database, and the revisions it is applying.
    running: Running | None = None
    in_progress: tuple[str, ...] = ()

    @property
    def drift(self) -> list[Verdict]:
        return [v for v in self.objects if v.drifted]

    @property
    def not_judged(self) -> list[Verdict]:
        """Neither ok nor drift: unjudged past this release, a migration's own, unreadable, the revision line
        when ahead or behind."""
        return [v for v in self.objects if not v.ok and not v.drifted]

    @property
    def status(self) -> str:
        if self.drift:
            return "drift"
        if self.running is not None:
            return "migrating"
        if self.revision.state in ("ahead", "behind"):
            return self.revision.state
        return "ok"

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "status": self.status,
                "database": self.database,
                "revision": {
                    "state": self.revision.state,
                    "current": list(self.revision.current),
                    "head": self.revision.head,
                    "pending": list(self.revision.pending),
                    "compared_with": self.revision.compared_with,
                    # ahead only: the revisions past this release's head, as the schema history records them
                    **({"newer": [entry.to_json() for entry in self.revision.newer]} if self.revision.newer else {}),
                },
                "objects": [asdict(v) for v in self.objects],
                "summary": {
                    "ok": len(self.objects) - len(self.drift) - len(self.not_judged),
                    "drift": len(self.drift),
                    **({"not_judged": len(self.not_judged)} if self.not_judged else {}),
                },
                # The migration running while the check read the database (null when none ran).
                "running": None
                if self.running is None
                else {**self.running.to_json(), "revisions": list(self.in_progress)},
            },
            indent=2,
            ensure_ascii=False,
        )

    def to_text(self) -> str:
        lines = [f"database: {self.database}"]
        if self.running is not None:
            lines.append(f"running: {self.running.describe()}")
        lines += [v.line() for v in self.objects]
        compared = self.revision.compared_with
        against = f"revision {compared}{' (head)' if compared == self.revision.head else ''}"
        total, aside = len(self.objects), len(self.not_judged)
        if self.drift:
            lines.append(f"DRIFT: {len(self.drift)} of {total} objects differ from {against}")
        elif self.running is not None:
            applying = " -> ".join(self.in_progress) or "nothing this release knows of"
            lines.append(
                f"MIGRATING: server process {self.running.pid} holds the migration lock, applying {applying}; "
                f"{aside} of {total} objects are not judged until it ends (its own, or unreadable), "
                f"the others match {against}"
            )
        elif self.revision.state == "ahead":
            lines.append(
                f"AHEAD: the database is past this release's {against}; {aside} of "
                f"{total} objects could not be judged, the others match it"
            )
        elif self.revision.state == "behind":
            lines.append(
                f"BEHIND: the database is {self.revision.summary()}; {total - aside} of {total} objects match "
                f"{against}, as they should (`outbound-schema upgrade` applies the pending revisions)"
            )
        elif aside:
            lines.append(
                f"OK: {total - aside} of {total} objects match {against}; {aside} could not be read by this role "
                "(the ⚠️ lines say what to grant)"
            )
        else:
            lines.append(f"OK: all {total} objects match {against}")
        return "\n".join(lines)


# The comparison.


def compare(expected: Snapshot, found: Snapshot) -> Iterator[Verdict]:
    """One verdict per expected object, then one per extra object on our tables; kind by kind, as
    ``outbound_schema.catalog.KINDS`` lists them, a table's parts after it.

    Give ``found`` through :func:`outbound_schema.catalog.align_defaults` first: defaults spelled
    differently that mean the same are then equal.
    """
    # An index a constraint owns is compared under its name, though never reported as an extra of its own.
    want, have = _grouped(objects(expected, every=True)), _grouped(objects(found, every=True))
    live = set(found.tables)
    gone = set(expected.tables) - live
    for kind in KINDS.values():
        if kind.KIND in _PARTS or (kind.THROUGH_TABLES and not live):
            continue  # a table's parts are compared with it; what our columns and triggers use, through them
        # An object of a table that is not there goes with it (the table's verdict says so); one that
        # may belong to no table of ours, only with a table of ours.
        wanted = {
            k: o
            for k, o in want.get((kind.KIND, ""), {}).items()
            if kind.PARTS or kind.THROUGH_TABLES or (o.table not in gone if kind.LOOSE else o.table in live)
        }
        yield from _compare(kind, wanted, have.get((kind.KIND, ""), {}), want, have)


_PARTS = {part for kind in KINDS.values() for part in kind.PARTS}
#: By kind and, for the parts of a table, that table; then by key.
_Grouped = dict[tuple[str, str], dict[str, CatalogObject]]


def _grouped(listed: Mapping[tuple[str, str], CatalogObject]) -> _Grouped:
    grouped: _Grouped = {}
    for (kind, key), o in listed.items():
        grouped.setdefault((kind, o.table if kind in _PARTS else ""), {})[key] = o
    return grouped


def _compare(
    kind: type[CatalogKind],
    wanted: Mapping[str, CatalogObject],
    found: Mapping[str, CatalogObject],
    want: _Grouped,
    have: _Grouped,
) -> Iterator[Verdict]:
    """Missing, renamed (the same under another name), different, invalid or ok; then the extras.
    ``want`` and ``have`` hold every object, for the parts of each."""
    extras = {key: o for key, o in found.items() if key not in wanted and o.obj.listed()}
    for key, w in wanted.items():
        name = kind.shown(key)
        h = found.get(key)
        if h is None:
            twin = next((k for k, o in extras.items() if kind.RENAMES and same(o, w) and o.obj.problem() is None), None)
            if twin is not None:
                seen = f"{kind.shown(twin)}: {extras.pop(twin).text}"
                yield Verdict(kind.KIND, name, "renamed", w.text, seen, f"found under another name, {seen}")
            else:
                yield Verdict(kind.KIND, name, "missing", w.text, None, f"missing; expected {w.text}")
            continue
        if not same(h, w):
            yield Verdict(kind.KIND, name, "different", w.text, h.text, w.obj.differences(h.obj))
        elif (trouble := h.obj.problem()) is not None and w.obj.problem() is None:
            yield Verdict(kind.KIND, name, trouble[0], w.text, h.text, trouble[1])
        else:
            yield Verdict(kind.KIND, name, "ok", found=h.text)
        for part in kind.PARTS:  # a table's columns, compared within it
            yield from _compare(KINDS[part], want.get((part, key), {}), have.get((part, key), {}), want, have)
    for key, extra in extras.items():
        yield Verdict(kind.KIND, kind.shown(key), "extra", None, extra.text, f"{kind.EXTRA}{extra.text}")


def position_verdicts(positions: Iterable[SequencePosition]) -> Iterator[Verdict]:
    for position in positions:
        if position.grant is not None:
            detail = (
                f"not compared with {position.column}: this role may not read where the sequence stands (reading "
                "it needs SELECT on the sequence, which GRANT SELECT ON ALL TABLES does not give); everything "
                f"else was checked. Let it: {position.grant}"
            )
            yield Verdict("position", position.sequence, "unread", None, "not read: no privilege", detail)
            continue
        up, extreme = ("up to", "max") if position.increment > 0 else ("down to", "min")
        found = f"next value {position.next_value}; {position.column} holds values {up} {position.largest}"
        if position.hidden:
            found = (
                f"next value {position.next_value}; not compared with {position.column}: row-level security "
                "hides rows from this role (check as the table's owner or a BYPASSRLS role to compare)"
            )
        elif position.largest is None:
            found = f"next value {position.next_value}; {position.column} is empty"
        if not position.behind:
            yield Verdict("position", position.sequence, "ok", found=found)
            continue
        table, column = position.column.split(".", 1)
        target = f"(SELECT {extreme}({quote(column)}) FROM {quote(table)})"
        fix = f"SELECT setval({literal(quote(position.sequence))}, {target})"
        detail = (
            f"is behind its column: it would hand out {position.next_value}, but {position.column} already "
            f"holds values {up} {position.largest}, so the next insert that takes the default fails on the "
            f"unique key. Move it past them: {fix}"
        )
        yield Verdict("position", position.sequence, "behind", None, found, detail)


def _home(found: Mapping[str, Resolution], version_table: str) -> str | None:
    """The schema our tables belong in: our version table's, else where most of them are."""
    home_of_version = found[version_table].schema if version_table in found else None
    schemas = [r.schema for r in found.values() if r.schema is not None]
    return home_of_version or (max(set(schemas), key=schemas.count) if schemas else None)


def moved(found: Mapping[str, Resolution], version_table: str) -> dict[str, tuple[str, str]]:
    """Our tables the search path finds in another schema than the one they belong in, by name: (the schema
    they belong in, the one they are in). The check reports each as a table, and compares none of its objects."""
    home = _home(found, version_table)
    return {
        name: (home, r.schema)
        for name, r in found.items()
        if home is not None and r.schema is not None and len(r.schemas) == 1 and r.schema != home
    }


def moved_verdict(verdict: Verdict, home: str, schema: str, path: list[str]) -> Verdict:
    """A table of ours found in ``schema``, not in ``home``: compared as missing, said as moved."""
    table = verdict.name
    detail = (
        f"missing from schema {home}, where our other tables are; found in schema {schema} (search_path: "
        f"{', '.join(path)}), so none of its objects are compared: the dialer finds it there only while {schema} "
        f"is on the search_path, and upgrades expect it in {home}. Move it back: "
        f"ALTER TABLE {quote(schema)}.{quote(table)} SET SCHEMA {quote(home)}"
    )
    return Verdict("table", table, "elsewhere", f"in schema {home}", f"in schema {schema}", detail)


def search_path_verdicts(path: list[str], found: Mapping[str, Resolution], version_table: str) -> Iterator[Verdict]:
    """Whether the search path finds our tables where our version table is, each in one place only (a table
    found elsewhere is said by its table's verdict, :func:`moved_verdict`)."""
    home = _home(found, version_table)
    shown_path = ", ".join(path) or "(no existing schema)"
    trouble = False
    for name, resolution in found.items():
        if len(resolution.schemas) > 1:
            trouble = True
            hidden = ", ".join(f"{schema}.{name}" for schema in resolution.schemas[1:])
            detail = (
                f"resolves to {resolution.schema}.{name}, which hides {hidden} further down the search_path "
                f"({shown_path}): the dialer, upgrades and this check all use {resolution.schema}'s. Drop or "
                "rename the one that is not ours, or fix the search_path"
            )
            yield Verdict("search_path", name, "shadowed", home, ", ".join(resolution.schemas), detail)
        elif resolution.schema is not None and home is not None and resolution.schema != home:
            trouble = True  # said by the table's own verdict
    if not trouble:
        where = f"schema {home}" if home else "no schema yet"
        yield Verdict("search_path", shown_path, "ok", found=f"our tables resolve to {where}")


# Where the version table stands.

#: Verdicts that say what this release cannot judge, not that anything drifted.
#: ``migrating``: an object a migration running now changes; ``unread``: what this role may not read.
#: (The revision line ``behind`` is no drift either: see :attr:`Verdict.drifted`.)
NOT_JUDGED = frozenset({"ahead", "unjudged", "migrating", "unread"})


def _revision_verdict(state: Standing, version_table: str) -> Verdict:
    expected = f"{state.head} (head)"
    current = ", ".join(state.current)
    if state.state == "at_head":
        return Verdict("revision", version_table, "ok", expected, f"{current} (head)")
    found = {
        "untracked": f"no {version_table} table: the database was never migrated by outbound-schema",
        "behind": f"{current}, behind head; pending {' -> '.join(state.pending)}",
        "ahead": state.summary(),
        "unknown": f"{current}, not a revision of outbound-schema",
    }[state.state]
    todo = {
        "untracked": "`outbound-schema upgrade` takes over the tables already there and records the revision",
        "behind": "`outbound-schema upgrade` applies the pending revisions",
        "ahead": "this release judges the objects of its own head only; the check of the release that applied "
        "the later revisions judges the rest",
        "unknown": "find out which tool wrote that revision before migrating",
    }[state.state]
    return Verdict("revision", version_table, state.state, expected, found, f"{found}; expected {expected}: {todo}")


def _not_judged(verdict: Verdict, state: Standing) -> Verdict:
    """Ahead of this release, a difference from its head may be a later revision's change: said, not judged."""
    if verdict.ok:
        return verdict
    later = ", ".join(entry.revision for entry in state.newer)
    detail = f"{verdict.detail}; not judged: revision(s) {later}, which this release does not have, may have made it so"
    return Verdict(verdict.kind, verdict.name, "unjudged", verdict.expected, verdict.found, detail)


def _in_progress(state: Standing, history: History, running: Running) -> tuple[str, ...]:
    """The revisions a migration running now is applying, as far as can be told: those pending (an upgrade),
    else the one its statement names (going down), else the revision the database is at (a downgrade starts
    there; an upgrade with nothing left to do changes nothing)."""
    label = running.progress.statement.split(":", 1)[0] if running.progress and running.progress.statement else ""
    if label in history.revisions and label not in state.pending:
        return (label,)
    if state.pending:
        return state.pending
    return tuple(rev for rev in state.current if rev in history.revisions)


def _objects_of(history: History, revisions: Iterable[str]) -> set[tuple[str, str]]:
    """(kind, name as reported) of each object ``revisions`` create, change or drop: what differs between
    each one's expected schema and its parents'. A sequence's position goes with the sequence."""
    touched: set[tuple[str, str]] = set()
    for revision in revisions:
        after = load_file(history.schema_file(revision)) or Snapshot()
        mine = objects(after, every=True)
        for parent in history.revisions[revision].down_revisions or (None,):
            before = (load_file(history.schema_file(parent)) if parent else None) or Snapshot()
            theirs = objects(before, every=True)
            for key in mine.keys() | theirs.keys():
                if not same(mine.get(key), theirs.get(key)) or key not in mine or key not in theirs:
                    kind, name = key
                    touched.add((kind, KINDS[kind].shown(name)))
                    if kind == "sequence":
                        touched.add(("position", name))
    return touched


def _migrating(verdict: Verdict, running: Running, in_progress: tuple[str, ...]) -> Verdict:
    """An object the running migration changes: how it stands now is said, not judged."""
    applying = f"revision(s) {' -> '.join(in_progress)}, which server process {running.pid} is applying now"
    if verdict.kind == "revision":
        detail = f"{verdict.detail}; {applying}"
    else:  # what the file of the revision the database is at says of it is moot: the migration changes it
        detail = f"found {verdict.found or 'absent so far'}; {applying}, change it: not judged until it ends"
    return Verdict(verdict.kind, verdict.name, "migrating", verdict.expected, verdict.found, detail)


def check_database(target: Target, version_table: str = VERSION_TABLE) -> Report:
    """The check ``outbound-schema check`` runs: this release's history against the database ``target`` names,
    in a read-only session."""
    history = History.read(script_location())
    with target.connect() as connection:
        connection.read_only = True
        return check(connection, history, target.shown, version_table)


def check(connection: Queryable, history: History, database: str, version_table: str = VERSION_TABLE) -> Report:
    """Compare the database behind ``connection`` with the expected schema of its revision; changes nothing.

    While a migration holds the lock (before or after the catalog is read), the objects of the revisions it
    is applying get no verdict of drift: how they stand is said, marked ``migrating``.
    """
    migration = running(connection, LOCK_KEY)
    connection.commit()  # the activity a transaction reads is read once: the second look needs a new one
    state = stand(connection, history, version_table)
    want = load_file(history.schema_file(state.compared_with))
    if want is None:
        raise OutboundSchemaError(
            f"There is no expected-schema file for revision {state.compared_with}, so the database cannot be "
            f"compared with it. Generate it with `{SNAPSHOT_COMMAND}` (from the repository that holds the "
            "revisions) and commit it.",
            exit_code=2,
        )
    tables: dict[str, None] = {}
    for revision in history.managed():
        snap = load_file(history.schema_file(revision))
        tables.update(dict.fromkeys(snap.tables if snap else ()))

    def moved_away(resolutions: dict[str, Resolution]) -> dict[str, tuple[str, str]]:
        """Ours found in another schema than their fellows: the survey reads them only where they are."""
        return {name: where for name, where in moved(resolutions, version_table).items() if name in want.tables}

    live = survey(connection, list(tables), want, version_table, excluding=moved_away)
    path, away = live.search_path, moved_away(live.resolutions)
    verdicts = [
        *(
            moved_verdict(v, *away[v.name], path) if v.kind == "table" and v.name in away else v
            for v in compare(want, live.snapshot)
        ),
        *position_verdicts(live.positions),
        *search_path_verdicts(live.search_path, live.resolutions, version_table),
    ]
    connection.commit()
    migration = running(connection, LOCK_KEY) or migration
    in_progress: tuple[str, ...] = ()
    if state.state == "ahead":
        verdicts = [_not_judged(verdict, state) for verdict in verdicts]
    elif migration is not None:
        in_progress = _in_progress(state, history, migration)
        theirs = _objects_of(history, in_progress)
        verdicts = [
            _migrating(v, migration, in_progress) if v.drifted and (v.kind, v.name) in theirs else v for v in verdicts
        ]
    where = _revision_verdict(state, version_table)
    if migration is not None and state.state in ("behind", "untracked"):
        where = _migrating(where, migration, in_progress)
    verdicts.append(where)
    return Report(database, state, verdicts, migration, in_progress)
