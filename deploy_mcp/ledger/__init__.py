"""The deployment ledger: records, their event logs, per-target locks and change approvals.

Callers hold a ``Ledger`` and never a concrete backend: ``SqliteLedger`` (one file beside deploy.toml, the
default) or ``PostgresLedger`` (a team's database shared by server replicas), chosen by `open_ledger`. Importing
this package costs pydantic and sqlite3 only: it is imported at server start; psycopg is imported only when a
PostgreSQL ledger is opened.
"""

from __future__ import annotations

from pathlib import Path

from deploy_mcp.ledger.base import (
    UNFINISHED_STATUSES,
    Approval,
    ApprovalStore,
    EventLog,
    Ledger,
    LedgerError,
    LockState,
    LockStore,
    RecordStore,
    Storage,
)
from deploy_mcp.ledger.dsn import LedgerUrl, is_postgres_url
from deploy_mcp.ledger.ids import format_id, parse_id
from deploy_mcp.ledger.migrations import SCHEMA_VERSION
from deploy_mcp.ledger.sqlite import SqliteLedger

LEDGER_FILE = "ledger.db"

__all__ = [
    "LEDGER_FILE",
    "SCHEMA_VERSION",
    "UNFINISHED_STATUSES",
    "Approval",
    "ApprovalStore",
    "EventLog",
    "Ledger",
    "LedgerError",
    "LedgerUrl",
    "LockState",
    "LockStore",
    "RecordStore",
    "SqliteLedger",
    "Storage",
    "format_id",
    "open_ledger",
    "parse_id",
]


def open_ledger(where: Path | str | LedgerUrl) -> Ledger:
    """Open (creating the schema, and for SQLite the folder and the file, as needed) the ledger at ``where``: a
    ``postgresql://`` URL (or a resolved `LedgerUrl`) for the team ledger, else the path of a SQLite file.

    The project's ledger is ``Project.state_dir / LEDGER_FILE``, i.e. ``.deploy/ledger.db`` beside deploy.toml,
    unless deploy.toml's ``ledger`` or DEPLOY_MCP_LEDGER names a PostgreSQL database (see `App.ledger`).
    """
    if isinstance(where, LedgerUrl) or (isinstance(where, str) and is_postgres_url(where)):
        from deploy_mcp.ledger.postgres import PostgresLedger

        return PostgresLedger(where)
    return SqliteLedger(where)
