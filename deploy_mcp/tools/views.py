"""What the deployment tools return: the record, what runs now, and what the agent should do next."""

from __future__ import annotations

from pydantic import BaseModel, Field

from deploy_mcp.app import App
from deploy_mcp.config.schema import Thresholds
from deploy_mcp.core.records import DeploymentRecord, Event, Status, Step
from deploy_mcp.core.target import TargetState
from deploy_mcp.errors import UserError

NEXT_STEP = {
    Status.PENDING: "poll deployment_status(deployment_id) every few seconds",
    Status.IN_PROGRESS: "poll deployment_status(deployment_id) every few seconds until it succeeds, pauses or ends",
    Status.PAUSED: (
        "read the reason and the numbers; investigate for at most 5 minutes (validate, logs), then promote "
        "(go on), resume (re-run this step's analysis) or abort (undo it)"
    ),
    Status.SUCCEEDED: "run validate(service, environment) now and again after a few minutes; watch the dashboards",
    Status.FAILED: "read the reason; the previous version serves; fix the release before deploying again",
    Status.ROLLED_BACK: "read the reason and the numbers; the previous version serves; fix forward in a new release",
    Status.ABORTED: "the previous version serves; deploy again when the cause is understood",
    Status.INTERRUPTED: "the process driving it stopped; resume(deployment_id) to finish it, or rollback",
}


class DeploymentView(BaseModel):
    record: DeploymentRecord
    current_step: Step | None = Field(description="the step running or last run")
    live: TargetState | None = Field(default=None, description="what the platform runs now, with traffic weights")
    recent_events: list[Event] = Field(default_factory=list)
    next_step: str = Field(description="what the agent should do now")
    thresholds: Thresholds | None = Field(
        default=None, description="the warn and critical lines each analysis is judged against (the rollout view)"
    )


def view(app: App, record: DeploymentRecord, *, live: bool = True) -> DeploymentView:
    state = None
    if live:
        try:
            state = app.target(record.service).state(record.service, record.environment)
        except UserError:
            state = None
    step = record.steps[record.current_step - 1] if record.current_step else None
    events = app.ledger().events(record.id)[-10:]
    return DeploymentView(
        record=record,
        current_step=step,
        live=state,
        recent_events=events,
        next_step=NEXT_STEP[record.status],
        thresholds=_thresholds(app, record),
    )


def _thresholds(app: App, record: DeploymentRecord) -> Thresholds | None:
    """The lines the record's analyses were judged against, while deploy.toml still knows its environment."""
    if app.config_error or record.service not in app.config.services:
        return None
    return app.config.thresholds_for(record.service, record.environment)
