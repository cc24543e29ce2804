"""A second process for tests/test_ledger.py: opens a ledger, then runs one JSON command per stdin line.

Each reply is one JSON line on stdout: ``{"ok": result}`` or ``{"error": message}``. The first line,
``{"ok": "ready"}``, says the ledger is open, so a test can start several workers and release them together.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from deploy_mcp.ledger import LedgerError, is_postgres_url, open_ledger


def reply(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    return value


def hang_in_transaction(db: Path, deployment_id: str) -> None:
    """Start rewriting a record and never commit: the test kills this process mid-write."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE deployments SET status = 'failed', record = json_set(record, '$.status', 'failed') WHERE id = ?",
        (deployment_id,),
    )
    reply(ok="in transaction")
    sys.stdin.read()


def main() -> None:
    where = sys.argv[1]  # a SQLite file, or a PostgreSQL URL (tests/test_ledger_shared.py)
    db = Path(where)
    ledger = open_ledger(where if is_postgres_url(where) else db)
    reply(ok="ready")
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        try:
            if op == "create_many":
                ids = []
                for _ in range(command["count"]):
                    ids.append(ledger.create(**command["fields"]).id)
                    time.sleep(command.get("pause_seconds", 0))  # let the other process in between
                reply(ok=ids)
            elif op == "call":
                method = getattr(ledger, command["method"])
                reply(ok=jsonable(method(*command.get("args", []), **command.get("kwargs", {}))))
            elif op == "hang_in_transaction":
                hang_in_transaction(db, command["deployment_id"])
            elif op == "quit":
                break
            else:
                reply(error=f"unknown op {op!r}")
        except LedgerError as exc:
            reply(error=str(exc))
    ledger.close()


if __name__ == "__main__":
    main()
