"""Preflight: the pre-deployment checklist evaluated with evidence, and which failures block a deploy.

Each item is passed, failed, warning or not applicable, with what was seen (a registry URL and its answer, a
commit, a policy sentence) and the fix. ``deploy`` runs the same function before anything starts and refuses when
a required item failed, so "preflight passed" and "deploy will not refuse on its checklist" mean the same thing.

Which items are required depends on the mode, because the modes are promises of different sizes:

======================== ========== ================= =====================
item                     greenfield brownfield-polish brownfield-enterprise
======================== ========== ================= =====================
config                   required   required          required
policy                   required   required          required
staging-prerequisite     required   required          required
no-deployment-running    required   required          required
artifact                 required   required          required
tests                    -          required          required
git-clean                -          -                 required
git-commit               -          -                 required
change-approval          -          -                 required (production)
deploy-window            policy     policy            required (production)
rollback-tested          -          -                 required (production)
on-call                  -          -                 required (production)
immutable-version        -          -                 -
migrations               -          irreversible      irreversible
feature-flags            -          -                 -
rollback-target          -          -                 -
current-health           -          -                 -
======================== ========== ================= =====================

Why: a greenfield project needs only what every deploy needs (the artifact exists, the session may deploy here,
promotion order holds, nothing else is running); brownfield-polish matches an existing process, which has tests,
so they must pass; brownfield-enterprise adds the change-management items and requires that the release is a
committed, tagged commit, because its record must say exactly what shipped. "policy" in the table: the deploy
policy applies that item wherever it is configured (windows in any mode's production), and an item the policy
applies is required because the policy refuses the deploy anyway. A feature flag is required only by the
feature-flag strategy. Items marked "-" report problems as warnings: worth reading, never blocking.

The migrations item judges only the release's new files (those the last succeeded deployment here did not
carry). "irreversible" in the table: one finding in them blocks in the brownfield modes, an irreversible migration
the release does not declare (``migrations_irreversible = true``). The runner marks such a deployment
roll-forward-only anyway, but an existing service's process counts on being able to roll back, and enterprise
mode's rehearsed rollback does not hold for it: a person must say so, or split the migration. In greenfield it is
a warning: nobody relies on rollback yet, and the record still says roll-forward-only. Lock and rewrite findings
stay warnings in every mode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from deploy_mcp.app import NO_CONFIG_HINT, App
from deploy_mcp.config.schema import DeployConfig, Mode, StrategyName
from deploy_mcp.core.plans import choose_strategy
from deploy_mcp.core.recommend import lookup
from deploy_mcp.errors import UserError
from deploy_mcp.preflight import checks
from deploy_mcp.preflight.checks import CheckResult, Facts

log = logging.getLogger(__name__)

_EVERY_MODE = frozenset({"config", "policy", "staging-prerequisite", "no-deployment-running", "artifact"})
_POLISH = _EVERY_MODE | {"tests", checks.UNDECLARED_IRREVERSIBLE}
_ENTERPRISE = _POLISH | {"git-clean", "git-commit", "change-approval", "deploy-window", "rollback-tested", "on-call"}
REQUIRED_BY_MODE: dict[Mode, frozenset[str]] = {
    Mode.GREENFIELD: _EVERY_MODE,
    Mode.BROWNFIELD_POLISH: _POLISH,
    Mode.BROWNFIELD_ENTERPRISE: _ENTERPRISE,
}

CHECKS: tuple[tuple[str, Callable[[Facts], CheckResult]], ...] = (
    ("config", checks.config_loads),
    ("policy", checks.policy_scope),
    ("staging-prerequisite", checks.staging_prerequisite),
    ("no-deployment-running", checks.no_deployment_running),
    ("deploy-window", checks.deploy_window),
    ("change-approval", checks.change_approval),
    ("on-call", checks.on_call),
    ("rollback-tested", checks.rollback_tested),
    ("rollback-target", checks.rollback_target),
    ("artifact", checks.artifact),
    ("immutable-version", checks.immutable_version),
    ("git-clean", checks.git_clean),
    ("git-commit", checks.git_commit),
    ("tests", checks.tests_passed),
    ("migrations", checks.migrations_linted),
    ("feature-flags", checks.feature_flags),
    ("current-health", checks.current_health),
)
"""In the checklist's order: configuration and policy, the artifact, the code, the running service."""


class PreflightReport(BaseModel):
    """The checklist for one prospective deployment. ``passed`` is False when any required item failed;
    ``required_failures`` names those items (their evidence and fix are in ``items``)."""

    model_config = ConfigDict(extra="forbid")

    service: str
    version: str
    environment: str
    mode: Mode | None = None
    passed: bool
    summary: str
    required_failures: list[str] = Field(default_factory=list)
    items: list[CheckResult]
    checked_at: datetime

    def item(self, name: str) -> CheckResult | None:
        return next((item for item in self.items if item.name == name), None)

    def refusal(self) -> str:
        """Why a deploy is refused: every failed required item with its evidence and fix, in one message."""
        lines = [
            f"preflight refused deploying {self.service} {self.version} to {self.environment}: "
            f"{len(self.required_failures)} required item(s) failed. Nothing was started."
        ]
        for item in self.items:
            if item.status == "failed":
                lines.append(f"- {item.name}: {item.evidence}" + (f" Fix: {item.fix}" if item.fix else ""))
        lines.append("Fix them and deploy again; the preflight tool shows every item.")
        return "\n".join(lines)


def run_preflight(
    app: App,
    service: str,
    version: str,
    environment: str,
    *,
    strategy: StrategyName | str | None = None,
    change_id: str | None = None,
    now: datetime | None = None,
) -> PreflightReport:
    """Evaluate the checklist for deploying ``version`` of ``service`` to ``environment``; changes nothing on
    any platform (it may run the configured test command and record its result).

    An unknown service or environment raises PlanError listing the known ones: that is the caller's mistake,
    not the release's. An invalid or missing deploy.toml is the failed ``config`` item.
    """
    if not isinstance(version, str) or not version.strip():
        raise UserError("version: give the version to deploy, for example '1.4.0'")
    now = now or datetime.now(UTC)
    if app.config_error or not app.project.configured:
        return _without_config(app, service, version, environment, now)
    from deploy_mcp.services.approvals import check_policy

    config = app.config
    svc, env = lookup(config, service, environment)
    chosen = _strategy(config, service, environment, version, strategy)
    decision = check_policy(
        app,
        action="deploy",
        service=service,
        environment=environment,
        version=version,
        strategy=chosen,
        change_id=change_id,
        now=now,
    )
    facts = Facts(
        app=app,
        config=config,
        service=service,
        svc=svc,
        environment=environment,
        env=env,
        version=version,
        strategy=chosen,
        decision=decision,
        required=REQUIRED_BY_MODE[config.mode],
        change_id=change_id,
    )
    items = [_run(name, check, facts) for name, check in CHECKS]
    items += checks.other_policy_checks(facts)
    return _report(service, version, environment, config.mode, items, now)


def _strategy(
    config: DeployConfig, service: str, environment: str, version: str, strategy: StrategyName | str | None
) -> StrategyName:
    """The strategy the plan will use, decided by the plan's own `choose_strategy`: asked, configured, else
    recommended."""
    return choose_strategy(config, service, environment, version, strategy)[0]


def _run(name: str, check: Callable[[Facts], CheckResult], facts: Facts) -> CheckResult:
    """One check; a check that breaks is its item failing (or warning), never the whole preflight."""
    try:
        return check(facts)
    except UserError as exc:
        problem = str(exc)
    except Exception as exc:
        log.exception("preflight check %s failed", name)
        problem = f"the check could not run ({type(exc).__name__}: {exc})"
    required = facts.needs(name)
    return CheckResult(
        name=name,
        status="failed" if required else "warning",
        required=required,
        evidence=problem,
        fix="fix the cause above and run preflight again",
    )


def _report(
    service: str, version: str, environment: str, mode: Mode | None, items: list[CheckResult], now: datetime
) -> PreflightReport:
    failed = [item.name for item in items if item.status == "failed"]
    counts = {status: sum(1 for item in items if item.status == status) for status in ("passed", "warning")}
    counts["not applicable"] = sum(1 for item in items if item.status == "not_applicable")
    tally = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    head = f"{service} {version} to {environment}"
    summary = (
        f"{head}: blocked by {len(failed)} required item(s): {', '.join(failed)} ({tally})"
        if failed
        else f"{head}: ready, no required item failed ({tally})"
    )
    return PreflightReport(
        service=service,
        version=version,
        environment=environment,
        mode=mode,
        passed=not failed,
        summary=summary,
        required_failures=failed,
        items=items,
        checked_at=now,
    )


def _without_config(app: App, service: str, version: str, environment: str, now: datetime) -> PreflightReport:
    try:
        app.require_config()
        problem = NO_CONFIG_HINT
    except UserError as exc:  # says "not found" or "invalid", as every tool does
        problem = str(exc)
    item = CheckResult(
        name="config",
        status="failed",
        required=True,
        evidence=problem,
        fix="fix deploy.toml as the evidence says" if app.config_error else "run `deploy-mcp init` in the project",
    )
    return _report(service, version, environment, None, [item], now)
