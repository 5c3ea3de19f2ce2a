"""Queries on either kind of connection: SQLAlchemy's (migrations) or psycopg's (the read-only commands).

Light on purpose: the start-up gate (``is_migrated``) reads the version table through it, and loads nothing
of the catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Connection

    Queryable = Connection | psycopg.Connection[tuple[Any, ...]]


def fetch(connection: Queryable, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (psycopg's %(name)s parameters) on either kind of connection."""
    if hasattr(connection, "exec_driver_sql"):
        return [tuple(row) for row in connection.exec_driver_sql(sql, params)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _literal_percent(sql: str) -> str:
    """``sql`` built from names and literals, for a parameterised execute: its % signs are not placeholders."""
    return sql.replace("%", "%%")
