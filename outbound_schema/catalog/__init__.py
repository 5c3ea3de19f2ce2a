"""What a live database holds for our tables, read from PostgreSQL's catalog.

The snapshot is plain data (tuples and dicts of strings), so two databases can
be compared with ``==`` and a difference printed readably. Definitions come
from PostgreSQL's own deparsers (``format_type``, ``pg_get_expr``,
``pg_get_constraintdef``, ``pg_get_indexdef``, ``pg_get_triggerdef``,
``pg_get_ruledef``), so they mean what the server means, whatever SQL created
the objects. Nothing here names a schema: our tables are found through the
session's ``search_path``, as every query of the dialer finds them, and only
objects of those tables are read (never the host application's, never another
schema's).

The queries run on a SQLAlchemy connection (migrations) or a plain psycopg one
(``outbound-schema check``, which imports no SQLAlchemy); both hand the SQL to
psycopg as written.

Each kind of object is described once, by its class (``kind`` holds the base; ``tables``, ``relations``,
``behaviour`` and ``types`` the kinds); ``objects`` lists them by kind and holds the one comparison the
drift check and take-over share; ``reading`` reads a live catalog, ``defaults`` aligns defaults spelled
differently, ``query`` runs SQL on either kind of connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from outbound_schema.catalog.behaviour import PolicyInfo, RuleInfo, TriggerInfo
from outbound_schema.catalog.defaults import align_defaults
from outbound_schema.catalog.kind import IDENT, CatalogKind, CatalogObject, one_line, unquote
from outbound_schema.catalog.objects import KINDS, Snapshot, objects, same
from outbound_schema.catalog.reading import (
    Resolution,
    SequencePosition,
    Survey,
    existing_relations,
    read,
    resolve,
    snapshot,
    survey,
    table_oids,
    tables_in_current_schema,
)
from outbound_schema.catalog.relations import ConstraintInfo, IndexInfo, SequenceInfo
from outbound_schema.catalog.tables import ColumnInfo, Setting, TableInfo
from outbound_schema.catalog.types import FunctionInfo, TypeInfo
from outbound_schema.config import HOST_TABLES
from outbound_schema.query import fetch

if TYPE_CHECKING:
    from outbound_schema.query import Queryable as Queryable  # a type only

__all__ = [
    "HOST_TABLES",
    "IDENT",
    "KINDS",
    "CatalogKind",
    "CatalogObject",
    "ColumnInfo",
    "ConstraintInfo",
    "FunctionInfo",
    "IndexInfo",
    "PolicyInfo",
    "Resolution",
    "RuleInfo",
    "SequenceInfo",
    "SequencePosition",
    "Setting",
    "Snapshot",
    "Survey",
    "TableInfo",
    "TriggerInfo",
    "TypeInfo",
    "align_defaults",
    "existing_relations",
    "fetch",
    "objects",
    "one_line",
    "read",
    "resolve",
    "same",
    "snapshot",
    "survey",
    "table_oids",
    "tables_in_current_schema",
    "unquote",
]
