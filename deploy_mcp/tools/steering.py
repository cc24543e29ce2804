"""The agent's hands on a running deployment: deployment_status, promote, pause, resume, abort."""

from __future__ import annotations

import queue
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Resolve
from pydantic import Field

from deploy_mcp.app import App
from deploy_mcp.server.consent import Consent, confirm_abort, confirm_pause, confirm_promote, confirm_resume
from deploy_mcp.tools.deploying import deployed_by, follow
from deploy_mcp.tools.views import DeploymentView, view

DeploymentId = Annotated[
    str,
    Field(
        pattern=r"^deploy-\d{4}-\d{2}-\d{2}-\d{3,}$", description="The id deploy returned, e.g. deploy-2026-11-26-001."
    ),
]
WAIT = 5.0


def deployment_status(app: App, deployment_id: DeploymentId) -> DeploymentView:
    """The record (steps, verdicts with their numbers, status and reason), what the platform runs now with its
    traffic weights, the latest events, and what to do next. Changes nothing."""
    return view(app, app.runner().get(deployment_id))


async def promote(
    app: App, deployment_id: DeploymentId, consent: Annotated[Consent, Resolve(confirm_promote)], ctx: Context
) -> DeploymentView:
    """Go on past a paused step (a warn verdict or a human pause) or skip the running analysis. A release whose
    last analysis was skipped succeeds without passing validation, so rollback will not pick it."""
    record = await anyio.to_thread.run_sync(lambda: app.runner().promote(deployment_id, by=_by(consent)))
    return view(app, await follow(app, record.id, WAIT, queue.SimpleQueue(), ctx))


async def pause(
    app: App, deployment_id: DeploymentId, consent: Annotated[Consent, Resolve(confirm_pause)]
) -> DeploymentView:
    """Hold the deployment at its current step; traffic stays as it is. resume or promote continue it."""
    record = await anyio.to_thread.run_sync(lambda: app.runner().pause(deployment_id, by=_by(consent)))
    return view(app, record)


async def resume(
    app: App, deployment_id: DeploymentId, consent: Annotated[Consent, Resolve(confirm_resume)], ctx: Context
) -> DeploymentView:
    """Continue a paused deployment (its analysis runs again) or take over one interrupted when its server
    stopped, from the step it was at."""
    progress: queue.SimpleQueue[str] = queue.SimpleQueue()

    def run() -> object:
        return app.runner().resume(deployment_id, by=_by(consent), on_progress=lambda _r, m: progress.put(m))

    await anyio.to_thread.run_sync(run)
    return view(app, await follow(app, deployment_id, WAIT, progress, ctx))


async def abort(
    app: App,
    deployment_id: DeploymentId,
    reason: Annotated[str, Field(min_length=3, max_length=500, description="Why, for the record.")],
    consent: Annotated[Consent, Resolve(confirm_abort)],
    ctx: Context,
) -> DeploymentView:
    """Stop the deployment and undo it: all traffic back to the version that served before, the new one stopped.
    Never waits for confirmation: stopping a bad release must always be possible."""
    record = await anyio.to_thread.run_sync(lambda: app.runner().abort(deployment_id, reason, by=_by(consent)))
    return view(app, await follow(app, record.id, WAIT, queue.SimpleQueue(), ctx))


def _by(consent: Consent) -> str:
    return deployed_by(consent)
