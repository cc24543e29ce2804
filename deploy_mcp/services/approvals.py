"""Human approvals, and the ledger facts the policy decides on.

`approve` is what `deploy-mcp approve` runs in a terminal: the one way an approval enters the ledger. It is not
an MCP tool on purpose; a model that could approve would be approving itself. `check_policy` reads what the
policy needs from the ledger (where a version succeeded, the approval of a change, a rehearsed rollback) and
hands it to the pure `core.policy.evaluate`, so the MCP server, the CLI and preflight decide the same way.
`claim_for_deploy` spends an approval on the deployment that starts under it: one approval, one deployment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deploy_mcp.app import App
from deploy_mcp.config.schema import Mode, StrategyName
from deploy_mcp.core.policy import Action, PolicyDecision, approve_command, evaluate
from deploy_mcp.core.recommend import lookup
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.errors import UserError
from deploy_mcp.ledger.base import PROVISIONAL_CLAIM_LEASE, Approval, Ledger
from deploy_mcp.ledger.ids import parse_id
from deploy_mcp.server.identities import is_identity_label

MAX_EXPIRES_IN = 10 * 366 * 24 * 3600.0
"""The longest an approval may hold, in seconds; beyond a date's range the ledger could not even write it."""
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
    version: str | None = None,
    *,
    authenticated: bool = False,
) -> Approval:
    """Record that ``approved_by`` approved change ``change_id`` for ``service`` in ``environment``.

    ``authenticated``: the team server verified ``approved_by`` (a releaser's identity label such as
    ``token:alice``). Any other caller is refused such a label, so an approval written with one can only have
    come from the server, which is what lets it stand in for a person's confirmation (server/consent.py).

    The service and environment must exist in deploy.toml, so a typo cannot create an approval that nothing
    will ever match. ``expires_in`` is in seconds; None means the approval does not expire. ``version`` limits
    it to that one version; either way the first deployment that starts under it spends it.
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
    if not authenticated and is_identity_label(who):
        raise UserError(
            f"--approved-by: {who!r} is written as an identity of the team server (token:NAME, oidc:NAME); only the "
            "server records those, for the releaser whose token sent the approval: use `deploy-mcp approve "
            "--server URL` with your own token, or give your plain name"
        )
    expires_at = None
    if expires_in is not None:
        if not expires_in > 0:
            raise UserError(f"--expires-in: must be more than 0 seconds (got {expires_in!r}); omit it for no expiry")
        if not expires_in <= MAX_EXPIRES_IN:  # also infinity, which no date can hold
            raise UserError(
                f"--expires-in (expires_in): at most {MAX_EXPIRES_IN:.0f} seconds (10 years; got {expires_in!r})"
            )
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    only = None
    if version is not None:
        only = version.strip() if isinstance(version, str) else ""
        if not only or any(ch.isspace() for ch in only):
            raise UserError(f"--version: give the one version this approval covers, e.g. 2.1.0 (got {version!r})")
    return app.ledger().add_approval(change, service, environment, who, expires_at=expires_at, version=only)


def describe_approval(approval: Approval) -> str:
    """One line for the terminal after approving."""
    until = (
        f", valid until {approval.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if approval.expires_at
        else ", no expiry"
    )
    which = f"version {approval.version} of {approval.service}" if approval.version else approval.service
    once = (
        f"; it covers actions on {approval.change_id} only, and lets one of them through in place of a person"
        if parse_id(approval.change_id)
        else "; one deployment can start under it"
    )
    return (
        f"approved {approval.change_id} for {which} in {approval.environment} by "
        f"{approval.approved_by} at {approval.approved_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC{until}{once}"
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
        if change_id and not (action == "deploy" and parse_id(change_id)):
            found_for = version if action == "deploy" else None
            approval = ledger.find_approval(change_id, service, environment, version=found_for)
        if action == "deploy" and config.is_production(service, environment):
            # Where the policy's message says the rehearsal belongs: the required environments, else any
            # non-production one.
            others = [name for name in config.services[service].environments if not config.is_production(service, name)]
            rollback_tested = any(_rolled_back(ledger, service, name) for name in env.requires or others)
    problem = None
    if action == "deploy" and change_id and version and approval is None:
        problem = why_no_approval(ledger, change_id, service, environment, version)
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
        approval_problem=problem,
    )


def claim_for_deploy(
    app: App, service: str, version: str, environment: str, change_id: str | None, claimant: str
) -> Approval | None:
    """Spend the approval of ``change_id`` on a deploy about to start, as ``claimant`` (a provisional holder the
    caller replaces with the deployment id once it has one, or gives back if the deployment never starts).

    Returns None when no approval applies and none is needed. Raises UserError when the deploy needs a person's
    approval that is not (or no longer) there: every enterprise production deploy, and a confirmed production
    deploy whose change has an approval that is spent or covers another version, since the consent may have
    rested on it. The claim is one ledger transaction, so of two deploys racing on one approval one wins.
    """
    if not change_id:
        return None
    if parse_id(change_id):
        raise UserError(_deployment_id_as_change(change_id, service, environment))
    config = app.require_config()
    ledger = app.ledger()
    found = ledger.find_approval(change_id, service, environment, version=version)
    if found is not None:
        claimed = ledger.use_approval(found.id, claimant)
        if claimed is not None:
            return claimed
    production = config.is_production(service, environment)
    enterprise = production and config.mode == Mode.BROWNFIELD_ENTERPRISE
    if not (enterprise or (production and config.policy.require_confirmation)):
        return None
    blocking = ledger.find_approval(change_id, service, environment, include_used=True)
    problem = _approval_problem(blocking, change_id, service, environment, version)
    if problem is None and not enterprise:
        return None
    raise UserError(f"Not started: {problem or _no_approval(change_id, service, environment, version)}")


def _succeeded(ledger: Ledger, service: str, environment: str, version: str) -> bool:
    """The version finished there and no later validation failed it: a release that `validate` found broken in
    staging has not earned production, whatever its rollout said at the time."""
    records = ledger.list(service=service, environment=environment, status=Status.SUCCEEDED, limit=SCAN_LIMIT)
    return any(record.version == version and _not_failed(record) for record in records)


def _rolled_back(ledger: Ledger, service: str, environment: str) -> bool:
    """A rollback was rehearsed here: a rollback record (``rollback_of`` set) that succeeded and that no
    validation failed. A deployment the runner rolled back by itself does not count: it shows the runner can
    retreat from a bad step, not that the rollback procedure, run on purpose, returns a healthy service.

    Any age counts: the procedure is the runner's own, the same for every release, so one rehearsal in staging
    shows it works for this service; the mode's other gates (approval, window, on-call) are per change.
    """
    records = ledger.list(service=service, environment=environment, status=Status.SUCCEEDED, limit=SCAN_LIMIT)
    return any(record.rollback_of is not None and _not_failed(record) for record in records)


def _not_failed(record: DeploymentRecord) -> bool:
    return record.validation.verdict != "fail"


# -- why an approval does not count ------------------------------------------------------------------------------


def why_no_approval(ledger: Ledger | None, change_id: str, service: str, environment: str, version: str) -> str | None:
    """What is actually wrong when no approval counts (a deployment id given as the change, the approval spent by an
    earlier deployment, or given for another version) and the command that fixes it, so the person is not told to
    approve something they believe they already approved; None when nothing was ever approved."""
    if parse_id(change_id):
        return _deployment_id_as_change(change_id, service, environment)
    found = ledger.find_approval(change_id, service, environment, include_used=True) if ledger is not None else None
    return _approval_problem(found, change_id, service, environment, version)


def _approval_problem(
    approval: Approval | None, change_id: str, service: str, environment: str, version: str
) -> str | None:
    """Why an unexpired approval of this change does not let ``version`` ship, or None when there is none."""
    if approval is None:
        return None
    fix = (
        f"To ship {version} under change {change_id}, the change owner approves it again in their own terminal: "
        f"`{approve_command(change_id, service, environment)} --version {version}`. The approval is a person's "
        "act: an agent must not run that command."
    )
    if approval.provisional:
        return (
            f"the approval of change {change_id} for {service} in {environment} by {approval.approved_by} is held "
            "by a deploy that is starting now; if that start died, its claim lapses "
            f"{PROVISIONAL_CLAIM_LEASE:g} s after it was taken: try again then. {fix}"
        )
    if approval.used:
        return (
            f"the approval of change {change_id} for {service} in {environment} by {approval.approved_by} was "
            f"spent by deployment {approval.used_by}: an approval lets one deployment start, not every later one "
            f"that names the same change. {fix}"
        )
    if not approval.covers(version):
        return (
            f"change {change_id} was approved by {approval.approved_by} for {service} {approval.version} in "
            f"{environment}, not for {version}. {fix}"
        )
    return None


def _no_approval(change_id: str, service: str, environment: str, version: str) -> str:
    return (
        f"no unspent approval of change {change_id} covers {service} {version} in {environment}. The change owner "
        f"records it in their own terminal: `{approve_command(change_id, service, environment)} --version "
        f"{version}`. The approval is a person's act: an agent must not run that command."
    )


def _deployment_id_as_change(change_id: str, service: str, environment: str) -> str:
    return (
        f"change_id: {change_id} is a deployment id, not a change request. An approval of a deployment id covers "
        "rollback, promote or resume of that deployment only, never a new deploy. Give the change request's id; "
        f"its owner approves it in their own terminal: `{approve_command('CHG-12345', service, environment)}` "
        "(CHG-12345: the change request id). The approval is a person's act: an agent must not run that command."
    )
