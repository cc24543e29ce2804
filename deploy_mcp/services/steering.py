"""Steering a deployment on behalf of the MCP tools and the CLI alike.

promote is the one with more to it than the Runner's call: a deployment that no process drives any more (a
`deploy-mcp deploy` that paused and ended, a server that stopped) cannot be promoted by the Runner until this
process takes it over. Both faces go through `promote` here, so `deploy-mcp promote ID` and the promote tool do
the same thing to the same deployment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from deploy_mcp.app import App
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.core.runner.api import Progress

__all__ = ["TAKE_OVER_SECONDS", "Promoted", "promote"]

TAKE_OVER_SECONDS = 90.0
"""How long a take-over may take to reach the step it was interrupted on: it may start the new version again."""


@dataclass(frozen=True)
class Promoted:
    """The record after promote, and why it was not promoted when the deployment went on or ended by itself
    while it was taken over (watching it says how it went)."""

    record: DeploymentRecord
    not_promoted: str | None = None


def promote(
    app: App,
    deployment_id: str,
    *,
    by: str,
    on_progress: Progress | None = None,
) -> Promoted:
    """Go on past the current pause or analysis; an interrupted deployment is taken over first, and promoted once
    it is back at the step it stopped on. Only the process that drives a deployment can skip one of its steps."""
    app.settle_ledger()  # a deployment whose driving process died is marked interrupted first
    runner = app.runner()
    if runner.get(deployment_id).status is not Status.INTERRUPTED:
        return Promoted(runner.promote(deployment_id, by=by))
    return _take_over_and_promote(app, deployment_id, by, on_progress)


def _take_over_and_promote(app: App, deployment_id: str, by: str, on_progress: Progress | None) -> Promoted:
    """Promote a deployment no process drives (a paused `deploy-mcp deploy` that ended): take it over, and once
    it is back at the step it paused on, go on past it. Only a driving process can skip a step."""
    from deploy_mcp.core.runner import RunnerError

    runner = app.runner()
    runner.resume(deployment_id, by=by, on_progress=on_progress)
    deadline = time.monotonic() + TAKE_OVER_SECONDS  # a take-over may start the new version again first
    record = runner.get(deployment_id)
    while time.monotonic() < deadline:
        record = runner.wait(deployment_id, 0.2)
        step = record.steps[record.current_step - 1] if record.current_step else None
        if record.status is not Status.IN_PROGRESS or (
            step is not None and step.name in ("analyze", "pause") and step.status == "running"
        ):
            break
    try:
        return Promoted(runner.promote(deployment_id, by=by))
    except RunnerError as exc:  # it moved on or ended by itself meanwhile: watching it says how
        return Promoted(runner.get(deployment_id), not_promoted=str(exc))
