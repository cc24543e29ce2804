"""What the runner needs from a platform, and the shapes it gets back.

One Protocol covers the local platform, Kubernetes and ECS because every one of them can do the same six things:
report what runs, start a version at a size, scale it, move traffic between versions, drain and stop a version,
and probe health. Differences stay behind the Protocol: Kubernetes without a mesh approximates weights with
replica counts, ECS shifts weights on an ALB listener, the local platform routes by weight itself. A driver says
what it can do in ``capabilities`` so plans never promise a 95/5 split on a platform that cannot make one.

Methods are blocking on purpose: the Kubernetes client and boto3 are synchronous, and an asyncio caller simply
runs a call in a worker thread (``asyncio.to_thread``). Every error a user or agent can cause is a ``TargetError``
whose message names the field and the fix; ``code`` lets the runner branch on it without parsing the message.
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


class TargetCapabilities(Model):
    """What a driver can really do, so a plan never relies on a feature the platform lacks."""

    weighted_traffic: bool = Field(description="exact per-version traffic weights (else approximated by replicas)")
    version_endpoint: bool = Field(description="a URL that reaches one version only (a preview)")
    in_process_metrics: bool = Field(description="per-version RED metrics without an external metric source")


@runtime_checkable
class Target(Protocol):
    """A platform that runs versions of a service side by side and splits traffic between them."""

    kind: str
    capabilities: TargetCapabilities

    def state(self, service: str, environment: str) -> TargetState:
        """What runs now; never raises for a service that simply has nothing running."""
        ...

    def start_version(
        self, service: str, environment: str, release: Release, replicas: int, *, timeout: float | None = None
    ) -> None:
        """Run ``replicas`` instances of a release and return once all are ready.

        A new version receives no traffic, except the first version of an environment, which gets all of it.
        Raises TargetError (crash_loop, command_not_found, health_timeout, port_in_use...) and leaves nothing of
        that version running.
        """
        ...

    def scale(
        self, service: str, environment: str, version: str, replicas: int, *, timeout: float | None = None
    ) -> None:
        """Grow (waiting for readiness) or shrink (draining first) a running version."""
        ...

    def set_weights(self, service: str, environment: str, weights: Mapping[str, int]) -> None:
        """Split traffic; weights are 0-100 and sum to 100, versions left out get 0.

        A weight above 0 for a version with no ready instance is refused.
        """
        ...

    def stop_version(self, service: str, environment: str, version: str, *, drain_timeout: float = 10.0) -> None:
        """No new requests, in-flight ones finish (up to drain_timeout), then SIGTERM, then SIGKILL.

        Refused while the version still has a traffic weight and another version could take it.
        """
        ...

    def health(self, service: str, environment: str, version: str | None = None) -> list[InstanceHealth]:
        """Probe every instance (of one version) now."""
        ...

    def endpoint(self, service: str, environment: str) -> str:
        """The URL users reach: the weighted router, the ingress, the load balancer."""
        ...

    def version_endpoint(self, service: str, environment: str, version: str) -> str:
        """A URL that reaches only this version, for smoke tests before it gets traffic."""
        ...


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
