"""Our own rules, for what squawk cannot see: how a migration is undone, and whether it can be.

squawk reads one file at a time and judges locks and compatibility. Whether a rollback is possible is a
question about the pair: is there a down step, does it do anything, does running it lose data, and does the up
step leave a schema the previous version can still run against. The last one decides whether the release is
roll-forward-only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy_mcp.migrations.advice import REFERENCE
from deploy_mcp.migrations.layout import Layout, Migration, Section
from deploy_mcp.migrations.models import Finding
from deploy_mcp.migrations.sql import Statement, split_top_level, statements, unquote

MISSING_DOWN = "missing-down-migration"
EMPTY_DOWN = "empty-down-migration"
DESTRUCTIVE_DOWN = "destructive-down-migration"
IRREVERSIBLE = "irreversible-migration"

_FIX_FORWARD = (
    'declare the release `migrations_irreversible = true` under [services.NAME.versions."X.Y.Z"] in deploy.toml, '
    "so its deployment is marked roll-forward-only and rollback refuses: the team fixes forward"
)
_WRITE_DOWN = (
    "Write a down step that undoes the up step without losing data (DROP INDEX CONCURRENTLY for a new index, "
    "DROP CONSTRAINT for a new constraint, leave new columns and tables in place). If the change cannot be "
    f"undone, {_FIX_FORWARD}."
)
_LOSSLESS_DOWN = (
    "Keep the rollback lossless: on the way down leave the new table or column in place (the previous version "
    "ignores it) and remove it in a later release, after a backup; if it must go now, copy its data out first "
    "(CREATE TABLE ... AS SELECT) and say so in the release notes."
)

_NAME = r'(?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))*'
_IF_EXISTS = r"(?:IF\s+EXISTS\s+)?"
_DROP_OBJECT = re.compile(
    rf"^DROP\s+(?P<kind>TABLE|SCHEMA|DATABASE)\s+{_IF_EXISTS}(?P<names>.+?)(?:\s+(?:CASCADE|RESTRICT))?$", re.I
)
_DROP_CASCADE = re.compile(
    rf"^DROP\s+(?P<kind>TYPE|DOMAIN|EXTENSION)\s+{_IF_EXISTS}(?P<names>.+?)\s+CASCADE$", re.I
)  # PostgreSQL drops every column of that type with it and says so only in a NOTICE; without CASCADE it refuses
_ALTER_TYPE = re.compile(rf"^ALTER\s+TYPE\s+(?P<type>{_NAME})\s+(?P<actions>.+)$", re.I)
_DROP_ATTRIBUTE_CASCADE = re.compile(rf"^DROP\s+ATTRIBUTE\s+{_IF_EXISTS}(?P<attribute>{_NAME})\s+CASCADE$", re.I)
_TRUNCATE = re.compile(rf"^TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?(?P<names>{_NAME}(?:\s*,\s*{_NAME})*)", re.I)
_DELETE_ALL = re.compile(rf"^DELETE\s+FROM\s+(?:ONLY\s+)?(?P<table>{_NAME})(?P<rest>.*)$", re.I)
_ALTER_TABLE = re.compile(rf"^ALTER\s+TABLE\s+{_IF_EXISTS}(?:ONLY\s+)?(?P<table>{_NAME})\s+(?P<actions>.+)$", re.I)
_DROP_COLUMN = re.compile(rf"^DROP\s+(?!CONSTRAINT\b)(?:COLUMN\s+)?{_IF_EXISTS}(?P<column>{_NAME})", re.I)
_RENAME_TABLE = re.compile(rf"^RENAME\s+TO\s+(?P<new>{_NAME})", re.I)
_RENAME_COLUMN = re.compile(rf"^RENAME\s+(?!CONSTRAINT\b)(?:COLUMN\s+)?(?P<old>{_NAME})\s+TO\s+(?P<new>{_NAME})", re.I)
_CHANGE_TYPE = re.compile(rf"^ALTER\s+(?:COLUMN\s+)?(?P<column>{_NAME})\s+(?:SET\s+DATA\s+)?TYPE\b", re.I)


@dataclass(frozen=True)
class Operation:
    """A statement that loses data or changes a name or type the previous version relies on."""

    line: int
    kind: str  # drop-table, drop-column, drop-cascade, truncate, delete-all, drop-schema, drop-database, rename-*,
    # change-type
    what: str  # "table orders", "column orders.status", ...
    detail: str = ""

    @property
    def loses_data(self) -> bool:
        return self.kind in {
            "drop-table",
            "drop-column",
            "drop-cascade",
            "truncate",
            "delete-all",
            "drop-schema",
            "drop-database",
        }


def operations(sql: str) -> list[Operation]:
    """The data-losing and contract-breaking operations in ``sql``, in order."""
    found: list[Operation] = []
    for statement in statements(sql):
        found.extend(_classify(statement))
    return found


def _classify(statement: Statement) -> list[Operation]:
    text, line = statement.text, statement.line
    if match := _DROP_OBJECT.match(text):
        kind = match.group("kind").lower()
        names = [unquote(n.strip()) for n in split_top_level(match.group("names"))]
        return [Operation(line, f"drop-{kind}", f"{kind} {name}") for name in names]
    if match := _DROP_CASCADE.match(text):
        kind = match.group("kind").lower()
        names = [unquote(n.strip()) for n in split_top_level(match.group("names"))]
        return [Operation(line, "drop-cascade", f"{kind} {name}") for name in names]
    if (match := _ALTER_TYPE.match(text)) and (
        attributes := [
            drop.group("attribute")
            for action in split_top_level(match.group("actions"))
            if (drop := _DROP_ATTRIBUTE_CASCADE.match(action.strip()))
        ]
    ):
        kind_of = unquote(match.group("type"))
        return [Operation(line, "drop-cascade", f"attribute {kind_of}.{unquote(name)}") for name in attributes]
    if match := _TRUNCATE.match(text):
        names = [unquote(n.strip()) for n in match.group("names").split(",")]
        return [Operation(line, "truncate", f"table {name}") for name in names]
    if (match := _DELETE_ALL.match(text)) and not re.search(r"\bWHERE\b", match.group("rest"), re.I):
        return [Operation(line, "delete-all", f"table {unquote(match.group('table'))}")]
    match = _ALTER_TABLE.match(text)
    if not match:
        return []
    table = unquote(match.group("table"))
    found: list[Operation] = []
    for action in split_top_level(match.group("actions")):
        if drop := _DROP_COLUMN.match(action):
            found.append(Operation(line, "drop-column", f"column {table}.{unquote(drop.group('column'))}"))
        elif rename := _RENAME_TABLE.match(action):
            found.append(Operation(line, "rename-table", f"table {table}", f"to {unquote(rename.group('new'))}"))
        elif rename := _RENAME_COLUMN.match(action):
            old, new = unquote(rename.group("old")), unquote(rename.group("new"))
            found.append(Operation(line, "rename-column", f"column {table}.{old}", f"to {new}"))
        elif change := _CHANGE_TYPE.match(action):
            found.append(Operation(line, "change-type", f"column {table}.{unquote(change.group('column'))}"))
    return found


_EFFECT = {  # kind: (what the statement does, what that means for the version still running)
    "drop-table": ("drops {what}", "its rows are gone and the previous version still uses it"),
    "drop-column": ("drops {what}", "its data is gone and the previous version still reads it"),
    "drop-cascade": (
        "drops {what} with CASCADE",
        "PostgreSQL also drops every column that depends on it, and their values, with only a NOTICE",
    ),
    "drop-schema": ("drops {what} and everything in it", ""),
    "drop-database": ("drops {what}", ""),
    "truncate": ("empties {what}", ""),
    "delete-all": ("deletes every row of {what}", ""),
    "rename-table": ("renames {what} {detail}", "the previous version still uses the old name"),
    "rename-column": ("renames {what} {detail}", "the previous version still uses the old name"),
    "change-type": ("changes the type of {what}", "the previous version may not read or write the new type"),
}
_UP_ADVICE = {
    "rename": "Expand / contract instead: add the new name, write both, backfill, switch reads, drop the old one "
    "in a later release.",
    "change-type": "Expand / contract instead: add a column of the new type, write both, backfill in batches of "
    "about 5,000 rows, switch reads, drop the old column in a later release.",
    "loss": "Ship the removal as the contract step: first release code that no longer uses it, then drop it in a "
    "later deploy that nobody would roll back past, after a backup.",
}


def check(migration: Migration, show: Callable[[Path], str]) -> list[Finding]:
    """Our findings for one migration: its down step (missing, empty, destructive) and irreversible up step."""
    findings: list[Finding] = []

    def add(section_file: Path, line: int, rule: str, severity: str, message: str, safe: str) -> None:
        findings.append(
            Finding(
                file=show(section_file),
                line=max(1, line),
                rule=rule,
                severity=severity,
                message=message,
                safe_alternative=safe,
                source="deploy-mcp",
            )
        )

    up, down = migration.up, migration.down
    if up is not None:
        for op in operations(up.text):
            family = "rename" if op.kind.startswith("rename") else op.kind if op.kind == "change-type" else "loss"
            action, consequence = _EFFECT[op.kind]
            effect = action.format(what=op.what, detail=op.detail) + (f": {consequence}" if consequence else "")
            why = "no rollback brings the data back" if op.loses_data else "rolling the application back breaks it"
            add(
                up.file,
                op.line,
                IRREVERSIBLE,
                "warning",
                f"{effect}; {why}, so this release is roll-forward-only",
                f"{_UP_ADVICE[family]} If it must ship as is, {_FIX_FORWARD}.",
            )
        if down is None and migration.expected_down is not None:
            # Flyway's undo files are a paid feature most teams never use: forward-only is its norm, so the
            # missing undo is worth knowing, not a risk to hold against the release.
            flyway = migration.layout is Layout.FLYWAY
            add(
                up.file,
                up.marker_line,
                MISSING_DOWN,
                "info" if flyway else "warning",
                f"{migration.name} has no down step ({migration.expected_down} not found): the migration tool "
                "cannot reverse this schema change" + ("; Flyway is forward-only without undo files" if flyway else ""),
                _WRITE_DOWN,
            )
    if down is not None:
        _check_down(migration, down, add)
    return findings


def _check_down(migration: Migration, down: Section, add: Callable[..., None]) -> None:
    if not statements(down.text):
        add(
            down.file,
            down.marker_line,
            EMPTY_DOWN,
            "warning",
            f"the down step of {migration.name} has no statements: rolling the schema back would do nothing and "
            "still report success",
            _WRITE_DOWN,
        )
        return
    for op in operations(down.text):
        if op.loses_data:
            effect = _EFFECT[op.kind][0].format(what=op.what, detail=op.detail)
            add(
                down.file,
                op.line,
                DESTRUCTIVE_DOWN,
                "warning",
                f"the down step {effect}: rolling back deletes whatever was written there since the deploy",
                _LOSSLESS_DOWN,
            )


def layout_note(migrations: list[Migration]) -> str | None:
    """A note when some files follow no up / down layout, so their missing down steps could not be judged."""
    plain = [m.name for m in migrations if m.layout is Layout.PLAIN]
    if not plain:
        return None
    shown = ", ".join(plain[:3]) + (f" and {len(plain) - 3} more" if len(plain) > 3 else "")
    return (
        f"{shown}: no up / down layout recognised (name.up.sql + name.down.sql, folder/up.sql + down.sql, "
        "-- +migrate / -- +goose / -- migrate:up markers, Flyway V__ + U__), so whether they can be undone was "
        f"not checked; see {REFERENCE}"
    )
