"""deploy: start a deployment and drive it, returning before the client's timeout.

Before anything starts, and before the user is asked to confirm, the pre-deployment checklist runs
(`deploy_mcp.preflight`): a required item that failed refuses the deploy with every such item and its fix.
Which items are required depends on the mode; the table is in ``deploy_mcp/preflight/run.py``.
"""

from __future__ import annotations

import queue
import time
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve
from pydantic import Field

from deploy_mcp.app import App
from deploy_mcp.config.schema import StrategyName
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.errors import UserError
from deploy_mcp.preflight import PreflightReport
from deploy_mcp.server.consent import Consent, app_from_context, confirm_deploy
from deploy_mcp.tools.launch import require_preflight, start_deployment
from deploy_mcp.tools.views import DeploymentView, view

POLL_SECONDS = 0.25


async def deploy(
    app: App,
    service: Annotated[str, Field(description="The service to ship (a key of [services] in deploy.toml).")],
    version: Annotated[str, Field(min_length=1, max_length=128, description="The version to ship, e.g. 2.1.0.")],
    environment: Annotated[str, Field(description="Where to ship it, e.g. staging or production.")],
    preflight: Annotated[PreflightReport, Resolve(preflight_gate)],
    consent: Annotated[Consent, Resolve(confirm_deploy)],
    ctx: Context,
    strategy: Annotated[
        StrategyName | None, Field(description="Override the configured strategy; omit to use deploy.toml.")
    ] = None,
    wait_seconds: Annotated[
        float, Field(ge=0, le=600, description="Return after this long with the current state; poll after.")
    ] = 50,
    change_id: Annotated[
        str | None, Field(max_length=128, description="Enterprise mode: the approved change record, e.g. CHG-1234.")
    ] = None,
) -> DeploymentView:
    """Start a deployment with the strategy's steps, gates and metric checks, and drive it. It runs preflight
    first and refuses while a required checklist item fails (the preflight tool shows them all). Production needs
    the user's confirmation, which the server asks for. Returns within wait_seconds with the deployment id and
    its state while the rollout goes on; poll deployment_status. A failing step rolls back by itself.
    """
    progress: queue.SimpleQueue[str] = queue.SimpleQueue()
    progress.put(f"preflight: {preflight.summary}")

    def start() -> DeploymentRecord:
        return start_deployment(
            app,
            service,
            version,
            environment,
            strategy,
            deployed_by=deployed_by(consent),
            change_id=change_id or consent.change_id,
            on_progress=lambda _record, message: progress.put(message),
        )

    record = await anyio.to_thread.run_sync(start)
    return view(app, await follow(app, record.id, wait_seconds, progress, ctx))


def preflight_gate(
    ctx: Context,
    service: str,
    version: str,
    environment: str,
    strategy: StrategyName | None,
    change_id: str | None,
) -> PreflightReport:
    """The deploy tool's resolver: it runs before the consent resolver, so nobody is asked to confirm a deploy
    that its checklist refuses anyway."""
    try:
        return require_preflight(app_from_context(ctx), service, version, environment, strategy, change_id)
    except UserError as exc:
        raise ToolError(str(exc)) from None


def deployed_by(consent: Consent) -> str:
    """Who is answerable for the change: the caller (the identity the server authenticated, else "agent"), and
    the person who confirmed or approved it. Never a name an argument claims."""
    who = consent.caller or "agent"
    if consent.by == "approval":
        return f"{who}, approved by {consent.approved_by}"
    if consent.by == "user":
        return f"{who}, confirmed by the user"
    return who


async def follow(
    app: App, deployment_id: str, wait_seconds: float, progress: queue.SimpleQueue[str], ctx: Context | None
) -> DeploymentRecord:
    """Wait until the deployment settles or wait_seconds pass, forwarding each step as a progress notification."""
    runner = app.runner()
    deadline = time.monotonic() + wait_seconds
    sent = 0
    while True:
        record = await anyio.to_thread.run_sync(lambda: runner.wait(deployment_id, POLL_SECONDS))
        while not progress.empty():
            message = progress.get()
            sent += 1
            if ctx is not None:
                total = float(len(record.steps)) or None
                await ctx.report_progress(float(record.current_step or 0), total, message)
        if record.status not in (Status.PENDING, Status.IN_PROGRESS) or time.monotonic() >= deadline:
            return record
