"""lint(path): squawk and our own rules over a file or folder of migrations, as one report.

squawk reads only the up steps: a down step that drops what its up step added is normal (our rules judge
whether that loses data), and flagging every one of them would bury the findings that matter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deploy_mcp.errors import UserError
from deploy_mcp.migrations import squawk
from deploy_mcp.migrations.advice import squawk_advice
from deploy_mcp.migrations.layout import MAX_FILE_BYTES, MAX_TOTAL_BYTES, Migration, discover, sql_files
from deploy_mcp.migrations.models import SEVERITY_ORDER, Finding, MigrationReport
from deploy_mcp.migrations.rules import IRREVERSIBLE, check, layout_note


class MigrationPathError(UserError):
    """The path names nothing lintable; the message says what was expected."""


def lint(path: str | Path, *, root: Path | None = None) -> MigrationReport:
    """Lint the migrations at ``path`` (a .sql file or a folder searched recursively); paths in the report are
    relative to ``root`` (default: the working directory) when they are inside it."""
    base = (root or Path.cwd()).resolve()
    target = Path(path)
    target = (target if target.is_absolute() else base / target).resolve()
    shown = _relative(target, base)
    if not target.exists():
        raise MigrationPathError(f"path: {shown!r} does not exist")
    if target.is_file() and target.suffix.lower() != ".sql":
        raise MigrationPathError(f"path: {shown!r} is not a .sql file; give a migration file or the folder of them")
    notes: list[str] = []
    # Symbolic links must not lead the linter out of the folder it was pointed at (the tool's boundary is the
    # project root; a folder outside the root, such as a monorepo's shared migrations, bounds itself).
    boundary = base if target.is_relative_to(base) else target if target.is_dir() else target.parent
    _refuse_oversized(sql_files(target), base)
    migrations, outside = _inside(discover(target), boundary)
    if outside:
        notes.append(
            f"skipped {', '.join(outside)}: symbolic links out of {_relative(boundary, base)!r} are not followed"
        )
    if not migrations:
        raise MigrationPathError(f"path: no .sql files in {shown!r}; give the folder that holds the migrations")

    def show(file: Path) -> str:
        return _relative(file, base)

    findings: list[Finding] = []
    binary = squawk.find_squawk()
    version: str | None = None
    if binary is None:
        notes.append(f"squawk is not installed, so only deploy-mcp's own rules ran; {squawk.INSTALL_HINT}")
    else:
        version = squawk.squawk_version(binary)
        findings.extend(_squawk_findings(binary, migrations, base, show))
    for migration in migrations:
        findings.extend(check(migration, show))
    if note := layout_note(migrations):
        notes.append(note)

    findings = _unique(sorted(findings, key=lambda f: (f.file, f.line, SEVERITY_ORDER[f.severity], f.rule)))
    files = [show(s.file) for m in migrations for s in (m.up, m.down) if s is not None]
    files_checked = list(dict.fromkeys(files))
    irreversible = any(f.rule == IRREVERSIBLE for f in findings)
    return MigrationReport(
        path=shown,
        files_checked=files_checked,
        findings=findings,
        irreversible=irreversible,
        summary=_summary(migrations, files_checked, findings, binary is not None),
        squawk_version=version,
        notes=notes,
    )


def _refuse_oversized(files: list[Path], base: Path) -> None:
    """Before anything is read: one file or all of them too large for a linter is a clear error, not a hang."""
    total = 0
    for file in files:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise MigrationPathError(
                f"path: {_relative(file, base)!r} is {size / 1048576:.1f} MB, more than the {MAX_FILE_BYTES // 1048576}"
                " MB a migration file may have here; a file that large holds data, not schema changes: lint the "
                "schema migrations alone (give their folder or file), and load the data another way"
            )
        total += size
    if total > MAX_TOTAL_BYTES:
        raise MigrationPathError(
            f"path: the {len(files)} .sql files come to {total / 1048576:.1f} MB, more than the "
            f"{MAX_TOTAL_BYTES // 1048576} MB linted in one call; give a narrower folder or one migration file"
        )


def _squawk_findings(
    binary: Path, migrations: list[Migration], base: Path, show: Callable[[Path], str]
) -> list[Finding]:
    """squawk over every up step: whole files in one run, sections of single-file migrations one by one."""
    issues: list[squawk.SquawkIssue] = []
    arguments: dict[str, Path] = {}
    whole: list[str] = []
    for migration in migrations:
        up = migration.up
        if up is None:
            continue
        argument = _relative(up.file, base)
        arguments[argument] = up.file
        if up.whole_file:
            whole.append(argument)
        else:
            issues.extend(squawk.lint_text(binary, up.text, argument, base))
    issues.extend(squawk.lint_files(binary, whole, base))
    findings = []
    for issue in issues:
        severity, safe = squawk_advice(issue.rule, issue.help)
        file = arguments.get(issue.file, base / issue.file)
        findings.append(
            Finding(
                file=show(file),
                line=issue.line,
                rule=issue.rule,
                severity=severity,
                message=issue.message,
                safe_alternative=safe,
                source="squawk",
            )
        )
    return findings


def _inside(migrations: list[Migration], boundary: Path) -> tuple[list[Migration], list[str]]:
    """Migrations whose files really live under ``boundary``; the names of those that link out of it."""
    kept, outside = [], []
    for migration in migrations:
        files = [s.file for s in (migration.up, migration.down) if s is not None]
        if all(f.resolve().is_relative_to(boundary) for f in files):
            kept.append(migration)
        else:
            outside.append(migration.name)
    return kept, outside


def _summary(migrations: list[Migration], files: list[str], findings: list[Finding], squawk_ran: bool) -> str:
    scope = f"{len(files)} file(s) in {len(migrations)} migration(s)"
    if not squawk_ran:
        scope += " (deploy-mcp's own rules only: squawk is not installed)"
    if not findings:
        undoable = all(m.down is not None for m in migrations)
        return f"{scope}: no findings" + ("; each has a lossless down step." if undoable else ".")
    counts = {level: sum(1 for f in findings if f.severity == level) for level in SEVERITY_ORDER}
    tally = ", ".join(f"{n} {level}{'s' if n != 1 and level != 'info' else ''}" for level, n in counts.items() if n)
    parts = [f"{scope}: {tally}"]
    irreversible = [f for f in findings if f.rule == IRREVERSIBLE]
    if irreversible:
        where = "; ".join(f"{f.file}:{f.line} {f.message.split(';')[0]}" for f in irreversible[:3])
        more = f" (and {len(irreversible) - 3} more)" if len(irreversible) > 3 else ""
        parts.append(
            f"Roll-forward-only: {where}{more}. Declare the release `migrations_irreversible = true` under "
            '[services.NAME.versions."X.Y.Z"] so rollback means fix forward, or split it expand / contract'
        )
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        rules = ", ".join(dict.fromkeys(f.rule for f in errors))
        parts.append(f"Fix the errors before deploying ({rules}): each finding says what to write instead")
    return ". ".join(parts) + "."


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, int, str, str]] = set()
    kept = []
    for finding in findings:
        key = (finding.file, finding.line, finding.rule, finding.message)
        if key not in seen:
            seen.add(key)
            kept.append(finding)
    return kept


def _relative(file: Path, base: Path) -> str:
    try:
        return file.relative_to(base).as_posix() or "."
    except ValueError:
        return file.as_posix()
