"""Starting a deployment: the part the MCP tool and `deploy-mcp deploy` share, free of the MCP SDK.

The checklist first, then (after the caller has consent) the plan from what the platform serves now, handed to
this process's Runner. Keeping it here, not beside the tool, lets the CLI start without loading the SDK.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from deploy_mcp.app import App
from deploy_mcp.config.schema import StrategyName
from deploy_mcp.core.plans import build_plan
from deploy_mcp.core.records import DeploymentRecord, Enterprise
from deploy_mcp.core.runner.api import Progress
from deploy_mcp.errors import UserError
from deploy_mcp.ledger.base import PROVISIONAL_CLAIM_PREFIX, Ledger
from deploy_mcp.preflight import PreflightReport, run_preflight
from deploy_mcp.tools.approvals import claim_for_deploy

__all__ = ["require_preflight", "start_deployment"]

logger = logging.getLogger(__name__)


def start_deployment(
    app: App,
    service: str,
    version: str,
    environment: str,
    strategy: StrategyName | str | None,
    *,
    deployed_by: str,
    change_id: str | None = None,
    on_progress: Progress | None = None,
) -> DeploymentRecord:
    """Plan from what the platform serves now and hand the plan to this process's Runner; returns the new record.

    Consent is the caller's job and must come first: the MCP tool gets it from its resolver, `deploy-mcp deploy`
    from the person at the terminal. Sharing this part is what makes a record written from a terminal the same
    thing as one written by an agent. Blocks (platform calls), so the MCP tool runs it in a worker thread.

    The approval of ``change_id`` is spent here, by the deployment that starts under it: claimed before the
    Runner starts (so two deploys never share it), moved to the new deployment's id once it exists, given back
    if nothing started. A deploy that needs an approval no longer there is refused (see `claim_for_deploy`).
    The record's enterprise block names who approved. Neither the hand-over nor the give-back changes the outcome:
    once the rollout runs, a busy ledger must not make the caller believe it failed; when the start failed, the
    caller must see why, not the ledger's trouble. A claim left behind lapses (`PROVISIONAL_CLAIM_LEASE`).
    """
    config = app.require_config()
    runner = app.runner()
    current = app.serving_version(service, environment)
    plan = build_plan(
        config,
        service,
        version,
        environment,
        strategy,
        current_version=current,
        capabilities=app.platform(service).capabilities,
    )
    commits = release_commits(app.project.root, plan.version)
    claimant = f"{PROVISIONAL_CLAIM_PREFIX}{uuid.uuid4().hex}"
    approval = claim_for_deploy(app, service, plan.version, environment, change_id, claimant)
    if approval is None:
        return runner.start(
            plan, deployed_by=deployed_by, change_id=change_id, commits=commits, on_progress=on_progress
        )
    ledger = app.ledger()
    try:
        record = runner.start(
            plan,
            deployed_by=deployed_by,
            change_id=change_id,
            enterprise=Enterprise(change_id=approval.change_id, approved_by=approval.approved_by),
            commits=commits,
            on_progress=on_progress,
        )
    except BaseException:
        _give_back(ledger, approval.id, claimant)
        raise
    _hand_over(ledger, approval.id, record.id, claimant)
    return record


def _hand_over(ledger: Ledger, approval_id: int, deployment_id: str, claimant: str) -> None:
    """Move the approval from the provisional claim to the deployment that started; a failure is logged only."""
    try:
        moved = ledger.use_approval(approval_id, deployment_id, replacing=claimant)
    except Exception:
        logger.warning(
            "approval %s: could not record that deployment %s spent it; the claim lapses after its lease",
            approval_id,
            deployment_id,
            exc_info=True,
        )
        return
    if moved is None:
        logger.warning(
            "approval %s: the claim of deployment %s had lapsed before it was handed over", approval_id, deployment_id
        )


def _give_back(ledger: Ledger, approval_id: int, claimant: str) -> None:
    """Release the claim of a deployment that never started; a failure is logged only (the claim lapses)."""
    try:
        ledger.release_approval(approval_id, claimant)
    except Exception:
        logger.warning(
            "approval %s: could not give back the claim of a deployment that did not start; it lapses after its lease",
            approval_id,
            exc_info=True,
        )


def release_commits(root: Path, version: str) -> list[str]:
    """The commit the version names in git (tag v1.4.0, tag 1.4.0 or the SHA itself), for the record's
    ``changes.commits``; empty when the project is not in git or no tag names the version: never a guess."""
    from deploy_mcp.preflight.git import inspect_repository

    found = inspect_repository(root, version).version_commit
    return [found.commit] if found else []


def require_preflight(
    app: App,
    service: str,
    version: str,
    environment: str,
    strategy: StrategyName | str | None = None,
    change_id: str | None = None,
) -> PreflightReport:
    """The preflight report, or UserError listing every failed required item with its fix."""
    report = run_preflight(app, service, version, environment, strategy=strategy, change_id=change_id)
    if not report.passed:
        raise UserError(report.refusal())
    return report
