"""Defaults spelled differently that mean the same, aligned on the server before comparing."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from outbound_schema.catalog.objects import Snapshot
from outbound_schema.catalog.tables import ColumnInfo
from outbound_schema.query import _literal_percent, fetch

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]


# Spellings PostgreSQL keeps apart that mean one default.

#: Each is the transaction's start time: now() is transaction_timestamp(), and CURRENT_TIMESTAMP calls it.
_TRANSACTION_START = re.compile(r"^\(*(?:now\(\)|transaction_timestamp\(\)|CURRENT_TIMESTAMP)\)*$")
#: LOCALTIMESTAMP is that time as a timestamp without time zone: the same value in such a column.
_LOCAL_TRANSACTION_START = re.compile(r"^\(*LOCALTIMESTAMP\)*$")
_CAST_SUFFIX = re.compile(r"^(.*)::(?P<type>[a-z][a-z0-9_ ]*(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?)$", re.S)
#: A literal with casts and nothing else: evaluating it has no effect, so the server may compare two.
_CONSTANT = re.compile(
    r"^\(*(?:'(?:[^']|'')*'|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|true|false|NULL)\)*"
    r"(?:::[a-z][a-z0-9_ ]*(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?\)*)*$"
)


#: That time in UTC: timezone('utc', now()), which PostgreSQL 16 and later print as written, either
#: as a call or as now() AT TIME ZONE 'utc' (15 prints both as the call); the zone's name in any case.
_TRANSACTION_START_UTC = re.compile(
    r"^\(*(?:timezone\('(?:utc|etc/utc)'::text, \(*(?P<a>[^)]*\)?)\)*\)"
    r"|\(*(?P<b>now\(\)|transaction_timestamp\(\)|CURRENT_TIMESTAMP)\)* AT TIME ZONE '(?:utc|etc/utc)'::text)\)*$",
    re.I,
)


def _canonical_default(default: str, column_type: str) -> str:
    cast = _CAST_SUFFIX.match(default)
    bare = cast.group(1) if cast and cast.group("type") == column_type else default
    if _TRANSACTION_START.match(bare):
        return "CURRENT_TIMESTAMP"
    utc = _TRANSACTION_START_UTC.match(bare)
    if utc and _TRANSACTION_START.match(utc.group("a") or utc.group("b") or ""):
        return "CURRENT_TIMESTAMP AT TIME ZONE 'UTC'"
    if column_type == "timestamp without time zone" and _LOCAL_TRANSACTION_START.match(bare):
        return "CURRENT_TIMESTAMP"
    return default


def align_defaults(connection: Queryable, expected: Iterable[Snapshot], found: Snapshot) -> Snapshot:
    """``found`` with each column default that means what an ``expected`` one means spelled as that one.

    ``now()``, ``transaction_timestamp()`` and ``CURRENT_TIMESTAMP`` are one default; so are
    ``'x'::text`` and ``'x'::character varying`` on a varchar column, which the server compares as
    values (literals and casts only, so evaluating them has no effect). The drift check and the
    take-over then judge by equality, and agree.
    """
    wanted: dict[tuple[str, str, str], set[str]] = {}
    for snap in expected:
        for table in snap.tables.values():
            for column in table.columns:
                if column.default is not None and column.generated is None:
                    wanted.setdefault((table.name, column.name, column.type), set()).add(column.default)
    to_compare: list[tuple[str, str, str]] = []
    for table in found.tables.values():
        for column in table.columns:
            have = column.default
            for want in wanted.get((table.name, column.name, column.type), set()) - {have}:
                if have is not None and column.generated is None and _CONSTANT.match(have) and _CONSTANT.match(want):
                    to_compare.append((column.type, want, have))
    equal = {pair for pair in to_compare if _equal_constants(connection, *pair)}

    def spelled(table: str, column: ColumnInfo) -> ColumnInfo:
        have = column.default
        if have is None or column.generated is not None:
            return column
        for want in sorted(wanted.get((table, column.name, column.type), ())):
            canonical = _canonical_default(want, column.type) == _canonical_default(have, column.type)
            if canonical or (column.type, want, have) in equal:
                return replace(column, default=want)
        return column

    tables = {
        name: replace(table, columns=tuple(spelled(name, c) for c in table.columns))
        for name, table in found.tables.items()
    }
    return replace(found, tables=tables)


def _equal_constants(connection: Queryable, type_: str, a: str, b: str) -> bool:
    """Whether the constants ``a`` and ``b`` are one value of ``type_``; False when either is not one
    (out of range, say), so a default that cannot be cast is reported, not a failed check."""
    sql = _literal_percent(f"SELECT CAST(({a}) AS {type_}) IS NOT DISTINCT FROM CAST(({b}) AS {type_})")
    try:
        with _savepoint(connection):
            return bool(fetch(connection, sql, {})[0][0])
    except _database_errors():
        return False


@contextmanager
def _savepoint(connection: Queryable) -> Iterator[None]:
    if hasattr(connection, "begin_nested"):
        with connection.begin_nested():
            yield
    else:
        with connection.transaction():
            yield


def _database_errors() -> tuple[type[Exception], ...]:
    import psycopg

    errors: list[type[Exception]] = [psycopg.Error]
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import DBAPIError

        errors.append(DBAPIError)
    return tuple(errors)
