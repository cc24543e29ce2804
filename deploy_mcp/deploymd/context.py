"""Everything the DEPLOY.md templates show, resolved from deploy.toml, the project's files and the ledger.

The templates hold the prose and the shape of each command; this module decides the facts that fill them: which
namespace, cluster, port or flag file each service and environment really uses, which strategy applies and
why, the exact steps of that strategy (from ``build_plan``, the same plan the runner executes, so the document
cannot describe a rollout the server would not run), the thresholds after every override, and the last version
that passed validation. Nothing here reads a clock or a platform: the same inputs give the same context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from deploy_mcp.config.schema import DeployConfig, Mode, Service, StrategyName, TargetKind, Thresholds, Tier
from deploy_mcp.core.masking import mask_command
from deploy_mcp.core.plans import PlanStep, build_plan
from deploy_mcp.core.policy import ENTERPRISE_MONITORING_SECONDS, Gate
from deploy_mcp.core.units import human_duration, percent
from deploy_mcp.deploymd.scan import ProjectFiles

if TYPE_CHECKING:
    from deploy_mcp.core.records import DeploymentRecord
    from deploy_mcp.ledger.base import Ledger

NEW = "NEW"
CURRENT = "CURRENT"
"""Stand-ins for the versions in the documented steps: DEPLOY.md describes every release, not one."""

MODE_SUMMARY = {
    Mode.GREENFIELD: "greenfield: the full pipeline, any strategy, full DEPLOY.md and monitoring",
    Mode.BROWNFIELD_POLISH: (
        "brownfield-polish: match the existing deployment process, ship new features behind flags, "
        "no breaking API changes"
    ),
    Mode.BROWNFIELD_ENTERPRISE: (
        "brownfield-enterprise: an approved change, a scheduled window, on-call available, rollback tested in "
        "staging and a monitoring period after every production deployment"
    ),
}

STRATEGY_FACTS = {
    # the skill's comparison: risk, rollback speed, extra resources
    StrategyName.ROLLING: ("low", "medium (5-15 min)", "none"),
    StrategyName.BLUE_GREEN: ("very low", "fast (under 1 min)", "2x while both run"),
    StrategyName.CANARY: ("very low", "fast (1-5 min)", "+10-20%"),
    StrategyName.RECREATE: ("high", "slow (10-30 min)", "none, but downtime"),
    StrategyName.FEATURE_FLAG: ("very low", "instant", "none"),
}

ROLE_DUTIES = {
    "on-call": "owns the incident from the first page and makes the rollback call",
    "team-lead": "when the rollback itself fails, or data is involved",
    "platform": "when the platform (cluster, load balancer, database) is the suspect",
    "sre": "when the platform (cluster, load balancer, database) is the suspect",
    "director": "when customers are affected for more than 30 minutes, or a decision goes beyond the team",
    "management": "when customers are affected for more than 30 minutes, or a decision goes beyond the team",
}

ROLLBACK_TIMES = {
    "local": "local platform, seconds while the previous version still runs (otherwise its start time)",
    "kubernetes": "Kubernetes about 30 s",
    "ecs": "ECS about 3 min",
}


@dataclass(frozen=True)
class KnownGood:
    version: str
    deployment_id: str


@dataclass(frozen=True)
class RollbackNow:
    """What ``rollback`` with no ``to`` would do today, resolved as the runner resolves it: from the deployment
    that stands now to the version it would restore (never the version serving now), or why it would refuse."""

    current: KnownGood | None = None
    target: KnownGood | None = None
    refused: str | None = None


@dataclass(frozen=True)
class LastDeployment:
    version: str
    deployment_id: str
    status: str
    roll_forward_only: bool


@dataclass
class EnvironmentView:
    """One service in one environment: where it runs, how it ships, how it is judged and how it comes back."""

    service: str
    name: str
    target: str
    production: bool
    strategy: str
    chosen_by: str
    recommendation: str
    recommended: str
    steps: list[PlanStep]
    gates: list[Gate]
    checks: list[str]
    rollback_during: str
    rollback_after: str
    estimated: str
    replicas: int
    requires: list[str]
    thresholds: Thresholds
    analysis: dict[str, Any]
    canary_steps: list[int]
    max_surge: int
    max_unavailable: int
    scale_down_delay: str
    port: int | None = None
    base_url: str | None = None
    namespace: str | None = None
    kube_context: str | None = None
    cluster: str | None = None
    region: str | None = None
    rollback_now: RollbackNow | None = None
    last: LastDeployment | None = None
    rollback_tested: str | None = None

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"


@dataclass
class ServiceView:
    name: str
    target: str
    image: str | None
    command: list[str] | None
    cwd: str | None
    replicas: int
    health: str
    smoke: list[tuple[str, int]]
    flag_name: str | None
    flag_file: str | None
    test_command: list[str] | None
    requests_per_second: float | None
    irreversible: list[str]
    environments: list[EnvironmentView] = field(default_factory=list)
    serves_docs: bool = False


def build_context(
    config: DeployConfig,
    *,
    project_name: str,
    config_file: str,
    files: ProjectFiles,
    ledger: Ledger | None,
    cli_commands: frozenset[str],
    tool_names: frozenset[str] = frozenset(),
    generated_at: str | None = None,
) -> dict[str, Any]:
    """The template context; raises the configuration's own errors (a plan that cannot be built) unchanged."""
    services = [_service(config, name, svc, files, ledger) for name, svc in config.services.items()]
    environments = [env for service in services for env in service.environments]
    targets_in_use = sorted({env.target for env in environments})
    strategies_in_use = sorted({env.strategy for env in environments})
    policy = config.policy
    enterprise = config.mode == Mode.BROWNFIELD_ENTERPRISE
    period = policy.monitoring_period or (ENTERPRISE_MONITORING_SECONDS if enterprise else None)
    return {
        "project": project_name,
        "config_file": config_file,
        "mode": config.mode.value,
        "mode_summary": MODE_SUMMARY[config.mode],
        "enterprise": enterprise,
        "polish": config.mode == Mode.BROWNFIELD_POLISH,
        "files": files,
        "version": files.version,
        "services": services,
        "environments": environments,
        "production_environments": [env for env in environments if env.production],
        "targets_in_use": targets_in_use,
        "strategies_in_use": strategies_in_use,
        "strategy_facts": {str(k): v for k, v in STRATEGY_FACTS.items()},
        "thresholds": config.thresholds,
        "policy": policy,
        "deploy_windows": [
            f"{', '.join(window.days)} {window.start}-{window.end} UTC" for window in policy.deploy_windows
        ],
        "monitoring_period": human_duration(period) if period else None,
        "escalation_path": list(policy.escalation_path),
        "on_call": policy.on_call,
        "prometheus": config.targets.prometheus,
        "cli": cli_commands,
        "tools": tool_names,
        "has_ledger": ledger is not None,
        "generated_at": generated_at,
        "irreversible": [(s.name, version) for s in services for version in s.irreversible],
        "docs_service": next((s for s in services if s.serves_docs), None),
        "warnings": _warnings(config, services, files),
        "manifest_paths": _manifest_paths(files),
        "change_record": _change_record(config, period),
        "role_duties": ROLE_DUTIES,
        "rollback_times": ROLLBACK_TIMES,
        "NEW": NEW,
        "CURRENT": CURRENT,
    }


def _service(config: DeployConfig, name: str, svc: Service, files: ProjectFiles, ledger: Ledger | None) -> ServiceView:
    view = ServiceView(
        name=name,
        target=svc.target.value,
        image=svc.image,
        command=mask_command(svc.command),  # DEPLOY.md is committed and read by everyone
        cwd=svc.cwd,
        replicas=svc.replicas,
        health=svc.health,
        smoke=[(path[1:], 404) if path.startswith("!") else (path, 200) for path in svc.smoke],
        flag_name=svc.flag.name if svc.flag else None,
        flag_file=svc.flag.file if svc.flag else None,
        test_command=mask_command(getattr(svc, "test_command", None)),
        requests_per_second=svc.requests_per_second,
        irreversible=sorted(v for v, release in svc.versions.items() if release.migrations_irreversible),
        serves_docs=_serves(svc, files),
    )
    for env_name in svc.environments:
        view.environments.append(_environment(config, name, svc, env_name, ledger))
    return view


def _serves(svc: Service, files: ProjectFiles) -> bool:
    """Whether a service serves the docs site: its command names the output folder, or a folder under docs."""
    site = files.docs_site
    if site is None or not svc.command:
        return False
    parts = [*svc.command, svc.cwd or ""]
    return any(site.output in part or "docs" in PurePosixPath(part).parts for part in parts)


def _environment(
    config: DeployConfig, service: str, svc: Service, env_name: str, ledger: Ledger | None
) -> EnvironmentView:
    env = svc.environments[env_name]
    plan = build_plan(config, service, NEW, env_name, current_version=CURRENT)
    targets = config.targets
    view = EnvironmentView(
        service=service,
        name=env_name,
        target=svc.target.value,
        production=plan.production,
        strategy=plan.strategy.value,
        chosen_by=plan.chosen_by,
        recommendation=plan.recommendation.reason,
        recommended=plan.recommendation.strategy.value,
        steps=plan.steps,
        gates=plan.gates,
        checks=plan.checks,
        rollback_during=_undo_text(plan.strategy, svc.flag.name if svc.flag else None),
        rollback_after=_rollback_text(plan.strategy),
        estimated=human_duration(plan.estimated_duration_seconds),
        replicas=plan.replicas,
        requires=list(env.requires),
        thresholds=plan.thresholds,
        analysis={
            "interval": human_duration(env.analysis.interval),
            "bake": human_duration(env.analysis.bake),
            "min_requests": env.analysis.min_requests,
            "failure_limit": env.analysis.failure_limit,
            "inconclusive_limit": env.analysis.inconclusive_limit,
            "consecutive_error_limit": env.analysis.consecutive_error_limit,
            "compare_baseline": env.analysis.compare_baseline,
        },
        canary_steps=list(env.steps),
        max_surge=env.max_surge,
        max_unavailable=env.max_unavailable,
        scale_down_delay=human_duration(env.scale_down_delay),
    )
    if svc.target == TargetKind.LOCAL:
        view.port = env.port
        view.base_url = f"http://127.0.0.1:{env.port}" if env.port else None
    elif svc.target == TargetKind.KUBERNETES:
        view.namespace = env.namespace or targets.kubernetes.namespace
        view.kube_context = targets.kubernetes.context
    else:
        view.cluster = env.cluster or targets.ecs.cluster
        view.region = targets.ecs.region
    if ledger is not None:
        _from_ledger(view, ledger, config)
    return view


def _undo_text(strategy: StrategyName, flag: str | None) -> str:
    """What the runner's undo does when a check fails or the rollout is aborted (core/runner/rollback.py undo)."""
    back = (
        f"all traffic goes back to {CURRENT} in one switch, then {NEW} is stopped (with no earlier version, "
        f"{NEW} is just stopped)"
    )
    if strategy == StrategyName.CANARY:
        return f"{CURRENT} keeps its full size until the last step, so {back}."
    if strategy == StrategyName.BLUE_GREEN:
        return f"{CURRENT} keeps running at full size until its scale-down delay ends, so {back}."
    if strategy == StrategyName.ROLLING:
        return (
            f"{CURRENT} is scaled back up to full size in one step (started again at full size if its last instance "
            f"was already replaced), not batch by batch; then {back}."
        )
    if strategy == StrategyName.RECREATE:
        return f"{CURRENT} was stopped before {NEW} started: it is started again at full size, then {back}."
    name = repr(flag) if flag else "the flag"
    return (
        f"Flag {name} is turned off (0%) first, once the rollout has touched it. Then {CURRENT} is scaled back up "
        f"or started again at full size if it no longer runs, and {back}."
    )


def _rollback_text(strategy: StrategyName) -> str:
    """What a ``rollback`` after the rollout ended does (core/runner/rollback.py plan_rollback): its own deployment,
    to the last version that passed validation before the one serving now, which is usually CURRENT. A finished
    rollout has always stopped CURRENT (its last step, after any scale-down delay), so it is started again."""
    stopped = (
        f"it was stopped before {NEW} started" if strategy == StrategyName.RECREATE else "the last step stopped it"
    )
    text = (
        f"{CURRENT} no longer runs ({stopped}): it is started again at full size, its health and smoke checks run "
        f"straight against it before it takes traffic, then all traffic moves to it at once and every other "
        f"version, {NEW} included, is stopped. A rollback called while the rollout still runs"
        + (
            " (the scale-down delay included)"
            if strategy in (StrategyName.BLUE_GREEN, StrategyName.FEATURE_FLAG)
            else ""
        )
        + " from the process driving it aborts it instead, which is the undo above; from any other process it is"
        " refused until the rollout is aborted."
    )
    if strategy == StrategyName.FEATURE_FLAG:
        text += " A rollback leaves the flag as it is: turn it off first if the feature is the problem."
    return text


def _from_ledger(view: EnvironmentView, ledger: Ledger, config: DeployConfig) -> None:
    from deploy_mcp.core.runner.base import RunnerError
    from deploy_mcp.core.runner.rollback import current_deployment, resolve_rollback

    releases = config.services[view.service].versions
    try:
        target = resolve_rollback(ledger, view.service, view.name, None, releases=releases)
    except RunnerError as refusal:
        current = current_deployment(ledger, view.service, view.name)
        view.rollback_now = RollbackNow(
            current=KnownGood(current.version, current.id) if current else None, refused=str(refusal)
        )
    else:
        proof = target.proof
        view.rollback_now = RollbackNow(
            current=KnownGood(target.current.version, target.current.id),
            target=KnownGood(target.version, proof.id) if proof else None,
        )
    latest = ledger.list(service=view.service, environment=view.name, limit=1)
    if latest:
        record = latest[0]
        view.last = LastDeployment(record.version, record.id, record.status.value, record.roll_forward_only)
    if view.production:
        view.rollback_tested = _rollback_rehearsal(ledger, config, view.service)


def _rollback_rehearsal(ledger: Ledger, config: DeployConfig, service: str) -> str | None:
    """The newest rollback of this service outside production: the enterprise mode's 'rollback tested' proof."""
    rehearsals: list[DeploymentRecord] = []
    for env_name in config.services[service].environments:
        if config.is_production(service, env_name):
            continue
        rehearsals += [r for r in ledger.list(service=service, environment=env_name, limit=200) if r.rollback_of]
    if not rehearsals:
        return None
    newest = max(rehearsals, key=lambda r: r.id)
    return f"{newest.id} in {newest.environment} ({newest.status.value})"


def _warnings(config: DeployConfig, services: list[ServiceView], files: ProjectFiles) -> list[str]:
    """What a reader should check because configuration and files disagree, or something could not be read."""
    warnings = list(files.problems)
    deployments = [obj for obj in files.manifests if obj.kind in ("Deployment", "Rollout")]
    for service in services:
        if not service.environments:
            warnings.append(
                f"service {service.name} has no environments, so it cannot be deployed and has no rollback "
                f"procedure here; add [services.{service.name}.environments.staging] to deploy.toml"
            )
        if service.target != TargetKind.KUBERNETES.value or not deployments:
            continue
        named = [obj for obj in deployments if obj.name == service.name]
        if not named:
            found = ", ".join(sorted({obj.name for obj in deployments}))
            warnings.append(
                f"no Deployment named {service.name} in the Kubernetes manifests (found: {found}); the kubectl "
                "commands below assume the Deployment and its container are named after the service"
            )
            continue
        namespaces = {env.namespace for env in service.environments}
        for obj in named:
            if obj.namespace and obj.namespace not in namespaces:
                warnings.append(
                    f"{obj.path} puts {obj.kind} {obj.name} in namespace {obj.namespace}, but deploy.toml deploys "
                    f"{service.name} to {', '.join(sorted(n for n in namespaces if n))}; make them agree"
                )
    return warnings


def _manifest_paths(files: ProjectFiles) -> list[str]:
    """What `kubectl apply -f` takes: each folder holding manifests, or the file itself at the project root."""
    paths = {obj.path.rsplit("/", 1)[0] if "/" in obj.path else obj.path for obj in files.manifests}
    return sorted(paths)


def _change_record(config: DeployConfig, period: float | None) -> str:
    policy = config.policy
    windows = [f"{', '.join(w.days)} {w.start}-{w.end} UTC" for w in policy.deploy_windows]
    record = {
        "change_id": "CHG-12345",
        "approved_by": "change-board",
        "deploy_window": windows[0] if windows else None,
        "rollback_tested": True,
        "monitoring_period": human_duration(period) if period else None,
        "escalation_path": list(policy.escalation_path),
    }
    return json.dumps(record, indent=2)


def tier_text(tier: Tier, unit: str) -> tuple[str, str]:
    if unit == "%":
        return percent(tier.warn), percent(tier.critical)
    return f"{tier.warn:g} {unit}", f"{tier.critical:g} {unit}"
