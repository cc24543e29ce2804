"""lint_migrations: are these PostgreSQL migrations safe to apply during a rollout, and can they be undone?

Paths are taken relative to the project root (the folder of deploy.toml, or the working directory without one)
and must stay inside it: the server reads files for an agent, and an agent must not use it to read the rest of
the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from deploy_mcp.app import App
from deploy_mcp.errors import UserError
from deploy_mcp.migrations import MigrationReport, lint

_COMMON_FOLDERS = ("migrations", "db/migrations", "db/migrate", "sql/migrations", "database/migrations", "migrate")


def lint_migrations(
    app: App,
    path: Annotated[
        str,
        Field(
            min_length=1,
            description="A migration file or a folder of them (searched recursively for .sql), relative to the "
            "project root, e.g. 'migrations' or 'db/migrations/0042_orders.up.sql'.",
        ),
    ],
) -> MigrationReport:
    """Lint PostgreSQL migrations before deploying them: squawk's checks (locks, table rewrites, changes the
    running version cannot survive) on every up step, plus whether each migration can be undone (a missing,
    empty or data-losing down step). Every finding names the file, the 1-based line and the safe alternative
    (expand / contract, CONCURRENTLY, NOT VALID then VALIDATE). `irreversible: true` means the release must be
    declared `migrations_irreversible = true` in deploy.toml: its deployment is then roll-forward-only and
    rollback refuses. Read-only; understands name.up.sql/name.down.sql, folder/up.sql+down.sql, sql-migrate,
    goose, dbmate and Flyway layouts.
    """
    root = app.project.root.resolve()
    try:  # a name too long, a NUL byte, ~nobody: the caller's mistake, not a crash
        requested = Path(path).expanduser()
        target = (requested if requested.is_absolute() else root / requested).resolve()
        exists = target.exists()
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: ~user of no such user
        shown = repr(path) if len(path) <= 80 else f"{path[:80]!r}... ({len(path)} characters)"
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(
            f"path: {shown} cannot be a path here ({why}); give a file or folder inside the project root, "
            "e.g. 'migrations'"
        ) from None
    if not target.is_relative_to(root):
        raise UserError(
            f"path: {path!r} is outside the project root ({root}); give a path inside it, relative to the root, "
            "e.g. 'migrations'"
        )
    if not exists:
        found = [folder for folder in _COMMON_FOLDERS if (root / folder).is_dir()]
        hint = f"; found here: {', '.join(found)}" if found else "; give the folder that holds the .sql migrations"
        raise UserError(f"path: {path!r} does not exist in the project root ({root}){hint}")
    return lint(target, root=root)
