"""Every kind by name, a catalog as plain data, and the one comparison drift and take-over share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from outbound_schema.catalog.behaviour import PolicyInfo, RuleInfo, TriggerInfo
from outbound_schema.catalog.kind import CatalogKind, CatalogObject
from outbound_schema.catalog.relations import ConstraintInfo, IndexInfo, SequenceInfo
from outbound_schema.catalog.tables import ColumnInfo, TableInfo
from outbound_schema.catalog.types import FunctionInfo, TypeInfo

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]


KINDS: dict[str, type[CatalogKind]] = {
    kind.KIND: kind
    for kind in (
        TableInfo,
        ColumnInfo,
        ConstraintInfo,
        IndexInfo,
        SequenceInfo,
        PolicyInfo,
        TriggerInfo,
        RuleInfo,
        TypeInfo,
        FunctionInfo,
    )
}


@dataclass(frozen=True)
class Snapshot:
    tables: dict[str, TableInfo] = field(default_factory=dict)
    indexes: dict[str, IndexInfo] = field(default_factory=dict)
    constraints: dict[str, ConstraintInfo] = field(default_factory=dict)
    sequences: dict[str, SequenceInfo] = field(default_factory=dict)
    # Keyed by "table.name": their names are unique per table only.
    policies: dict[str, PolicyInfo] = field(default_factory=dict)
    triggers: dict[str, TriggerInfo] = field(default_factory=dict)
    rules: dict[str, RuleInfo] = field(default_factory=dict)
    types: dict[str, TypeInfo] = field(default_factory=dict)  # enums and domains our columns are of
    functions: dict[str, FunctionInfo] = field(default_factory=dict)  # those our triggers run

    def add(self, obj: CatalogKind) -> None:
        getattr(self, obj.FIELD)[obj.key] = obj


# The comparison the drift check and the take-over share.


def objects(snap: Snapshot, every: bool = False) -> dict[tuple[str, str], CatalogObject]:
    """Every object of ``snap`` by (kind, key), in KINDS' order (each table followed by its columns);
    ``every``: also those that are another's (a constraint's own index), listed apart from it by no one."""
    return {(o.kind, o.name): o for kind in KINDS.values() if kind.FIELD for o in kind.members(snap, every)}


def same(a: CatalogObject | None, b: CatalogObject | None) -> bool:
    """Whether ``a`` and ``b`` are one object as it is (None: absent), whatever their names."""
    if a is None or b is None:
        return a is b
    return (a.table, a.value) == (b.table, b.value)
