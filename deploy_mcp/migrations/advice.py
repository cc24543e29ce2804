"""What to do instead, for each squawk rule: the severity we give it and the safe alternative in our own words.

squawk says what is risky; an agent also needs the replacement it can write. Severities are about a live
rollout: ``error`` blocks traffic or breaks the version still running, ``warning`` makes a failure worse or a
retry harder, ``info`` is a better habit with no danger to this rollout.
"""

from __future__ import annotations

from deploy_mcp.migrations.models import Severity

REFERENCE = "deploy://references/migration-safety"
_FIX_FORWARD = (
    " If it must ship as is, declare the release `migrations_irreversible = true` under"
    ' [services.NAME.versions."X.Y.Z"] so rollback refuses and the team fixes forward.'
)

SQUAWK_ADVICE: dict[str, tuple[Severity, str]] = {
    "adding-field-with-default": (
        "error",
        "Add the column without a default (a constant default is fine: no rewrite on PostgreSQL 11+), backfill "
        "existing rows in batches of about 5,000, then set the default: ADD COLUMN c uuid; UPDATE ... in "
        "batches; ALTER COLUMN c SET DEFAULT gen_random_uuid().",
    ),
    "adding-required-field": (
        "error",
        "Add the column nullable or with a constant default, so the running version's INSERTs keep working; "
        "backfill, then enforce NOT NULL later with a CHECK (c IS NOT NULL) NOT VALID constraint.",
    ),
    "adding-not-nullable-field": (
        "error",
        "ADD CONSTRAINT c_not_null CHECK (c IS NOT NULL) NOT VALID; then, in a second migration, VALIDATE "
        "CONSTRAINT c_not_null, SET NOT NULL (PostgreSQL 12+ skips the scan after a validated check) and DROP "
        "CONSTRAINT c_not_null. Keep those three together: squawk sees the validated check only in the same file.",
    ),
    "constraint-missing-not-valid": (
        "error",
        "Add the constraint with NOT VALID (a brief lock, no scan), then ALTER TABLE ... VALIDATE CONSTRAINT ... "
        "in a separate transaction, which scans without blocking writes.",
    ),
    "adding-foreign-key-constraint": (
        "error",
        "ADD CONSTRAINT ... FOREIGN KEY (...) REFERENCES ... NOT VALID; then, in its own transaction, "
        "VALIDATE CONSTRAINT ... (checks existing rows without blocking writes on either table).",
    ),
    "disallowed-unique-constraint": (
        "error",
        "CREATE UNIQUE INDEX CONCURRENTLY t_c_key ON t (c); then ALTER TABLE t ADD CONSTRAINT t_c_key UNIQUE "
        "USING INDEX t_c_key.",
    ),
    "adding-serial-primary-key-field": (
        "error",
        "Build the unique index first with CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... PRIMARY KEY "
        "USING INDEX ....",
    ),
    "changing-column-type": (
        "error",
        "Expand / contract: add a column of the new type, write both, backfill in batches of about 5,000 rows, "
        "switch reads, and drop the old column in a later release." + _FIX_FORWARD,
    ),
    "renaming-column": (
        "error",
        "Expand / contract: add the column under its new name, write both, backfill, switch reads, and drop the "
        "old column in a later release." + _FIX_FORWARD,
    ),
    "renaming-table": (
        "error",
        "Expand / contract: create the table under its new name (or a view), write both, backfill, switch "
        "reads, and drop the old table in a later release." + _FIX_FORWARD,
    ),
    "ban-drop-column": (
        "error",
        "Stop reading and writing the column first and deploy that; drop it in a later release that nobody would "
        "roll back past, after a backup." + _FIX_FORWARD,
    ),
    "ban-drop-table": (
        "error",
        "Stop using the table first and deploy that; drop it in a later release that nobody would roll back "
        "past, after a backup." + _FIX_FORWARD,
    ),
    "ban-drop-database": ("error", "Never drop a database in a migration; retire it by hand, after a backup."),
    "ban-truncate-cascade": (
        "error",
        "Truncate the tables you mean by name, after checking what references them; CASCADE empties tables "
        "nobody listed.",
    ),
    "require-concurrent-index-creation": (
        "error",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ... outside a transaction block; if it fails it leaves an "
        "INVALID index: drop it and retry.",
    ),
    "require-concurrent-index-deletion": ("error", "DROP INDEX CONCURRENTLY IF EXISTS ... outside a transaction."),
    "ban-concurrent-index-creation-in-transaction": (
        "error",
        "Run CREATE INDEX CONCURRENTLY outside a transaction: put it in a migration of its own marked "
        "non-transactional (-- +goose NO TRANSACTION, -- +migrate Up notransaction, -- migrate:up "
        "transaction:false).",
    ),
    "require-lock-timeout": (
        "warning",
        "Start the migration with SET lock_timeout = '3s': a blocked DDL statement then fails fast instead of "
        "queueing every query behind it; retry it later.",
    ),
    "require-statement-timeout": (
        "warning",
        "Start the migration with SET statement_timeout (for example '15min', or what staging measured) so a "
        "runaway statement cannot hold its locks indefinitely.",
    ),
    "prefer-robust-stmts": (
        "warning",
        "Make each statement re-runnable (IF NOT EXISTS / IF EXISTS) or run the migration in one transaction, "
        "so a migration that failed half way can simply be run again.",
    ),
    "transaction-nesting": (
        "warning",
        "Remove the BEGIN / COMMIT: the migration tool already runs the migration in a transaction.",
    ),
    "ban-uncommitted-transaction": ("warning", "End the transaction with COMMIT in the same migration."),
    "ban-drop-not-null": (
        "warning",
        "Make sure every version still running handles NULL in this column before dropping NOT NULL, in an "
        "earlier release.",
    ),
    "ban-create-domain-with-constraint": (
        "warning",
        "Put the check on the table columns instead: ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE.",
    ),
    "ban-alter-domain-with-add-constraint": (
        "warning",
        "Put the check on the table columns instead: ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE.",
    ),
    "prefer-bigint-over-int": ("info", "Use bigint for ids and counters: int runs out, and widening it rewrites."),
    "prefer-bigint-over-smallint": ("info", "Use bigint: widening a smallint later rewrites the table."),
    "prefer-identity": ("info", "Use bigint GENERATED BY DEFAULT AS IDENTITY instead of serial."),
    "prefer-text-field": (
        "info",
        "Use text with a CHECK (char_length(c) <= N) constraint: changing varchar(N) later takes a lock.",
    ),
    "prefer-timestamptz": ("info", "Use timestamptz: timestamp without time zone loses the offset."),
    "ban-char-field": ("info", "Use text (or varchar): char(n) pads with spaces."),
    "syntax-error": (
        "error",
        "Fix the SQL: squawk could not parse this statement, so its checks may have missed what follows it.",
    ),
}


def squawk_advice(rule: str, squawk_help: str | None) -> tuple[Severity, str]:
    """Our severity and safe alternative for a squawk rule; squawk's own hint for a rule we do not know yet."""
    if rule in SQUAWK_ADVICE:
        return SQUAWK_ADVICE[rule]
    hint = f"{squawk_help.rstrip('.')}. " if squawk_help else ""
    return "warning", f"{hint}See https://squawkhq.com/docs/{rule} and {REFERENCE}."
