"""The SQLite schema as a list of steps; ``PRAGMA user_version`` says how many a database has had.

Step N takes a database from version N-1 to N. A released step is never edited: a change to the schema is a new
step at the end, so every database, however old, reaches the same schema by replaying the steps it lacks. Each
step runs in one IMMEDIATE transaction together with the version bump, so a crash leaves the old version intact
and two processes opening an old file at once apply each step exactly once.
"""

from __future__ import annotations

import sqlite3

_ORDER = "deployed_at, id_day, id_number"
UNFINISHED_SQL = "'pending', 'in_progress', 'paused', 'interrupted'"
"""The unfinished statuses as SQL literals: a partial index serves only a query that spells its condition so."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: records and their event logs
    (
        """
        CREATE TABLE deployments (
            id          TEXT PRIMARY KEY,
            id_day      TEXT NOT NULL,
            id_number   INTEGER NOT NULL,
            service     TEXT NOT NULL,
            environment TEXT NOT NULL,
            version     TEXT NOT NULL,
            status      TEXT NOT NULL,
            deployed_at TEXT NOT NULL,
            record      TEXT NOT NULL CHECK (json_valid(record)),
            UNIQUE (id_day, id_number)
        )
        """,
        "CREATE INDEX deployments_by_target ON deployments (service, environment, deployed_at)",
        "CREATE INDEX deployments_by_time ON deployments (deployed_at, id_day, id_number)",
        "CREATE INDEX deployments_by_status ON deployments (status)",
        """
        CREATE TABLE events (
            deployment_id TEXT NOT NULL REFERENCES deployments (id),
            seq           INTEGER NOT NULL CHECK (seq >= 1),
            at            TEXT NOT NULL,
            kind          TEXT NOT NULL,
            message       TEXT NOT NULL,
            data          TEXT NOT NULL CHECK (json_valid(data)),
            PRIMARY KEY (deployment_id, seq)
        ) WITHOUT ROWID
        """,
        """
        CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END
        """,
        """
        CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END
        """,
    ),
    # 2: one deployment per service and environment; times are Unix seconds so lease checks are plain comparisons
    (
        """
        CREATE TABLE locks (
            service       TEXT NOT NULL,
            environment   TEXT NOT NULL,
            holder        TEXT NOT NULL,
            deployment_id TEXT,
            acquired_at   REAL NOT NULL,
            expires_at    REAL NOT NULL,
            PRIMARY KEY (service, environment)
        ) WITHOUT ROWID
        """,
    ),
    # 3: enterprise change approvals given out of band by a person
    (
        """
        CREATE TABLE approvals (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            change_id   TEXT NOT NULL,
            service     TEXT NOT NULL,
            environment TEXT NOT NULL,
            approved_by TEXT NOT NULL,
            approved_at TEXT NOT NULL,
            expires_at  TEXT
        )
        """,
        "CREATE INDEX approvals_lookup ON approvals (change_id, service, environment)",
    ),
    # 4: an approval may name the one version it covers, and is spent by the deployment that started under it
    (
        "ALTER TABLE approvals ADD COLUMN version TEXT",
        "ALTER TABLE approvals ADD COLUMN used_by TEXT",
        "ALTER TABLE approvals ADD COLUMN used_at TEXT",
    ),
    # 5: history stays fast at 100,000 records (bench/ledger.py): each filter agents use has an index in the
    # order lists are read (newest first), and the unfinished records one small partial index, so neither a
    # filtered history nor the check every reader makes for orphaned deployments scans the table
    (
        "DROP INDEX deployments_by_target",
        "DROP INDEX deployments_by_status",
        f"CREATE INDEX deployments_by_target ON deployments (service, environment, {_ORDER})",
        f"CREATE INDEX deployments_by_service ON deployments (service, {_ORDER})",
        f"CREATE INDEX deployments_by_environment ON deployments (environment, {_ORDER})",
        f"CREATE INDEX deployments_by_status ON deployments (status, {_ORDER})",
        f"CREATE INDEX deployments_by_environment_status ON deployments (environment, status, {_ORDER})",
        f"CREATE INDEX deployments_by_service_status ON deployments (service, status, {_ORDER})",
        f"CREATE INDEX deployments_unfinished ON deployments ({_ORDER}) WHERE status IN ({UNFINISHED_SQL})",
        "ANALYZE",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing steps up to ``target``; returns the version reached.

    The connection must be in autocommit mode (isolation_level None) so these explicit transactions are the only
    ones. The version is read again inside each transaction because another process may have migrated meanwhile.
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)
            if current >= target:
                conn.execute("ROLLBACK")
                return current
            for statement in MIGRATIONS[current]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {current + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
