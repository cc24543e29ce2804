"""deployment_history: what was shipped, newest first."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from deploy_mcp.app import NO_CONFIG_HINT, App
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.errors import UserError


class History(BaseModel):
    records: list[DeploymentRecord]
    count: int
    hint: str | None = Field(default=None, description="What to do when there is nothing to show yet.")


def deployment_history(
    app: App,
    service: Annotated[str | None, Field(description="Only this service (a key of [services] in deploy.toml).")] = None,
    environment: Annotated[str | None, Field(description="Only this environment, e.g. staging.")] = None,
    status: Annotated[Status | None, Field(description="Only records in this status.")] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many records.")] = 20,
) -> History:
    """Deployment records, newest first: version, strategy, status, steps, verdicts and what each rollback reverted.

    Read-only. Use it to find the last version that passed validation before a rollback, or to see what is
    running where.
    """
    if app.config_error:
        app.require_config()  # reports the invalid deploy.toml
    config = app.config
    if service is not None and app.project.configured and service not in config.services:
        known = ", ".join(config.services) or "none"
        raise UserError(f"service: {service!r} is not in deploy.toml; known services: {known}")
    ledger = app.existing_ledger()
    if ledger is None:
        hint = NO_CONFIG_HINT if not app.project.configured else "no deployments recorded yet"
        return History(records=[], count=0, hint=hint)
    app.settle_ledger()
    records = ledger.list(service=service, environment=environment, status=status, limit=limit)
    return History(records=records, count=len(records), hint=None if records else "no matching deployments")
