"""Before the first change of a run: the privileges its changes will need, checked all at once.

A role that may not make every change of the run is refused before anything changes (exit code 2, not even
the version table created), each missing privilege named with the statement that grants it, rather than
after some revisions were recorded, at the first statement it may not run.

What a run needs, from what its revisions' operations act on (planned, :class:`Rules`):

- CREATE on the schema new tables go in (the first schema of the search path), for the tables it creates, and
  for the version table and the schema history when they do not exist yet;
- ownership of each existing table it changes (ALTER TABLE, CREATE INDEX, DROP need it);
- REFERENCES on each existing table its new foreign keys point at (the host application's);
- SELECT, INSERT, UPDATE and DELETE on the version table, SELECT and INSERT on the schema history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from outbound_schema.errors import OutboundSchemaError
from outbound_schema.keywords import quote
from outbound_schema.standing import HISTORY_TABLE

if TYPE_CHECKING:
    from outbound_schema.safety.rules import Rules

_VERSION_TABLE_NEEDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
_HISTORY_NEEDS = ("SELECT", "INSERT")

# Which of the names exist, then what this role may do with those that do: two statements without a join (one
# joining the names to pg_class cost a new session's server a millisecond more).
_FOUND = text("SELECT name, CAST(to_regclass(name) AS oid) FROM unnest(CAST(:names AS text[])) AS name")
_RIGHTS = text(
    """
    SELECT oid, pg_has_role(relowner, 'USAGE'), pg_get_userbyid(relowner), has_table_privilege(oid, 'REFERENCES'),
           ARRAY[has_table_privilege(oid, 'SELECT'), has_table_privilege(oid, 'INSERT'),
                 has_table_privilege(oid, 'UPDATE'), has_table_privilege(oid, 'DELETE')]
    FROM pg_class WHERE oid = ANY(CAST(CAST(:oids AS text[]) AS oid[]))
    """
)
_UNREADABLE = text(
    "SELECT NOT has_table_privilege(oid, 'SELECT') FROM (SELECT to_regclass(:name) AS oid) AS found "
    "WHERE oid IS NOT NULL"
)
_PRIVILEGE_ORDER = ("SELECT", "INSERT", "UPDATE", "DELETE")


def refuse_missing_privileges(
    connection: Connection,
    revisions: Sequence[Rules],
    *,
    version_table: str,
    version_table_schema: str | None = None,
) -> None:
    """Refuse the run (exit code 2) when the role lacks a privilege any of ``revisions`` (the ones with work
    to do) or the recording of the run needs; say each, with its GRANT or ALTER ... OWNER."""
    role, schema = connection.execute(text("SELECT current_user, current_schema()")).one()
    grantee = quote(str(role))
    creates = {name for rules in revisions for name in rules.creates}
    changes = {name for rules in revisions for name in rules.tables}
    references = {name for rules in revisions for name in rules.references} - creates
    version = f"{quote(version_table_schema)}.{quote(version_table)}" if version_table_schema else quote(version_table)
    ours = sorted((changes | references) - {version_table, HISTORY_TABLE})
    names = [*map(quote, ours), version, quote(HISTORY_TABLE)]
    oids = {str(name): oid for name, oid in connection.execute(_FOUND, {"names": names})}
    present = [str(oid) for oid in oids.values() if oid is not None]
    rights_of = {row[0]: row[1:] for row in connection.execute(_RIGHTS, {"oids": present})} if present else {}
    none = dict.fromkeys(_PRIVILEGE_ORDER, False)
    found: dict[str, tuple[bool, bool, str, bool, dict[str, bool]]] = {}
    for name, oid in oids.items():
        if oid not in rights_of:
            found[name] = (False, False, "", False, none)
            continue
        owner, owned_by, may_reference, rights = rights_of[oid]
        found[name] = (
            True,
            bool(owner),
            str(owned_by),
            bool(may_reference),
            dict(zip(_PRIVILEGE_ORDER, rights, strict=True)),
        )
    missing: list[str] = []

    # CREATE on the schemas where the run creates tables.
    created_here = [name for name in sorted(creates) if not found[quote(name)][0]]
    version_schema = version_table_schema or schema
    to_create: dict[str | None, list[str]] = {}
    if created_here:
        to_create.setdefault(schema, []).extend(created_here)
    if not found[version][0]:
        to_create.setdefault(version_schema, []).append(version_table)
    if not found[quote(HISTORY_TABLE)][0]:
        to_create.setdefault(schema, []).append(HISTORY_TABLE)
    for where, names in to_create.items():
        if where is None:
            path = connection.scalar(text("SHOW search_path"))
            missing.append(
                f"a schema to create {_listed(names)} in: no schema of the search path ({path}) exists (CREATE "
                f"SCHEMA, or ALTER ROLE {grantee} SET search_path = a schema that does)"
            )
        elif not connection.scalar(text("SELECT has_schema_privilege(:schema, 'CREATE')"), {"schema": where}):
            missing.append(
                f"CREATE on schema {where}, to create {_listed(names)} there (GRANT CREATE ON SCHEMA "
                f"{quote(str(where))} TO {grantee})"
            )

    # Ownership of the existing tables the run changes.
    for name in sorted(changes - {version_table, HISTORY_TABLE}):
        exists, owner, owned_by, _references, _rights = found[quote(name)]
        if exists and not owner:
            missing.append(
                f"ownership of table {name} (owned by {owned_by}), which altering it, indexing it and adding its "
                f"constraints need (ALTER TABLE {quote(name)} OWNER TO {grantee})"
            )

    # REFERENCES on the existing tables the new foreign keys point at.
    unreferable = [name for name in sorted(references) if found[quote(name)][0] and not any(found[quote(name)][1:4:2])]
    if unreferable:
        missing.append(
            f"REFERENCES on {_listed(unreferable)}, which new foreign keys point at (GRANT REFERENCES ON "
            f"{', '.join(map(quote, unreferable))} TO {grantee})"
        )

    # Recording the run: the version table and the schema history.
    for shown, key, needs in (
        (version_table, version, _VERSION_TABLE_NEEDS),
        (HISTORY_TABLE, quote(HISTORY_TABLE), _HISTORY_NEEDS),
    ):
        exists, _owner, _owned_by, _references, rights = found[key]
        lacking = [right for right in needs if not rights[right]]
        if exists and lacking:
            missing.append(
                f"{', '.join(lacking)} on table {shown}, where the run is recorded (GRANT {', '.join(needs)} ON "
                f"{key} TO {grantee})"
            )

    if missing:
        raise OutboundSchemaError(
            f"The role {role} lacks privileges this migration needs, so it changed nothing (not even the "
            f"version table is created or written): {'; '.join(missing)}. Have the tables' owner or a superuser "
            "run those statements, or migrate as a role that has the privileges, then run it again.",
            exit_code=2,
        )


def refuse_unreadable_records(connection: Connection, version_table: str, version_table_schema: str | None) -> None:
    """Refuse the run (exit code 2) before it reads where the database stands, when the role may not read the
    version table or the schema history: what else it needs is told once it can."""
    version = f"{quote(version_table_schema)}.{quote(version_table)}" if version_table_schema else quote(version_table)
    role = connection.scalar(text("SELECT current_user"))
    records = ((version_table, version, _VERSION_TABLE_NEEDS), (HISTORY_TABLE, quote(HISTORY_TABLE), _HISTORY_NEEDS))
    unreadable = [(shown, key, needs) for shown, key, needs in records if connection.scalar(_UNREADABLE, {"name": key})]
    connection.commit()
    if unreadable:
        grantee = quote(str(role))
        grants = "; ".join(f"GRANT {', '.join(needs)} ON {key} TO {grantee}" for _shown, key, needs in unreadable)
        raise OutboundSchemaError(
            f"The role {role} may not read {_listed([shown for shown, _key, _needs in unreadable])}, where the "
            f"migrations record where the database stands, so nothing was read, locked or changed. Grant it what "
            f"migrating needs there ({grants}), or migrate as a role that has it, then run it again; any other "
            "privilege the run needs is named then, before anything changes.",
            exit_code=2,
        )


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
