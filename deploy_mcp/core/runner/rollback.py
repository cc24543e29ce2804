"""Going back: undoing a deployment that failed, and choosing and planning a rollback to a known-good version.

Two different things share the word. *Undo* happens inside a deployment that failed its checks or was aborted:
traffic goes back to the version that served before it (topped back up to full size, or started again if it is
gone) and the new version stops. *Rollback* is a deployment of its own (strategy "rollback"): it returns a
service to the last version that passed validation, which is not necessarily the previous one, and refuses to
cross a release whose migrations the older version cannot run against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from deploy_mcp.config.schema import ReleaseOverride
from deploy_mcp.core.plans import CheckVia, PlanStep, check_version
from deploy_mcp.core.platform import EXACT, RouterCapabilities
from deploy_mcp.core.records import DeploymentRecord, Status, StepStatus
from deploy_mcp.core.runner.actions import Actions
from deploy_mcp.core.runner.base import RunnerError
from deploy_mcp.core.target import TargetError, TargetState
from deploy_mcp.ledger import Ledger, parse_id

_GONE = (Status.FAILED, Status.ROLLED_BACK, Status.ABORTED)
"""Records whose version no longer serves because of them: never 'the current deployment'."""
_HISTORY = 500
"""How far back a rollback looks in the ledger: far beyond any release a rollback would sensibly return to."""


def undo(actions: Actions, record: DeploymentRecord, full_size: int, say: Callable[[str], None]) -> str:
    """Put back what served before ``record``; returns a sentence saying where traffic is now.

    Every action is announced through ``say`` (which writes the event log) before it is taken.
    """
    stable, new = record.previous_version, record.version
    flagged = [s for s in record.steps if s.name == "flag" and s.status != StepStatus.PENDING]
    if flagged and actions.config.flag is not None:
        say(f"turn flag {actions.config.flag.name!r} off (0%)")
        actions.set_flag(0)
    rolled = [s for s in record.steps if s.name == "rollout" and s.status != "pending"]
    if rolled and stable and stable != new:
        say(f"roll the Deployment back to {stable} (kubectl rollout undo)")
        try:
            restored = actions.undo_rollout(say)
        except TargetError as exc:
            say(f"the rollout undo failed ({exc}); starting {stable} beside it instead")
            restored = None
        if restored == stable:
            return f"{stable} serves all traffic again: the Deployment was rolled back (kubectl rollout undo)"
    if stable and stable != new:
        current = actions.state().version(stable)
        if current is None or current.running == 0:
            say(f"{stable} no longer runs: start it again at full size ({full_size})")
            actions.start(stable, full_size, say)
        elif current.replicas < full_size:
            say(f"scale {stable} back up to {full_size} instance(s)")
            actions.start(stable, full_size, say)
        say(f"send all traffic back to {stable}")
        actions.set_weights({stable: 100})
    if actions.state().version(new) is not None:
        say(f"stop {new}")
        actions.stop(new)
    if stable and stable != new:
        return f"{stable} serves all traffic again and {new} was stopped"
    return f"there was no earlier version to return to, so {new} was stopped"


def current_deployment(ledger: Ledger, service: str, environment: str) -> DeploymentRecord | None:
    """The newest deployment whose version still stands (not failed, rolled back or aborted)."""
    for record in ledger.list(service=service, environment=environment, limit=_HISTORY):
        if record.status not in _GONE:
            return record
    return None


@dataclass(frozen=True)
class RollbackTarget:
    """What a rollback would do, decided before anything acts.

    The confirmation asks about exactly this and the runner runs exactly this, so the version a person says yes
    to is the version that comes back. ``current`` is the deployment reverted (its id is what a person approves
    when the client cannot ask); ``proof`` is the deployment that passed validation with ``version`` (None when
    ``to`` named a version that never passed validation here: the caller's word stands in for the proof).
    """

    current: DeploymentRecord
    version: str
    proof: DeploymentRecord | None
    state: TargetState | None = None
    """What the platform ran when this was decided (None when the caller did not ask for it)."""

    def describe(self) -> str:
        """'2.0.0 (deploy-...-003) to 1.0.0, which passed validation in deploy-...-001': from what to what."""
        current = f"{self.current.version} ({self.current.id})"
        if self.proof is None:
            return f"{current} to {self.version}, a version given by hand that has not passed validation here"
        return f"{current} to {self.version}, which passed validation in {self.proof.id}"


def resolve_rollback(
    ledger: Ledger,
    service: str,
    environment: str,
    to: str | None,
    *,
    state: Callable[[], TargetState] | None = None,
    releases: Mapping[str, ReleaseOverride] | None = None,
) -> RollbackTarget:
    """Everything a rollback decides before it acts, and every refusal it would give: the one source for both the
    question put to the user and the runner, so the two cannot name different versions.

    ``state`` reads what the platform runs now (only once the ledger allows a rollback) for the 'already serves'
    refusal; ``releases`` (deploy.toml's ``versions`` of the service) lets ``migrations_irreversible = false``
    lift a roll-forward-only mark.
    """
    current = current_deployment(ledger, service, environment)
    if current is None:
        if ledger.list(service=service, environment=environment, limit=1):
            raise RunnerError(
                f"every deployment of {service} in {environment} failed, was rolled back or was aborted, so none "
                "stands to be rolled back; deployment_history shows them"
            )
        raise RunnerError(f"nothing has been deployed to {service} in {environment}; there is nothing to roll back")
    version, proof = choose_target(ledger, current, to)
    refuse_crossing(ledger, current, version, releases)
    running = state() if state is not None else None
    if running is not None and running.serving == [version] and len(running.versions) == 1:
        raise RunnerError(f"{version} already serves all of {service} in {environment}; nothing to roll back")
    return RollbackTarget(current, version, proof, running)


def passed_validation(record: DeploymentRecord) -> bool:
    """Succeeded with its checks passed: the ledger's own test for 'known good' (see Ledger.last_good)."""
    return record.status is Status.SUCCEEDED and record.validation.passed is True


def choose_target(ledger: Ledger, current: DeploymentRecord, to: str | None) -> tuple[str, DeploymentRecord | None]:
    """The version to return to, and the record that proved it good (None for a version never validated here).

    Without ``to``: the newest deployment before ``current`` that passed validation and ships another version.
    A deployment id in ``to`` must name a deployment that passed validation: its id is offered as proof, and the
    proof of a failed, rolled-back or unvalidated deployment is no proof. A bare version is the caller's explicit
    choice and is accepted as it is (the confirmation says it has not passed validation when it has not).
    """
    service, environment = current.service, current.environment
    if to:
        if parse_id(to):
            chosen = ledger.get(to)
            if chosen is None:
                raise RunnerError(f"to: no deployment {to!r} in the ledger; deployment_history lists the ids")
            if (chosen.service, chosen.environment) != (service, environment):
                raise RunnerError(
                    f"to: {to} deployed {chosen.service} to {chosen.environment}, not {service} to {environment}"
                )
            if not passed_validation(chosen):
                how = "did not pass validation" if chosen.status is Status.SUCCEEDED else f"is {chosen.status.value}"
                raise RunnerError(
                    f"to: {to} ({chosen.version}) {how}, so it does not prove {chosen.version} good; give a "
                    "deployment that passed validation (deployment_history shows them), leave to out for the last "
                    f'one, or give the version itself (to="{chosen.version}") to return to it anyway'
                )
            return chosen.version, chosen
        check_version(to, "to (a deployment id or a version)")
        proof = next(
            (
                r
                for r in ledger.list(service=service, environment=environment, limit=_HISTORY)
                if r.version == to and passed_validation(r)
            ),
            None,
        )
        return to, proof
    anchor = current.id
    for _ in range(_HISTORY):
        good = ledger.last_good(service, environment, before=anchor)
        if good is None:
            break
        if good.version != current.version:
            return good.version, good
        anchor = good.id
    raise RunnerError(
        f"no earlier deployment of {service} in {environment} passed validation, so there is no known-good version "
        f"to roll back to from {current.version} ({current.id}); give one with to= (a version or a deployment id)"
    )


def check_to_while_running(ledger: Ledger, running: DeploymentRecord, to: str | None) -> None:
    """Refuse a ``to`` that a rollback of a rollout under way would not honour, before anything is aborted.

    A rollback called while a rollout runs aborts it, and abort returns traffic to the version that served before;
    so ``to`` must be valid (as `choose_target` judges it) and name that version. Anything else is refused here,
    with the rollout left running, rather than aborted first and found wrong after.
    """
    if not to:
        return
    version, _ = choose_target(ledger, running, to)
    if version == running.previous_version:
        return
    back = f"returns traffic to {running.previous_version}" if running.previous_version else "stops it"
    raise RunnerError(
        f"to: {to} ({version}): {running.id} ({running.service} {running.version}) is under way, and a rollback "
        f"now aborts it, which {back}; it cannot go to {version} in the same move. Nothing was changed. Leave to "
        f"out to abort it, then roll back with to={to!r} once it has ended"
    )


def refuse_crossing(
    ledger: Ledger,
    current: DeploymentRecord,
    version: str,
    releases: Mapping[str, ReleaseOverride] | None = None,
) -> None:
    """Refuse to go back across a release whose migrations the older version cannot run against: fix forward.

    Crossed is every deployment newer than the last one in which ``version`` served (the newest record of it
    that was not failed, rolled back or aborted), whatever became of it: a roll-forward-only release that failed
    may still have run its migrations. A version that never served here (older than the ledger, or never
    deployed) is taken to be older than every record, so every roll-forward-only deployment recorded blocks it.
    A mark is lifted by declaring ``migrations_irreversible = false`` for that release in deploy.toml.
    """
    first = crossing_blocker(ledger, current, version, releases)
    if first is not None:
        service, environment = current.service, current.environment
        raise RunnerError(
            f"refusing to roll {service} in {environment} back to {version}: {first.id} shipped {first.version} "
            "with migrations the older version cannot run against (declared with "
            f'services.{service}.versions."{first.version}".migrations_irreversible = true, or found irreversible by '
            f"the migration lint when it started: `deploy-mcp status {first.id}` shows which). Fix forward with a new "
            "version instead; if those migrations never ran, set migrations_irreversible = false there and try again"
        )


def crossing_blocker(
    ledger: Ledger,
    current: DeploymentRecord,
    version: str,
    releases: Mapping[str, ReleaseOverride] | None = None,
) -> DeploymentRecord | None:
    """The oldest roll-forward-only deployment a rollback to ``version`` would cross (see `refuse_crossing`)."""
    crossed: list[DeploymentRecord] = []
    for record in ledger.list(service=current.service, environment=current.environment, limit=_HISTORY):
        if record.version == version and record.status not in _GONE:
            break
        crossed.append(record)
    blocking = [r for r in crossed if r.roll_forward_only and r.version != version and not lifted(r, releases)]
    return blocking[-1] if blocking else None


def lifted(record: DeploymentRecord, releases: Mapping[str, ReleaseOverride] | None) -> bool:
    """deploy.toml now says explicitly that this release's migrations can be undone (a mark set by mistake)."""
    release = releases.get(record.version) if releases is not None else None
    return release is not None and release.declared_reversible


def plan_rollback(
    state: TargetState, version: str, full_size: int, capabilities: RouterCapabilities = EXACT
) -> list[PlanStep]:
    """Fast when ``version`` still runs (canary stable, blue-green kept warm); else start it, check, switch.

    Without a preview the check before the switch probes the instances, and the smoke tests run through the
    service after it (the final checks)."""
    steps: list[PlanStep] = []

    def add(action: str, description: str, **params: object) -> None:
        steps.append(
            PlanStep.model_validate({"index": len(steps) + 1, "action": action, "description": description, **params})
        )

    running = state.version(version)
    if running is not None and running.ready > 0:
        if running.replicas < full_size:
            add(
                "scale", f"Scale {version}, still running, back up to {full_size}.", version=version, replicas=full_size
            )
            add(
                "wait_ready",
                f"Wait until {full_size} instance(s) of {version} are ready.",
                version=version,
                replicas=full_size,
            )
    else:
        add("start", f"Start {version} at full size ({full_size}).", version=version, replicas=full_size)
        add(
            "wait_ready",
            f"Wait until {full_size} instance(s) of {version} are ready.",
            version=version,
            replicas=full_size,
        )
        if capabilities.preview:
            add(
                "check",
                f"Run the health and smoke checks straight against {version} before it takes traffic.",
                version=version,
            )
        else:
            add(
                "check",
                f"Probe every instance of {version} before it takes traffic (this platform cannot send a request to "
                "one version alone; the smoke tests run through the service after the switch).",
                version=version,
                via=CheckVia.INSTANCES,
            )
    add("set_weights", f"Send all traffic to {version}.", weights={version: 100})
    for other in state.versions:
        if other.version != version:
            add("stop", f"Stop {other.version}.", version=other.version)
    return steps
