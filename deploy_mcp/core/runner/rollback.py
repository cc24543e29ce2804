"""Going back: undoing a deployment that failed, and choosing and planning a rollback to a known-good version.

Two different things share the word. *Undo* happens inside a deployment that failed its checks or was aborted:
traffic goes back to the version that served before it (topped back up to full size, or started again if it is
gone) and the new version stops. *Rollback* is a deployment of its own (strategy "rollback"): it returns a
service to the last version that passed validation, which is not necessarily the previous one, and refuses to
cross a release whose migrations the older version cannot run against.
"""

from __future__ import annotations

from collections.abc import Callable

from deploy_mcp.core.plans import PlanStep, check_version
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.core.runner.actions import Actions, write_flag
from deploy_mcp.core.runner.base import RunnerError
from deploy_mcp.core.target import TargetState
from deploy_mcp.ledger import Ledger, parse_id

_GONE = (Status.FAILED, Status.ROLLED_BACK, Status.ABORTED)
"""Records whose version no longer serves because of them: never 'the current deployment'."""


def undo(actions: Actions, record: DeploymentRecord, full_size: int, say: Callable[[str], None]) -> str:
    """Put back what served before ``record``; returns a sentence saying where traffic is now.

    Every action is announced through ``say`` (which writes the event log) before it is taken.
    """
    stable, new = record.previous_version, record.version
    flagged = [s for s in record.steps if s.name == "flag" and s.status != "pending"]
    if flagged and actions.config.flag is not None:
        say(f"turn flag {actions.config.flag.name!r} off (0%)")
        write_flag(actions.ctx.project.root, actions.service, actions.config, 0)
    state = actions.state()
    if stable and stable != new:
        current = state.version(stable)
        if current is None or current.running == 0:
            say(f"{stable} no longer runs: start it again at full size ({full_size})")
            actions.target.start_version(
                actions.service,
                actions.environment,
                actions.release(stable),
                full_size,
                timeout=actions.ctx.ready_timeout,
            )
        elif current.replicas < full_size:
            say(f"scale {stable} back up to {full_size} instance(s)")
            actions.target.scale(
                actions.service, actions.environment, stable, full_size, timeout=actions.ctx.ready_timeout
            )
        say(f"send all traffic back to {stable}")
        actions.set_weights({stable: 100})
    if actions.state().version(new) is not None:
        say(f"stop {new}")
        actions.target.stop_version(actions.service, actions.environment, new, drain_timeout=actions.ctx.drain_timeout)
    if stable and stable != new:
        return f"{stable} serves all traffic again and {new} was stopped"
    return f"there was no earlier version to return to, so {new} was stopped"


def current_deployment(ledger: Ledger, service: str, environment: str) -> DeploymentRecord | None:
    """The newest deployment whose version still stands (not failed, rolled back or aborted)."""
    for record in ledger.list(service=service, environment=environment, limit=200):
        if record.status not in _GONE:
            return record
    return None


def choose_target(ledger: Ledger, current: DeploymentRecord, to: str | None) -> tuple[str, DeploymentRecord | None]:
    """The version to return to, and the record that proved it good (None for a bare version).

    Without ``to``: the newest deployment before ``current`` that passed validation and ships another version.
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
            return chosen.version, chosen
        check_version(to, "to (a deployment id or a version)")
        known = next(
            (r for r in ledger.list(service=service, environment=environment, limit=200) if r.version == to), None
        )
        return to, known
    anchor = current.id
    for _ in range(200):
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


def refuse_crossing(ledger: Ledger, current: DeploymentRecord, chosen: DeploymentRecord | None, version: str) -> None:
    """Refuse to go back across a release whose migrations the older version cannot run against: fix forward."""
    newer: list[DeploymentRecord] = []
    for record in ledger.list(service=current.service, environment=current.environment, limit=200):
        if chosen is not None and record.id == chosen.id:
            break
        if record.status not in _GONE:
            newer.append(record)
        if chosen is None and record.id == current.id:
            break
    blocking = [r for r in newer if r.roll_forward_only and r.version != version]
    if blocking:
        first = blocking[-1]
        raise RunnerError(
            f"refusing to roll {current.service} in {current.environment} back to {version}: {first.id} shipped "
            f"{first.version} with migrations the older version cannot run against "
            f'(services.{current.service}.versions."{first.version}".migrations_irreversible = true). Fix forward '
            "with a new version instead; if the migrations never ran, set that flag to false and try again"
        )


def plan_rollback(state: TargetState, version: str, full_size: int) -> list[PlanStep]:
    """Fast when ``version`` still runs (canary stable, blue-green kept warm); else start it, check, switch."""
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
        add(
            "check",
            f"Run the health and smoke checks straight against {version} before it takes traffic.",
            version=version,
        )
    add("set_weights", f"Send all traffic to {version}.", weights={version: 100})
    for other in state.versions:
        if other.version != version:
            add("stop", f"Stop {other.version}.", version=other.version)
    return steps
