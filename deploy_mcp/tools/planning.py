"""plan_deployment: what a deployment would do, before anything is done."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from deploy_mcp.app import App
from deploy_mcp.config.schema import StrategyName
from deploy_mcp.core.plans import Plan, build_plan


def plan_deployment(
    app: App,
    service: Annotated[str, Field(description="The service to ship (a key of [services] in deploy.toml).")],
    version: Annotated[str, Field(min_length=1, description="The version to ship, e.g. 2.1.0.")],
    environment: Annotated[str, Field(description="Where to ship it, e.g. staging or production.")],
    strategy: Annotated[
        StrategyName | None,
        Field(description="Override the configured strategy; omit to use deploy.toml or the recommendation."),
    ] = None,
) -> Plan:
    """The steps the strategy would take with this service's configuration, the gates it must pass, the checks
    that judge it, and the recommended strategy with its reason. Changes nothing.
    """
    config = app.require_config()
    current = app.serving_version(service, environment)
    return build_plan(
        config,
        service,
        version,
        environment,
        strategy,
        current_version=current,
        capabilities=app.platform(service).capabilities,
    )
