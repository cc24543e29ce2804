"""The deployment ledger: records, their event logs, per-target locks and change approvals.

Callers hold a ``Ledger`` and never a concrete backend, so the team backend (PostgreSQL) can arrive without
touching them. Importing this package costs pydantic and sqlite3 only: it is imported at server start.
"""

from __future__ import annotations

from pathlib import Path

from deploy_mcp.ledger.base import UNFINISHED_STATUSES, Approval, Ledger, LedgerError, LockState
from deploy_mcp.ledger.ids import format_id, parse_id
from deploy_mcp.ledger.migrations import SCHEMA_VERSION
from deploy_mcp.ledger.sqlite import SqliteLedger

LEDGER_FILE = "ledger.db"

__all__ = [
    "LEDGER_FILE",
    "SCHEMA_VERSION",
    "UNFINISHED_STATUSES",
    "Approval",
    "Ledger",
    "LedgerError",
    "LockState",
    "SqliteLedger",
    "format_id",
    "open_ledger",
    "parse_id",
]


def open_ledger(path: Path) -> Ledger:
    """Open (creating the folder, the file and the schema as needed) the ledger at ``path``.

    The project's ledger is ``Project.state_dir / LEDGER_FILE``, i.e. ``.deploy/ledger.db`` beside deploy.toml.
    """
    return SqliteLedger(path)
