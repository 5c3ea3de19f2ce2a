"""The revision graph of a script location, read from the revision files' source without running them.

Alembic learns a revision's place in the history by importing its file, which
imports Alembic and SQLAlchemy. The read-only commands need
only the ids a revision file assigns at its top level, ``revision``,
``down_revision``, ``branch_labels`` and ``depends_on``, which ``alembic
revision`` always writes as plain literals; this module reads them with
:mod:`ast` and imports nothing but the standard library. A file whose ids are
not plain literals is refused (:class:`HistoryUnreadable`) rather than guessed.

It follows Alembic's rules: the files directly in ``versions/`` (not
recursively; ``__init__`` files and editor lock files ``.#*`` are skipped),
``depends_on`` naming a revision or a branch label, heads being the revisions
no other revision names as its ``down_revision``.
"""

from __future__ import annotations

import ast
import heapq
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

#: The branch label of our first revision; every revision built on it is ours.
BRANCH_LABEL = "outbound_schema"
VERSIONS_FOLDER = "versions"
SCHEMA_FOLDER = "schema"

_NAMES = ("revision", "down_revision", "branch_labels", "depends_on")
_ADVICE = (
    "outbound-schema reads revision files without running them: write revision, down_revision, "
    "branch_labels and depends_on as plain literals (a string, a tuple or list of strings, or None), "
    "as `alembic revision` writes them."
)


class HistoryUnreadable(Exception):  # noqa: N818 (the name the callers use)
    """The revision files do not make a history this module can read; the message names the file."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Revision:
    """One revision file's place in the history.

    ``depends_on`` holds revision ids: a branch label the file names is resolved
    to the revision carrying it. ``branch_labels`` are the file's own labels
    (Alembic also extends them to descendants; see :meth:`History.managed`).
    """

    revision: str
    down_revisions: tuple[str, ...]  # () for a base; 2+ for a merge
    depends_on: tuple[str, ...]
    branch_labels: tuple[str, ...]
    path: Path


@dataclass(frozen=True)
class History:
    """Every revision of a script location (the folder holding env.py, versions/ and schema/)."""

    location: Path
    #: By revision id, in an order from base to head (parents first, ties by id) when made by :meth:`read`.
    revisions: Mapping[str, Revision] = field(hash=False)

    @classmethod
    def read(cls, location: Path) -> History:
        """The history of the revision files in ``location / "versions"``, or :class:`HistoryUnreadable`."""
        versions = location / VERSIONS_FOLDER
        if not versions.is_dir():
            raise HistoryUnreadable(
                f"{versions}: no such folder, so there are no revisions to read. "
                "Point outbound-schema at a folder holding env.py, versions/ and schema/.",
                path=versions,
            )
        found: dict[str, Revision] = {}
        for path in sorted(versions.iterdir()):
            if not _is_revision_file(path):
                continue
            rev = _read_file(path)
            if rev is None:
                continue
            if rev.revision in found:
                other = found[rev.revision].path
                raise HistoryUnreadable(
                    f"{path}: revision {rev.revision!r} is also the revision of {other}; "
                    "each revision id must be in one file only.",
                    path=path,
                )
            found[rev.revision] = rev
        resolved = _resolve(found)
        order = _topological(resolved, resolved)
        return cls(location=location, revisions=MappingProxyType({rid: resolved[rid] for rid in order}))

    def heads(self) -> list[str]:
        """The revisions no revision names as its down_revision, sorted."""
        below = {down for rev in self.revisions.values() for down in rev.down_revisions}
        return sorted(rid for rid in self.revisions if rid not in below)

    def managed(self) -> list[str]:
        """Our revisions: the one labelled :data:`BRANCH_LABEL` and every revision built on it (through
        down_revision, as Alembic extends a branch label), from base to head (parents first, ties by id)."""
        root = next((rev.revision for rev in self.revisions.values() if BRANCH_LABEL in rev.branch_labels), None)
        if root is None:
            return []
        children: dict[str, list[str]] = {}
        for rev in self.revisions.values():
            for down in rev.down_revisions:
                children.setdefault(down, []).append(rev.revision)
        members = {root}
        stack = [root]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in members:
                    members.add(child)
                    stack.append(child)
        return _topological(self.revisions, members)

    def applied(self, current: Iterable[str]) -> set[str]:
        """What a version table holding ``current`` means is applied: each revision of ``current`` this
        history knows, and all its ancestors through down_revision and depends_on. Unknown ids (a host's
        own revisions in a shared version table, or a newer release's) are ignored."""
        if isinstance(current, str):
            current = (current,)
        applied: set[str] = set()
        stack = [rid for rid in current if rid in self.revisions]
        while stack:
            rid = stack.pop()
            if rid in applied:
                continue
            applied.add(rid)
            rev = self.revisions[rid]
            stack.extend(parent for parent in (*rev.down_revisions, *rev.depends_on) if parent in self.revisions)
        return applied

    def schema_file(self, revision: str) -> Path:
        """The expected-schema file of ``revision`` (see :mod:`outbound_schema.expected`)."""
        return self.location / SCHEMA_FOLDER / f"{revision}.sql"


def _is_revision_file(path: Path) -> bool:
    # Alembic's pattern for source revision files: r"(?!\.\#|__init__)(.*\.py)$".
    name = path.name
    return name.endswith(".py") and not name.startswith((".#", "__init__")) and path.is_file()


def _unreadable(path: Path, problem: str) -> HistoryUnreadable:
    return HistoryUnreadable(f"{path}: {problem}. {_ADVICE}", path=path)


def _read_file(path: Path) -> Revision | None:
    """The ids ``path`` assigns; None if it assigns no ``revision`` (not a revision file)."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise HistoryUnreadable(f"{path}: could not be read ({exc}).", path=path) from None
    return _parse_file(path, source)


@lru_cache(maxsize=1024)
def _parse_file(path: Path, source: bytes) -> Revision | None:
    """What :func:`_read_file` finds in ``source``, parsed once per process for the same path and bytes
    (a history is read once per command; a process running many, as the tests do, reads the same files
    again and again). Keyed on the content, so an edited file is parsed anew; a refusal is not kept."""
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise HistoryUnreadable(f"{path}: not valid Python ({exc.msg}, line {exc.lineno}).", path=path) from None
    except ValueError as exc:
        raise HistoryUnreadable(f"{path}: could not be read ({exc}).", path=path) from None
    values: dict[str, ast.expr] = {}
    for statement in tree.body:
        plain = _plain_targets(statement)
        for name in _bound_names(statement):
            if name in _NAMES and name not in plain:
                raise _unreadable(
                    path, f"`{name}` is set by the statement at line {statement.lineno}, not by a plain `{name} = ...`"
                )
        for name in plain:
            if name in _NAMES:
                assert isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None
                values[name] = statement.value
    if "revision" not in values:
        return None
    revision = _literal(path, "revision", values["revision"])
    if not isinstance(revision, str) or not revision:
        raise _unreadable(path, f"`revision` is {ast.unparse(values['revision'])}, not a non-empty string")
    if "down_revision" not in values:
        raise _unreadable(path, "it sets `revision` but not `down_revision` (None for a first revision)")
    return Revision(
        revision=revision,
        down_revisions=_ids(path, "down_revision", values.get("down_revision")),
        depends_on=_ids(path, "depends_on", values.get("depends_on")),
        branch_labels=_ids(path, "branch_labels", values.get("branch_labels")),
        path=path,
    )


def _plain_targets(statement: ast.stmt) -> set[str]:
    """The names a plain ``name = value`` (or ``name: type = value``) statement assigns."""
    if isinstance(statement, ast.Assign) and all(isinstance(t, ast.Name) for t in statement.targets):
        return {t.id for t in statement.targets if isinstance(t, ast.Name)}
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value is not None:
        return {statement.target.id}
    return set()


def _bound_names(statement: ast.stmt) -> Iterator[str]:
    """Every module-level name ``statement`` may bind (or delete), however it does it."""
    stack: list[ast.AST] = [statement]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            yield node.id
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name  # its body binds names of its own scope
            stack.extend(node.decorator_list)
            continue
        elif isinstance(node, ast.Lambda):
            continue
        elif isinstance(node, ast.alias):
            yield node.asname or node.name.split(".")[0]
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            yield node.name
        elif isinstance(node, ast.MatchMapping) and node.rest:
            yield node.rest
        elif isinstance(node, ast.comprehension):
            # The loop variables are the comprehension's own; a walrus in its conditions binds here.
            stack.extend([node.iter, *node.ifs])
            continue
        stack.extend(ast.iter_child_nodes(node))


def _literal(path: Path, name: str, node: ast.expr) -> str | tuple[str, ...] | None:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
        value: str | None = node.value
        return value
    if isinstance(node, ast.Tuple | ast.List):
        items = [item.value for item in node.elts if isinstance(item, ast.Constant) and isinstance(item.value, str)]
        if len(items) == len(node.elts):
            return tuple(items)
    raise _unreadable(path, f"`{name}` is set to `{ast.unparse(node)}` (line {node.lineno}), not a plain literal")


def _ids(path: Path, name: str, node: ast.expr | None) -> tuple[str, ...]:
    """The value as a tuple without repeats, as Alembic reads it (None: empty; a string: one)."""
    value = None if node is None else _literal(path, name, node)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(dict.fromkeys(value))


def _resolve(found: Mapping[str, Revision]) -> dict[str, Revision]:
    """The revisions with depends_on as revision ids; every id named must exist."""
    labels: dict[str, str] = {}
    for rev in found.values():
        for label in rev.branch_labels:
            owner = labels.get(label) or (label if label in found else None)
            if owner is not None:
                raise HistoryUnreadable(
                    f"{rev.path}: branch label {label!r} is already used by revision {owner} "
                    f"({found[owner].path}); a branch label must be unique and differ from every revision id.",
                    path=rev.path,
                )
            labels[label] = rev.revision
    resolved: dict[str, Revision] = {}
    for rev in found.values():
        for down in rev.down_revisions:
            if down not in found:
                raise HistoryUnreadable(
                    f"{rev.path}: down_revision names revision {down!r}, which no file in "
                    f"{rev.path.parent} has. Restore that revision's file, or correct down_revision.",
                    path=rev.path,
                )
        depends_on: list[str] = []
        for dep in rev.depends_on:
            target = dep if dep in found else labels.get(dep)
            if target is None:
                raise HistoryUnreadable(
                    f"{rev.path}: depends_on names {dep!r}, which is neither a revision nor a branch label "
                    f"of any file in {rev.path.parent}. Restore that revision's file, or correct depends_on.",
                    path=rev.path,
                )
            depends_on.append(target)
        resolved[rev.revision] = Revision(
            revision=rev.revision,
            down_revisions=rev.down_revisions,
            depends_on=tuple(dict.fromkeys(depends_on)),
            branch_labels=rev.branch_labels,
            path=rev.path,
        )
    return resolved


def _topological(revisions: Mapping[str, Revision], members: Collection[str]) -> list[str]:
    """``members`` ordered parents first (down_revisions and depends_on among them), ties by id."""
    waiting: dict[str, int] = {}
    children: dict[str, list[str]] = {}
    for rid in members:
        rev = revisions[rid]
        parents = [p for p in dict.fromkeys((*rev.down_revisions, *rev.depends_on)) if p in members]
        waiting[rid] = len(parents)
        for parent in parents:
            children.setdefault(parent, []).append(rid)
    ready = [rid for rid, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        rid = heapq.heappop(ready)
        order.append(rid)
        for child in children.get(rid, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) < len(waiting):
        placed = set(order)
        stuck = sorted(rid for rid in waiting if rid not in placed)
        first = revisions[stuck[0]].path
        raise HistoryUnreadable(
            f"{first}: revisions {', '.join(stuck)} cannot be ordered, because down_revision or depends_on "
            f"make a cycle among them (files: {', '.join(str(revisions[rid].path) for rid in stuck)}). "
            "Correct down_revision or depends_on.",
            path=first,
        )
    return order
