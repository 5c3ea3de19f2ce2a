"""The documentation's code runs and its links lead somewhere.

Every ```python block of docs/*.md and CONTRIBUTING.md runs as its own program against a database at head, as
the README's do (tests/test_readme.py); a block that cannot run on its own (an excerpt of an env.py or of a
model) is fenced ```python fragment. Every relative link of the README, CONTRIBUTING.md and docs/*.md names
an existing file, and every #anchor a heading of that file, as GitHub renders it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from tests.helpers import REPO, connected, plain, python_forked
from tests.test_readme import PYTHON_BLOCKS as README_PYTHON_BLOCKS

DOCS = sorted((REPO / "docs").glob("*.md"))
LINKED = [REPO / "README.md", REPO / "CONTRIBUTING.md", *DOCS]
#: The info string of a Python block that is an excerpt, not a program: shown, not run.
FRAGMENT = "python fragment"


class Block(NamedTuple):
    info: str  # the fence's info string: "python", "sh", ...
    code: str  # dedented by the fence's indentation


class Parsed(NamedTuple):
    blocks: list[Block]
    prose: list[str]  # the lines outside fenced blocks


_FENCE = re.compile(r"^( *)(`{3,}|~{3,})\s*(.*)$")


def parse(path: Path) -> Parsed:
    """A Markdown file's fenced blocks, and its lines outside them."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            prose.append(lines[i])
            i += 1
            continue
        indent, fence, info = len(opened[1]), opened[2], opened[3].strip()
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.fullmatch(rf" *{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1  # the closing fence
        blocks.append(Block(info, "".join(f"{line}\n" for line in body)))
    return Parsed(blocks, prose)


RUN = [
    (f"{path.relative_to(REPO)}:{number}", block.code)
    for path in [REPO / "CONTRIBUTING.md", *DOCS]
    for number, block in enumerate(b for b in parse(path).blocks if b.info == "python")
]


@pytest.mark.parametrize("code", [code for _name, code in RUN], ids=[name for name, _code in RUN])
@pytest.mark.heavy
def test_python_blocks_run(head_db: URL, code: str) -> None:
    with connected(head_db) as conn:
        conn.execute(text("INSERT INTO business (id) VALUES (42); INSERT INTO leads (id) VALUES (7)"))
        conn.commit()
    # A process of its own, the block run as `python -c` runs it, in a namespace of its own: a block that
    # forgets an import or a setting fails as in a fresh Python. The modules are loaded already (the
    # zygote's), which spares each block a new Python importing SQLAlchemy; test_imports imports them in
    # fresh Pythons.
    child = python_forked(code, DATABASE_URL=plain(head_db), PATH="/usr/bin:/bin")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, out + err


def test_the_readme_blocks_are_those_test_readme_runs() -> None:
    """No README block escapes test_readme's pattern (an indented one, say)."""
    found = [block.code for block in parse(REPO / "README.md").blocks if block.info == "python"]
    assert found == README_PYTHON_BLOCKS


@pytest.mark.parametrize("path", LINKED, ids=lambda path: str(path.relative_to(REPO)))
def test_python_blocks_run_or_say_they_are_fragments(path: Path) -> None:
    infos = {block.info for block in parse(path).blocks if block.info.split(" ")[0].startswith("py")}
    assert infos <= {"python", FRAGMENT}, f"{path.name}: fence a Python block ```python, or ```{FRAGMENT}"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lowercased, punctuation but - and _ dropped, spaces as -."""
    shown = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    return re.sub(r"[^\w\- ]", "", shown.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in parse(path).prose:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading is None:
            continue
        base = slug(heading[1])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_slugs_as_github_makes_them() -> None:
    assert slug("Expand/contract: renaming or dropping a column") == "expandcontract-renaming-or-dropping-a-column"
    assert slug("Read-only roles for `check` and `status`") == "read-only-roles-for-check-and-status"
    assert slug("Deploys and CI/CD") == "deploys-and-cicd"
    assert slug("Fast.") == "fast"


_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def links(path: Path) -> list[str]:
    prose = "\n".join(parse(path).prose)
    prose = re.sub(r"(`+).*?\1", "", prose, flags=re.S)  # inline code shows links, it does not make them
    return [a or b for a, b in _LINK.findall(prose)]


@pytest.mark.parametrize("path", LINKED, ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for link in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # https:, mailto:: not ours to check
            continue
        target, _, anchor = link.partition("#")
        resolved = (path.parent / unquote(target)).resolve() if target else path
        if not resolved.exists():
            broken.append(f"{link}: no file {resolved}")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{link}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{path.name}: " + "; ".join(broken)


def test_there_are_links_and_blocks() -> None:
    assert len(RUN) >= 1
    assert sum(len(links(path)) for path in LINKED) >= 20


def test_the_readme_is_an_entry_point() -> None:
    """The README says what this is and how to use it, and links the rest: operators and developers have docs/."""
    assert len((REPO / "README.md").read_text().splitlines()) <= 250
