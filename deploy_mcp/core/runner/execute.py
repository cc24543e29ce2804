"""One deployment, driven step by step in a thread of its own, with the ledger written ahead of every action.

Write-ahead is the rule that makes a crash harmless: the step is marked running (and its event appended) before
the platform is touched, the verdict is stored before the runner acts on it, and an undo is announced before it
starts. A process killed at any instant therefore leaves a record that says where it was, and whoever resumes
re-runs that step (every action is idempotent, see actions.py).

Threading: the platform calls block (a start can take a minute), so each deployment gets a daemon thread. Only
that thread writes its record, so there are no lost updates; requests from other threads and processes arrive
through the control channel (control.py) and are handled at the next wait or step boundary. The Runner's
heartbeat renews the ledger lock meanwhile; if another process takes the lock over (``lose``), this thread stops
writing at its next check and exits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from deploy_mcp.config.schema import AnalysisMethod
from deploy_mcp.core.analysis import Measurement, MetricSource, run_analysis
from deploy_mcp.core.plans import CheckVia, PlanStep
from deploy_mcp.core.records import DeploymentRecord, Phase, Status, Step, StepStatus, Validation, Verdict, utcnow
from deploy_mcp.core.runner.actions import Actions
from deploy_mcp.core.runner.base import Context, log, notify
from deploy_mcp.core.runner.control import ControlAction, ControlRequest, Inbox
from deploy_mcp.core.runner.rollback import undo
from deploy_mcp.core.sequential import run_sequential, sample_seconds
from deploy_mcp.errors import UserError

DONE_STEPS = frozenset(status for status in StepStatus if status.done)
ROLLBACK_STRATEGY = "rollback"


class _Halt(Exception):
    """Control flow out of the step loop (not an error)."""


class _Abort(_Halt):
    def __init__(self, request: ControlRequest) -> None:
        super().__init__(request.describe())
        self.request = request


class _Failed(_Halt):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _LostLock(_Halt):
    pass


class _Closing(_Halt):
    pass


class _Result(Enum):
    DONE = StepStatus.SUCCEEDED
    PROMOTED = StepStatus.PROMOTED
    RERUN = "rerun"


def plan_steps(record: DeploymentRecord) -> list[PlanStep]:
    """The plan as the record stores it (steps with their parameters), so any process can carry it on."""
    return [
        PlanStep.model_validate({"index": s.index, "action": s.name, "description": s.detail, **s.params})
        for s in record.steps
    ]


def record_steps(steps: list[PlanStep], version: str) -> list[Step]:
    recorded = []
    for step in steps:
        params = step.model_dump(exclude={"index", "action", "description"}, exclude_none=True)
        weight = step.weights.get(version) if step.weights else step.percentage
        recorded.append(Step(index=step.index, name=step.action, detail=step.description, weight=weight, params=params))
    return recorded


class Execution:
    """Drives one deployment record to an end: succeeded, rolled back, aborted, failed, or handed back."""

    def __init__(
        self,
        ctx: Context,
        record: DeploymentRecord,
        *,
        on_progress: Callable[[DeploymentRecord, str], None] | None = None,
        on_exit: Callable[[Execution], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.id = record.id
        self.record = record
        self.service = record.service
        self.environment = record.environment
        self.steps = plan_steps(record)
        self.is_rollback = record.strategy == ROLLBACK_STRATEGY
        self.actions = Actions(
            ctx,
            record.service,
            record.environment,
            follow_instances=not any(step.action == "set_weights" for step in self.steps),
        )
        self.actions.deployment_id = record.id
        self.inbox = Inbox(ctx.ledger, record.id)
        self.changed = threading.Condition()
        self.on_progress = on_progress
        self._on_exit = on_exit
        self._lost = False
        self._closing = False
        self._source: MetricSource | None = None
        self._unjudged_since: float | None = time.monotonic()
        """Since when the new version's traffic has gone unjudged: the sequential analysis counts it too. None
        right after a flag change: the version's error rate changed with it, so older traffic is not evidence."""
        self.thread = threading.Thread(target=self._main, name=f"deploy {record.id}", daemon=True)

    # -- lifecycle seen from the Runner ---------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def lose(self) -> None:
        """Another process holds the lock now: stop driving without writing."""
        self._lost = True
        self.inbox.wake.set()

    def close(self) -> None:
        """This process is going away: hand the deployment back as interrupted at the next check."""
        self._closing = True
        self.inbox.wake.set()

    def wait_settled(self, timeout: float | None) -> None:
        """Until the record is no longer pending or in progress (or the thread ended), at most ``timeout``.

        A finished record also waits for the thread to release the lock, so the caller may start the next one.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            self.changed.wait_for(
                lambda: self.record.status not in (Status.PENDING, Status.IN_PROGRESS) or not self.alive,
                timeout,
            )
        if self.record.status.finished or self.record.status is Status.INTERRUPTED:
            self.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    # -- the thread ----------------------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            if self.record.undoing is not None:
                self._undo(self.record.undoing, self.record.reason or "undo requested")
            else:
                self._drive()
        except _LostLock:
            log.warning("%s: the lock was taken over by another process; stopped driving it", self.id)
        except _Closing:
            self._hand_back()
        except Exception as exc:  # a bug or a storage failure: try to leave the service as it was
            log.exception("%s: the runner failed", self.id)
            self._crashed(exc)
        finally:
            if not self._lost:
                try:
                    self.ctx.ledger.release_lock(self.service, self.environment, self.ctx.holder)
                except Exception:
                    log.exception("%s: could not release the lock", self.id)
            self.inbox.close()
            if self._on_exit is not None:
                self._on_exit(self)
            with self.changed:
                self.changed.notify_all()

    def _drive(self) -> None:
        try:
            for step in self.steps:
                if self.record.steps[step.index - 1].status in DONE_STEPS:
                    continue
                self._run_step(step)
            self._finish()
        except _Abort as abort:
            request = abort.request
            reason = f"aborted by {request.by}" + (f": {request.reason}" if request.reason else "")
            self._undo(Status.ABORTED, reason, request)
        except _Failed as failure:
            self._undo(Status.FAILED if self.is_rollback else Status.ROLLED_BACK, failure.reason)

    def _run_step(self, step: PlanStep) -> None:
        while True:
            self._between_steps(step)
            self._set_step(step, StepStatus.RUNNING, started=True)
            self._event("step_started", f"step {step.index}/{len(self.steps)} ({step.action}): {step.description}")
            self._progress(f"step {step.index}/{len(self.steps)}: {step.description}")
            try:
                result = self._perform(step)
            except UserError as exc:
                reason = f"step {step.index} ({step.action}) failed: {exc}"
                self._verdict(step, Phase.FAILED, reason)
                self._set_step(step, StepStatus.FAILED, finished=True)
                raise _Failed(reason) from None
            if result is _Result.RERUN:
                continue
            self._set_step(step, result.value, finished=True)
            self._event("step_finished", f"step {step.index} {result.value}")
            return

    def _between_steps(self, step: PlanStep) -> None:
        """Handle requests that arrived while no step could take them."""
        self._check()
        while (request := self.inbox.take()) is not None:
            if request.action is ControlAction.ABORT:
                raise _Abort(request)
            if request.action is ControlAction.PAUSE:
                self._hold(
                    f"paused by {request.by}" + (f": {request.reason}" if request.reason else ""),
                    step,
                    StepStatus.PENDING,
                    request,
                )
            else:
                self.inbox.ack(request, f"{request.action.value}: not paused, step {step.index} runs on")

    # -- steps ---------------------------------------------------------------------------------------------------

    def _perform(self, step: PlanStep) -> _Result:
        actions = self.actions
        action = step.action
        if action == "start":
            assert step.version and step.replicas
            actions.start(step.version, step.replicas, lambda message: self._event("note", message))
        elif action == "wait_ready":
            assert step.version and step.replicas
            self._event("note", actions.wait_ready(step.version, step.replicas))
        elif action == "rollout":
            assert step.version and step.replicas
            revision = actions.rollout(
                step.version, step.replicas, self.record.strategy, lambda message: self._progress(message)
            )
            self._event("note", f"the Deployment rolled out {step.version} (revision {revision})")
        elif action == "scale":
            assert step.version and step.replicas is not None
            actions.scale(step.version, step.replicas)
        elif action == "set_weights":
            assert step.weights is not None
            applied = actions.set_weights(step.weights)
            serving = ", ".join(f"{v} {w}%" for v, w in applied.items() if w)
            self._event("note", f"traffic now: {serving or 'none'} (read back from the platform)")
        elif action == "stop":
            assert step.version
            if not actions.stop(step.version):
                self._event("note", f"{step.version} was not running; nothing to stop")
        elif action == "flag":
            where = actions.set_flag(step.percentage or 0)
            if step.percentage:  # the feature reaches users: what the version did before is no evidence of it
                self._unjudged_since = None
            self._event("note", f"flag set to {step.percentage or 0}% in {where}")
        elif action == "check":
            checks = actions.check(step.version, step.via)
            what = (
                "checks through the service"
                if step.via is CheckVia.SERVICE or not step.version
                else f"pre-promotion checks of {step.version}"
            )
            if not checks.passed:
                raise _Failed(self._failed_check(step, f"{what} failed: {checks.summary}"))
            self._verdict(step, Phase.SUCCESSFUL, f"{what} passed: {checks.summary}")
        elif action == "pause":
            return self._pause_step(step)
        elif action == "analyze":
            return self._analyze(step)
        return _Result.DONE

    def _failed_check(self, step: PlanStep, reason: str) -> str:
        self._verdict(step, Phase.FAILED, reason)
        self._set_step(step, StepStatus.FAILED, finished=True)
        return reason

    def _pause_step(self, step: PlanStep) -> _Result:
        try:
            if step.seconds is None:
                self._hold(step.description, step, StepStatus.WAITING)  # resume and promote both end a human's pause
                return _Result.DONE
            request = self._sleep(step.seconds)
            return self._interrupted_by(request, step)
        finally:
            self._unjudged_since = time.monotonic()  # what ran during a pause was seen by whoever ended it

    def _analyze(self, step: PlanStep) -> _Result:
        version = step.version or self.record.version
        previous = self.record.previous_version
        state = self.actions.state()
        baseline = previous if previous and previous != version and state.weights.get(previous, 0) > 0 else None
        analysis = self.ctx.environment(self.service, self.environment).analysis
        thresholds = self.ctx.project.config.thresholds_for(self.service, self.environment)
        if self._source is None:
            self._source = self.ctx.metrics(self.service, self.environment)

        def measured(measurement: Measurement, run: object) -> None:
            self._event("measurement", f"{measurement.phase.value}: {measurement.reason}", measurement.numbers())
            self._progress(f"step {step.index}/{len(self.steps)}: {measurement.phase.value}: {measurement.reason}")

        bake = step.seconds if step.seconds is not None else analysis.bake
        interval = step.interval if step.interval is not None else analysis.interval
        if analysis.method is AnalysisMethod.SEQUENTIAL:  # every sample the source has, reported once per interval
            outcome = run_sequential(
                self._source,
                self.service,
                self.environment,
                version,
                baseline,
                thresholds,
                analysis,
                bake,
                interval,
                look_every_s=sample_seconds(self._source),
                # Requests served since the last verdict (the first batch of a rolling update, while the old
                # instance drained) are evidence too: a bad release is judged on everything users met.
                lookback_s=None if self._unjudged_since is None else time.monotonic() - self._unjudged_since,
                should_stop=self._should_stop,
                sleep=lambda seconds: self.inbox.wake.wait(seconds),
                on_measurement=measured,
            )
        else:
            outcome = run_analysis(
                self._source,
                self.service,
                self.environment,
                version,
                baseline,
                thresholds,
                analysis,
                bake,
                interval,
                should_stop=self._should_stop,
                sleep=lambda seconds: self.inbox.wake.wait(seconds),
                on_measurement=measured,
            )
        self._unjudged_since = time.monotonic()
        if outcome.stopped:
            self._check()
            return self._interrupted_by(self.inbox.take(), step)
        self._verdict(step, outcome.phase, outcome.reason, outcome.metrics)
        if outcome.phase is Phase.SUCCESSFUL:
            return _Result.DONE
        if outcome.phase is Phase.INCONCLUSIVE:
            action = self._hold(outcome.reason, step, StepStatus.INCONCLUSIVE)
            self._unjudged_since = time.monotonic()
            return _Result.PROMOTED if action is ControlAction.PROMOTE else _Result.RERUN
        self._set_step(step, StepStatus.FAILED, finished=True)
        raise _Failed(outcome.reason)

    def _interrupted_by(self, request: ControlRequest | None, step: PlanStep) -> _Result:
        """A wait (analysis, timed pause) ended early or on time: what the request, if any, makes of the step."""
        if request is None:
            return _Result.DONE
        if request.action is ControlAction.ABORT:
            raise _Abort(request)
        if request.action is ControlAction.PROMOTE:
            self.inbox.ack(request, f"promoted: step {step.index} ({step.action}) skipped")
            self._event("promoted", f"step {step.index} ({step.action}) skipped: {request.describe()}")
            return _Result.PROMOTED
        if request.action is ControlAction.PAUSE:
            reason = f"paused by {request.by}" + (f": {request.reason}" if request.reason else "")
            action = self._hold(reason, step, StepStatus.INTERRUPTED, request)
            return _Result.PROMOTED if action is ControlAction.PROMOTE else _Result.RERUN
        self.inbox.ack(request, "resume: not paused")
        return _Result.RERUN

    # -- waiting and controls ------------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._lost:
            raise _LostLock()
        if self._closing:
            raise _Closing()

    def _should_stop(self) -> bool:
        """True when a wait must end: a pause, promote or abort arrived, or this process lost or leaves it."""
        if self._lost or self._closing:
            return True
        while (request := self.inbox.peek()) is not None:
            if request.action is not ControlAction.RESUME:
                return True
            self.inbox.take()
            self.inbox.ack(request, "resume: not paused, nothing to resume")
        return False

    def _sleep(self, seconds: float) -> ControlRequest | None:
        """Wait ``seconds`` unless a request ends the wait first; returns that request."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._should_stop():
                self._check()
                return self.inbox.take()
            self.inbox.wake.wait(min(0.1, remaining))
        return None

    def _hold(
        self, reason: str, step: PlanStep, step_status: StepStatus, cause: ControlRequest | None = None
    ) -> ControlAction:
        """Status paused until resume or promote (returned); abort raises. The lock stays held meanwhile."""
        self._set_step(step, step_status)
        self._write(status=Status.PAUSED, reason=reason)
        self._event("paused", reason, {"step": step.index})
        if cause is not None:
            self.inbox.ack(cause, f"paused at step {step.index}")
        self._progress(f"paused at step {step.index}/{len(self.steps)}: {reason}")
        while True:
            self._check()
            request = self.inbox.wait(0.5)
            if request is None:
                continue
            if request.action is ControlAction.ABORT:
                raise _Abort(request)
            if request.action is ControlAction.PAUSE:
                self.inbox.ack(request, "already paused")
                continue
            self._write(status=Status.IN_PROGRESS, reason=None)
            self._event("resumed", request.describe(), {"step": step.index, "action": request.action.value})
            self.inbox.ack(request, f"{request.action.value}d at step {step.index}")
            self._progress(f"{request.action.value}d at step {step.index}/{len(self.steps)}")
            return request.action

    # -- endings -------------------------------------------------------------------------------------------------

    def _finish(self) -> None:
        """All steps done: final health and smoke through the service endpoint, then the validation block."""
        checks = self.actions.check_service()
        if not checks.passed:
            reason = f"final checks through the service endpoint failed: {checks.summary}"
            self._verdict(None, Phase.FAILED, reason)
            raise _Failed(reason)
        last = next((s for s in reversed(self.steps) if s.action == "analyze"), None)
        verdict = next((v for v in reversed(self.record.verdicts) if last and v.step == last.index), None)
        metrics: dict[str, Any] = verdict.metrics if verdict else {}
        if last is None:
            passed, summary = True, f"no analysis step; health and smoke passed ({checks.summary})"
        elif (
            self.record.steps[last.index - 1].status == StepStatus.SUCCEEDED
            and verdict
            and verdict.phase is Phase.SUCCESSFUL
        ):
            passed, summary = True, f"{verdict.phase.value}: {verdict.reason}"
        else:
            passed = False
            why = f"{verdict.phase.value}: {verdict.reason}" if verdict else "it did not run to a verdict"
            summary = f"the final analysis (step {last.index}) was promoted past, not passed ({why})"
        validation = Validation(
            health_check=checks.health,
            smoke_tests=checks.smoke,
            error_rate=metrics.get("error_rate"),
            latency_p95_ms=metrics.get("p95_ms"),
            verdict=summary,
            passed=passed,
            checked_at=utcnow(),
        )
        note = None if passed else summary
        if self.is_rollback:  # keep why it was rolled back, and say what the checks found
            note = self.record.reason if passed else f"{self.record.reason}; {summary}"
            self._mark_reverted()
        self._end(Status.SUCCEEDED, note, validation)

    def _mark_reverted(self) -> None:
        """The deployment this rollback reverts is rolled back now (before this record ends: readers wait on it)."""
        reverted = self.ctx.ledger.get(self.record.rollback_of) if self.record.rollback_of else None
        if reverted is None:
            return
        self._check_lost()
        self.ctx.ledger.update(reverted.id, status=Status.ROLLED_BACK, rolled_back_by=self.id)
        self.ctx.ledger.append_event(reverted.id, "rolled_back", f"rolled back by {self.id} to {self.record.version}")

    def _undo(self, status: Status, reason: str, cause: ControlRequest | None = None) -> None:
        """Return traffic to what served before, stop the new version, and end with ``status``."""
        if self.is_rollback and self._traffic_moved():
            # The rollback already switched traffic; going "back" would return users to the version being left.
            self._end(
                status,
                f"{reason}; traffic was already on {self.record.version}, so it stays there",
                self._failed_validation(reason),
            )
            return
        self._write(undoing=status, reason=reason, status=Status.IN_PROGRESS)
        self._event("undo_started", f"undoing {self.record.version}: {reason}", {"status": status.value})
        if cause is not None:
            self.inbox.ack(cause, "aborting: undoing the deployment")
        self._progress(f"undoing {self.record.version}: {reason}")
        full = self.ctx.full_size(self.service, self.environment)
        try:
            where = undo(self.actions, self.record, full, lambda message: self._event("undo_step", message))
        except Exception as exc:
            log.exception("%s: undo failed", self.id)
            state = self._describe_state()
            reason = (
                f"{reason}; undoing it failed too: {exc}. What runs now: {state}. Escalate (on-call, then the "
                "team lead) and restore service by hand"
            )
            self._end(Status.FAILED, reason, self._failed_validation(reason))
            return
        final = status
        if status is Status.ROLLED_BACK and not self.record.previous_version:
            final = Status.FAILED
        self._end(final, f"{reason}; {where}", self._failed_validation(reason))

    def _traffic_moved(self) -> bool:
        return any(s.name == "set_weights" and s.status in DONE_STEPS for s in self.record.steps)

    def _failed_validation(self, reason: str) -> Validation:
        return Validation(verdict=reason, passed=False, checked_at=utcnow())

    def _end(self, status: Status, reason: str | None, validation: Validation) -> None:
        finished = utcnow()
        self._write(
            status=status,
            reason=reason,
            validation=validation,
            undoing=None,
            finished_at=finished,
            duration_seconds=round((finished - self.record.deployed_at).total_seconds(), 3),
        )
        self._event(status.value, reason or f"{self.record.version} {status.value}", {"status": status.value})
        self._progress(f"{status.value}" + (f": {reason}" if reason else ""))

    def _hand_back(self) -> None:
        """This process stops: the record says interrupted, so a later process resumes or rolls it back."""
        current = self.record.current_step
        where = f"at step {current}" if current else "before its first step"
        reason = f"deploy-mcp stopped while driving it {where}; resume it or roll it back"
        steps = [
            s.model_copy(update={"status": StepStatus.INTERRUPTED}) if s.status == StepStatus.RUNNING else s
            for s in self.record.steps
        ]
        try:
            self._write(status=Status.INTERRUPTED, reason=reason, steps=steps)
            self._event("interrupted", reason)
        except Exception:
            log.exception("%s: could not record the interruption", self.id)

    def _crashed(self, exc: Exception) -> None:
        reason = f"the runner failed unexpectedly at step {self.record.current_step}: {type(exc).__name__}: {exc}"
        try:
            self._verdict(None, Phase.ERROR, reason)
            if self.record.undoing is None:
                self._undo(Status.FAILED if self.is_rollback else Status.ROLLED_BACK, reason)
            else:
                self._end(Status.FAILED, reason, self._failed_validation(reason))
        except Exception:
            log.exception("%s: could not record the failure", self.id)

    # -- the ledger, written ahead ---------------------------------------------------------------------------------

    def _write(self, **changes: Any) -> None:
        self._check_lost()
        record = self.ctx.ledger.update(self.id, **changes)
        with self.changed:
            self.record = record
            self.changed.notify_all()

    def _check_lost(self) -> None:
        if self._lost:
            raise _LostLock()

    def _event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self._check_lost()
        self.ctx.ledger.append_event(self.id, kind, message, data)

    def _set_step(self, step: PlanStep, status: StepStatus, *, started: bool = False, finished: bool = False) -> None:
        changes: dict[str, Any] = {"status": status}
        now: datetime = utcnow()
        if started:
            changes.update(started_at=now, finished_at=None)
        if finished:
            changes["finished_at"] = now
        steps = list(self.record.steps)
        steps[step.index - 1] = steps[step.index - 1].model_copy(update=changes)
        self._write(steps=steps, current_step=step.index)

    def _verdict(self, step: PlanStep | None, phase: Phase, reason: str, metrics: dict[str, Any] | None = None) -> None:
        verdict = Verdict(step=step.index if step else None, phase=phase, reason=reason, metrics=metrics or {})
        self._write(verdicts=[*self.record.verdicts, verdict])
        where = f"step {step.index}" if step else "final"
        self._event("verdict", f"{where}: {phase.value}: {reason}", {"step": verdict.step, "phase": phase.value})
        self._progress(f"{where}: {phase.value}: {reason}")

    def _progress(self, message: str) -> None:
        notify(self.on_progress, self.record, message)

    def _describe_state(self) -> str:
        try:
            state = self.actions.state()
        except Exception as exc:
            return f"unknown ({exc})"
        parts = [f"{v.version}: {v.ready}/{v.replicas} ready, {v.weight}% of traffic" for v in state.versions]
        return "; ".join(parts) or "nothing"
