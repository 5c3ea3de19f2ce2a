"""The ``outbound-schema`` command line: upgrade, downgrade and status."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from outbound_schema.config import VERSION_TABLE, alembic_config
from outbound_schema.database import configured_url, connect, mask
from outbound_schema.embedded import default_database_url
from outbound_schema.errors import OutboundSchemaError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outbound-schema",
        description="Manage the outbound dialer's tables (outbound_call_runs, outbound_call_jobs).",
        epilog="The database is --database-url, else DATABASE_URL, else an embedded PostgreSQL "
        "kept in ./.outbound-schema/ (OUTBOUND_SCHEMA_EMBEDDED_DIR).",
    )
    url_option = argparse.ArgumentParser(add_help=False)
    url_option.add_argument("--database-url", metavar="URL", help="postgresql:// or postgresql+psycopg:// URL")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upgrade = sub.add_parser("upgrade", parents=[url_option], help="migrate the database up (default: head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.add_argument("--sql", action="store_true", help="print the SQL script instead of running it")

    downgrade = sub.add_parser("downgrade", parents=[url_option], help="migrate the database down")
    downgrade.add_argument("revision", help="target revision, e.g. 46c, -1 or base")
    downgrade.add_argument("--sql", action="store_true", help="print the SQL script instead of running it")

    sub.add_parser("status", parents=[url_option], help="show the database's revision against head")
    return parser


def _url(args: argparse.Namespace, *, offline: bool = False) -> URL | None:
    url = configured_url(args.database_url)
    if url is None and not offline:
        url = default_database_url()
    return url


def _status(url: URL) -> int:
    script = ScriptDirectory.from_config(alembic_config(url))
    heads = set(script.get_heads())
    with connect(url) as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        current = set(context.get_current_heads())
    print(f"database: {mask(url)}")
    print(f"current:  {', '.join(sorted(current)) or f'none (no {VERSION_TABLE} table or no revision in it)'}")
    print(f"head:     {', '.join(sorted(heads))}")
    unknown = current - {rev.revision for rev in script.walk_revisions()}
    if unknown:
        print(f"state:    unknown revision(s) {', '.join(sorted(unknown))}: this database is newer than this library")
        return 1
    applied = {rev.revision for cur in current for rev in script.iterate_revisions(cur, "base")}
    pending = [rev.revision for rev in reversed(list(script.walk_revisions())) if rev.revision not in applied]
    if pending:
        print(f"state:    behind head; pending: {' -> '.join(pending)}")
    else:
        print("state:    at head")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)-5.5s [%(name)s] %(message)s")
    for name in ("alembic", "outbound_schema"):
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        if args.command == "status":
            url = _url(args)
            assert url is not None
            return _status(url)
        url = _url(args, offline=args.sql)
        config = alembic_config(url)
        if args.command == "upgrade":
            command.upgrade(config, args.revision, sql=args.sql)
        else:
            command.downgrade(config, args.revision, sql=args.sql)
        return 0
    except OutboundSchemaError as exc:
        print(f"outbound-schema: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
