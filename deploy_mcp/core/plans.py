"""From a strategy to the exact steps a runner executes, with the gates and checks that surround them.

A plan is data, not behaviour: the same plan is shown to the agent by ``plan_deployment`` and executed by the
runner, so what the agent approved is what runs. Steps use a small action vocabulary with typed parameters, so a
target driver never parses prose. The gates come from the policy module (`policy.requirements`), which also
enforces them at call time: the plan states every one of them, so nothing is a surprise when the tool is called.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from deploy_mcp.config.schema import (
    Analysis,
    DeployConfig,
    Environment,
    Mode,
    Service,
    StrategyName,
    TargetKind,
    Thresholds,
    Tier,
)
from deploy_mcp.core.platform import EXACT, RouterCapabilities, replica_split
from deploy_mcp.core.policy import ENTERPRISE_MONITORING_SECONDS, Gate, GateKind, requirements
from deploy_mcp.core.recommend import PlanError, Recommendation, lookup, parse_strategy, recommend_strategy
from deploy_mcp.core.target import START_ALLOWANCE_SECONDS
from deploy_mcp.core.units import human_duration, milliseconds, percent

__all__ = [
    "START_ALLOWANCE_SECONDS",
    "CheckVia",
    "ChosenBy",
    "Gate",
    "GateKind",
    "Plan",
    "PlanError",
    "PlanStep",
    "Recommendation",
    "StepAction",
    "build_plan",
    "check_version",
    "choose_strategy",
]

StepAction = Literal[
    "start", "wait_ready", "set_weights", "analyze", "check", "stop", "scale", "flag", "pause", "rollout"
]
ChosenBy = Literal["requested", "configured", "recommended"]


class CheckVia(StrEnum):
    """How a ``check`` step reaches what it checks; a step without one checks its version's preview."""

    PREVIEW = "preview"
    """Health and smoke against one version only, before it takes traffic."""
    INSTANCES = "instances"
    """Every instance of the version probed by the platform (no preview: the smoke tests wait for the service)."""
    SERVICE = "service"
    """Health and smoke as users reach the service."""


_RISK = {
    StrategyName.BLUE_GREEN: 0,
    StrategyName.CANARY: 0,
    StrategyName.FEATURE_FLAG: 0,
    StrategyName.ROLLING: 1,
    StrategyName.RECREATE: 2,
}
"""The skill's risk column (very low / low / high): choosing a riskier strategy than recommended is worth a
warning, choosing a safer one is not."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanStep(_Model):
    """One instruction for the runner.

    Parameters by action: start/scale/rollout (version, replicas), stop (version), set_weights (weights: version ->
    percent of traffic), analyze (seconds = bake time, interval), flag (percentage), pause (seconds for a timed
    wait; none means wait for a human decision), check (version, via). ``index`` counts from 1, as people read it.
    """

    index: int
    action: StepAction
    description: str
    version: str | None = None
    replicas: int | None = None
    weights: dict[str, int] | None = None
    seconds: float | None = None
    interval: float | None = None
    percentage: int | None = None
    via: CheckVia | None = None


class Plan(_Model):
    """What will happen, in order, and everything that must hold around it; the runner executes ``steps``.

    ``current_version`` is None for a first deployment. ``expected_downtime_seconds`` is non-zero only for
    recreate over a running version. ``estimated_duration_seconds`` excludes waits for a human.
    """

    service: str
    version: str
    environment: str
    current_version: str | None
    production: bool
    strategy: StrategyName
    chosen_by: ChosenBy
    recommendation: Recommendation
    replicas: int
    steps: list[PlanStep]
    gates: list[Gate]
    checks: list[str]
    thresholds: Thresholds
    analysis: Analysis
    estimated_duration_seconds: float
    expected_downtime_seconds: float
    warnings: list[str]
    rollback: str
    capabilities: RouterCapabilities = Field(
        default=EXACT, description="what the platform's traffic router can do; the steps show the split it can make"
    )


VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
"""What a version may look like: a semver, a date, a commit hash. It becomes an image tag, a label, a file name
and an HTTP header of the local router, so anything else (spaces, slashes, line breaks) is refused up front."""


def check_version(version: str, field: str = "version") -> str:
    """``version`` if it is one; a PlanError naming ``field`` and the rule otherwise."""
    if not version.strip():
        raise PlanError(f"{field} is empty; give the version to deploy, for example '1.4.0'")
    if not VERSION.fullmatch(version):
        shown = repr(version) if len(version) <= 60 else f"{version[:60]!r}... ({len(version)} characters)"
        raise PlanError(
            f"{field}: {shown} is not a version: use at most 128 letters, digits, dots, dashes, underscores or "
            "plus signs, starting with a letter or digit, for example '1.4.0' or '2026.11.26-3f9c2e1'"
        )
    return version


def build_plan(
    config: DeployConfig,
    service: str,
    version: str,
    environment: str,
    strategy: StrategyName | str | None = None,
    *,
    current_version: str | None = None,
    capabilities: RouterCapabilities = EXACT,
) -> Plan:
    """The plan for shipping ``version`` of ``service`` to ``environment``; changes nothing.

    The strategy is the caller's if given, else the one written in the environment's section, else the
    recommendation; the recommendation is always included so a deviation from it is visible. ``capabilities``
    are the platform router's: without exact weights a canary's steps are the replica ratios the platform can make
    (and say what was requested), without a preview the checks before traffic probe the instances and the smoke
    tests run through the service once the new version takes traffic.
    """
    svc, env = lookup(config, service, environment)
    check_version(version)
    if current_version == version:
        raise PlanError(
            f"version {version!r} is already the current version of {service} in {environment}; "
            "give a different version to deploy"
        )
    chosen, chosen_by, recommendation = choose_strategy(config, service, environment, version, strategy)
    if chosen == StrategyName.FEATURE_FLAG and svc.flag is None:
        raise PlanError(
            f"strategy 'feature-flag' needs a flag for service {service!r}; add "
            f'[services.{service}.flag] with name = "..." to deploy.toml, or choose another strategy'
        )

    production = config.is_production(service, environment)
    ctx = _Context(
        config=config,
        service=service,
        svc=svc,
        env=env,
        environment=environment,
        version=version,
        old=current_version,
        replicas=env.replicas or svc.replicas,
        production=production,
        human_pause=production and config.mode == Mode.BROWNFIELD_ENTERPRISE,
        capabilities=capabilities,
    )
    steps = _BUILDERS[chosen](ctx)
    downtime = START_ALLOWANCE_SECONDS if chosen == StrategyName.RECREATE and current_version else 0.0

    return Plan(
        service=service,
        version=version,
        environment=environment,
        current_version=current_version,
        production=production,
        strategy=chosen,
        chosen_by=chosen_by,
        recommendation=recommendation,
        replicas=ctx.replicas,
        steps=steps.items,
        gates=requirements(
            config, service, environment, chosen, version=version, current=current_version, downtime=downtime
        ),
        checks=_checks(ctx, chosen),
        thresholds=config.thresholds_for(service, environment),
        analysis=env.analysis,
        estimated_duration_seconds=_estimate(steps.items),
        expected_downtime_seconds=downtime,
        warnings=_warnings(ctx, chosen, chosen_by, recommendation, steps, downtime),
        rollback=_rollback(ctx, chosen),
        capabilities=capabilities,
    )


def choose_strategy(
    config: DeployConfig, service: str, environment: str, version: str, strategy: StrategyName | str | None = None
) -> tuple[StrategyName, ChosenBy, Recommendation]:
    """The strategy a plan uses and why: the caller's if given, else the one written in the environment's section,
    else the recommendation (returned too, so a deviation from it is visible). Preflight decides with this as well.
    """
    _, env = lookup(config, service, environment)
    release = config.services[service].versions.get(version)
    # Only what deploy.toml declares: linting the migrations here would make the plan depend on the disk, and a
    # plan is a pure function of the configuration (preflight and the runner read the files).
    breaking = bool(release and release.migrations_irreversible)
    recommendation = recommend_strategy(config, service, environment, breaking_schema_change=breaking)
    if strategy is not None:
        return parse_strategy(strategy), "requested", recommendation
    if "strategy" in env.model_fields_set:
        return env.strategy, "configured", recommendation
    return recommendation.strategy, "recommended", recommendation


@dataclass(frozen=True)
class _Context:
    """Everything a step builder needs, resolved once."""

    config: DeployConfig
    service: str
    svc: Service
    env: Environment
    environment: str
    version: str
    old: str | None
    replicas: int
    production: bool
    human_pause: bool
    capabilities: RouterCapabilities = EXACT

    @property
    def analysis(self) -> Analysis:
        return self.env.analysis


class _Steps:
    """Collects steps, numbering them, and remembers the new version's traffic share at each analysis."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.items: list[PlanStep] = []
        self.analysis_shares: list[tuple[int, float]] = []
        self.notes: list[str] = []
        """What the platform changed in the requested steps, for the warnings."""

    def add(self, action: StepAction, description: str, **params: object) -> None:
        self.items.append(
            PlanStep.model_validate(
                {"index": len(self.items) + 1, "action": action, "description": description, **params}
            )
        )

    def start(self, version: str, replicas: int, description: str) -> None:
        self.add("start", description, version=version, replicas=replicas)

    def scale(self, version: str, replicas: int, description: str) -> None:
        self.add("scale", description, version=version, replicas=replicas)

    def wait_ready(self, version: str, replicas: int) -> None:
        self.add(
            "wait_ready",
            f"Wait until {version} has {_count(replicas)} running and passing the health check.",
            version=version,
            replicas=replicas,
        )

    def check(self, version: str) -> None:
        """Before ``version`` takes traffic: its preview, or its instances one by one when there is none."""
        if self.ctx.capabilities.preview:
            self.add(
                "check",
                f"Run the health and smoke checks straight against {version}, before it takes traffic.",
                version=version,
            )
        else:
            self.add(
                "check",
                f"Probe the health of every instance of {version}, before it takes traffic (this platform cannot "
                "send a request to one version alone, so the smoke tests run through the service once it serves).",
                version=version,
                via=CheckVia.INSTANCES,
            )

    def check_service(self, version: str) -> None:
        """Without a preview, the smoke tests reach ``version`` only once it serves: right after the switch."""
        if not self.ctx.capabilities.preview:
            self.add(
                "check",
                f"Run the health and smoke checks through the service, now that {version} takes all traffic.",
                version=version,
                via=CheckVia.SERVICE,
            )

    def weights(self, weights: dict[str, int], description: str) -> None:
        self.add("set_weights", description, weights=weights)

    def analyze(self, share: float, description: str) -> None:
        analysis = self.ctx.analysis
        self.analysis_shares.append((len(self.items) + 1, share))
        self.add(
            "analyze",
            f"{description} Judge {human_duration(analysis.bake)} of metrics, "
            f"measured every {human_duration(analysis.interval)}.",
            version=self.ctx.version,
            seconds=analysis.bake,
            interval=analysis.interval,
        )

    def stop(self, version: str, description: str) -> None:
        self.add("stop", description, version=version)

    def pause(self, description: str, seconds: float | None = None) -> None:
        self.add("pause", description, seconds=seconds)

    def human_pause(self, before: str) -> None:
        if self.ctx.human_pause:
            self.pause(
                f"Pause for the change owner: brownfield-enterprise mode promotes to {before} only on a human "
                "decision (resume or promote to continue, abort to roll back)."
            )


def _first_deployment(ctx: _Context, steps: _Steps, *, route: bool) -> _Steps:
    """No old version to shift traffic from: start at full size, check, and judge it under all traffic."""
    new = ctx.version
    steps.start(new, ctx.replicas, f"Start {new} at full size ({_count(ctx.replicas)}); nothing runs yet.")
    steps.wait_ready(new, ctx.replicas)
    steps.check(new)
    if route:
        steps.weights({new: 100}, f"Send all traffic to {new}.")
        steps.check_service(new)
    steps.analyze(1.0, f"Analyze {new} under all traffic.")
    return steps


def _native(ctx: _Context) -> bool:
    """Kubernetes and ECS roll and recreate with the platform's own strategy (what their users expect to see): a
    Deployment's RollingUpdate or Recreate, an ECS service's rolling update with its deployment circuit breaker."""
    return ctx.svc.target in (TargetKind.KUBERNETES, TargetKind.ECS)


def _native_rollout(ctx: _Context, recreate: bool) -> _Steps:
    """One Deployment whose template becomes the new version; Kubernetes replaces the pods itself and the step waits
    as ``kubectl rollout status`` does. The analysis follows the whole rollout, and a failure undoes it the way
    ``kubectl rollout undo`` does (the previous ReplicaSet's template back)."""
    steps = _Steps(ctx)
    new, old, total = ctx.version, ctx.old, ctx.replicas
    source = f"replacing {old}" if old else "the first version"
    if ctx.svc.target is TargetKind.ECS:
        how = (
            "every old task stops before a new one starts (minimumHealthyPercent 0, maximumPercent 100)"
            if recreate
            else f"rolling update (deploymentConfiguration from max_surge {ctx.env.max_surge}, "
            f"max_unavailable {ctx.env.max_unavailable})"
        )
        steps.add(
            "rollout",
            f"Register {new}'s task definition and update the ECS service to it ({source}); ECS replaces the tasks "
            f"with its own {how} and its deployment circuit breaker. Wait until the deployment's rolloutState is "
            "COMPLETED; FAILED (the circuit breaker) fails the step.",
            version=new,
            replicas=total,
        )
        steps.analyze(
            1.0,
            f"Analyze {new} under all traffic; a failure updates the service back to the last good task definition.",
        )
        return steps
    how = (
        "Recreate: every old pod stops before a new one starts"
        if recreate
        else f"RollingUpdate: maxSurge {ctx.env.max_surge}, maxUnavailable {ctx.env.max_unavailable}"
    )
    steps.add(
        "rollout",
        f"Set the Deployment's template to {new} ({source}); Kubernetes rolls the pods with its own {how}. "
        f"Wait as kubectl rollout status does; a crash loop or the progress deadline fails the step.",
        version=new,
        replicas=total,
    )
    steps.analyze(1.0, f"Analyze {new} under all traffic; a failure rolls the Deployment back (kubectl rollout undo).")
    return steps


def _rolling(ctx: _Context) -> _Steps:
    """Replace instances in batches: never more than replicas + max_surge running, never fewer than
    replicas - max_unavailable available (the Kubernetes rolling-update contract)."""
    if _native(ctx):
        return _native_rollout(ctx, recreate=False)
    steps = _Steps(ctx)
    new, old, total = ctx.version, ctx.old, ctx.replicas
    if old is None:
        steps.start(new, total, f"Start {new} at full size ({_count(total)}).")
        steps.wait_ready(new, total)
        steps.analyze(1.0, f"Analyze {new} under all traffic.")
        return steps
    surge, unavailable = ctx.env.max_surge, ctx.env.max_unavailable
    batches = _rolling_batches(total, surge, unavailable)
    running_new, running_old = 0, total
    for number, (size, down_first) in enumerate(batches, start=1):
        label = f"Batch {number} of {len(batches)}:"
        if down_first:
            running_old -= down_first
            _shrink_old(steps, old, running_old, f"{label} first (max_unavailable {unavailable})")
        running_new += size
        if running_new == size:
            steps.start(new, size, f"{label} start {_count(size)} of {new}.")
        else:
            steps.scale(new, running_new, f"{label} scale {new} up to {_count(running_new)}.")
        steps.wait_ready(new, running_new)
        if running_old > total - running_new:
            running_old = total - running_new
            _shrink_old(steps, old, running_old, label)
        steps.analyze(
            running_new / total,
            f"{label} analyze with {running_new} of {total} instances on {new} (traffic follows ready instances).",
        )
        if number == 1 and len(batches) > 1:
            steps.human_pause("the remaining batches")
    return steps


def _rolling_batches(total: int, surge: int, unavailable: int) -> list[tuple[int, int]]:
    """(new instances to add, old instances to remove before adding) per batch."""
    batches: list[tuple[int, int]] = []
    running_new, running_old = 0, total
    while running_new < total:
        size = min(surge + unavailable, total - running_new)
        down_first = min(unavailable, running_old, size)
        batches.append((size, down_first))
        running_new += size
        running_old = total - running_new
    return batches


def _shrink_old(steps: _Steps, old: str, replicas: int, label: str) -> None:
    if replicas == 0:
        steps.stop(old, f"{label} stop the remaining instances of {old}.")
    else:
        steps.scale(old, replicas, f"{label} scale {old} down to {_count(replicas)}.")


def _blue_green(ctx: _Context) -> _Steps:
    """New side at full size with no traffic, checked, then one switch; the old side stays warm so switching
    back is instant during the post-promotion analysis and the scale-down delay."""
    steps = _Steps(ctx)
    new, old, total = ctx.version, ctx.old, ctx.replicas
    if old is None:
        return _first_deployment(ctx, steps, route=True)
    steps.start(new, total, f"Start {new} at full size ({_count(total)}) beside {old}, with no traffic.")
    steps.wait_ready(new, total)
    steps.check(new)
    steps.human_pause(f"{new}")
    steps.weights({old: 0, new: 100}, f"Switch all traffic from {old} to {new}.")
    steps.check_service(new)
    steps.analyze(1.0, f"Post-promotion analysis of {new}; a failure switches traffic back to {old}.")
    delay = ctx.env.scale_down_delay
    steps.pause(f"Keep {old} warm for {human_duration(delay)} so switching back stays instant.", seconds=delay)
    steps.stop(old, f"Stop {old}.")
    return steps


def _canary(ctx: _Context) -> _Steps:
    """Shift traffic in the environment's steps; with exact weights the old version keeps its full size until the
    end, so a rollback is one weight change."""
    steps = _Steps(ctx)
    if ctx.old is None:
        return _first_deployment(ctx, steps, route=True)
    if not ctx.capabilities.exact_weights:
        return _canary_by_replicas(ctx, steps, ctx.old)
    new, old, total = ctx.version, ctx.old, ctx.replicas
    running = 0
    for weight in ctx.env.steps:
        if weight >= 100:
            steps.human_pause(f"100% on {new}")
        wanted = total if weight >= 100 else min(total, max(1, math.ceil(total * weight / 100)))
        if wanted > running:
            if running == 0:
                steps.start(new, wanted, f"Start {_count(wanted)} of {new} as the canary, with no traffic.")
            else:
                steps.scale(new, wanted, f"Scale {new} to {_count(wanted)} for {weight}% of traffic.")
            steps.wait_ready(new, wanted)
            if running == 0:
                steps.check(new)
            running = wanted
        steps.weights(
            {old: 100 - weight, new: weight}, f"Send {weight}% of traffic to {new}, {100 - weight}% to {old}."
        )
        steps.analyze(weight / 100, f"Analyze {new} at {weight}% of traffic against {_against(ctx, weight)}.")
    steps.stop(old, f"Stop {old}; {new} serves all traffic.")
    return steps


def _canary_by_replicas(ctx: _Context, steps: _Steps, old: str) -> _Steps:
    """No traffic router: a version's share is its share of the ready instances (Argo Rollouts' basic canary), so
    each step is the nearest split at or above the one requested that the replica count can make, the service
    keeps its size (the old version shrinks as the canary grows), and a step that makes the same split as the one
    before is left out. The configured steps always end at 100%."""
    new, total = ctx.version, ctx.replicas
    running_new, running_old, last_share = 0, total, 0
    for weight in ctx.env.steps:
        split = replica_split(weight, total)
        share = split.share
        if share <= last_share:
            steps.notes.append(
                f"{weight}% requested: left out, since with {_replicas(total)} it is {last_share}% again, "
                "the step before"
            )
            continue
        if weight >= 100:
            steps.human_pause(f"100% on {new}")
        made = (
            f"{share}%"
            if split.exact
            else f"{weight}% requested, {share}% possible with {_replicas(total)} ({_count(split.new)})"
        )
        if not split.exact:
            steps.notes.append(made)
        if split.new > running_new:
            if running_new == 0:
                steps.start(
                    new, split.new, f"Start {_count(split.new)} of {new} as the canary ({made}), with no traffic."
                )
            else:
                steps.scale(new, split.new, f"Scale {new} to {_count(split.new)} ({made}).")
            steps.wait_ready(new, split.new)
            if running_new == 0:
                steps.check(new)
            running_new = split.new
        if 0 < split.old < running_old:
            steps.scale(old, split.old, f"Scale {old} down to {_count(split.old)}: the service keeps {_count(total)}.")
            running_old = split.old
        steps.weights(
            {old: 100 - share, new: share},
            f"Send {share}% of traffic to {new}, {100 - share}% to {old}"
            + ("." if split.exact else f" ({made}: traffic follows the instance count on this platform)."),
        )
        if share >= 100:
            steps.check_service(new)
        steps.analyze(share / 100, f"Analyze {new} at {share}% of traffic against {_against(ctx, share)}.")
        last_share = share
    steps.stop(old, f"Stop {old}; {new} serves all traffic.")
    return steps


def _against(ctx: _Context, weight: int) -> str:
    """What a canary step's analysis compares with: the old version only while it takes traffic, and only if the
    analysis says so."""
    if weight >= 100:
        return f"the thresholds alone ({ctx.old} takes no traffic now: no baseline to compare with)"
    if ctx.analysis.compare_baseline:
        return f"{ctx.old} as the baseline"
    return "the thresholds alone (analysis.compare_baseline is off)"


def _recreate(ctx: _Context) -> _Steps:
    """Stop everything, then start the new version: the one strategy with planned downtime."""
    if _native(ctx):
        return _native_rollout(ctx, recreate=True)
    steps = _Steps(ctx)
    new, old, total = ctx.version, ctx.old, ctx.replicas
    if old is not None:
        steps.stop(old, f"Stop every instance of {old}; the service is down from here until {new} is ready.")
    steps.start(new, total, f"Start {new} at full size ({_count(total)}).")
    steps.wait_ready(new, total)
    steps.analyze(1.0, f"Analyze {new} under all traffic.")
    return steps


def _feature_flag(ctx: _Context) -> _Steps:
    """Ship the code dark (flag off), prove the build itself, then ramp the flag: turning it off is instant."""
    steps = _Steps(ctx)
    new, old, total = ctx.version, ctx.old, ctx.replicas
    flag = ctx.svc.flag.name if ctx.svc.flag else "?"
    steps.add("flag", f"Set flag {flag!r} to 0% so the new code paths stay dark.", percentage=0)
    steps.start(new, total, f"Start {new} at full size ({_count(total)}) with the flag off.")
    steps.wait_ready(new, total)
    steps.check(new)
    if old is None:
        steps.weights({new: 100}, f"Send all traffic to {new}, flag still off.")
    else:
        steps.weights({old: 0, new: 100}, f"Move all traffic from {old} to {new}, flag still off.")
    steps.check_service(new)
    steps.analyze(1.0, f"Analyze {new} with the flag off: the build must be sound before any user sees the feature.")
    if old is not None:
        delay = ctx.env.scale_down_delay
        steps.pause(
            f"Keep {old} warm for {human_duration(delay)} so switching the build back stays instant.", seconds=delay
        )
        steps.stop(old, f"Stop {old}.")
    for percentage in ctx.env.steps:
        if percentage >= 100:
            steps.human_pause(f"flag {flag!r} at 100%")
        steps.add("flag", f"Turn flag {flag!r} on for {percentage}% of users.", percentage=percentage)
        steps.analyze(1.0, f"Analyze {new} with flag {flag!r} at {percentage}%.")
    return steps


_BUILDERS = {
    StrategyName.ROLLING: _rolling,
    StrategyName.BLUE_GREEN: _blue_green,
    StrategyName.CANARY: _canary,
    StrategyName.RECREATE: _recreate,
    StrategyName.FEATURE_FLAG: _feature_flag,
}


def _estimate(steps: list[PlanStep]) -> float:
    """Bake times, timed pauses, and a start allowance per wait for readiness; human pauses are not counted.

    Same spirit as Flagger's time to promote (interval x maxWeight / stepWeight): the analysis dominates.
    """
    total = 0.0
    for step in steps:
        if step.action in ("analyze", "pause") and step.seconds:
            total += step.seconds
        elif step.action in ("wait_ready", "rollout"):
            total += START_ALLOWANCE_SECONDS
    return total


def _checks(ctx: _Context, strategy: StrategyName) -> list[str]:
    thresholds = ctx.config.thresholds_for(ctx.service, ctx.environment)
    analysis = ctx.analysis
    checks = [f"health: GET {ctx.svc.health} on every new instance answers 200 with status ok or healthy"]
    for path in ctx.svc.smoke:
        if path.startswith("!"):
            checks.append(f"smoke: GET {path[1:]} answers 404")
        else:
            checks.append(f"smoke: GET {path} answers 200")
    checks.append(_tier("error rate", thresholds.error_rate, percent))
    checks.append(_tier("latency p95", thresholds.latency_p95_ms, milliseconds))
    if thresholds.latency_p99_ms is not None:
        checks.append(_tier("latency p99", thresholds.latency_p99_ms, milliseconds))
    checks.append(
        f"each analysis lasts {human_duration(analysis.bake)}, measures every {human_duration(analysis.interval)} "
        f"and needs at least {analysis.min_requests} requests to {ctx.version}; no data is not a pass"
    )
    checks.append(
        f"a step fails after more than {analysis.failure_limit} failed measurement(s), pauses after more than "
        f"{analysis.inconclusive_limit} inconclusive one(s), and aborts after more than "
        f"{analysis.consecutive_error_limit} metric-source errors in a row"
    )
    if strategy == StrategyName.CANARY and ctx.old and analysis.compare_baseline:
        checks.append(f"the canary's error rate and latency are compared with {ctx.old}'s, the stable baseline")
    if ctx.config.mode == Mode.BROWNFIELD_ENTERPRISE and ctx.production:
        period = ctx.config.policy.monitoring_period or ENTERPRISE_MONITORING_SECONDS
        checks.append(f"post-deploy monitoring for {human_duration(period)} after the rollout completes")
    return checks


def _warnings(
    ctx: _Context,
    strategy: StrategyName,
    chosen_by: ChosenBy,
    recommendation: Recommendation,
    steps: _Steps,
    downtime: float,
) -> list[str]:
    warnings: list[str] = []
    if ctx.old is None and strategy in (StrategyName.CANARY, StrategyName.BLUE_GREEN):
        warnings.append(
            f"No current version is running in {ctx.environment}: this is a first deployment, so {strategy} "
            f"degrades to starting {ctx.version} at full size and analyzing it; there is no old version to "
            "compare against or to switch back to."
        )
    if chosen_by != "recommended" and _RISK[strategy] > _RISK[recommendation.strategy]:
        warnings.append(
            f"The {chosen_by} strategy {strategy} is riskier than the recommendation, "
            f"{recommendation.strategy}: {recommendation.reason}"
        )
    if strategy == StrategyName.RECREATE and ctx.old and not ctx.production:
        warnings.append(
            f"Recreate stops {ctx.old} before {ctx.version} starts: about {human_duration(downtime)} of downtime in "
            f"{ctx.environment}."
        )
    if ctx.production and not ctx.env.requires:
        others = [name for name in ctx.svc.environments if not ctx.config.is_production(ctx.service, name)]
        if others:
            warnings.append(
                f"{ctx.environment} does not require a successful deployment elsewhere first; production is "
                f"normally gated on staging: add requires = [{', '.join(repr(o) for o in others)}]."
            )
    if steps.notes:
        warnings.append(
            f"This platform has no traffic router: a version's share of traffic is its share of the ready instances, "
            f"so with {_replicas(ctx.replicas)} the canary steps are the splits it can make: "
            + "; ".join(steps.notes)
            + ". Add replicas for finer steps, or a traffic router (Gateway API) for exact weights."
        )
    if not ctx.capabilities.preview and any(step.via is CheckVia.INSTANCES for step in steps.items):
        warnings.append(
            f"This platform cannot send a request to {ctx.version} alone before it takes traffic (no preview): the "
            "check before traffic probes the health of each instance, and the smoke tests run through the service "
            f"once {ctx.version} serves."
        )
    release = ctx.svc.versions.get(ctx.version)
    if release is not None and release.migrations_irreversible:
        warnings.append(
            f"{ctx.version} applies migrations the old version cannot run against: if it fails after they ran, "
            "fix forward instead of rolling the application back."
        )
    analysis = ctx.analysis
    if analysis.bake < analysis.interval:
        warnings.append(
            f"analysis.bake ({human_duration(analysis.bake)}) is shorter than analysis.interval "
            f"({human_duration(analysis.interval)}): each step gets at most one measurement."
        )
    rps = ctx.svc.requests_per_second
    if rps is not None and analysis.min_requests > 0:
        short = [
            (index, rps * share * analysis.bake)
            for index, share in steps.analysis_shares
            if rps * share * analysis.bake < analysis.min_requests
        ]
        if short:
            listed = ", ".join(f"step {index} (~{expected:.0f})" for index, expected in short)
            warnings.append(
                f"At {rps:g} requests/s some analyses will not reach min_requests = {analysis.min_requests} "
                f"within {human_duration(analysis.bake)}: {listed}. Such a step is inconclusive and pauses; lengthen "
                "analysis.bake or lower min_requests."
            )
    if any(step.action == "pause" and step.seconds is None for step in steps.items):
        warnings.append(
            "The plan pauses for a human decision (brownfield-enterprise); the estimated duration excludes that wait."
        )
    return warnings


def _rollback(ctx: _Context, strategy: StrategyName) -> str:
    new, old = ctx.version, ctx.old
    release = ctx.svc.versions.get(new)
    prefix = ""
    if release is not None and release.migrations_irreversible:
        prefix = f"Fix forward if {new}'s irreversible migrations have run; only before that is a rollback safe: "
    if old is None and strategy != StrategyName.FEATURE_FLAG:
        return prefix + f"There is no previous version to return to: rolling back means stopping {new}."
    if strategy == StrategyName.CANARY and not ctx.capabilities.exact_weights:
        sentence = (
            f"During the ramp, {old} still runs, with fewer instances as {new} grows: it is scaled back to full size "
            f"and takes all traffic again. After the ramp finished, {old} was stopped, so it is started again at full "
            f"size, checked and given all traffic at once. Then {new} is stopped."
        )
    elif strategy == StrategyName.CANARY:
        sentence = (
            f"During the ramp, {old} still runs at full size: {new}'s weight goes to 0 and {old} takes all traffic "
            f"again. After the ramp finished, {old} was stopped, so it is started again at full size, checked and "
            f"given all traffic at once. Then {new} is stopped."
        )
    elif strategy == StrategyName.BLUE_GREEN:
        sentence = (
            f"Switch traffic back to {old}, which stays warm for {human_duration(ctx.env.scale_down_delay)} after the "
            f"switch; after that, start {old} again at full size and switch back."
        )
    elif strategy == StrategyName.FEATURE_FLAG:
        flag = ctx.svc.flag.name if ctx.svc.flag else "?"
        # Say what the runner's undo does: the flag goes off first, then the previous build comes back.
        sentence = f"Turn flag {flag!r} off (0%) first: instant, no user sees the feature any more."
        if old is None:
            sentence += f" There is no previous build to return to, so {new} is then stopped."
        else:
            sentence += (
                f" Then {old} takes all traffic again: switched back while it is kept warm "
                f"({human_duration(ctx.env.scale_down_delay)} after the move), started again at full size after that; "
                f"{new} is stopped."
            )
    elif strategy in (StrategyName.RECREATE, StrategyName.ROLLING) and _native(ctx):
        downtime = ", with the same downtime" if strategy == StrategyName.RECREATE else ""
        sentence = (
            f"The ECS service goes back to {old}'s task definition and ECS replaces the tasks with the same "
            f"deployment settings{downtime}."
            if ctx.svc.target is TargetKind.ECS
            else f"kubectl rollout undo: the Deployment's template goes back to {old}'s ReplicaSet and Kubernetes "
            f"rolls the pods back with the same strategy{downtime}."
        )
    elif strategy == StrategyName.RECREATE:
        sentence = f"Recreate again with {old}: stop {new} and start {old}, with the same downtime."
    else:
        sentence = (
            f"Not batch by batch: during the rollout {old}'s remaining instances are scaled back up, after it "
            f"{old} is started again at full size; once ready and checked it takes all traffic at once and {new} "
            "is stopped."
        )
    return prefix + sentence


def _tier(name: str, tier: Tier, show: Callable[[float], str]) -> str:
    return (
        f"{name}: warn above {show(tier.warn)} (pause for a decision), critical above {show(tier.critical)} (roll back)"
    )


def _replicas(replicas: int) -> str:
    return f"{replicas} replica" + ("" if replicas == 1 else "s")


def _count(replicas: int) -> str:
    return f"{replicas} instance" + ("" if replicas == 1 else "s")
