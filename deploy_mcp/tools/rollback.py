"""rollback: back to the last version that passed validation, as a deployment of its own."""

from __future__ import annotations

import queue
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Resolve
from pydantic import Field

from deploy_mcp.app import App
from deploy_mcp.server.consent import Consent, confirm_rollback
from deploy_mcp.tools.deploying import deployed_by, follow
from deploy_mcp.tools.views import DeploymentView, view


async def rollback(
    app: App,
    service: Annotated[str, Field(description="The service to roll back.")],
    environment: Annotated[str, Field(description="Where, e.g. production.")],
    reason: Annotated[str, Field(min_length=3, max_length=500, description="Why, for the record and the incident.")],
    consent: Annotated[Consent, Resolve(confirm_rollback)],
    ctx: Context,
    to: Annotated[
        str | None,
        Field(
            description="A version, or the id of a deployment that passed validation; default: the last deployment "
            "that passed validation before the one serving now."
        ),
    ] = None,
    wait_seconds: Annotated[float, Field(ge=0, le=600, description="Return after this long; poll after.")] = 50,
) -> DeploymentView:
    """Revert the deployment serving now to the last deployment before it that passed validation (not merely the
    previous one), or to `to`. The user's confirmation names that version. Fast when it still runs; otherwise it is
    started, checked, and takes all traffic at once. While a rollout runs in this server, aborts it instead.
    Refused across an irreversible migration: fix forward. Writes its own record, linked to the one it reverts."""
    progress: queue.SimpleQueue[str] = queue.SimpleQueue()

    def start() -> str:
        record = app.runner().rollback(
            service,
            environment,
            to,
            reason,
            requested_by=deployed_by(consent),
            expect=(consent.reverts, consent.restores) if consent.reverts else None,
            on_progress=lambda _r, message: progress.put(message),
        )
        return record.id

    deployment_id = await anyio.to_thread.run_sync(start)
    return view(app, await follow(app, deployment_id, wait_seconds, progress, ctx))
