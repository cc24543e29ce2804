"""A deployment's plan, built in one place from what the platform serves now.

`plan_deployment` shows it, the consent question describes it and `start_deployment` hands it to the Runner:
all three call `plan_for`, so what a person is asked about and what runs are the same plan, not three plans
that happen to agree. `same_plan` is how the start checks that nothing changed since the question was asked.
"""

from __future__ import annotations

from deploy_mcp.app import App
from deploy_mcp.config.schema import StrategyName
from deploy_mcp.core.plans import Plan, build_plan

__all__ = ["describe_change", "plan_for", "same_plan"]


def plan_for(app: App, service: str, version: str, environment: str, strategy: StrategyName | str | None) -> Plan:
    """The plan for shipping ``version`` now: the configuration, the version the platform serves (None for a first
    deployment, or where nothing runs any more) and what the platform's router can do. Changes nothing."""
    config = app.require_config()
    return build_plan(
        config,
        service,
        version,
        environment,
        strategy,
        current_version=app.serving_version(service, environment),
        capabilities=app.platform(service).capabilities,
    )


def same_plan(agreed: Plan, now: Plan) -> bool:
    """Whether ``now`` does what ``agreed`` said it would: the same version replaced, strategy and steps."""
    return (agreed.current_version, agreed.strategy, agreed.steps) == (now.current_version, now.strategy, now.steps)


def describe_change(agreed: Plan, now: Plan) -> str:
    """What differs between the agreed plan and the plan of this moment, for the refusal."""
    if agreed.current_version != now.current_version:
        was, serves = agreed.current_version or "nothing", now.current_version or "nothing"
        return f"{now.service} in {now.environment} served {was} then and serves {serves} now"
    if agreed.strategy != now.strategy:
        return f"the strategy was {agreed.strategy.value} and is {now.strategy.value} now"
    return "its steps differ"
