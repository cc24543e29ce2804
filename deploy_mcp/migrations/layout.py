"""Finding migrations on disk and pairing each up step with its down step, in the layouts tools actually use.

- ``NNN_name.up.sql`` beside ``NNN_name.down.sql`` (golang-migrate and friends);
- a folder per migration holding ``up.sql`` and ``down.sql`` (diesel, and hand-rolled ``migrations/NNN/``);
- one file with ``-- +migrate Up`` / ``-- +migrate Down`` (sql-migrate), ``-- +goose Up`` / ``-- +goose Down``
  (goose) or ``-- migrate:up`` / ``-- migrate:down`` (dbmate);
- ``V1__name.sql`` with its undo ``U1__name.sql`` (Flyway).

Anything else is a plain file: it is linted, but nobody can say where its down step would be, so the missing
down step is not reported for it. A section of a single-file migration is held as the whole file with the
other section's lines blanked, so every line number a linter reports is the file's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from deploy_mcp.core.regular_files import read_regular_text

_MARKER = re.compile(
    r"^[ \t]*--[ \t]*(?:\+(?P<tool>migrate|goose)[ \t]+(?P<word>up|down)\b|migrate:(?P<dbmate>up|down)\b)",
    re.IGNORECASE | re.MULTILINE,
)
_FLYWAY = re.compile(r"^(?P<kind>[VU])(?P<rest>[0-9][^_]*__.+\.sql)$", re.IGNORECASE)
_SKIPPED_DIRS = {"node_modules", "__pycache__", "venv", ".venv"}


class Layout(StrEnum):
    UP_DOWN_FILES = "name.up.sql + name.down.sql"
    FOLDER = "folder/up.sql + folder/down.sql"
    SQL_MIGRATE = "-- +migrate Up / Down"
    GOOSE = "-- +goose Up / Down"
    DBMATE = "-- migrate:up / down"
    FLYWAY = "V__ + U__ (Flyway undo)"
    PLAIN = "plain"


@dataclass(frozen=True)
class Section:
    """One step of a migration: the file it lives in, and its text with every other line blanked."""

    file: Path
    text: str
    marker_line: int = 1  # where the step starts (its marker in a single-file migration)
    whole_file: bool = True


@dataclass(frozen=True)
class Migration:
    name: str
    layout: Layout
    up: Section | None
    down: Section | None
    expected_down: str | None  # where the down step should be, when the layout says; None for plain files


MAX_FILE_BYTES = 5 * 1024 * 1024
"""A migration larger than this is data, not schema; squawk's memory grows with its input (200 MB took 5.7 GB)."""
MAX_TOTAL_BYTES = 50 * 1024 * 1024
"""All the files of one lint together."""


def sql_files(path: Path) -> list[Path]:
    """Every .sql file at or under ``path``, in name order (the order migration tools apply them)."""
    if path.is_file():
        return [path]
    found = []
    for file in sorted(path.rglob("*.sql")):
        relative = file.relative_to(path).parts[:-1]
        if any(part.startswith(".") or part in _SKIPPED_DIRS for part in relative):
            continue
        if file.is_file():
            found.append(file)
    return found


def discover(path: Path) -> list[Migration]:
    """The migrations at ``path`` (a file or a folder), each up step paired with its down step when it has one."""
    claimed: set[Path] = set()
    migrations: list[Migration] = []
    for file in sql_files(path):
        if file in claimed:
            continue
        migration = _classify(file)
        for section in (migration.up, migration.down):
            if section is not None:
                claimed.add(section.file)
        migrations.append(migration)
    return migrations


def _classify(file: Path) -> Migration:
    """Which layout ``file`` belongs to; a down step found first (``down.sql`` sorts before ``up.sql``) pulls in
    its up step, so each pair is built once whichever file comes first."""
    name = file.name
    lower = name.lower()
    text = _read(file)
    if lower.endswith(".up.sql"):
        down = file.with_name(name[: -len(".up.sql")] + ".down.sql")
        return _pair(file, text, down, Layout.UP_DOWN_FILES, name[: -len(".up.sql")])
    if lower.endswith(".down.sql"):
        up = file.with_name(name[: -len(".down.sql")] + ".up.sql")
        if up.is_file():
            return _pair(up, _read(up), file, Layout.UP_DOWN_FILES, name[: -len(".down.sql")])
        return Migration(name, Layout.UP_DOWN_FILES, None, Section(file, text), None)
    if lower == "up.sql":
        return _pair(file, text, file.with_name("down.sql"), Layout.FOLDER, file.parent.name)
    if lower == "down.sql":
        up = file.with_name("up.sql")
        if up.is_file():
            return _pair(up, _read(up), file, Layout.FOLDER, file.parent.name)
        return Migration(file.parent.name, Layout.FOLDER, None, Section(file, text), None)
    if flyway := _FLYWAY.match(name):
        rest = flyway.group("rest")
        if flyway.group("kind").upper() == "V":
            return _pair(file, text, file.with_name("U" + rest), Layout.FLYWAY, name)
        versioned = file.with_name("V" + rest)
        if versioned.is_file():
            return _pair(versioned, _read(versioned), file, Layout.FLYWAY, versioned.name)
        return Migration(name, Layout.FLYWAY, None, Section(file, text), None)
    if _MARKER.search(text):
        return _single_file(file, text)
    return Migration(name, Layout.PLAIN, Section(file, text), None, None)


def _pair(up: Path, up_text: str, down: Path, layout: Layout, name: str) -> Migration:
    down_section = Section(down, _read(down)) if down.is_file() else None
    return Migration(name, layout, Section(up, up_text), down_section, down.name)


def _single_file(file: Path, text: str) -> Migration:
    """Split one file at its Up / Down markers; lines before the first marker belong to neither step."""
    lines = text.splitlines(keepends=True)
    owner: list[str | None] = []
    current: str | None = None
    starts: dict[str, int] = {}
    layout = Layout.SQL_MIGRATE
    for number, line in enumerate(lines, start=1):
        marker = _MARKER.match(line)
        if marker:
            current = (marker.group("word") or marker.group("dbmate")).lower()
            starts.setdefault(current, number)
            tool = (marker.group("tool") or "").lower()
            layout = (
                Layout.GOOSE if tool == "goose" else Layout.DBMATE if marker.group("dbmate") else Layout.SQL_MIGRATE
            )
            owner.append(None)
        else:
            owner.append(current)

    def section(step: str) -> Section | None:
        if step not in starts:
            return None
        kept = [
            line if who == step else ("\n" if line.endswith("\n") else "")
            for line, who in zip(lines, owner, strict=True)
        ]
        return Section(file, "".join(kept), marker_line=starts[step], whole_file=False)

    expected = {
        Layout.SQL_MIGRATE: "a `-- +migrate Down` section",
        Layout.GOOSE: "a `-- +goose Down` section",
        Layout.DBMATE: "a `-- migrate:down` section",
    }[layout]
    return Migration(file.name, layout, section("up"), section("down"), expected)


def _read(file: Path) -> str:
    return read_regular_text(file, MAX_FILE_BYTES, errors="replace")
