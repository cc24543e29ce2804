"""preflight: the pre-deployment checklist with evidence, before deploy runs the same checks and refuses on them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from deploy_mcp.app import App
from deploy_mcp.config.schema import StrategyName
from deploy_mcp.preflight import PreflightReport, run_preflight


def preflight(
    app: App,
    service: Annotated[str, Field(description="The service to ship (a key of [services] in deploy.toml).")],
    version: Annotated[str, Field(min_length=1, max_length=128, description="The version to ship, e.g. 2.1.0.")],
    environment: Annotated[str, Field(description="Where it would go, e.g. staging or production.")],
    strategy: Annotated[
        StrategyName | None, Field(description="The strategy deploy would be given; omit for deploy.toml's.")
    ] = None,
    change_id: Annotated[
        str | None, Field(max_length=128, description="Enterprise mode: the approved change record, e.g. CHG-1234.")
    ] = None,
) -> PreflightReport:
    """Check the pre-deployment checklist for a deployment before starting it: the image is in its registry
    (HEAD on the manifest), the session may deploy there, the version succeeded in the environments required
    first, no other deployment runs, git is clean and the version's commit is tagged, the tests pass, the
    release's new migrations lint clean, the flag is configured, and in enterprise mode the approval, deploy
    window, on-call and a rehearsed rollback. Each item is passed, failed, warning or not_applicable with its
    evidence and fix; which items are required depends on the mode, and deploy refuses while a required one
    fails. Changes nothing on any platform (it may run the configured test command and record its result).
    """
    return run_preflight(app, service, version, environment, strategy=strategy, change_id=change_id)
