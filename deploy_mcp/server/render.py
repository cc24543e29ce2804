"""Rich renderings of records for people at a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from deploy_mcp.core.records import DeploymentRecord, Status

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.table import Table

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
NOTE_MIN_WIDTH = 24
"""Below this a note folds into a ribbon nobody reads; it goes under the table instead."""
_UNBOUNDED = 10_000


class HistoryView:
    """The ledger as a table that never cuts what people copy from it.

    The layout is chosen when the console renders it, from the width it really has (an 80-column terminal, a
    pipe, a split pane), because every other command takes a deployment id and an id cut to `deploy-2026-1…`
    cannot be pasted. Wide: one table with the notes in a folding column. Narrower: the same table without the
    note column, the notes listed below it. Narrowest: one short block per deployment.
    """

    def __init__(self, records: Iterable[DeploymentRecord]) -> None:
        self.records = list(records)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        width = options.max_width
        notes = [(record.id, _note(record)) for record in self.records if _note(record)]
        bare = _table(self.records, with_note=False)
        needed = _natural_width(console, options, bare)
        if not notes and needed <= width:
            yield bare
        elif notes and needed + NOTE_MIN_WIDTH + 3 <= width:  # 3: the note column's border and padding
            yield _table(self.records, with_note=True)
        elif needed <= width:
            yield bare
            yield from _notes_below(notes, width)
        else:
            yield from _blocks(self.records, width)


def history_table(records: Iterable[DeploymentRecord]) -> HistoryView:
    """The renderable `deploy-mcp history` and the demo print (kept by this name for them)."""
    return HistoryView(records)


def _note(record: DeploymentRecord) -> str:
    note = record.reason or ""
    if record.rollback_of:
        note = f"reverts {record.rollback_of}" + (f": {note}" if note else "")
    return note


def _took(record: DeploymentRecord) -> str:
    return f"{record.duration_seconds:.0f}s" if record.duration_seconds is not None else ""


def _status(record: DeploymentRecord) -> str:
    style = STATUS_STYLE.get(record.status, "")
    return f"[{style}]{record.status.value}[/]" if style else record.status.value


def _table(records: list[DeploymentRecord], *, with_note: bool) -> Table:
    from rich.table import Table

    table = Table(title="Deployments", header_style="bold")
    for column in ("id", "service", "version", "env", "strategy", "status", "deployed at", "took"):
        table.add_column(column, no_wrap=True)
    if with_note:
        table.add_column("note", overflow="fold", min_width=NOTE_MIN_WIDTH)
    for record in records:
        cells = [
            record.id,
            record.service,
            record.version,
            record.environment,
            record.strategy,
            _status(record),
            record.deployed_at.strftime("%Y-%m-%d %H:%M:%S"),
            _took(record),
        ]
        table.add_row(*cells, *([_note(record)] if with_note else []))
    return table


def _natural_width(console: Console, options: ConsoleOptions, table: Table) -> int:
    """The width the table takes when nothing has to shrink."""
    from rich.measure import Measurement

    return Measurement.get(console, options.update_width(_UNBOUNDED), table).maximum


def _notes_below(notes: list[tuple[str, str]], width: int) -> Iterator[RenderableType]:
    from rich.text import Text

    yield Text("notes", style="bold")
    for deployment_id, note in notes:
        yield from _indented(f"{deployment_id}: {note}", width, hanging="    ")


def _blocks(records: list[DeploymentRecord], width: int) -> Iterator[RenderableType]:
    """One short block per deployment, its id alone on the first line so it is never cut."""
    from rich.text import Text

    yield Text("Deployments", style="bold")
    for record in records:
        yield Text.assemble((record.id, "bold"), "  ", (record.status.value, STATUS_STYLE.get(record.status, "")))
        took = f", took {_took(record)}" if _took(record) else ""
        when = record.deployed_at.strftime("%Y-%m-%d %H:%M")
        yield from _indented(
            f"{record.service} {record.version} to {record.environment} ({record.strategy}), {when}{took}", width
        )
        if note := _note(record):
            yield from _indented(note, width)


def _indented(text: str, width: int, hanging: str = "  ") -> Iterator[RenderableType]:
    """Lines indented by two, wrapped at spaces only: a hyphen inside an id is never a place to break."""
    import textwrap

    from rich.text import Text

    lines = textwrap.wrap(text, max(width, 24), initial_indent="  ", subsequent_indent=hanging, break_on_hyphens=False)
    for line in lines:
        yield Text(line)
