"""Rich renderings of records for people at a terminal."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table

from deploy_mcp.core.records import DeploymentRecord, Status

STATUS_STYLE = {
    Status.SUCCEEDED: "green",
    Status.FAILED: "red",
    Status.ROLLED_BACK: "yellow",
    Status.ABORTED: "red",
    Status.INTERRUPTED: "magenta",
    Status.PAUSED: "yellow",
    Status.IN_PROGRESS: "cyan",
    Status.PENDING: "dim",
}


def history_table(records: Iterable[DeploymentRecord]) -> Table:
    table = Table(title="Deployments", header_style="bold")
    for column in ("id", "service", "version", "env", "strategy", "status", "deployed at", "took"):
        table.add_column(column, no_wrap=True)
    table.add_column("note", overflow="fold", ratio=1, min_width=20)
    for record in records:
        took = f"{record.duration_seconds:.0f}s" if record.duration_seconds is not None else ""
        note = record.reason or ""
        if record.rollback_of:
            note = f"reverts {record.rollback_of}" + (f": {note}" if note else "")
        style = STATUS_STYLE.get(record.status, "")
        table.add_row(
            record.id,
            record.service,
            record.version,
            record.environment,
            record.strategy,
            f"[{style}]{record.status.value}[/]" if style else record.status.value,
            record.deployed_at.strftime("%Y-%m-%d %H:%M:%S"),
            took,
            note,
        )
    return table
