"""The PostgreSQL schema as a list of steps; the table ``deploy_mcp_schema`` says how many a database has had.

As for SQLite (migrations.py), a released step is never edited. Every step runs in one transaction together with the
version bump, under a transaction-scoped advisory lock, so replicas starting at once against a new database apply
each step exactly once and a crash leaves the old version intact.

The indexes serve what the tools ask, newest first (``deployed_at DESC, id_day DESC, id_number DESC``): history
of everything, of one service, of one environment, of one service in one environment, by status alone or with a
service or an environment; the records
still unfinished (a partial index, tiny however long the history grows); the last good one of a target.

Records and event data are ``json``, not ``jsonb``: they are read whole far more often than searched (only
``last_good`` looks inside, at a few rows), and ``json`` hands back the stored text with no conversion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg import Connection

MIGRATION_LOCK = 0x6465706C6F79  # "deploy": the advisory lock key that serialises schema steps across replicas
EVENTS_CHANNEL = "deploy_mcp_events"
_NEWEST = "deployed_at DESC, id_day DESC, id_number DESC"

STEPS: tuple[tuple[str, ...], ...] = (
    # 1: records, their event logs, locks and approvals
    (
        """
        CREATE TABLE deployments (
            id          text PRIMARY KEY,
            id_day      date NOT NULL,
            id_number   integer NOT NULL CHECK (id_number >= 1),
            service     text NOT NULL,
            environment text NOT NULL,
            version     text NOT NULL,
            status      text NOT NULL,
            deployed_at timestamptz NOT NULL,
            record      json NOT NULL,
            UNIQUE (id_day, id_number)
        )
        """,
        f"CREATE INDEX deployments_newest ON deployments ({_NEWEST})",
        f"CREATE INDEX deployments_by_target ON deployments (service, environment, {_NEWEST})",
        f"CREATE INDEX deployments_by_service ON deployments (service, {_NEWEST})",
        f"CREATE INDEX deployments_by_environment ON deployments (environment, {_NEWEST})",
        f"CREATE INDEX deployments_by_status ON deployments (status, {_NEWEST})",
        f"CREATE INDEX deployments_by_environment_status ON deployments (environment, status, {_NEWEST})",
        f"CREATE INDEX deployments_by_service_status ON deployments (service, status, {_NEWEST})",
        f"""CREATE INDEX deployments_unfinished ON deployments ({_NEWEST})
            WHERE status IN ('pending', 'in_progress', 'paused', 'interrupted')""",
        """
        CREATE TABLE events (
            deployment_id text NOT NULL REFERENCES deployments (id),
            seq           integer NOT NULL CHECK (seq >= 1),
            at            timestamptz NOT NULL,
            kind          text NOT NULL,
            message       text NOT NULL,
            data          json NOT NULL,
            PRIMARY KEY (deployment_id, seq)
        )
        """,
        """
        CREATE FUNCTION deploy_mcp_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$
        """,
        """
        CREATE TRIGGER events_are_append_only BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION deploy_mcp_events_append_only()
        """,
        """
        CREATE TABLE locks (
            service       text NOT NULL,
            environment   text NOT NULL,
            holder        text NOT NULL,
            deployment_id text,
            acquired_at   timestamptz NOT NULL,
            expires_at    timestamptz NOT NULL,
            PRIMARY KEY (service, environment)
        )
        """,
        """
        CREATE TABLE approvals (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            change_id   text NOT NULL,
            service     text NOT NULL,
            environment text NOT NULL,
            approved_by text NOT NULL,
            approved_at timestamptz NOT NULL,
            expires_at  timestamptz,
            version     text,
            used_by     text,
            used_at     timestamptz
        )
        """,
        "CREATE INDEX approvals_lookup ON approvals (change_id, service, environment, id DESC)",
    ),
)

SCHEMA_VERSION = len(STEPS)


def current_version(conn: Connection) -> int:
    """The version of the database; 0 when deploy-mcp never wrote to it."""
    exists = conn.execute("SELECT to_regclass('deploy_mcp_schema') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT version FROM deploy_mcp_schema").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing steps up to ``target`` on an autocommit connection; returns the version reached (which
    may be higher than ``target``: the caller refuses a database a newer deploy-mcp wrote)."""
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS deploy_mcp_schema (version integer NOT NULL)")
            current = current_version(conn)
            if current >= target:
                return current
            for statement in STEPS[current]:
                conn.execute(statement)
            conn.execute("DELETE FROM deploy_mcp_schema")
            conn.execute("INSERT INTO deploy_mcp_schema (version) VALUES (%s)", (current + 1,))
