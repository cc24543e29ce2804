"""The shapes a platform and the runner exchange: releases, states, health probes, metrics, and the error.

The platform itself (workload, traffic router, prober, flag provider) is described in ``core.platform``; these
shapes are shared by every part and every driver, so a state read from Kubernetes looks like one read locally.
Every error a user or agent can cause is a ``TargetError`` whose message names the field and the fix; ``code``
lets the runner branch on it without parsing the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from deploy_mcp.errors import UserError

if TYPE_CHECKING:
    from deploy_mcp.config.schema import Service


START_ALLOWANCE_SECONDS = 30.0
"""Time allowed for instances to start and pass their health check (the skill's minReadySeconds); deploy.toml
has no per-service start time, so this is also the honest downtime estimate for recreate."""


class ErrorCode(StrEnum):
    """Why a target refused or failed, for code that must react differently to each."""

    UNKNOWN_SERVICE = "unknown_service"
    UNKNOWN_ENVIRONMENT = "unknown_environment"
    UNKNOWN_VERSION = "unknown_version"
    ALREADY_RUNNING = "already_running"
    NO_COMMAND = "no_command"
    COMMAND_NOT_FOUND = "command_not_found"
    PORT_IN_USE = "port_in_use"
    CRASH_LOOP = "crash_loop"
    HEALTH_TIMEOUT = "health_timeout"
    NO_INSTANCES = "no_instances"
    INVALID_WEIGHTS = "invalid_weights"
    STILL_SERVING = "still_serving"
    NOT_RUNNING = "not_running"
    START_FAILED = "start_failed"
    UNAVAILABLE = "unavailable"
    NO_PREVIEW = "no_preview"
    WEIGHTS_NOT_APPLIED = "weights_not_applied"


class TargetError(UserError):
    """A platform refused or failed; the message is meant to be shown to the user as it is."""

    def __init__(self, message: str, code: ErrorCode | str = ErrorCode.UNAVAILABLE) -> None:
        super().__init__(message)
        self.message = message
        self.code = ErrorCode(code)

    def __str__(self) -> str:
        return self.message


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Release(Model):
    """One version of a service as a platform must run it: the service's command with the release's overrides."""

    service: str
    version: str
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    image: str | None = None
    cwd: str | None = None
    inherit_env: list[str] = Field(default_factory=list)
    deployment_id: str | None = Field(
        default=None, description="the deployment that starts it, for platforms that label what they create"
    )

    @classmethod
    def resolve(cls, service_name: str, service: Service, version: str) -> Release:
        """Service defaults first, then ``versions.<version>`` overrides: a release need not be declared."""
        override = service.versions.get(version)
        command = (override.command if override and override.command else None) or service.command
        env = {**service.env, **(override.env if override else {})}
        image = (override.image if override and override.image else None) or service.image
        if image:
            image = image.replace("{version}", version)
        return cls(
            service=service_name,
            version=version,
            command=list(command) if command else None,
            env=env,
            image=image,
            cwd=service.cwd,
            inherit_env=list(service.inherit_env),
        )


class InstancePhase(StrEnum):
    STARTING = "starting"
    READY = "ready"
    UNREADY = "unready"
    CRASHED = "crashed"
    DRAINING = "draining"
    STOPPED = "stopped"
    ORPHANED = "orphaned"


class InstanceState(Model):
    """One running copy of a version (a process, a pod, a task)."""

    id: str
    version: str
    phase: InstancePhase
    pid: int | None = None
    port: int | None = None
    url: str | None = None
    restarts: int = 0
    started_at: datetime | None = None
    last_exit_code: int | None = None
    last_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.phase is InstancePhase.READY


class VersionState(Model):
    """A version as the platform sees it now: its size, its share of traffic and whether it is healthy."""

    version: str
    replicas: int = Field(description="desired number of instances")
    ready: int = 0
    weight: int = Field(default=0, ge=0, le=100)
    restarts: int = 0
    crash_loop: bool = False
    problem: str | None = None
    endpoint: str | None = Field(default=None, description="reaches this version only, for pre-promotion checks")
    instances: list[InstanceState] = Field(default_factory=list)

    @property
    def running(self) -> int:
        return sum(1 for i in self.instances if i.phase not in {InstancePhase.STOPPED, InstancePhase.ORPHANED})


class TargetState(Model):
    """Everything one service runs in one environment."""

    service: str
    environment: str
    kind: str
    running: bool = Field(description="the platform side (local supervisor, deployment, ECS service) exists")
    endpoint: str | None = None
    problem: str | None = None
    versions: list[VersionState] = Field(default_factory=list)

    def version(self, name: str) -> VersionState | None:
        return next((v for v in self.versions if v.version == name), None)

    @property
    def weights(self) -> dict[str, int]:
        return {v.version: v.weight for v in self.versions}

    @property
    def serving(self) -> list[str]:
        """Versions that receive traffic now, heaviest first."""
        return [v.version for v in sorted(self.versions, key=lambda v: -v.weight) if v.weight > 0]


class InstanceHealth(Model):
    """One health probe, taken now."""

    instance: str
    version: str
    healthy: bool
    url: str | None = None
    status_code: int | None = None
    status: str | None = Field(default=None, description="the 'status' field of a JSON health answer")
    detail: str = ""
    latency_ms: float | None = None


class MetricSnapshot(Model):
    """RED numbers of one version over the last ``window_seconds``; latencies are None without requests."""

    version: str
    window_seconds: float
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    requests_per_second: float = 0.0


@runtime_checkable
class TrafficMetrics(Protocol):
    """Per-version RED metrics straight from the platform's router (no Prometheus needed)."""

    def metrics(self, service: str, environment: str, window_seconds: float) -> dict[str, MetricSnapshot]: ...


def check_weights(weights: Mapping[str, int], ready: Mapping[str, int], where: str) -> dict[str, int]:
    """Validate a traffic split against what is ready; shared so every driver refuses the same way.

    ``ready`` maps each known version to its ready instance count. Returns the full split, zeros included.
    """
    unknown = [v for v in weights if v not in ready]
    if unknown:
        known = ", ".join(sorted(ready)) or "none"
        raise TargetError(
            f"{where}: version {unknown[0]} has no instances (running versions: {known}); start it first",
            ErrorCode.NO_INSTANCES,
        )
    for version, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise TargetError(
                f"{where}: weight for {version} must be a whole number from 0 to 100, got {weight!r}",
                ErrorCode.INVALID_WEIGHTS,
            )
    total = sum(weights.values())
    if total != 100:
        shown = ", ".join(f"{v}={w}" for v, w in weights.items())
        raise TargetError(f"{where}: weights must sum to 100, got {total} ({shown})", ErrorCode.INVALID_WEIGHTS)
    for version, weight in weights.items():
        if weight > 0 and ready[version] == 0:
            raise TargetError(
                f"{where}: version {version} has no ready instance, so it cannot take {weight}% of traffic; "
                "wait until it is ready or scale it up",
                ErrorCode.NO_INSTANCES,
            )
    return {v: weights.get(v, 0) for v in ready}
