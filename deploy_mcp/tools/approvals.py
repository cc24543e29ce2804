"""Human approvals, and the ledger facts the policy decides on.

`approve` is what `deploy-mcp approve` runs in a terminal: the one way an approval enters the ledger. It is not
an MCP tool on purpose; a model that could approve would be approving itself. `check_policy` reads what the
policy needs from the ledger (where a version succeeded, the approval of a change, a rehearsed rollback) and
hands it to the pure `core.policy.evaluate`, so the MCP server, the CLI and preflight decide the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deploy_mcp.app import App
from deploy_mcp.config.schema import StrategyName
from deploy_mcp.core.policy import Action, PolicyDecision, evaluate
from deploy_mcp.core.recommend import lookup
from deploy_mcp.core.records import Status
from deploy_mcp.errors import UserError
from deploy_mcp.ledger.base import Approval, Ledger

SCAN_LIMIT = 1000
"""Records read per environment when looking for a success or a rehearsed rollback: years of deployments for
one service, and a bound on the work a call can cause."""


def approve(
    app: App,
    change_id: str,
    service: str,
    environment: str,
    approved_by: str,
    expires_in: float | None = None,
) -> Approval:
    """Record that ``approved_by`` approved change ``change_id`` for ``service`` in ``environment``.

    The service and environment must exist in deploy.toml, so a typo cannot create an approval that nothing
    will ever match. ``expires_in`` is in seconds; None means the approval does not expire.
    """
    config = app.require_config()
    lookup(config, service, environment)
    change = change_id.strip() if isinstance(change_id, str) else ""
    if not change:
        raise UserError("CHANGE-ID: give the id of the change request, for example CHG-12345")
    if any(ch.isspace() for ch in change):
        raise UserError(f"CHANGE-ID: {change_id!r} contains spaces; use the change request's id, e.g. CHG-12345")
    who = approved_by.strip() if isinstance(approved_by, str) else ""
    if not who:
        raise UserError("--approved-by: give the name of the person or board approving the change")
    expires_at = None
    if expires_in is not None:
        if not expires_in > 0:
            raise UserError(f"--expires-in: must be more than 0 seconds (got {expires_in!r}); omit it for no expiry")
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    return app.ledger().add_approval(change, service, environment, who, expires_at=expires_at)


def describe_approval(approval: Approval) -> str:
    """One line for the terminal after approving."""
    until = (
        f", valid until {approval.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if approval.expires_at
        else ", no expiry"
    )
    return (
        f"approved {approval.change_id} for {approval.service} in {approval.environment} by "
        f"{approval.approved_by} at {approval.approved_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC{until}"
    )


def check_policy(
    app: App,
    *,
    action: Action,
    service: str,
    environment: str,
    version: str | None = None,
    strategy: StrategyName | str | None = None,
    change_id: str | None = None,
    now: datetime | None = None,
) -> PolicyDecision:
    """The policy's decision for this action, with the facts read from the ledger (none when it was never
    written). Unknown services and environments raise PlanError listing the ones that exist."""
    config = app.require_config()
    _, env = lookup(config, service, environment)
    now = now or datetime.now(UTC)
    ledger = app.existing_ledger()
    succeeded_in: set[str] = set()
    approval: Approval | None = None
    rollback_tested = False
    if ledger is not None:
        if action == "deploy" and version:
            succeeded_in = {needed for needed in env.requires if _succeeded(ledger, service, needed, version)}
        if change_id:
            approval = ledger.find_approval(change_id, service, environment)
        if action == "deploy" and config.is_production(service, environment):
            # Where the policy's message says the rehearsal belongs: the required environments, else any
            # non-production one.
            others = [name for name in config.services[service].environments if not config.is_production(service, name)]
            rollback_tested = any(_rolled_back(ledger, service, name) for name in env.requires or others)
    return evaluate(
        config,
        action=action,
        service=service,
        environment=environment,
        now=now,
        version=version,
        strategy=strategy,
        succeeded_in=succeeded_in,
        approval=approval,
        change_id=change_id,
        rollback_tested=rollback_tested,
    )


def _succeeded(ledger: Ledger, service: str, environment: str, version: str) -> bool:
    records = ledger.list(service=service, environment=environment, status=Status.SUCCEEDED, limit=SCAN_LIMIT)
    return any(record.version == version for record in records)


def _rolled_back(ledger: Ledger, service: str, environment: str) -> bool:
    """A rollback completed here: a succeeded rollback record, or a deployment marked rolled back."""
    records = ledger.list(service=service, environment=environment, limit=SCAN_LIMIT)
    return any(
        (record.rollback_of is not None and record.status == Status.SUCCEEDED) or record.status == Status.ROLLED_BACK
        for record in records
    )
