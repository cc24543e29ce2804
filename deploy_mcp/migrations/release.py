"""Which migrations a release brings, and whether one of them makes the release roll-forward-only.

A migrations folder is history: every release carries all of it, but only the files added since the last
deployment that succeeded will run. Judging the whole folder would call every release after one destructive
migration irreversible (a warning that always fires is one nobody reads) and could not say which release crossed
the line. So each deployment records the files it carried with a hash of their content (``changes.migrations``),
and a release's new migrations are the files present now that the last succeeded deployment of the same service
and environment did not carry, or carried with other content: destructive SQL appended to a file that already
shipped (a declarative schema.sql, an edited migration) is as new as a new file. A recorded file without a hash
(a record written before hashes were recorded) counts as changed. With no such deployment (a first deployment,
or one recorded before files were recorded) every file counts as new: nothing says which of them the database
already has, and wrongly calling a destructive migration old would let a rollback cross it, which loses data,
where the opposite mistake only costs a declaration.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_mcp.migrations.layout import sql_files
from deploy_mcp.migrations.lint import lint
from deploy_mcp.migrations.models import Finding, MigrationReport
from deploy_mcp.migrations.rules import IRREVERSIBLE

if TYPE_CHECKING:
    from deploy_mcp.config.schema import ReleaseOverride
    from deploy_mcp.core.records import DeploymentRecord
    from deploy_mcp.ledger import Ledger

BASELINE_SEARCH = 200
"""How many succeeded records of one service and environment to look through for the last real release."""

HASH_HEX = 16
"""Hex digits of the SHA-256 kept per file: 64 bits tell an edit apart, and records stay short to read."""

_ENTRY = re.compile(rf"^(?P<file>.+) sha256:(?P<digest>[0-9a-f]{{{HASH_HEX}}})$")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseMigrations:
    """The migration files of one prospective release, which of them are new, and what the lint found in those."""

    files: list[str]
    new: list[str]
    baseline: DeploymentRecord | None
    report: MigrationReport
    new_findings: list[Finding] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    """``files`` as the record keeps them, each with its content hash (see `migration_entry`)."""
    changed: list[str] = field(default_factory=list)
    """The new files the baseline carried under the same name with other (or unrecorded) content."""

    @property
    def irreversible(self) -> list[Finding]:
        """The new files' irreversible-migration findings: each one makes the release roll-forward-only."""
        return [f for f in self.new_findings if f.rule == IRREVERSIBLE]

    @property
    def old_findings(self) -> int:
        """Findings in files an earlier release already shipped: history, not this release's risk."""
        return len(self.report.findings) - len(self.new_findings)

    def describe_new(self) -> str:
        """Which files are new and against what, in one clause: "2 of 4 file(s) new since deploy-... (1.0.0): a, b"."""
        if self.baseline is None:
            since = "new (no earlier succeeded deployment here, so every file counts as new)"
        else:
            since = f"new since {self.baseline.id} ({self.baseline.version})"
        if not self.new:
            return f"no migration files {since}" if self.files else "no migration files"
        edited = set(self.changed)
        named = [f"{file} (changed)" if file in edited else file for file in self.new[:5]]
        shown = ", ".join(named) + (f" and {len(self.new) - 5} more" if len(self.new) > 5 else "")
        return f"{len(self.new)} of {len(self.files)} file(s) {since}: {shown}"


def migration_files(folder: str | Path, root: Path) -> list[str]:
    """The .sql files under ``folder`` (relative to ``root``) as the lint names them, each with its content hash;
    [] if it does not exist.

    What a deployment records when the lint could not run; otherwise the lint's own list is recorded."""
    base = root.resolve()
    target = Path(folder)
    target = (target if target.is_absolute() else base / target).resolve()
    if not target.exists():
        return []
    return migration_entries([_relative(file, base) for file in sql_files(target)], base)


def migration_entry(file: str, root: Path) -> str:
    """``file`` as a record keeps it: ``"db/001_init.up.sql sha256:<first 16 hex>"``; the bare name when the file
    cannot be read, which the next release then counts as changed (the safe side).

    ``file`` is relative to ``root`` (or absolute), as the lint names it."""
    path = Path(file)
    try:
        content = (path if path.is_absolute() else root / path).read_bytes()
    except OSError:
        return file
    return f"{file} sha256:{hashlib.sha256(content).hexdigest()[:HASH_HEX]}"


def migration_entries(files: list[str], root: Path) -> list[str]:
    """`migration_entry` of each file, in order."""
    base = root.resolve()
    return [migration_entry(file, base) for file in files]


def parse_entry(entry: str) -> tuple[str, str | None]:
    """A recorded entry's file and hash; None for the hash of an entry recorded without one."""
    matched = _ENTRY.match(entry)
    return (matched["file"], matched["digest"]) if matched else (entry, None)


def last_release(ledger: Ledger, service: str, environment: str) -> DeploymentRecord | None:
    """The newest succeeded deployment of the service and environment that shipped a release.

    A rollback's record is skipped: it carried no migrations of its own, and the release it undid is marked
    rolled back, so the release before that one is what the database was last moved forward to.
    """
    from deploy_mcp.core.records import Status

    for record in ledger.list(service=service, environment=environment, status=Status.SUCCEEDED, limit=BASELINE_SEARCH):
        if record.rollback_of is None:
            return record
    return None


def release_migrations(
    folder: str | Path, root: Path, ledger: Ledger, service: str, environment: str
) -> ReleaseMigrations:
    """Lint ``folder`` and tell this release's new files and their findings apart from history.

    A file is new when the baseline did not carry it, or carried it with another hash or none.
    Raises the lint's UserError (a missing or empty folder, squawk failing), and UserError for a file or squawk
    that cannot be read or started, for the caller to report.
    """
    from deploy_mcp.errors import UserError

    try:
        report = lint(folder, root=root)
    except OSError as exc:
        raise UserError(f"migrations: cannot lint {folder!s}: {exc}") from exc
    files = report.files_checked
    recorded = migration_entries(files, root)
    baseline = last_release(ledger, service, environment)
    shipped = dict(parse_entry(entry) for entry in baseline.changes.migrations) if baseline is not None else {}
    new: list[str] = []
    changed: list[str] = []
    for file, entry in zip(files, recorded, strict=True):
        if file not in shipped:
            new.append(file)
        elif shipped[file] is None or shipped[file] != parse_entry(entry)[1]:
            new.append(file)
            changed.append(file)
    fresh = set(new)
    return ReleaseMigrations(
        files=files,
        new=new,
        baseline=baseline,
        report=report,
        new_findings=[f for f in report.findings if f.file in fresh],
        recorded=recorded,
        changed=changed,
    )


def _relative(file: Path, base: Path) -> str:
    try:
        return file.relative_to(base).as_posix() or "."
    except ValueError:
        return file.as_posix()


@dataclass(frozen=True)
class DeploymentMigrations:
    """What a starting deployment records about its migrations: the files (with their hashes, for
    ``changes.migrations``), the verdict, and the event saying why."""

    files: list[str]
    roll_forward_only: bool
    message: str
    data: dict[str, object]


def for_deployment(
    folder: str | Path,
    root: Path,
    ledger: Ledger,
    service: str,
    version: str,
    environment: str,
    *,
    release: ReleaseOverride | None,
) -> DeploymentMigrations:
    """The runner's view at start: a new irreversible migration makes the deployment roll-forward-only whether or
    not the release declared it; a declared release stays roll-forward-only whatever the lint finds. A lint that
    cannot run never stops a deployment (preflight is the gate): the declaration decides alone, and the event
    says so. An explicit ``migrations_irreversible = false`` does not clear the mark here (rollback reads the
    declaration and lets it through), but the event names it.

    "Cannot run" includes a crash (an unreadable file, squawk failing to start, a bug in a rule): any Exception
    takes the not-linted path, logged here; only BaseException (a Ctrl-C, a shutdown) escapes."""
    from deploy_mcp.errors import UserError

    declared = bool(release and release.migrations_irreversible)
    overruled = release is not None and release.declared_reversible
    key = f'services.{service}.versions."{version}".migrations_irreversible'
    try:
        found = release_migrations(folder, root, ledger, service, environment)
    except Exception as exc:
        problem = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        crashed = not isinstance(exc, UserError)  # a user's mistake needs no traceback in the log, a crash does
        logger.warning("migrations of %s in %s not linted: %s", service, environment, problem, exc_info=crashed)
        try:
            files = migration_files(folder, root)
        except Exception:  # the folder itself is unreadable: record nothing, so the next release judges every file
            logger.warning("listing the migrations of %s in %s failed", service, environment, exc_info=True)
            files = []
        return DeploymentMigrations(
            files=files,
            roll_forward_only=declared,
            message=f"migrations were not linted ({problem}); {key} = {str(declared).lower()} alone decides "
            "whether this deployment is roll-forward-only",
            data={"linted": False, "problem": problem, "declared": declared},
        )
    irreversible = found.irreversible
    data: dict[str, object] = {
        "linted": True,
        "new": found.new,
        "baseline": found.baseline.id if found.baseline is not None else None,
        "declared": declared,
        "irreversible": [{"file": f.file, "line": f.line, "rule": f.rule, "message": f.message} for f in irreversible],
    }
    if not irreversible:
        tail = "; none is irreversible"
        if declared:
            tail += f", but {key} = true keeps the deployment roll-forward-only"
        return DeploymentMigrations(found.recorded, declared, found.describe_new() + tail, data)
    where = "; ".join(f"{f.file}:{f.line} {f.message.split(';')[0]}" for f in irreversible[:3])
    more = f" (and {len(irreversible) - 3} more)" if len(irreversible) > 3 else ""
    found_here = f"roll-forward-only: new migration {where}{more}"
    if overruled:
        message = f"{found_here}; {key} = false says it may be crossed, so a rollback past it is allowed"
    else:
        why = (
            f"as {key} = true declares"
            if declared
            else f"although {key} is not set: declare it, or split the migration expand / contract"
        )
        message = f"{found_here}; a rollback past this deployment is refused, fix forward instead ({why})"
    return DeploymentMigrations(found.recorded, True, message, data)
