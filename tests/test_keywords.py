"""``outbound_schema.keywords.quote`` returns what the server's quote_ident returns.

``NEEDS_QUOTES`` comes from PostgreSQL 18; the suite also runs on 15 and 16,
whose keywords are a subset but for one change (``json``, unreserved before
17, see ``UNRESERVED_BEFORE``): on any server, every keyword it has, and a few
names that are no keywords, are quoted as it quotes them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import text

from outbound_schema import keywords
from outbound_schema.keywords import NEEDS_QUOTES, UNRESERVED_BEFORE, quote
from tests.helpers import connected
from tests.provision import Server

TRICKY = ["Abc", "a b", 'a"b', "_x1", "1x", "é", "", "_", "a", "z9", "x$", "a-b", "select", "Select", "user", "int"]
TRICKY += ["json", "jsonb", "ǅ", "ß", "名前", '"', '""', "abc ", "ABC", "recheck"]


def server_quotes(server: Server) -> tuple[int, dict[str, tuple[str, str]], dict[str, str]]:
    """The server's major version, its keywords (category code, quote_ident), quote_ident of TRICKY."""
    with connected(server.url) as conn:
        major = int(conn.scalar(text("SELECT current_setting('server_version_num')::int / 10000")) or 0)
        words = {str(w): (str(c), str(q)) for w, c, q in conn.execute(text(_KEYWORDS))}
        tricky = {str(n): str(q) for n, q in conn.execute(text(_TRICKY), {"names": TRICKY})}
    return major, words, tricky


_KEYWORDS = "SELECT word, catcode, quote_ident(word) FROM pg_get_keywords()"
_TRICKY = "SELECT n, quote_ident(n) FROM unnest(CAST(:names AS text[])) AS n"


def expected(major: int, word: str, theirs: str) -> str:
    """What quote() must return for ``word``, which the server quotes as ``theirs``."""
    if UNRESERVED_BEFORE.get(word, 0) > major:
        assert theirs == word  # the server leaves it bare; we quote it, as newer servers do
        return f'"{word}"'
    return theirs


def test_every_keyword_is_quoted_as_the_server_quotes_it(pg_server: Server) -> None:
    major, words, _ = server_quotes(pg_server)
    assert len(words) > 400
    wrong = {
        word: (quote(word), theirs)
        for word, (_, theirs) in words.items()
        if quote(word) != expected(major, word, theirs)
    }
    assert not wrong, f"PostgreSQL {major} quotes these otherwise (ours, the server's): {wrong}"
    ours = {word for word, (code, _) in words.items() if code != "U"}
    if major == 18:  # the version NEEDS_QUOTES was taken from: exactly its list
        assert ours == NEEDS_QUOTES
    elif major < 18:  # fewer keywords (a newer server with more fails above: regenerate NEEDS_QUOTES)
        assert ours < NEEDS_QUOTES


def test_names_that_are_no_keywords(pg_server: Server) -> None:
    major, _, tricky = server_quotes(pg_server)
    assert set(tricky) == set(TRICKY)
    for name, theirs in tricky.items():
        assert quote(name) == expected(major, name, theirs), name


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("abc", "abc"),
        ("Abc", '"Abc"'),
        ('a"b', '"a""b"'),
        ("", '""'),
        ("1x", '"1x"'),
        ("é", '"é"'),
        ("table", '"table"'),
    ],
)
def test_quote_without_a_server(name: str, quoted: str) -> None:
    assert quote(name) == quoted


def test_the_keywords_are_written_sorted() -> None:
    tree = ast.parse(Path(keywords.__file__).read_text())
    literal = next(
        node.value.args[0]
        for node in tree.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "NEEDS_QUOTES"
        and isinstance(node.value, ast.Call)
    )
    assert isinstance(literal, ast.Set)
    words = [item.value for item in literal.elts if isinstance(item, ast.Constant) and isinstance(item.value, str)]
    assert len(words) == len(literal.elts) == len(NEEDS_QUOTES)
    assert words == sorted(set(words))
