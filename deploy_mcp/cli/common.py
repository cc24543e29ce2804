"""What the CLI's commands share: help texts, the console, checks of what was typed, watching a deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deploy_mcp.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from deploy_mcp.app import App
    from deploy_mcp.core.records import Status


EXIT_CODES = (
    "exit status: 0 when it reached what was asked (succeeded; for abort, aborted; for pause, paused), 3 when "
    "it paused for a decision, 1 when it ended otherwise (failed, rolled back, aborted), 2 for a mistake in the "
    "command (nothing changed), 130 after Ctrl-C."
)
WATCH_NOTE = (
    "A deployment runs in the process that drives it, so this command stays until the deployment succeeds, "
    "pauses or ends, showing each step as it happens. Ctrl-C (or SIGTERM) hands it back as interrupted with "
    "traffic as it is; `deploy-mcp resume ID` carries it on, `deploy-mcp abort ID --reason TEXT` undoes it. "
    "When it pauses, this command ends the same way and prints what to run next."
)
CONSENT_NOTE = (
    "A production change that policy.require_confirmation covers is not done from a terminal: no terminal can "
    "tell a person from a program running as the same user. It goes through an MCP client that asks its user, or "
    "the team server, where a releaser approves it with their own token."
)


def paragraphs(*paragraphs: str) -> str:
    import textwrap

    return "\n\n".join(textwrap.fill(paragraph, 100) for paragraph in paragraphs)


def watch_to_end(app: App, deployment_id: str, console: Console, *, since: int = 0, goal: Status | None = None) -> int:
    from deploy_mcp.cli import terminal
    from deploy_mcp.core.records import Status

    try:
        record = terminal.watch(app, deployment_id, console, since=since)
    except KeyboardInterrupt:
        return terminal.hand_back(app, deployment_id, console)
    driving = deployment_id in app.runner().running()  # paused here: handed back when this command ends
    return terminal.conclude(record, console, goal=goal or Status.SUCCEEDED, handed_back=driving)


def known(app: App, service: str, environment: str) -> None:
    """A typo is answered before the MCP SDK that the shared code path needs is loaded (about a second)."""
    from deploy_mcp.core.recommend import lookup

    lookup(app.require_config(), service, environment)


def existing_deployment(app: App, deployment_id: str) -> str:
    """The id if the ledger has it; checked before anything else so a typo creates nothing."""
    app.require_config()
    ledger = app.existing_ledger()
    if ledger is None or ledger.get(deployment_id) is None:
        raise UserError(f"ID: no deployment {deployment_id!r} in the ledger; `deploy-mcp history` lists the ids")
    return deployment_id


def check_reason(text: str) -> str:
    reason = text.strip()
    if len(reason) < 3:
        raise UserError("--reason: say why in a few words; it goes into the record, e.g. --reason 'errors at 5%'")
    return reason


def make_console() -> Console:
    from rich.console import Console

    return Console(highlight=False)
