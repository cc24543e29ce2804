"""The Runner: start, watch, steer, roll back and recover deployments; the one object the tools and CLI use.

Every call returns promptly with the record as the ledger has it; the deployment itself runs in a thread
(execute.py) and ``wait`` blocks for as long as a caller can afford, so an MCP tool can answer within its client's
timeout while the rollout goes on. One deployment per service and environment, across processes, is the ledger's
lock: the Runner takes it before the record exists and its heartbeat renews it while the deployment runs or
waits paused. When a process dies the lease runs out; ``recover`` (any process) then marks its records
interrupted, and ``resume`` or ``abort`` or ``rollback`` takes them over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from deploy_mcp.config.loader import Project
from deploy_mcp.core.analysis import MetricSource
from deploy_mcp.core.plans import Plan
from deploy_mcp.core.platform import Platform, RouterCapabilities
from deploy_mcp.core.records import Changes, DeploymentRecord, Enterprise, Status, Step, StepStatus
from deploy_mcp.core.runner import control
from deploy_mcp.core.runner.actions import Actions
from deploy_mcp.core.runner.base import Context, RunnerError, default_holder, holder_is_gone, log
from deploy_mcp.core.runner.base import lease_seconds as default_lease_seconds
from deploy_mcp.core.runner.control import ControlAction
from deploy_mcp.core.runner.execute import DONE_STEPS, ROLLBACK_STRATEGY, Execution, record_steps
from deploy_mcp.core.runner.rollback import check_to_while_running, plan_rollback, resolve_rollback
from deploy_mcp.core.target import TargetState
from deploy_mcp.errors import UserError
from deploy_mcp.ledger import Ledger, LedgerError, LockState

Progress = Callable[[DeploymentRecord, str], None]

DEFAULT_READY_TIMEOUT = 60.0
ACK_TIMEOUT = 5.0
"""How long a control call waits for the driving process to acknowledge before returning the record as it is."""

_LIVE = (Status.PENDING, Status.IN_PROGRESS, Status.PAUSED)
_REMOTE_POLL = 0.2
"""Seconds between reads of a record driven by another process, on a ledger that does not push events."""
_REMOTE_RECHECK = 1.0
"""On a ledger that pushes events: how often to look anyway, for a driver that died without a word."""


class Runner:
    """Drives deployments of one project against its platforms, writing everything to the ledger.

    ``platform`` is one Platform for every service or a function from a service name to its Platform; ``metrics``
    maps (service, environment) to a metric source (default: ``signals.metrics.metric_source_for``). ``holder``
    names this process in lock refusals; it must differ between processes (the default is unique).
    """

    def __init__(
        self,
        project: Project,
        ledger: Ledger,
        platform: Platform | Callable[[str], Platform],
        metrics: Callable[[str, str], MetricSource] | None = None,
        *,
        holder: str | None = None,
        lease_seconds: float | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        drain_timeout: float = 10.0,
        on_progress: Progress | None = None,
    ) -> None:
        platforms: Callable[[str], Platform] = (
            (lambda _service: platform) if isinstance(platform, Platform) else platform
        )
        self.ctx = Context(
            project=project,
            ledger=ledger,
            platforms=platforms,
            metrics=metrics or self._default_metrics,
            holder=holder or default_holder(),
            lease_seconds=lease_seconds if lease_seconds is not None else default_lease_seconds(),
            ready_timeout=ready_timeout,
            drain_timeout=drain_timeout,
        )
        self.ledger = ledger
        self.on_progress = on_progress
        self._executions: dict[str, Execution] = {}
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def holder(self) -> str:
        return self.ctx.holder

    def _default_metrics(self, service: str, environment: str) -> MetricSource:
        from deploy_mcp.signals.metrics import metric_source_for

        return metric_source_for(self.ctx.project.config, service, environment, self.ctx.platforms(service))

    # -- starting ------------------------------------------------------------------------------------------------

    def start(
        self,
        plan: Plan,
        *,
        deployed_by: str = "agent",
        change_id: str | None = None,
        enterprise: Enterprise | None = None,
        release_notes: str | None = None,
        commits: list[str] | None = None,
        on_progress: Progress | None = None,
    ) -> DeploymentRecord:
        """Take the lock, write the record, and run ``plan`` in the background; returns the new record.

        Refused (RunnerError) when another deployment of the service and environment runs (naming it), when one
        was interrupted and is still unresolved, or when what serves now is not what the plan was made for.
        """
        service, environment = plan.service, plan.environment
        self._require_open()
        svc = self.ctx.service(service)
        self.ctx.environment(service, environment)
        self._recover(service, environment)
        self._refuse_unresolved(service, environment)
        platform = self.ctx.platforms(service)
        if plan.capabilities != platform.router.capabilities:
            raise RunnerError(
                f"the plan was made for a traffic router with {_can(plan.capabilities)}, but the {platform.kind} "
                f"platform of {service} has {_can(platform.router.capabilities)}; plan the deployment again"
            )
        state = platform.workload.state(service, environment)
        serving = state.serving[0] if state.serving else None
        if plan.current_version != serving:
            planned = plan.current_version or "nothing"
            now = serving or "nothing"
            raise RunnerError(
                f"the plan was made with {planned} serving {service} in {environment}, but {now} serves it now; "
                "plan the deployment again"
            )
        if any(step.action == "analyze" for step in plan.steps):
            self.ctx.metrics(service, environment)  # a misconfigured metric source is refused before anything runs
        release = svc.versions.get(plan.version)
        declared = bool(release and release.migrations_irreversible)
        migrations = None
        if svc.migrations:  # before the lock: a deployment finishing meanwhile only makes more files count as new
            from deploy_mcp.migrations.release import for_deployment

            migrations = for_deployment(
                svc.migrations,
                self.ctx.project.root,
                self.ledger,
                service,
                plan.version,
                environment,
                release=release,
            )
        held = self._live_lock(service, environment)
        if held is not None and held.holder == self.holder:  # acquire_lock would simply renew our own lock
            ending = self._executions.get(held.deployment_id or "")
            if ending is not None and ending.record.status.finished:
                ending.thread.join(5.0)  # it has ended and is releasing the lock
            held = self.ledger.lock_state(service, environment)
            if held is not None and held.holder == self.holder:
                raise RunnerError(f"cannot start {service} {plan.version} in {environment}: {held.describe()}")
        claim = self.ledger.acquire_lock(service, environment, self.holder, lease_seconds=self.ctx.lease_seconds)
        if not claim.acquired:
            raise RunnerError(f"cannot start {service} {plan.version} in {environment}: {self._holder_of(claim)}")
        try:
            if change_id and enterprise is None:
                enterprise = Enterprise(change_id=change_id)
            record = self.ledger.create(
                service=service,
                version=plan.version,
                environment=environment,
                strategy=plan.strategy.value,
                status=Status.IN_PROGRESS,
                deployed_by=deployed_by,
                previous_version=serving,
                changes=Changes(
                    commits=list(commits or []),
                    release_notes=release_notes,
                    migrations=migrations.files if migrations else [],
                ),
                enterprise=enterprise,
                roll_forward_only=migrations.roll_forward_only if migrations else declared,
                steps=record_steps(plan.steps, plan.version),
            )
            self.ledger.acquire_lock(
                service, environment, self.holder, deployment_id=record.id, lease_seconds=self.ctx.lease_seconds
            )
            self.ledger.append_event(
                record.id,
                "started",
                f"{deployed_by} started {service} {plan.version} in {environment} ({plan.strategy.value}, "
                f"{len(plan.steps)} steps) over {serving or 'nothing'}",
                {"holder": self.holder, "serving": state.weights},
            )
            if migrations is not None:
                self.ledger.append_event(record.id, "migrations", migrations.message, migrations.data)
        except BaseException:
            self.ledger.release_lock(service, environment, self.holder)
            raise
        self._launch(record, on_progress)
        return record

    def _holder_of(self, claim: LockState) -> str:
        """Who holds the lock, naming its deployment: a winner that has just locked writes its record next, so
        give it a moment rather than refuse with "a deployment by pid ..."."""
        deadline = time.monotonic() + 2.0
        while claim.deployment_id is None and time.monotonic() < deadline:
            time.sleep(0.02)
            claim = self.ledger.lock_state(claim.service, claim.environment) or claim
        return claim.describe()

    def _launch(self, record: DeploymentRecord, on_progress: Progress | None) -> Execution:
        execution = Execution(self.ctx, record, on_progress=on_progress or self.on_progress, on_exit=self._forget)
        with self._lock:
            self._executions[record.id] = execution
            self._ensure_heartbeat()
        execution.start()
        return execution

    def _forget(self, execution: Execution) -> None:
        with self._lock:
            if self._executions.get(execution.id) is execution:
                del self._executions[execution.id]

    def _refuse_unresolved(self, service: str, environment: str) -> None:
        for record in self.ledger.unfinished():
            if (record.service, record.environment) == (service, environment) and record.status is Status.INTERRUPTED:
                raise RunnerError(
                    f"{record.id} ({service} {record.version} in {environment}) was interrupted at step "
                    f"{record.current_step}: resume it, abort it, or roll back before starting another deployment"
                )

    # -- watching ------------------------------------------------------------------------------------------------

    def get(self, deployment_id: str) -> DeploymentRecord:
        """The record; one whose driving process is gone is marked interrupted first, so that every reader (a
        restarted server's deployment_status, a wait on another process's deployment) learns it at once."""
        record = self.ledger.get(deployment_id)
        if record is None:
            raise RunnerError(f"no deployment {deployment_id!r} in the ledger; deployment_history lists the ids")
        if record.status in _LIVE and record.id not in self._executions and self._orphaned(record):
            self._recover(record.service, record.environment)
            record = self.ledger.get(deployment_id) or record
        return record

    def wait(self, deployment_id: str, timeout: float | None = None) -> DeploymentRecord:
        """The record once it is finished, paused or interrupted, or as it is when ``timeout`` seconds are up."""
        execution = self._executions.get(deployment_id)
        if execution is not None:
            execution.wait_settled(timeout)
            return execution.record if execution.alive else self.get(deployment_id)
        # Driven by another process: every step it takes writes an event, which wakes us (at once where the
        # ledger pushes, as PostgreSQL does across replicas). The record is read again at least every
        # `_REMOTE_RECHECK` anyway, because a driver that dies writes nothing: `get` then notices it is orphaned.
        deadline = None if timeout is None else time.monotonic() + timeout
        heard = threading.Event()
        unsubscribe = self.ledger.subscribe(deployment_id, heard)
        recheck = _REMOTE_RECHECK if self.ledger.pushes_events else _REMOTE_POLL
        try:
            while True:
                heard.clear()
                record = self.get(deployment_id)
                if record.status not in (Status.PENDING, Status.IN_PROGRESS):
                    return record
                if deadline is not None and time.monotonic() >= deadline:
                    return record
                heard.wait(recheck if deadline is None else max(0.0, min(recheck, deadline - time.monotonic())))
        finally:
            unsubscribe()

    def running(self) -> list[str]:
        """Ids of the deployments this process drives now."""
        with self._lock:
            return list(self._executions)

    # -- steering ------------------------------------------------------------------------------------------------

    def pause(self, deployment_id: str, *, by: str = "agent", reason: str | None = None) -> DeploymentRecord:
        """Hold the deployment at its current step (an analysis or timed pause in progress stops, and re-runs on
        resume); the lock stays held."""
        record = self._steerable(deployment_id, "pause")
        if record.status is Status.PAUSED:
            return record
        return self._send(record, ControlAction.PAUSE, by, reason)

    def promote(self, deployment_id: str, *, by: str = "agent") -> DeploymentRecord:
        """Go on past the current pause or analysis. Skipping an analysis means the release is not validated:
        a deployment whose final analysis was promoted past succeeds without passing validation."""
        record = self._steerable(deployment_id, "promote")
        if record.status is Status.IN_PROGRESS and record.current_step:
            step = record.steps[record.current_step - 1]
            if step.name not in ("analyze", "pause") or step.status != StepStatus.RUNNING:
                raise RunnerError(
                    f"{deployment_id} is at step {step.index} ({step.name}), which cannot be skipped; promote "
                    "applies to a paused deployment, an analysis, or a timed pause"
                )
        return self._send(record, ControlAction.PROMOTE, by, None)

    def resume(self, deployment_id: str, *, by: str = "agent", on_progress: Progress | None = None) -> DeploymentRecord:
        """Continue a paused deployment (re-running an inconclusive analysis), or take over an interrupted one."""
        record = self.get(deployment_id)
        if record.status.finished:
            raise RunnerError(f"{deployment_id} already ended ({record.status.value}); there is nothing to resume")
        if deployment_id not in self._executions and self._orphaned(record):
            return self._take_over(record, by, on_progress, undo=None)
        return self._send(record, ControlAction.RESUME, by, None)

    def abort(self, deployment_id: str, reason: str, *, by: str = "agent") -> DeploymentRecord:
        """Stop the deployment and undo it: traffic back to the previous version, the new one stopped."""
        record = self.get(deployment_id)
        if record.status.finished:
            raise RunnerError(
                f"{deployment_id} already ended ({record.status.value}); to go back to an earlier version, use rollback"
            )
        if deployment_id not in self._executions and self._orphaned(record):
            control.send(self.ledger, deployment_id, ControlAction.ABORT, by, reason)
            return self._take_over(record, by, None, undo=(Status.ABORTED, f"aborted by {by}: {reason}"))
        return self._send(record, ControlAction.ABORT, by, reason)

    def _steerable(self, deployment_id: str, verb: str) -> DeploymentRecord:
        record = self.get(deployment_id)
        if record.status.finished:
            raise RunnerError(f"{deployment_id} already ended ({record.status.value}); there is nothing to {verb}")
        if record.status is Status.INTERRUPTED or (deployment_id not in self._executions and self._orphaned(record)):
            raise RunnerError(
                f"{deployment_id} was interrupted (no process drives it); resume it first, or abort it or roll back"
            )
        return record

    def _send(self, record: DeploymentRecord, action: ControlAction, by: str, reason: str | None) -> DeploymentRecord:
        seq = control.send(self.ledger, record.id, action, by, reason)
        execution = self._executions.get(record.id)
        if execution is not None:
            execution.inbox.wake.set()
        control.wait_for_ack(self.ledger, record.id, seq, ACK_TIMEOUT)
        return self.get(record.id)

    # -- recovery ------------------------------------------------------------------------------------------------

    def recover(self) -> list[DeploymentRecord]:
        """Mark interrupted every unfinished deployment whose driving process is gone (its lock lease ran out)."""
        return self._recover(None, None)

    def _recover(self, service: str | None, environment: str | None) -> list[DeploymentRecord]:
        found: list[DeploymentRecord] = []
        for record in self.ledger.unfinished():
            if record.status not in _LIVE or record.id in self._executions:
                continue
            if service is not None and (record.service, record.environment) != (service, environment):
                continue
            if not self._orphaned(record):
                continue
            claim = self.ledger.acquire_lock(
                record.service, record.environment, self.holder, deployment_id=record.id, lease_seconds=10
            )
            if not claim.acquired and claim.deployment_id == record.id:
                continue  # its owner came back in between
            try:
                found.append(self._mark_interrupted(record))
            finally:
                if claim.acquired:
                    self.ledger.release_lock(record.service, record.environment, self.holder)
        return found

    def _orphaned(self, record: DeploymentRecord) -> bool:
        """No live process drives this record: interrupted, or its lock is free or held for another deployment."""
        if record.status is Status.INTERRUPTED:
            return True
        if record.status not in _LIVE:
            return False
        lock = self._live_lock(record.service, record.environment)
        return lock is None or (lock.deployment_id is not None and lock.deployment_id != record.id)

    def _live_lock(self, service: str, environment: str) -> LockState | None:
        """The lock of a service and environment, unless its holder is a process on this machine that has ended:
        that lock is released at once rather than after its lease (see `holder_is_gone`)."""
        lock = self.ledger.lock_state(service, environment)
        if lock is None or lock.holder == self.holder or not holder_is_gone(lock.holder):
            return lock
        log.warning("%s/%s: the lock holder (%s) has ended; releasing its lock", service, environment, lock.holder)
        self.ledger.release_lock(service, environment, lock.holder)
        return self.ledger.lock_state(service, environment)

    def _mark_interrupted(self, record: DeploymentRecord) -> DeploymentRecord:
        step = record.steps[record.current_step - 1] if record.current_step else None
        where = f"at step {step.index} ({step.name}: {step.detail})" if step else "before its first step"
        reason = f"the process driving it stopped {where}; resume it or roll it back"
        steps = [
            s.model_copy(update={"status": StepStatus.INTERRUPTED}) if s.status == StepStatus.RUNNING else s
            for s in record.steps
        ]
        updated = self.ledger.update(record.id, status=Status.INTERRUPTED, reason=reason, steps=steps)
        self.ledger.append_event(record.id, "interrupted", reason, {"found_by": self.holder})
        return updated

    def _take_over(
        self,
        record: DeploymentRecord,
        by: str,
        on_progress: Progress | None,
        *,
        undo: tuple[Status, str] | None,
    ) -> DeploymentRecord:
        """Drive an interrupted deployment from this process: lock, look at what runs, carry on or undo."""
        self._require_open()
        if record.status is not Status.INTERRUPTED:
            record = self._mark_interrupted(record)
        claim = self.ledger.acquire_lock(
            record.service,
            record.environment,
            self.holder,
            deployment_id=record.id,
            lease_seconds=self.ctx.lease_seconds,
        )
        if not claim.acquired:
            raise RunnerError(f"cannot take over {record.id}: {claim.describe()}")
        try:
            actions = Actions(self.ctx, record.service, record.environment, follow_instances=False)
            actions.deployment_id = record.id
            state = actions.state()
            changes: dict[str, Any] = {"status": Status.IN_PROGRESS}
            if undo is not None:
                changes.update(undoing=undo[0], reason=undo[1])
            elif record.undoing is None:
                changes.update(reason=None, steps=_restart_point(record, state))
            updated = self.ledger.update(record.id, **changes)
            self.ledger.append_event(
                record.id,
                "resumed",
                f"{by} took over {record.id} in {self.holder}; running now: {_describe(state)}",
                {"holder": self.holder, "weights": state.weights},
            )
        except BaseException:
            self.ledger.release_lock(record.service, record.environment, self.holder)
            raise
        self._launch(updated, on_progress)
        return updated

    # -- rollback ------------------------------------------------------------------------------------------------

    def rollback(
        self,
        service: str,
        environment: str,
        to: str | None = None,
        reason: str = "rollback requested",
        *,
        requested_by: str = "agent",
        expect: tuple[str, str | None] | None = None,
        on_progress: Progress | None = None,
    ) -> DeploymentRecord:
        """Return the service to the last version that passed validation (or ``to``: a deployment id or a
        version), as a deployment of its own; returns its record (wait() for the end).

        A deployment running in this process is aborted instead (abort undoes it); one running in another
        process is refused, naming it. ``expect`` is what the person agreed to: (the deployment reverted or
        aborted, the version restored or None for an abort); when the ledger has moved on since they were asked,
        nothing happens and the refusal says what a rollback would do now.
        """
        self._require_open()
        self.ctx.environment(service, environment)
        self._recover(service, environment)
        lock = self._live_lock(service, environment)
        if lock is not None and lock.deployment_id in self._executions:
            running = self.ledger.get(lock.deployment_id)
            if running is not None:
                check_to_while_running(self.ledger, running, to)
            if expect is not None and expect != (lock.deployment_id, None):
                raise RunnerError(_changed(expect, f"abort {lock.deployment_id}, which is under way now"))
            return self.abort(lock.deployment_id, reason, by=requested_by)
        if lock is not None:
            raise RunnerError(f"cannot roll back now: {lock.describe()}; abort it (abort undoes it) or wait")
        try:
            target = resolve_rollback(
                self.ledger,
                service,
                environment,
                to,
                state=lambda: self.ctx.platforms(service).workload.state(service, environment),
                releases=self.ctx.project.config.services[service].versions,
            )
        except UserError as exc:
            if expect is None:
                raise
            raise RunnerError(_changed(expect, f"be refused ({exc})")) from None
        current, version, chosen = target.current, target.version, target.proof
        if expect is not None and expect != (current.id, version):
            raise RunnerError(_changed(expect, f"revert {current.id} ({current.version}) to {version}"))
        state = target.state or self.ctx.platforms(service).workload.state(service, environment)
        capabilities = self.ctx.platforms(service).router.capabilities
        steps = plan_rollback(state, version, self.ctx.full_size(service, environment), capabilities)
        claim = self.ledger.acquire_lock(service, environment, self.holder, lease_seconds=self.ctx.lease_seconds)
        if not claim.acquired:
            raise RunnerError(f"cannot roll back now: {claim.describe()}")
        try:
            why = f"{reason} (back to {version}" + (f", validated by {chosen.id})" if chosen else ")")
            record = self.ledger.create(
                service=service,
                version=version,
                environment=environment,
                strategy=ROLLBACK_STRATEGY,
                status=Status.IN_PROGRESS,
                deployed_by=requested_by,
                previous_version=state.serving[0] if state.serving else None,
                rollback_of=current.id,
                reason=why,
                steps=record_steps(steps, version),
            )
            self.ledger.acquire_lock(
                service, environment, self.holder, deployment_id=record.id, lease_seconds=self.ctx.lease_seconds
            )
            self.ledger.update(current.id, rolled_back_by=record.id)
            if current.status is Status.INTERRUPTED:
                self.ledger.update(current.id, reason=f"{current.reason}; rolled back by {record.id}")
            self.ledger.append_event(current.id, "rollback_started", f"{requested_by}: {why}; see {record.id}")
            self.ledger.append_event(record.id, "started", f"{requested_by} rolls back {current.id}: {why}")
        except BaseException:
            self.ledger.release_lock(service, environment, self.holder)
            raise
        self._launch(record, on_progress)
        return record

    # -- lifetime ------------------------------------------------------------------------------------------------

    def _ensure_heartbeat(self) -> None:
        """Called under ``self._lock``."""
        if self._heartbeat is None or not self._heartbeat.is_alive():
            self._heartbeat = threading.Thread(target=self._renew_leases, name="deploy lock heartbeat", daemon=True)
            self._heartbeat.start()

    def _renew_leases(self) -> None:
        """Renew every lock this process holds a third of a lease ahead; a refusal means another took it over."""
        period = max(0.05, self.ctx.lease_seconds / 3)
        while not self._closed.wait(period):
            with self._lock:
                executions = list(self._executions.values())
                if not executions:
                    self._heartbeat = None  # decided under the lock, so _launch starts a new one if needed
                    return
            for execution in executions:
                try:
                    held = self.ledger.renew_lock(
                        execution.service, execution.environment, self.holder, self.ctx.lease_seconds
                    )
                except LedgerError:
                    continue  # busy: the next beat tries again, well within the lease
                if not held and execution.alive:
                    execution.lose()

    def _require_open(self) -> None:
        if self._closed.is_set():
            raise RunnerError("this runner is closed")

    def close(self, timeout: float = 10.0) -> None:
        """Hand every deployment this process drives back as interrupted (at its next check) and stop."""
        with self._lock:
            executions = list(self._executions.values())
        for execution in executions:
            execution.close()
        deadline = time.monotonic() + timeout
        for execution in executions:
            execution.thread.join(max(0.0, deadline - time.monotonic()))
        self._closed.set()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _restart_point(record: DeploymentRecord, state: TargetState) -> list[Step]:
    """Steps to run again after an interruption: from the current one, or from the start of the new version
    when it no longer runs at all (its supervisor or cluster lost it)."""
    steps = list(record.steps)
    if state.version(record.version) is None:
        first_start = next((s for s in steps if s.name == "start" and s.params.get("version") == record.version), None)
        if first_start is not None and first_start.status in DONE_STEPS:
            steps = [s.model_copy(update={"status": "pending"}) if s.index >= first_start.index else s for s in steps]
    return steps


def _can(capabilities: RouterCapabilities) -> str:
    weights = "exact weights" if capabilities.exact_weights else "replica-ratio weights"
    return weights + (" and a preview" if capabilities.preview else " and no preview")


def _describe(state: TargetState) -> str:
    parts = [f"{v.version} ({v.ready}/{v.replicas} ready, {v.weight}%)" for v in state.versions]
    return ", ".join(parts) or "nothing"


def _changed(expect: tuple[str, str | None], now: str) -> str:
    """The refusal when the rollback a person agreed to is no longer the one that would run."""
    reverts, restores = expect
    agreed = f"revert {reverts} to {restores}" if restores else f"abort {reverts}"
    return (
        f"nothing was done: the user agreed to {agreed}, but the deployments changed since they were asked and a "
        f"rollback would now {now}; call rollback again so the user is asked about that"
    )
