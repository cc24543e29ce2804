"""Migration safety: squawk's lint of each up step plus our rules on how (and whether) a migration is undone."""

from deploy_mcp.migrations.lint import MigrationPathError, lint
from deploy_mcp.migrations.models import Finding, MigrationReport, Severity

__all__ = ["Finding", "MigrationPathError", "MigrationReport", "Severity", "lint"]
