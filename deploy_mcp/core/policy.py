"""Whether an action may happen now: read-only sessions, allowlists, promotion, windows, modes and approvals.

Pure on purpose: what the ledger knows (where this version succeeded, the approval found for a change id, whether
a rollback was ever rehearsed) is passed in, so the MCP tools, the CLI and the tests run the same rules, and a
decision can be explained from its inputs alone. Every check is reported, passed or not, so an agent sees all it
must fix at once; the first blocking failure is the refusal.

Two asymmetries are deliberate. Rolling back and aborting are never held by promotion rules or deploy windows:
they return production to a version that already served it, and an emergency cannot wait for Tuesday 09:00.
And no message ever offers the agent a way to approve for itself: approvals and policy changes are a person's
acts, so the messages name the key in deploy.toml or the terminal command, and say who does it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict

from deploy_mcp.config.schema import DeployConfig, DeployWindow, Environment, Mode, Service, StrategyName
from deploy_mcp.core.recommend import lookup
from deploy_mcp.core.target import START_ALLOWANCE_SECONDS
from deploy_mcp.core.units import human_duration
from deploy_mcp.core.windows import describe_window, next_window_opening, open_window, span_text, utc_text
from deploy_mcp.errors import UserError
from deploy_mcp.ledger.base import Approval

__all__ = [
    "ACTIONS",
    "CONFIRMED_ACTIONS",
    "ENTERPRISE_MONITORING_SECONDS",
    "WINDOWED_ACTIONS",
    "Action",
    "Gate",
    "GateKind",
    "PolicyCheck",
    "PolicyDecision",
    "PolicyRefusal",
    "approve_command",
    "describe_window",
    "evaluate",
    "next_window_opening",
    "open_window",
    "requirements",
]

Action = Literal["deploy", "rollback", "promote", "abort", "resume", "pause"]
ACTIONS: tuple[Action, ...] = get_args(Action)

CONFIRMED_ACTIONS: frozenset[Action] = frozenset({"deploy", "rollback", "promote", "resume"})
"""Production actions the user confirms. Abort and pause are left out: abort returns traffic to the version that
served before, exactly what the runner does on its own when the numbers turn critical, and pause changes nothing
users see; asking first would only slow down the safe direction."""

WINDOWED_ACTIONS: frozenset[Action] = frozenset({"deploy", "promote", "resume"})
"""Actions that move a release forward, and so wait for a deploy window; rollback, abort and pause never wait."""

ENTERPRISE_MONITORING_SECONDS = 4 * 3600.0
"""The enterprise mode's post-deploy monitoring period when the policy does not set one."""


class _CheckFn(Protocol):
    """The local ``check`` helper of `evaluate`, as the helpers that add checks see it."""

    def __call__(self, name: str, passed: bool, detail: str, *, blocking: bool = True) -> None: ...


class PolicyRefusal(UserError):
    """The policy forbids this action now; ``gate`` names the rule (the same names the plan's gates use)."""

    def __init__(self, message: str, gate: str) -> None:
        super().__init__(message)
        self.gate = gate


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyCheck(_Model):
    """One rule applied to this action. ``blocking`` is False for advice, which is shown but never refuses."""

    name: str
    passed: bool
    blocking: bool = True
    detail: str


class PolicyDecision(_Model):
    """Every rule that applied, whether the user must confirm, and the refusal if any rule blocks.

    ``deploy_window`` describes the window the action falls in (for the enterprise record), when windows apply.
    """

    action: Action
    service: str
    environment: str
    version: str | None
    production: bool
    mode: Mode
    checks: list[PolicyCheck]
    needs_confirmation: bool
    refusal: str | None
    refused_by: str | None
    deploy_window: str | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    def raise_if_refused(self) -> None:
        if self.refusal is not None:
            raise PolicyRefusal(self.refusal, self.refused_by or "policy")


def evaluate(
    config: DeployConfig,
    *,
    action: Action,
    service: str,
    environment: str,
    now: datetime,
    version: str | None = None,
    strategy: StrategyName | str | None = None,
    succeeded_in: set[str] | frozenset[str] = frozenset(),
    approval: Approval | None = None,
    change_id: str | None = None,
    rollback_tested: bool = False,
    approval_problem: str | None = None,
) -> PolicyDecision:
    """Apply the policy of deploy.toml to one action.

    ``strategy`` is the one the plan will use (None: the environment's configured one). ``succeeded_in`` names
    the environments where ``version`` of ``service`` succeeded; ``approval`` is what the ledger holds for
    ``change_id``, ``service`` and ``environment`` (None when nothing valid was found); ``rollback_tested`` says
    a rollback of this service succeeded outside production at least once; ``approval_problem`` says why the
    ledger's approval of ``change_id`` does not count when it knows (spent, for another version, a deployment id
    given as the change), in place of the generic "no valid approval". Unknown services or environments raise
    PlanError with the names that exist.
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if action == "deploy" and not version:
        raise ValueError("a deploy is evaluated for a version; pass version")
    svc, env = lookup(config, service, environment)
    policy = config.policy
    production = config.is_production(service, environment)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    checks: list[PolicyCheck] = []

    def check(name: str, passed: bool, detail: str, *, blocking: bool = True) -> None:
        checks.append(PolicyCheck(name=name, passed=passed, blocking=blocking, detail=detail))

    # Scope of the session: nothing else matters if it may not act at all.
    check(
        "read-only",
        not policy.read_only,
        f"This session is read-only (policy.read_only = true in deploy.toml), so {action} is refused and nothing "
        "was changed. Plans, history and validation still work. To allow changes, a person sets "
        "policy.read_only = false in deploy.toml."
        if policy.read_only
        else "policy.read_only is false: changes are allowed.",
    )
    allowed = policy.allowed_environments
    if allowed is not None:
        listed = ", ".join(allowed) if allowed else "none: the list is empty"
        check(
            "environment-allowlist",
            environment in allowed,
            f"{environment!r} is in policy.allowed_environments ({listed})."
            if environment in allowed
            else f"Environment {environment!r} is not in policy.allowed_environments ({listed}), so this session "
            f"may not {action} there. To allow it, a person adds {environment!r} to policy.allowed_environments "
            "in deploy.toml.",
        )

    if action == "deploy":
        for needed in env.requires:
            key = f"services.{service}.environments.{environment}.requires"
            check(
                f"requires-{needed}",
                needed in succeeded_in,
                f"{service} {version} succeeded in {needed}, as {key} demands."
                if needed in succeeded_in
                else f"{service} {version} has not succeeded in {needed} yet, and {key} = {env.requires!r} makes "
                f"that a condition for {environment}. Deploy {version} to {needed} first and let it finish "
                "successfully, then deploy it here.",
            )
        chosen = StrategyName(strategy) if strategy is not None else env.strategy
        if chosen == StrategyName.RECREATE and production:
            outage = f"about {START_ALLOWANCE_SECONDS:g} s"
            if policy.allow_recreate_in_production:
                check(
                    "recreate-downtime",
                    True,
                    f"Recreate stops the running version before {version} starts: expect {outage} with no service "
                    f"in {environment}. policy.allow_recreate_in_production = true accepts that outage.",
                )
            else:
                check(
                    "recreate-in-production",
                    False,
                    f"Recreate stops every instance before the new ones start: expect {outage} with no service in "
                    f"{environment}, on every release. It is refused in production: choose rolling, canary or "
                    f"blue-green (the strategy argument, or services.{service}.environments.{environment}.strategy "
                    "in deploy.toml). Only a person may accept the downtime instead, by setting "
                    "policy.allow_recreate_in_production = true in deploy.toml.",
                )

    enterprise = config.mode == Mode.BROWNFIELD_ENTERPRISE and production
    window_text: str | None = None
    if production and (policy.deploy_windows or enterprise):
        window_text = _window_check(check, policy.deploy_windows, action, now, environment)

    if enterprise and action == "deploy":
        _approval_check(check, service, environment, change_id, approval, now, approval_problem)
        staging = env.requires or [name for name in svc.environments if not config.is_production(service, name)]
        where = " or ".join(staging) if staging else "a non-production environment"
        check(
            "rollback-tested",
            rollback_tested,
            f"A rollback of {service} has succeeded in {where}: the procedure is rehearsed."
            if rollback_tested
            else f"brownfield-enterprise mode requires the rollback to be rehearsed before production, and no "
            f"successful rollback of {service} is recorded in {where}. Deploy to {where}, roll it back with the "
            "rollback tool, validate, then deploy to production.",
        )
        period = policy.monitoring_period or ENTERPRISE_MONITORING_SECONDS
        escalation = " -> ".join(policy.escalation_path)
        check(
            "on-call",
            policy.on_call is not None,
            f"On call: {policy.on_call}, for the deployment and the {period / 3600:g} h monitoring period after "
            f"it; escalation: {escalation}."
            if policy.on_call
            else "brownfield-enterprise mode needs a named on-call engineer for production deploys, and "
            'policy.on_call is not set. A person sets policy.on_call = "NAME" in deploy.toml (the engineer '
            f"available for the deployment and the {period / 3600:g} h after it; escalation: {escalation}).",
        )

    if config.mode == Mode.BROWNFIELD_POLISH and action == "deploy":
        check(
            "flags-for-new-features",
            svc.flag is not None,
            f"brownfield-polish mode: new features ship behind a flag; flag {svc.flag.name!r} is configured."
            if svc.flag
            else "brownfield-polish mode: new features ship behind a feature flag, and none is configured; add "
            f'[services.{service}.flag] with name = "..." to deploy.toml for the next feature.',
            blocking=False,
        )
        existing = [path for path in svc.smoke if not path.startswith("!") and path != svc.health]
        check(
            "smoke-existing-functionality",
            bool(existing),
            f"brownfield-polish mode: existing API contracts must not break; the smoke checks cover "
            f"{', '.join(existing)} besides the health check."
            if existing
            else "brownfield-polish mode: existing API contracts must not break, but the smoke checks only hit "
            f"the health check; add existing endpoints to services.{service}.smoke in deploy.toml.",
            blocking=False,
        )

    failed = next((c for c in checks if c.blocking and not c.passed), None)
    return PolicyDecision(
        action=action,
        service=service,
        environment=environment,
        version=version,
        production=production,
        mode=config.mode,
        checks=checks,
        needs_confirmation=production and policy.require_confirmation and action in CONFIRMED_ACTIONS,
        refusal=failed.detail if failed else None,
        refused_by=failed.name if failed else None,
        deploy_window=window_text,
    )


# -- what the policy will demand, said before a deployment starts --------------------------------------------------


GateKind = Literal["refusal", "confirmation", "prerequisite", "approval", "window", "downtime", "advice"]


class Gate(BaseModel):
    """A condition policy puts on this deployment.

    Kinds: refusal (cannot pass under this configuration), confirmation (a human says yes), prerequisite
    (something must have happened first), approval (an approved change), window (only at scheduled times),
    downtime (the user accepts an outage), advice (a practice to follow; never blocks).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: GateKind
    description: str
    blocking: bool


@dataclass(frozen=True)
class _Demand:
    """What the demands of one deployment depend on."""

    config: DeployConfig
    service: str
    svc: Service
    env: Environment
    environment: str
    version: str
    old: str | None
    production: bool


def requirements(
    config: DeployConfig,
    service: str,
    environment: str,
    strategy: StrategyName,
    *,
    version: str,
    current: str | None,
    downtime: float,
) -> list[Gate]:
    """What the policy will demand of this deployment, said before it starts: the plan's gates.

    The same rules `evaluate` judges at call time, in the future tense and without the ledger's facts, so a plan
    shows every condition and nothing is a surprise when the tool is called; a test holds the two to one set of
    names. ``downtime`` is the plan's expected outage (recreate only).
    """
    svc, env = lookup(config, service, environment)
    ctx = _Demand(config, service, svc, env, environment, version, current, config.is_production(service, environment))
    policy, env_name = config.policy, environment
    gates: list[Gate] = []

    def gate(name: str, kind: GateKind, description: str, blocking: bool = True) -> None:
        gates.append(Gate(name=name, kind=kind, description=description, blocking=blocking))

    if policy.read_only:
        gate(
            "read-only",
            "refusal",
            "The policy is read-only (policy.read_only = true): this plan can be shown but not deployed.",
        )
    allowed = policy.allowed_environments
    if allowed is not None and env_name not in allowed:
        gate(
            "environment-allowlist",
            "refusal",
            f"Environment {env_name!r} is not in policy.allowed_environments "
            f"({', '.join(allowed) or 'empty'}); add it there to deploy to it.",
        )
    if ctx.production and policy.require_confirmation:
        gate(
            "production-confirmation",
            "confirmation",
            f"{env_name!r} is a production environment: the user confirms this deployment when asked. If the "
            "client cannot ask, a releaser approves it through the team server (deploy-mcp approve --server); "
            "an approval typed in a terminal does not count, and the model cannot approve for itself.",
        )
    for needed in ctx.env.requires:
        gate(
            f"requires-{needed}",
            "prerequisite",
            f"{ctx.service} {ctx.version} must have succeeded in {needed} before it goes to {env_name}.",
        )
    if strategy == StrategyName.RECREATE and ctx.production:
        if policy.allow_recreate_in_production:
            gate(
                "recreate-downtime",
                "downtime",
                f"Recreate stops {ctx.old or 'the running version'} before {ctx.version} starts: expect about "
                f"{human_duration(downtime)} with no service in production. The user must accept this outage.",
            )
        else:
            gate(
                "recreate-in-production",
                "refusal",
                "Recreate is refused in production because it takes the service down; choose rolling, canary or "
                "blue-green, or set policy.allow_recreate_in_production = true to accept the downtime.",
            )
    if config.mode == Mode.BROWNFIELD_ENTERPRISE and ctx.production:
        _enterprise_gates(ctx, gate)
    if config.mode == Mode.BROWNFIELD_POLISH:
        flag = ctx.svc.flag
        where = (
            f"flag {flag.name!r} is configured for this"
            if flag
            else f"no flag is configured yet (add [services.{ctx.service}.flag])"
        )
        gate(
            "flags-for-new-features",
            "advice",
            f"brownfield-polish mode: ship new features behind a feature flag; {where}.",
            blocking=False,
        )
        gate(
            "no-breaking-api-changes",
            "advice",
            "brownfield-polish mode: existing API contracts must not break; the smoke checks should cover "
            "existing functionality, not only the new feature.",
            blocking=False,
        )
    if strategy == StrategyName.FEATURE_FLAG and ctx.svc.flag:
        gate(
            "flag-cleanup",
            "advice",
            f"Once flag {ctx.svc.flag.name!r} is at 100% and stable, remove it from the code within 2 sprints.",
            blocking=False,
        )
    return gates


def _enterprise_gates(ctx: _Demand, gate: Callable[[str, GateKind, str], None]) -> None:
    """Change approval, a scheduled window, on-call, and a rollback proven in staging (the skill's list)."""
    policy = ctx.config.policy
    gate(
        "change-approval",
        "approval",
        "brownfield-enterprise mode: an approved change is required before deploying to production; its change "
        "id and approver are written to the deployment record.",
    )
    if policy.deploy_windows:
        windows = "; ".join(
            f"{', '.join(window.days)} {window.start}-{window.end} UTC" for window in policy.deploy_windows
        )
        gate("deploy-window", "window", f"Production deploys only inside a scheduled window: {windows}.")
    else:
        gate(
            "deploy-window",
            "window",
            "brownfield-enterprise mode deploys only inside a scheduled window, and none is configured; add "
            "[[policy.deploy_windows]] (days, start, end in UTC) to deploy.toml.",
        )
    outside = [name for name in ctx.svc.environments if not ctx.config.is_production(ctx.service, name)]
    staging = ctx.env.requires or outside
    where = " or ".join(staging) if staging else "a non-production environment"
    gate(
        "rollback-tested",
        "prerequisite",
        f"A rollback of {ctx.service} must have succeeded in {where} before {ctx.version} goes to production: the "
        "procedure is rehearsed.",
    )
    on_call = policy.on_call or "on-call (set policy.on_call to name them)"
    period = policy.monitoring_period or ENTERPRISE_MONITORING_SECONDS
    gate(
        "on-call",
        "confirmation",
        f"{on_call} is available during the deployment and the {human_duration(period)} monitoring period after it; "
        f"escalation: {' -> '.join(policy.escalation_path)}.",
    )


def approve_command(change_id: str, service: str, environment: str) -> str:
    """The terminal command a person runs to approve a change; shown in refusals, never run by us."""
    return f"deploy-mcp approve {change_id} --service {service} --environment {environment} --approved-by YOUR-NAME"


def _approval_check(
    check: _CheckFn,
    service: str,
    environment: str,
    change_id: str | None,
    approval: Approval | None,
    now: datetime,
    problem: str | None,
) -> None:
    if not change_id:
        check(
            "change-approval",
            False,
            "brownfield-enterprise mode deploys to production only as an approved change, and no change_id was "
            "given. The change owner records the approval in their own terminal: "
            f"`{approve_command('CHG-12345', service, environment)}` (CHG-12345: the change request id); then "
            'deploy again with change_id="CHG-12345". The approval is a person\'s act: an agent must not run '
            "that command.",
        )
        return
    matches = (
        approval is not None
        and (approval.change_id, approval.service, approval.environment) == (change_id, service, environment)
        and approval.valid_at(now)
    )
    if approval is not None and matches:
        until = f", valid until {utc_text(approval.expires_at)}" if approval.expires_at else ""
        check(
            "change-approval",
            True,
            f"Change {change_id} was approved by {approval.approved_by} at {utc_text(approval.approved_at)}{until}.",
        )
        return
    if problem:
        check("change-approval", False, problem)
        return
    check(
        "change-approval",
        False,
        f"No valid approval of change {change_id} for {service} in {environment} is in the ledger (never "
        "approved for this service and environment, or expired). The change owner records it in their own "
        f"terminal: `{approve_command(change_id, service, environment)}`. The approval is a person's act: an "
        "agent must not run that command.",
    )


def _window_check(
    check: _CheckFn, windows: list[DeployWindow], action: Action, now: datetime, environment: str
) -> str | None:
    """Add the deploy-window check; return the window the action falls in, for the record."""
    if not windows:
        if action in WINDOWED_ACTIONS:
            check(
                "deploy-window",
                False,
                f"brownfield-enterprise mode changes {environment} only inside a scheduled deploy window, and none "
                "is configured. A person adds a [[policy.deploy_windows]] table (days, start, end in UTC) to "
                "deploy.toml.",
            )
        return None
    listed = "; ".join(describe_window(w) for w in windows)
    inside = open_window(windows, now)
    if inside is not None:
        window, closes = inside
        check(
            "deploy-window",
            True,
            f"{utc_text(now)} is inside the deploy window {describe_window(window)}, which closes at "
            f"{utc_text(closes)}; a rollout still running then should be paused or rolled back, never left half done.",
        )
        return describe_window(window)
    if action not in WINDOWED_ACTIONS:
        check(
            "deploy-window",
            True,
            f"{utc_text(now)} is outside the deploy windows ({listed}), but {action} is allowed at any time: an "
            "emergency cannot wait for the next window.",
        )
        return None
    opening = next_window_opening(windows, now)
    when = (
        f"The next window opens {utc_text(opening)} (in {span_text(opening - now)}); {action} then."
        if opening
        else "No window ever opens (a window lists no days)."
    )
    check(
        "deploy-window",
        False,
        f"{utc_text(now)} is outside the deploy windows in policy.deploy_windows ({listed}), so {action} in "
        f"{environment} is refused. {when} Changing the windows in deploy.toml is a person's decision. Rollback "
        "and abort stay allowed at any time.",
    )
    return None
