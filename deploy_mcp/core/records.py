"""The deployment record: what was shipped, how, what the checks said, and what it reverted.

Field names follow the skill's deployment record (id, service, version, environment, deployedAt, deployedBy,
status, duration, previousVersion, changes, validation, rollback) in snake_case, plus what an enforced rollout
needs: the strategy, every step with its timestamps, every verdict with its numbers, the enterprise change
fields, and the link from a rollback to the record it reverts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class Status(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in {Status.SUCCEEDED, Status.FAILED, Status.ROLLED_BACK, Status.ABORTED}


class Phase(StrEnum):
    """Argo Rollouts' analysis phases, worst last."""

    SUCCESSFUL = "Successful"
    RUNNING = "Running"
    PENDING = "Pending"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"
    FAILED = "Failed"


class StepStatus(StrEnum):
    """Where one step of a plan stands (``Step.status``); stored and served as its value."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    """Paused on a verdict that could not decide."""
    WAITING = "waiting"
    """A pause for a human."""
    INTERRUPTED = "interrupted"
    """Stopped part-way (the process died or the deployment was handed over): run again on resume."""
    PROMOTED = "promoted"
    """Skipped by a human or an agent."""
    SKIPPED = "skipped"

    @property
    def done(self) -> bool:
        """Nothing of this step is left to run: a resume starts after it."""
        return self in {StepStatus.SUCCEEDED, StepStatus.PROMOTED, StepStatus.SKIPPED}


class VerdictOutcome(StrEnum):
    """What ``validate`` concludes, after the skill's rollback table (stored as its value on the record)."""

    PASS = "pass"
    """Continue: keep watching."""
    WARN = "warn"
    """Investigate for 5 minutes, then decide."""
    FAIL = "fail"
    """Roll back now (or fix forward after an irreversible migration)."""


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Changes(Record):
    commits: list[str] = Field(default_factory=list)
    pr_number: int | None = None
    release_notes: str | None = None
    migrations: list[str] = Field(
        default_factory=list,
        description="The service's migration files present when this deployment started, relative to the project "
        "root, each with the start of its content's SHA-256, e.g. 'db/001_init.up.sql sha256:0123456789abcdef': "
        "the next deployment's new migrations are the files not listed here or listed with another hash (an entry "
        "without a hash, from an older record or an unreadable file, counts as changed). Empty when the service has "
        "no migrations configured (and in records written before this was recorded).",
    )


class Validation(Record):
    """The skill's validation block: what the last checks of this deployment found."""

    health_check: str | None = None
    smoke_tests: str | None = None
    error_rate: float | None = None
    latency_p95_ms: float | None = None
    verdict: str | None = None
    passed: bool = False
    checked_at: datetime | None = None


class Enterprise(Record):
    change_id: str | None = None
    approved_by: str | None = None
    deploy_window: str | None = None
    rollback_tested: bool | None = None
    monitoring_period: str | None = None
    escalation_path: list[str] = Field(default_factory=list)


class Step(Record):
    """One step of a plan as it ran.

    ``name`` is the plan's action and ``params`` its parameters (version, replicas, weights, seconds, interval,
    percentage), so any process can resume the deployment from the ledger alone. ``status``: pending, running,
    succeeded, failed, inconclusive (paused on a verdict), waiting (a pause for a human), interrupted (stopped
    part-way: re-run on resume), promoted (skipped by a human or agent), skipped.
    """

    index: int
    name: str
    detail: str = ""
    weight: int | None = None
    status: StepStatus = StepStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class Verdict(Record):
    """One analysis result with the numbers it was decided on."""

    step: int | None = None
    phase: Phase
    reason: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)


class DeploymentRecord(Record):
    id: str
    service: str
    version: str
    environment: str
    strategy: str
    status: Status = Status.PENDING
    deployed_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    deployed_by: str = "agent"
    duration_seconds: float | None = None
    previous_version: str | None = None
    changes: Changes = Field(default_factory=Changes)
    validation: Validation = Field(default_factory=Validation)
    rollback_of: str | None = None
    rolled_back_by: str | None = None
    roll_forward_only: bool = False
    reason: str | None = None
    current_step: int | None = None
    steps: list[Step] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    enterprise: Enterprise | None = None
    undoing: Status | None = Field(
        default=None,
        description="set while the runner undoes this deployment (the status it will end with); a resume "
        "finishes the undo instead of the plan",
    )


class Event(Record):
    """One line of a deployment's append-only log."""

    deployment_id: str
    seq: int
    at: datetime
    kind: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
