"""The data guards: statements that refuse, on the server, a drop that would destroy data."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import psycopg
from sqlalchemy import Connection, TextClause, text
from sqlalchemy.exc import DBAPIError

from outbound_schema.ddl import RAISE_EXCEPTION
from outbound_schema.errors import OutboundSchemaError
from outbound_schema.keywords import literal, quote

log = logging.getLogger("outbound_schema.migrate")


def raise_format(message: str) -> str:
    """``message`` as the format string of PL/pgSQL's RAISE, where % stands for an argument."""
    return literal(message.replace("%", "%%"))


def sql_text(statement: str) -> TextClause:
    """A statement this layer writes, as text: its colons are SQL's, never bind parameters."""
    return text(statement.replace(":", "\\:"))


def data_guard(revision: str, table: str, column: str | None, *, lock: bool, before_run: bool = False) -> str:
    """A statement that raises when dropping ``table`` (or its ``column``) would destroy data.

    With ``lock`` it first takes the lock the drop will take, so that no row can
    arrive between the check and the drop. ``before_run``: the check runs before
    anything of the downgrade, so its refusal says nothing was reverted.
    """
    what = f"column {table}.{column} holds values" if column else f"table {table} holds rows"
    exists = f"SELECT EXISTS (SELECT FROM {quote(table)}{f' WHERE {quote(column)} IS NOT NULL' if column else ''})"
    present = f"to_regclass({literal(quote(table))}) IS NOT NULL"
    if column:
        present += (
            f" AND EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass({literal(quote(table))})"
            f" AND attname = {literal(column)} AND attnum > 0 AND NOT attisdropped)"
        )
    reverted = (
        "the downgrade was refused and nothing was reverted"
        if before_run
        else f"it was refused and nothing of {revision} was reverted; revisions above it were reverted only "
        "where they held no data"
    )
    message = (
        f"Downgrading {revision} would destroy data ({what}), so {reverted}. Back the data up first, then "
        "downgrade again with --allow-data-loss (or -x allow_data_loss=true)."
    )
    lock_sql = f"EXECUTE {literal(f'LOCK TABLE {quote(table)} IN ACCESS EXCLUSIVE MODE')}; " if lock else ""
    return (
        f"DO $outbound$ DECLARE found boolean; BEGIN IF {present} THEN {lock_sql}EXECUTE {literal(exists)} "
        f"INTO found; IF found THEN RAISE EXCEPTION {raise_format(message)}; END IF; END IF; END $outbound$"
    )


def refuse_data_loss(connection: Connection, drops: Iterable[tuple[str, Sequence[tuple[str, str | None]]]]) -> None:
    """Before a downgrade changes anything: refuse if any of its drops would destroy data."""
    for revision, items in drops:
        for table, column in items:
            try:
                connection.execute(sql_text(data_guard(revision, table, column, lock=False, before_run=True)))
            except DBAPIError as exc:
                connection.rollback()
                if getattr(exc.orig, "sqlstate", None) == RAISE_EXCEPTION and isinstance(exc.orig, psycopg.Error):
                    raise OutboundSchemaError(str(exc.orig.diag.message_primary)) from None
                raise
