"""The revision graph read from the revision files' source (``outbound_schema.history``) agrees with Alembic's.

Alembic imports every revision file; ``History.read`` only parses them. For
our migrations, for a copy with the example revision on top, and for made-up
histories with a branch, a merge, ``depends_on`` (by id and by branch label)
and annotated assignments, both must see the same revisions, heads, branch,
and the same set of applied revisions for any version table. Files whose ids
are not plain literals are refused, naming the file.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest
from alembic.script import Script, ScriptDirectory

from outbound_schema.config import script_location
from outbound_schema.history import BRANCH_LABEL, History, HistoryUnreadable, Revision
from tests.helpers import REPO, config_for, copy_migrations, put_on_top
from tests.test_imports import loaded_modules

EXAMPLE = (REPO / "tests" / "example_revision.py").read_text()


def alembic_script(location: Path) -> ScriptDirectory:
    return ScriptDirectory.from_config(config_for(None, location))


def as_tuple(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def alembic_applied(script: ScriptDirectory, current: tuple[str, ...]) -> set[str]:
    known = {rev.revision for rev in script.walk_revisions()}
    return {rev.revision for head in current if head in known for rev in script.iterate_revisions(head, "base")}


def assert_agrees_with_alembic(location: Path) -> History:
    """``History.read(location)`` sees what Alembic sees there; returns it."""
    history = History.read(location)
    script = alembic_script(location)
    scripts: dict[str, Script] = {rev.revision: rev for rev in script.walk_revisions()}

    assert set(history.revisions) == set(scripts)
    assert history.heads() == sorted(script.get_heads())
    for rid, ours in history.revisions.items():
        theirs = scripts[rid]
        assert ours.revision == rid
        assert ours.down_revisions == as_tuple(theirs.down_revision)
        assert ours.depends_on == tuple(script.get_revision(dep).revision for dep in as_tuple(theirs.dependencies))
        assert ours.branch_labels == as_tuple(getattr(theirs.module, "branch_labels", None))
        assert ours.path.resolve() == Path(theirs.path).resolve()

    # Our branch: what Alembic labels outbound_schema (it extends the label to every descendant).
    labelled = [rev.revision for rev in reversed(list(script.walk_revisions())) if BRANCH_LABEL in rev.branch_labels]
    managed = history.managed()
    assert sorted(managed) == sorted(labelled)
    position = {rid: index for index, rid in enumerate(managed)}
    for rid in managed:
        rev = history.revisions[rid]
        assert all(position[parent] < position[rid] for parent in rev.down_revisions if parent in position)

    # The mapping itself runs from base to head.
    order = {rid: index for index, rid in enumerate(history.revisions)}
    for rev in history.revisions.values():
        assert all(order[parent] < order[rev.revision] for parent in (*rev.down_revisions, *rev.depends_on))

    # Any version table: nothing, each revision, each pair, with ids Alembic does not know.
    ids = sorted(scripts)
    for current in [(), *((rid,) for rid in ids), *itertools.combinations(ids, 2), ("zz9", ids[0]), ("zz9",)]:
        assert history.applied(current) == alembic_applied(script, current), current
    return history


def write(versions: Path, name: str, source: str) -> Path:
    versions.mkdir(parents=True, exist_ok=True)
    path = versions / name
    path.write_text(textwrap.dedent(source))
    return path


def test_our_migrations() -> None:
    location = script_location()
    history = assert_agrees_with_alembic(location)
    assert history.location == location
    heads = history.heads()
    assert len(heads) == 1
    managed = history.managed()
    assert managed[:6] == ["40a", "40b", "46a", "46b", "46c", "46d"]
    assert managed[-1] == heads[0]
    assert list(history.revisions) == managed  # nothing but our branch here
    assert history.revisions["40a"] == Revision(
        revision="40a",
        down_revisions=(),
        depends_on=(),
        branch_labels=("outbound_schema",),
        path=location / "versions" / "40a_outbound_call_runs.py",
    )
    assert history.applied([heads[0]]) == set(managed)
    assert history.applied(["46b", "host_rev"]) == {"40a", "40b", "46a", "46b"}
    assert history.applied("46a") == {"40a", "40b", "46a"}  # a lone id, not its characters
    for rid in managed:
        assert history.schema_file(rid) == location / "schema" / f"{rid}.sql"
        assert history.schema_file(rid).is_file()


def test_a_copy_with_a_revision_on_top(tmp_path: Path) -> None:
    location = copy_migrations(tmp_path / "migrations")
    before = History.read(location)
    revision = put_on_top(location, EXAMPLE, "attempts")
    history = assert_agrees_with_alembic(location)
    assert history.heads() == [revision]
    assert history.managed() == [*before.managed(), revision]
    assert history.revisions[revision].down_revisions == tuple(before.heads())
    assert history.applied(before.heads()) == set(before.managed())
    assert history.schema_file(revision) == location / "schema" / f"{revision}.sql"


def made_up_history(versions: Path, *, host_merge: bool) -> None:
    """A host's two revisions beside our branch, which forks and merges again; written in every style."""
    write(versions, "h1_host_base.py", 'revision = "h1"\ndown_revision = None\n')
    write(
        versions,
        "h2_host_after_ours.py",
        # A host revision that needs our first revision, named by our branch label.
        """\
        revision: str = "h2"
        down_revision: str | None = "h1"
        branch_labels = None
        depends_on = "outbound_schema"
        """,
    )
    write(versions, "40a_first.py", 'revision = "40a"\ndown_revision = None\nbranch_labels = ("outbound_schema",)\n')
    write(versions, "41a.py", "revision = '41a'\ndown_revision = '40a'\nbranch_labels = None\ndepends_on = None\n")
    write(
        versions,
        "42a_one_side.py",
        """\
        from typing import Sequence, Union

        revision: str = "42a"
        down_revision: Union[str, Sequence[str], None] = "41a"
        branch_labels: Union[str, Sequence[str], None] = None
        depends_on: Union[str, Sequence[str], None] = None
        """,
    )
    write(
        versions,
        "42b_other_side.py",
        """\
        from collections.abc import Sequence

        revision: str = "42b"
        down_revision: str | Sequence[str] | None = ["41a"]
        branch_labels: str | Sequence[str] | None = None
        depends_on: str | Sequence[str] | None = None
        """,
    )
    write(
        versions,
        "43a_merge.py",
        '"""Merge 42a and 42b."""\n\nrevision = "43a"\ndown_revision = ("42a", "42b")\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade() -> None:\n    revision = 1\n    del revision\n",
    )
    # Ours, needing the host's first revision.
    write(versions, "44a.py", 'revision = "44a"\ndown_revision = "43a"\ndepends_on = ["h1"]\n')
    if host_merge:
        write(versions, "m1_host_merge.py", 'revision = "m1"\ndown_revision = ("h2", "44a")\n')
    # Not revision files, for Alembic as for us.
    write(versions, "__init__.py", 'revision = "init"\ndown_revision = None\n')
    write(versions / "nested", "n1.py", 'revision = "n1"\ndown_revision = None\n')


@pytest.mark.parametrize("host_merge", [False, True], ids=["two-heads", "host-merges-ours"])
def test_branches_merges_and_depends_on(tmp_path: Path, host_merge: bool) -> None:
    location = tmp_path / "migrations"
    made_up_history(location / "versions", host_merge=host_merge)
    history = assert_agrees_with_alembic(location)

    assert history.heads() == (["m1"] if host_merge else ["44a", "h2"])
    assert history.revisions["43a"].down_revisions == ("42a", "42b")
    assert history.revisions["42b"].down_revisions == ("41a",)
    assert history.revisions["h2"].depends_on == ("40a",)  # the branch label, resolved
    assert history.revisions["44a"].depends_on == ("h1",)
    assert history.managed() == ["40a", "41a", "42a", "42b", "43a", "44a", *(["m1"] if host_merge else [])]
    assert history.applied(["42b"]) == {"40a", "41a", "42b"}
    assert history.applied(["44a"]) == {"40a", "41a", "42a", "42b", "43a", "44a", "h1"}
    assert history.applied(["h2"]) == {"h1", "h2", "40a"}


def test_files_that_are_no_revisions_are_skipped(tmp_path: Path) -> None:
    versions = tmp_path / "migrations" / "versions"
    write(versions, "1a.py", 'revision = "1a"\ndown_revision = None\n')
    write(versions, "helpers.py", "def helper() -> None:\n    revision = 'x'\n")
    write(versions, "__init__.py", 'revision = "init"\ndown_revision = None\n')
    write(versions, ".#1a.py", 'revision = "lock"\ndown_revision = None\n')
    write(versions, "notes.txt", 'revision = "txt"\ndown_revision = None\n')
    write(versions / "older", "0a.py", 'revision = "0a"\ndown_revision = None\n')
    history = History.read(tmp_path / "migrations")
    assert list(history.revisions) == ["1a"]
    assert history.heads() == ["1a"]
    assert history.managed() == []  # no branch labelled outbound_schema


UNREADABLE = {
    "call": ("def some_function() -> str:\n    return '99z'\n\n\nrevision = some_function()\ndown_revision = '46d'\n"),
    "concatenation": 'revision = "47" + "a"\ndown_revision = "46d"\n',
    "number": 'revision = 47\ndown_revision = "46d"\n',
    "empty": 'revision = ""\ndown_revision = "46d"\n',
    "down-call": 'revision = "99z"\ndown_revision = tuple(["46d"])\n',
    "labels-name": 'LABEL = "x"\nrevision = "99z"\ndown_revision = "46d"\nbranch_labels = LABEL\n',
    "depends-tuple-of-names": 'revision = "99z"\ndown_revision = "46d"\ndepends_on = (HEAD,)\n',
    "unpacking": 'revision, down_revision = "99z", "46d"\n',
    "conditional": 'import os\n\nif os.environ:\n    revision = "99z"\nelse:\n    revision = "99y"\n'
    'down_revision = "46d"\n',
    "augmented": 'revision = "47"\nrevision += "a"\ndown_revision = "46d"\n',
    "imported": 'from somewhere import down_revision\n\nrevision = "99z"\n',
    "walrus": 'revision = "99z"\nprint(down_revision := "46d")\n',
    "deleted": 'revision = "99z"\ndown_revision = "46d"\ndel down_revision\n',
    "function-named": 'revision = "99z"\n\n\ndef down_revision() -> None:\n    pass\n',
    "no-down-revision": 'revision = "99z"\n',
    "syntax": 'revision = "99z"\ndown_revision = "46d"\ndef upgrade(:\n',
    "missing-down": 'revision = "99z"\ndown_revision = "46x"\n',
    "missing-depends": 'revision = "99z"\ndown_revision = "46d"\ndepends_on = "nowhere"\n',
    "label-taken": 'revision = "99z"\ndown_revision = "46d"\nbranch_labels = "outbound_schema"\n',
    "label-is-an-id": 'revision = "99z"\ndown_revision = "46d"\nbranch_labels = ["46a"]\n',
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_an_unreadable_revision_file_is_named(tmp_path: Path, case: str) -> None:
    location = copy_migrations(tmp_path / "migrations")
    path = write(location / "versions", "99z_bad.py", UNREADABLE[case])
    with pytest.raises(HistoryUnreadable) as caught:
        History.read(location)
    assert str(caught.value).startswith(f"{path}: ")
    assert caught.value.path == path


def test_the_message_says_what_and_what_to_do(tmp_path: Path) -> None:
    location = copy_migrations(tmp_path / "migrations")
    path = write(location / "versions", "99z_bad.py", UNREADABLE["call"])
    with pytest.raises(HistoryUnreadable, match=r"`revision` is set to `some_function\(\)` \(line 5\)") as caught:
        History.read(location)
    assert "plain literals" in str(caught.value) and str(path) in str(caught.value)


def test_a_revision_in_two_files(tmp_path: Path) -> None:
    location = copy_migrations(tmp_path / "migrations")
    copy = write(location / "versions", "99_copy_of_46d.py", 'revision = "46d"\ndown_revision = "46c"\n')
    with pytest.raises(HistoryUnreadable, match="46d") as caught:
        History.read(location)
    message = str(caught.value)
    assert str(copy) in message and "46d_status_twilio_sid_index.py" in message


def test_a_cycle(tmp_path: Path) -> None:
    versions = tmp_path / "migrations" / "versions"
    write(versions, "1a.py", 'revision = "1a"\ndown_revision = None\n')
    write(versions, "2a.py", 'revision = "2a"\ndown_revision = ("1a", "3a")\n')
    write(versions, "3a.py", 'revision = "3a"\ndown_revision = "2a"\n')
    with pytest.raises(HistoryUnreadable, match="cycle") as caught:
        History.read(tmp_path / "migrations")
    assert caught.value.path == versions / "2a.py"


def test_no_versions_folder(tmp_path: Path) -> None:
    with pytest.raises(HistoryUnreadable, match="no such folder") as caught:
        History.read(tmp_path)
    assert caught.value.path == tmp_path / "versions"


def test_reading_the_history_imports_neither_sqlalchemy_nor_alembic() -> None:
    modules = loaded_modules(
        "import pathlib, outbound_schema.history as h",
        f"h.History.read(pathlib.Path({str(REPO / 'alembic')!r})).managed()",
    )
    assert "outbound_schema.history" in modules
    assert not {m for m in modules if m.split(".")[0] in {"sqlalchemy", "alembic"}}
