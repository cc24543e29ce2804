"""What a changing call would do, worked out before anyone is asked to say yes to it.

The MCP server's consent resolvers (server/consent.py) and the CLI's terminal prompt (server/terminal.py) both
ask about the same `Subject`: the plan, the policy decision at this moment and the approval found in the ledger.
It lives here, free of the MCP SDK, so the CLI's changing commands start without loading the SDK.
A refusal is a `UserError` (or the ledger's `LedgerError`): each face turns it into its own kind of message.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from deploy_mcp.app import App
from deploy_mcp.config.schema import StrategyName
from deploy_mcp.core.plans import Plan, build_plan
from deploy_mcp.core.policy import Action, PolicyDecision
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.core.units import human_duration
from deploy_mcp.errors import UserError
from deploy_mcp.ledger.base import Approval, Ledger
from deploy_mcp.ledger.ids import parse_id
from deploy_mcp.tools.approvals import check_policy, why_no_approval

__all__ = ["Subject", "deploy_subject", "deployment_subject", "rollback_subject"]


class Subject(BaseModel):
    """What a call would do, worked out before anyone is asked.

    ``headline`` says it in one sentence, ``details`` adds what the user should know before saying yes.
    ``approval_key`` is the change id a person approves when the client cannot ask (the change id for a
    deploy, the deployment id for actions on a deployment); ``retry`` tells the agent how to try again.
    """

    model_config = ConfigDict(extra="forbid")

    action: Action
    service: str
    environment: str
    headline: str
    details: str = ""
    decision: PolicyDecision
    approval_key: str | None = None
    approval: Approval | None = None
    reverts: str | None = None  # rollback: the deployment it reverts (or aborts), as asked
    restores: str | None = None  # rollback: the version that serves afterwards, as asked (None: an abort)
    retry: str

    @property
    def question(self) -> str:
        return f"{self.headline}?" + (f" {self.details}" if self.details else "")


def deploy_subject(
    app: App,
    service: str,
    version: str,
    environment: str,
    strategy: StrategyName | str | None,
    change_id: str | None,
) -> Subject:
    config = app.require_config()
    ledger = app.existing_ledger()
    current = current_version(app, service, environment)
    plan = build_plan(
        config,
        service,
        version,
        environment,
        strategy,
        current_version=current,
        capabilities=app.platform(service).capabilities,
    )
    decision = check_policy(
        app,
        action="deploy",
        service=service,
        environment=environment,
        version=version,
        strategy=plan.strategy,
        change_id=change_id,
    )
    decision.raise_if_refused()
    approval = ledger.find_approval(change_id, service, environment, version=version) if ledger and change_id else None
    problem = why_no_approval(ledger, change_id, service, environment, version) if change_id and not approval else None
    if problem and (parse_id(change_id or "") or decision.needs_confirmation):
        # The deploy would be refused when it starts (see claim_for_deploy): say why before anyone is asked.
        raise UserError(f"Not started: {problem}")
    headline, details = describe_plan(plan)
    if approval is not None:
        details += f" Change {approval.change_id}, approved by {approval.approved_by}."
    return Subject(
        action="deploy",
        service=service,
        environment=environment,
        headline=headline,
        details=details.strip(),
        decision=decision,
        approval_key=change_id,
        approval=approval,
        retry=f'call deploy again with change_id="{change_id or "CHANGE-ID"}"',
    )


def current_version(app: App, service: str, environment: str) -> str | None:
    """What the platform serves; the ledger's last good version when the platform reports nothing (a local
    platform whose processes are gone), so the question still says what the user is replacing."""
    serving = app.serving_version(service, environment)
    if serving:
        return serving
    ledger = app.existing_ledger()
    good = ledger.last_good(service, environment) if ledger else None
    return good.version if good else None


def rollback_subject(app: App, service: str, environment: str, to: str | None, reason: str | None) -> Subject:
    """The rollback the runner would run, from the same resolution (``resolve_rollback``): the question names
    the version that will serve afterwards, and a refusal the runner would give comes before anyone is asked."""
    from deploy_mcp.core.recommend import lookup
    from deploy_mcp.core.runner.rollback import check_to_while_running, resolve_rollback

    config = app.require_config()
    lookup(config, service, environment)
    decision = check_policy(app, action="rollback", service=service, environment=environment)
    decision.raise_if_refused()
    ledger = app.existing_ledger()
    details = f"Reason given: {reason}" if reason else ""
    running = _running_deployment(ledger, service, environment) if ledger else None
    if running is not None:  # the runner aborts it instead, and abort undoes it
        record, holder = running
        if holder != app.runner().holder:
            raise UserError(
                f"cannot roll back now: {record.id} ({service} {record.version}) is being deployed by another "
                f"deploy-mcp process ({holder}); abort it (abort undoes it) or wait for it to finish"
            )
        check_to_while_running(ledger, record, to)
        running = record
        back = f" and return traffic to {running.previous_version}" if running.previous_version else " and stop it"
        return Subject(
            action="rollback",
            service=service,
            environment=environment,
            headline=f"Abort {running.id} ({service} {running.version}, {running.status.value}){back}",
            details=details,
            decision=decision,
            approval_key=running.id,
            approval=ledger.find_approval(running.id, service, environment) if ledger else None,
            reverts=running.id,
            retry="call rollback again",
        )
    if ledger is None:
        raise UserError(f"nothing has been deployed to {service} in {environment}; there is nothing to roll back")
    target = resolve_rollback(
        ledger,
        service,
        environment,
        to,
        state=lambda: app.platform(service).state(service, environment),
        releases=config.services[service].versions,
    )
    current, version, proof = target.current, target.version, target.proof
    if proof is None:
        why = "a version given by hand that has not passed validation here"
    elif to:
        why = f"which passed validation in {proof.id}"
    else:
        why = f"the last version that passed validation ({proof.id})"
    how = ""
    if target.state is not None:
        warm = target.state.version(version)
        if warm is not None and warm.ready > 0:
            how = f"{version} still runs, so traffic moves back to it at once."
        else:
            how = f"{version} no longer runs: it is started at full size and checked, then takes all traffic at once."
    return Subject(
        action="rollback",
        service=service,
        environment=environment,
        headline=f"Roll back {service} in {environment} from {current.version} ({current.id}) to {version}, {why}",
        details=" ".join(part for part in (how, details) if part),
        decision=decision,
        approval_key=current.id,
        approval=ledger.find_approval(current.id, service, environment),
        reverts=current.id,
        restores=version,
        retry="call rollback again",
    )


def _running_deployment(ledger: Ledger, service: str, environment: str) -> tuple[DeploymentRecord, str] | None:
    """The deployment that holds the lock and is still under way, with the lock's holder: a rollback call aborts
    it when this process drives it, and is refused otherwise (an interrupted one is not under way: the runner
    rolls it back)."""
    from deploy_mcp.core.runner.base import holder_is_gone

    lock = ledger.lock_state(service, environment)
    if lock is None or not lock.deployment_id or holder_is_gone(lock.holder):
        return None
    record = ledger.get(lock.deployment_id)
    if record is not None and record.status in (Status.PENDING, Status.IN_PROGRESS, Status.PAUSED):
        return record, lock.holder
    return None


def deployment_subject(app: App, action: Action, deployment_id: str) -> Subject:
    app.require_config()
    ledger = app.existing_ledger()
    record = ledger.get(deployment_id) if ledger else None
    if record is None:
        raise UserError(f"deployment_id: no deployment {deployment_id!r}; deployment_history lists the ids")
    decision = check_policy(
        app,
        action=action,
        service=record.service,
        environment=record.environment,
        version=record.version,
        strategy=record.strategy,
    )
    decision.raise_if_refused()
    approval = ledger.find_approval(record.id, record.service, record.environment) if ledger else None
    return Subject(
        action=action,
        service=record.service,
        environment=record.environment,
        headline=describe_record(action, record),
        decision=decision,
        approval_key=record.id,
        approval=approval,
        retry=f"call {action} again",
    )


def describe_plan(plan: Plan) -> tuple[str, str]:
    """The question's headline (what, where, how) and the facts that matter before saying yes."""
    new, old = plan.version, plan.current_version
    now = f" (now {old})" if old else " (first deployment there)"
    ramp = " -> ".join(f"{share}%" for share in traffic_ramp(plan))
    if old is None and plan.strategy in (StrategyName.CANARY, StrategyName.BLUE_GREEN):
        how = f"with {plan.strategy.value}: nothing runs there yet, so {new} starts at full size and takes all traffic"
    else:
        how = {
            StrategyName.CANARY: f"with a canary: {ramp} of traffic",
            StrategyName.ROLLING: f"with a rolling update of {plan.replicas} instances",
            StrategyName.BLUE_GREEN: f"with blue-green: {new} starts beside {old} and all traffic switches at once",
            StrategyName.RECREATE: f"with recreate: {old} stops first, about {plan.expected_downtime_seconds:g} s "
            "with no service"
            if old
            else "with recreate",
            StrategyName.FEATURE_FLAG: f"behind a feature flag ramped {ramp}",
        }[plan.strategy]
    headline = f"Deploy {plan.service} {new} to {plan.environment}{now} {how}"
    t = plan.thresholds
    details = (
        f"Each step is analyzed for {human_duration(plan.analysis.bake)}; an error rate above "
        f"{t.error_rate.critical * 100:g}% or p95 latency above {t.latency_p95_ms.critical:g} ms rolls it back "
        f"automatically. About {_roughly(plan.estimated_duration_seconds)} in all."
    )
    if any(step.action == "pause" and step.seconds is None for step in plan.steps):
        details += " It pauses for a human decision before full rollout."
    return headline, details


def traffic_ramp(plan: Plan) -> list[int]:
    """The new version's share at each step: traffic weights, or the flag's percentages."""
    if plan.strategy == StrategyName.FEATURE_FLAG:
        return [step.percentage for step in plan.steps if step.action == "flag" and step.percentage]
    weights = [step.weights.get(plan.version, 0) for step in plan.steps if step.weights]
    return [weight for weight in weights if weight] or [100]


def describe_record(action: Action, record: DeploymentRecord) -> str:
    where = f"{record.service} {record.version} in {record.environment}, {record.strategy}"
    step = f", at step {record.current_step} of {len(record.steps)}" if record.current_step and record.steps else ""
    what = {
        "promote": "Promote {id}: let the rollout go past its current step",
        "resume": "Resume {id}: the rollout continues from where it stopped",
        "abort": "Abort {id} and return traffic to the previous version",
        "pause": "Pause {id}",
        "deploy": "Deploy {id}",
        "rollback": "Roll back {id}",
    }[action].format(id=record.id)
    return f"{what} ({where}, {record.status.value}{step})"


def _roughly(seconds: float) -> str:
    """A total estimate: whole minutes past a minute, since nobody plans around 97 s."""
    return f"{seconds / 60:.0f} min" if seconds >= 60 and seconds % 60 else human_duration(seconds)
