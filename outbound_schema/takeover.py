"""Where a database stands on each revision, and what a run checks before it changes anything.

Production databases were built by the old script and hold any prefix of its
work; a database may also hold part of a revision whose run was interrupted.
Each revision's change is what differs between its expected-schema file and
the one before it (``outbound_schema.expected``): the objects it adds, changes
and removes. Compared with the live catalog, each of those objects is

- ``present``: as the revision leaves it (or as a later revision of the run does);
- ``missing``: as the revision finds it, so the revision will make the change;
- ``invalid``: an index left INVALID by an interrupted concurrent build, to be rebuilt;
- ``conflict``: something else under our name, which no revision would repair.

A revision is then ``applied`` (the version table says so), ``present`` (found
complete: recorded without changes), ``missing``, ``partial`` (completed by the
run) or ``conflicting`` (the run is refused before anything changes). This works
for any revision however it is written: the legacy six and ordinary ``op.*`` ones.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from outbound_schema.catalog import KINDS, CatalogObject, Snapshot, existing_relations, objects, read, same
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.expected import ExpectedSchemas, HistorySchemas, RevisionOf

if TYPE_CHECKING:
    from outbound_schema.catalog import Queryable

    pass

log = logging.getLogger("outbound_schema.migrate")

ObjectState = Literal["present", "missing", "invalid", "conflict"]
RevisionState = Literal["applied", "present", "partial", "missing", "conflicting", "unknown"]


def _equal(want: dict[tuple[str, str], CatalogObject], have: dict[tuple[str, str], CatalogObject]) -> bool:
    return want.keys() == have.keys() and all(same(want[key], have[key]) and have[key].valid for key in want)


@dataclass(frozen=True)
class Finding:
    """One object a revision adds, changes or removes, and what the database holds under its name."""

    revision: str
    kind: str
    name: str
    state: ObjectState
    expected: CatalogObject | None  # as the revision leaves it (None: removed)
    before: CatalogObject | None  # as the revision finds it (None: added)
    found: str | None = None  # what the database holds, described, for conflicts

    def describe(self) -> str:
        what = f"{self.kind} {self.name}"
        if self.state == "present":
            return f"{what} present" if self.expected else f"{what} already removed"
        if self.state == "invalid":
            return f"{what} INVALID, to be rebuilt" if self.kind == "index" else f"{what} NOT VALID, to be validated"
        if self.state == "missing":
            if self.before is None:
                return f"{what} missing"
            if self.expected is None:
                return f"{what} present, to be removed"
            return f"{what} to be changed from {self.before.text} to {self.expected.text}"
        expected = self.expected.text if self.expected else "absent"
        return f"{what}: expected {expected}; found {self.found or 'nothing'}"


@dataclass(frozen=True)
class RevisionReport:
    """Where the database stands on one revision, object by object."""

    revision: str
    findings: tuple[Finding, ...] = ()
    applied: bool = False
    known: bool = True  # False when the revision's expected-schema file is missing
    adopted: bool = False  # the catalog equals the file of this revision or of a later one of the run

    @property
    def state(self) -> RevisionState:
        states = {f.state for f in self.findings}
        if "conflict" in states:
            return "conflicting"
        if self.applied:
            return "applied"
        if self.adopted:
            return "present"
        if not self.known:
            return "unknown"
        if states <= {"present"} and self.findings:
            return "present"
        if states <= {"missing"}:
            return "missing"
        return "partial"

    def conflicts(self) -> list[Finding]:
        return [f for f in self.findings if f.state == "conflict"]


def assess(
    connection: Queryable,
    expected: ExpectedSchemas | HistorySchemas,
    revisions: Sequence[RevisionOf],
    applied: Collection[str] = (),
) -> list[RevisionReport]:
    """Where the database stands on each of ``revisions`` (in order); reads the catalog, changes nothing."""
    if all(rev.revision in applied for rev in revisions):
        # The version table records every one: nothing of the catalog would change a report. (`status` at
        # head, a deploy's gate, so reads no catalog; drift is `check`'s to find.)
        return [RevisionReport(rev.revision, applied=True) for rev in revisions]
    files = {rev.revision: expected.at(rev.revision) for rev in revisions}
    # Defaults spelled differently that mean the same (now() for CURRENT_TIMESTAMP) are the same here too.
    every = [snap for rev in expected.managed() if (snap := expected.at(rev.revision)) is not None]
    live = objects(read(connection, expected.tables(), every))
    # Each file's objects listed once: every revision compares against those of all that follow it.
    listed: dict[int, tuple[Snapshot, dict[tuple[str, str], CatalogObject]]] = {}

    def of(snap: Snapshot) -> dict[tuple[str, str], CatalogObject]:
        if id(snap) not in listed:
            listed[id(snap)] = (snap, objects(snap))  # the snapshot kept: its id stays its own
        return listed[id(snap)][1]

    # Names another relation may have taken: our tables', indexes' and sequences'.
    names = {o.name for snap in files.values() if snap for o in of(snap).values() if KINDS[o.kind].RELATION}
    taken = existing_relations(connection, sorted(names))

    # A database whose catalog is exactly one revision's file (its version table lost, say, after a later
    # revision dropped what an earlier one created) is at that revision: adopted whole, compared no further.
    whole = next(
        (
            position
            for position in reversed(range(len(revisions)))
            if (snap := files[revisions[position].revision]) is not None and _equal(of(snap), live)
        ),
        -1,
    )
    reports: list[RevisionReport] = []
    for position, rev in enumerate(revisions):
        after, before = files[rev.revision], expected.before(rev)
        if rev.revision in applied:
            reports.append(RevisionReport(rev.revision, applied=True))
        elif position <= whole:
            reports.append(RevisionReport(rev.revision, adopted=True))
        elif after is None or before is None:
            reports.append(RevisionReport(rev.revision, known=False))
        else:
            later = [of(s) for r in revisions[position + 1 :] if (s := files[r.revision]) is not None]
            findings = _findings(rev.revision, of(before), of(after), later, live, taken)
            reports.append(RevisionReport(rev.revision, tuple(findings)))
    return reports


def _findings(
    revision: str,
    before: dict[tuple[str, str], CatalogObject],
    after: dict[tuple[str, str], CatalogObject],
    later: list[dict[tuple[str, str], CatalogObject]],
    live: dict[tuple[str, str], CatalogObject],
    taken: set[str],
) -> list[Finding]:
    changed = [key for key in dict.fromkeys([*before, *after]) if not same(before.get(key), after.get(key))]
    findings: list[Finding] = []
    for key in changed:
        want, had, have = after.get(key), before.get(key), live.get(key)
        state: ObjectState
        found = have.text if have else None
        if same(have, want) and (have is None or have.valid):
            state = "present"
        elif same(have, had) and (have is None or have.valid):
            state = "missing"
            if have is None and key[0] != "column" and key[1] in taken:
                state, found = "conflict", "another relation of that name, not one of our tables' own"
        elif have is None and had is not None and ("table", had.table) in before and ("table", had.table) not in live:
            state = "missing"  # it changes an object of a table an earlier revision of the run creates
        elif any(same(have, objects.get(key)) for objects in later) and (have is None or have.valid):
            state = "present"  # a later revision of the run left it so
        elif have is not None and want is not None and not have.valid and have.value == want.value:
            state = "invalid"
        else:
            state = "conflict"
        findings.append(Finding(revision, key[0], key[1], state, want, had, found))
    return _tables_created_whole(revision, findings, after, before, live)


def _tables_created_whole(
    revision: str,
    findings: list[Finding],
    after: dict[tuple[str, str], CatalogObject],
    before: dict[tuple[str, str], CatalogObject],
    live: dict[tuple[str, str], CatalogObject],
) -> list[Finding]:
    """A table the revision creates and the database already has must be whole: it is not created again.

    Its indexes are the exception: each is built on its own, so a missing one is completed.
    """
    created = {name for kind, name in after if kind == "table" and ("table", name) not in before}
    existing = {name for name in created if ("table", name) in live}
    result: list[Finding] = []
    for finding in findings:
        obj = finding.expected
        if obj is not None and obj.table in existing and finding.kind != "index" and finding.state == "missing":
            found = f"nothing: table {obj.table} exists without it, and {revision} creates that table whole"
            finding = Finding(revision, finding.kind, finding.name, "conflict", obj, finding.before, found)
        result.append(finding)
    for table in sorted(existing):
        want = [name.split(".", 1)[1] for kind, name in after if kind == "column" and name.startswith(f"{table}.")]
        have = [name.split(".", 1)[1] for kind, name in live if kind == "column" and name.startswith(f"{table}.")]
        if [c for c in have if c in want] != want:
            obj = after["table", table]
            found = f"columns in the order ({', '.join(have)}), where {revision} creates ({', '.join(want)})"
            result.append(Finding(revision, "table", table, "conflict", obj, None, found))
    return result


def refuse_conflicts(reports: Iterable[RevisionReport]) -> None:
    conflicts = [f for report in reports if report.state == "conflicting" for f in report.conflicts()]
    if conflicts:
        details = "\n".join(f"  - [{f.revision}] {f.describe()}" for f in conflicts)
        raise OutboundSchemaError(
            f"The database holds {len(conflicts)} object(s) under outbound-schema's names whose definitions "
            "differ from what the migrations create, so the upgrade was refused and nothing was changed. Find "
            "out where they came from (a hand-made change, another tool), then alter or drop them so that they "
            "match or are absent, and run the upgrade again; 'outbound-schema status' shows every revision's "
            f"state without changing anything.\n{details}"
        )
