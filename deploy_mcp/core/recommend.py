"""Which strategy fits a service: the skill's decision flow, with the mode rules on top.

The flow is ordered on purpose: data safety first (a schema change the old version cannot run against needs
two full environments and a migration window), then blast radius (high traffic magnifies every bad request, so
expose a slice first), then recovery speed (a critical service needs a switch, not a re-roll), and only then the
cheap default. Every reason names the rule that decided, so an agent can repeat it to its user and a human can
disagree with something concrete.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from deploy_mcp.config.schema import DeployConfig, Environment, Mode, Service, StrategyName
from deploy_mcp.errors import UserError

HIGH_TRAFFIC_RPS = 1000.0
"""Above this many requests per second the skill sends a release through a canary."""


class PlanError(UserError, ValueError):
    """A request names something deploy.toml does not have; the message names the field and what is allowed."""


class Recommendation(BaseModel):
    """The strategy the decision flow picks, why, and what else would be acceptable here."""

    model_config = ConfigDict(extra="forbid")

    strategy: StrategyName
    reason: str
    alternatives: list[StrategyName]


def lookup(config: DeployConfig, service: str, environment: str) -> tuple[Service, Environment]:
    """The service and environment sections, or a PlanError that lists what exists.

    An environment must be declared under the service: a typo such as ``productoin`` must not silently deploy
    with default settings somewhere nobody meant.
    """
    svc = config.services.get(service)
    if svc is None:
        known = ", ".join(sorted(config.services)) or "none (add a [services.NAME] section)"
        raise PlanError(f"service {service!r} is not in deploy.toml; known services: {known}")
    env = svc.environments.get(environment)
    if env is None:
        if svc.environments:
            known = ", ".join(svc.environments)
            raise PlanError(
                f"environment {environment!r} is not configured for service {service!r}; known environments: {known}"
            )
        raise PlanError(
            f"environment {environment!r} is not configured for service {service!r}, which has no environments; "
            f"add a [services.{service}.environments.{environment}] section to deploy.toml"
        )
    return svc, env


def parse_strategy(value: StrategyName | str) -> StrategyName:
    """A strategy from a caller's string, or a PlanError listing the strategies there are."""
    try:
        return StrategyName(value)
    except ValueError:
        allowed = ", ".join(s.value for s in StrategyName)
        raise PlanError(f"strategy {value!r} is not a known strategy; allowed: {allowed}") from None


def recommend_strategy(
    config: DeployConfig, service: str, environment: str, *, breaking_schema_change: bool = False
) -> Recommendation:
    """Walk the decision flow for one service in one environment.

    Recreate is never the answer in production (it is the only strategy with planned downtime); outside
    production it is offered as an alternative for dev and test, where downtime is cheap.
    """
    svc, _ = lookup(config, service, environment)
    production = config.is_production(service, environment)

    def pick(strategy: StrategyName, reason: str, alternatives: list[StrategyName]) -> Recommendation:
        options = [a for a in alternatives if a != strategy]
        if not production and StrategyName.RECREATE not in options:
            options.append(StrategyName.RECREATE)
        if production:
            options = [a for a in options if a != StrategyName.RECREATE]
        return Recommendation(strategy=strategy, reason=reason, alternatives=options)

    if breaking_schema_change:
        return pick(
            StrategyName.BLUE_GREEN,
            "The release's schema change is not backward compatible (its migrations are declared irreversible), "
            "so the rule 'breaking schema change -> blue-green with a migration window' decides: run the new "
            "version beside the old one, migrate inside an agreed window, and switch traffic only when the new "
            "side is proven.",
            [],
        )

    if config.mode == Mode.BROWNFIELD_ENTERPRISE and production:
        return pick(
            StrategyName.CANARY,
            "The project runs in brownfield-enterprise mode, whose rule is 'surgical deployment with canary "
            f"rollout' for production, so {environment} gets a canary that exposes a small slice of traffic "
            "first.",
            [StrategyName.BLUE_GREEN],
        )

    rps = svc.requests_per_second
    if rps is not None and rps > HIGH_TRAFFIC_RPS:
        return pick(
            StrategyName.CANARY,
            f"The service handles {rps:g} requests/s, over the {HIGH_TRAFFIC_RPS:g} requests/s of the rule "
            "'high traffic -> canary': a bad release should reach a small slice of users first.",
            [StrategyName.BLUE_GREEN, StrategyName.ROLLING],
        )

    if svc.instant_rollback_critical:
        if svc.flag is not None:
            return pick(
                StrategyName.FEATURE_FLAG,
                "Instant rollback is marked critical for this service and it has a feature flag "
                f"({svc.flag.name!r}), so the rule 'instant rollback critical -> blue-green or feature flag' "
                "picks the flag: turning it off is instant.",
                [StrategyName.BLUE_GREEN, StrategyName.CANARY],
            )
        return pick(
            StrategyName.BLUE_GREEN,
            "Instant rollback is marked critical for this service, so the rule 'instant rollback critical -> "
            "blue-green or feature flag' picks blue-green (no feature flag is configured): switching back takes "
            "under a minute.",
            [StrategyName.CANARY],
        )

    traffic = "not configured" if rps is None else f"{rps:g} requests/s"
    return pick(
        StrategyName.ROLLING,
        "No stronger rule applies (no breaking schema change is declared for the release, traffic is not over "
        f"{HIGH_TRAFFIC_RPS:g} requests/s ({traffic}), and instant rollback is not marked critical), so the "
        "default rule picks rolling: replace instances in small batches with no extra capacity.",
        [StrategyName.CANARY, StrategyName.BLUE_GREEN],
    )
