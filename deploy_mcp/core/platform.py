"""What the runner needs from a platform, in four parts that combine: what runs, who gets the requests, how to
probe, where flags live.

The split follows Argo Rollouts, which keeps the workload (ReplicaSets) apart from traffic routing (a mesh, an
ingress, a Gateway API route, or none at all). A platform is then a combination: the local platform is processes
behind its own weighted router; Kubernetes is Deployments with a Gateway API HTTPRoute (exact weights) or with only
the stable Service selecting every version's pods (weights are replica ratios); ECS is services behind an ALB
listener. The router says what it can really do in ``capabilities``, and plans read it, so a plan never promises a
95/5 split on a platform that can only make 75/25.

The runner never builds a URL: health and smoke go through ``Prober.http_client``, whose base URL reaches the
service as users do, or one version only. On Kubernetes that is the API server's service proxy, so nothing has to
be exposed for deploy-mcp to check it; locally it is the router's port or a version's preview port.

Methods are blocking on purpose: the Kubernetes client and boto3 are synchronous, and an asyncio caller simply
runs a call in a worker thread (``asyncio.to_thread``). Every error a user or agent can cause is a ``TargetError``
whose message names the field and the fix; ``code`` lets the runner branch on it without parsing the message.
The shapes the parts exchange (TargetState, Release, InstanceHealth...) live in ``core.target``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from deploy_mcp.core.target import InstanceHealth, Release, TargetState, TrafficMetrics

if TYPE_CHECKING:
    import httpx

__all__ = [
    "EXACT",
    "FlagProvider",
    "Platform",
    "Prober",
    "ReplicaSplit",
    "RouterCapabilities",
    "TrafficRouter",
    "Workload",
    "proportional",
    "replica_split",
    "same_split",
]


@runtime_checkable
class Workload(Protocol):
    """What runs: versions of a service side by side, each at a size (processes, a Deployment, an ECS service)."""

    kind: str
    """"local" | "kubernetes" | "ecs" | "fake": named in messages and in the ledger."""

    def state(self, service: str, environment: str) -> TargetState:
        """What runs now, weights included (read from the router's side of the platform); never raises for a
        service that simply has nothing running."""
        ...

    def start_version(
        self, service: str, environment: str, release: Release, replicas: int, *, timeout: float | None = None
    ) -> None:
        """Run ``replicas`` instances of a release and return once all are ready.

        A new version receives no traffic, except the first version of an environment, which gets all of it.
        Raises TargetError (crash_loop, command_not_found, health_timeout, port_in_use...) and leaves nothing of
        that version running. Starting a version that already runs is refused (already_running): the runner
        scales it instead.
        """
        ...

    def scale(
        self, service: str, environment: str, version: str, replicas: int, *, timeout: float | None = None
    ) -> None:
        """Grow (waiting for readiness) or shrink (draining first) a running version; 0 keeps it, empty."""
        ...

    def stop_version(self, service: str, environment: str, version: str, *, drain_timeout: float = 10.0) -> None:
        """No new requests, in-flight ones finish (up to drain_timeout), then the instances go.

        Refused (still_serving) while the version has a traffic weight and another version could take it.
        Stopping a version that does not run is refused with unknown_version (the runner checks first).
        """
        ...


class RouterCapabilities(BaseModel):
    """What a traffic router can really do, so that a plan shows the split the platform will make."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exact_weights: bool = Field(
        description="any 0-100 split between versions; False: a version's share is its share of the ready "
        "instances (1 of 4 pods is 25%), and a weight of 0 takes a version out of the service entirely"
    )
    preview: bool = Field(description="a probe can reach one version before it takes traffic")


EXACT = RouterCapabilities(exact_weights=True, preview=True)
"""A router like the local platform's: any split, and a preview of every version."""


@runtime_checkable
class TrafficRouter(Protocol):
    """Who gets the requests: the split between versions, set absolutely and read back from the platform."""

    capabilities: RouterCapabilities

    def set_weights(self, service: str, environment: str, weights: Mapping[str, int]) -> None:
        """Split traffic; weights are 0-100 and sum to 100, versions left out get 0.

        A weight above 0 for a version with no ready instance is refused (no_instances, see ``check_weights``).
        Without exact weights, a mixed split must be the ready-instance ratio (``replica_split``); anything else is
        refused with invalid_weights, naming the split the platform can make.
        """
        ...

    def verify_weights(self, service: str, environment: str) -> dict[str, int]:
        """The split in force, read back from the platform itself (not remembered from set_weights): every
        version the platform knows, zeros included. The runner compares it with what it asked for."""
        ...


@runtime_checkable
class Prober(Protocol):
    """Health and smoke go through the platform: the runner never builds a URL, so a ClusterIP service works."""

    def http_client(self, service: str, environment: str, version: str | None = None) -> httpx.Client:
        """A client whose base_url reaches the service as users do (version None) or that version only (the
        preview, when the router has ``preview``; else unknown_version or unavailable). The caller closes it."""
        ...

    def health(self, service: str, environment: str, version: str | None = None) -> list[InstanceHealth]:
        """Probe every instance (of one version) now, each on its own (not through the router)."""
        ...


@runtime_checkable
class FlagProvider(Protocol):
    """Feature flags where the service reads them: the flagd file locally, a ConfigMap on Kubernetes."""

    def set_flag(self, service: str, environment: str, flag: str, percentage: int) -> str:
        """Turn ``flag`` on for ``percentage`` of users (0 off, 100 on); returns where it was written, for the log."""
        ...

    def get_flag(self, service: str, environment: str, flag: str) -> int | None:
        """The percentage in force, read back from where the service reads it; None when the flag is not there."""
        ...


@dataclass
class Platform:
    """A platform is a combination, e.g. Kubernetes Deployments + a Gateway API router, or local processes + the
    local weighted router. ``metrics`` gives per-version RED numbers from the router itself, when it has them
    (else the project's Prometheus judges)."""

    workload: Workload
    router: TrafficRouter
    prober: Prober
    flags: FlagProvider
    metrics: TrafficMetrics | None = None

    @property
    def kind(self) -> str:
        return self.workload.kind

    @property
    def capabilities(self) -> RouterCapabilities:
        return self.router.capabilities

    def state(self, service: str, environment: str) -> TargetState:
        """What runs now (the workload's view, with the weights in force)."""
        return self.workload.state(service, environment)

    def close(self) -> None:
        """Release what the parts hold (API clients, pools); a platform needs nothing else to be dropped."""
        for part in (self.workload, self.router, self.prober, self.flags, self.metrics):
            closer = getattr(part, "close", None)
            if callable(closer):
                closer()


# -- splits a platform without exact weights can make ------------------------------------------------------------


def proportional(counts: Mapping[str, int]) -> dict[str, int]:
    """Whole percentages in proportion to ``counts``, summing to 100 (largest remainder); {} when all are 0.

    Drivers whose weights are replica ratios report their split with this, and plans compute it the same way, so
    the split a plan shows is the split ``verify_weights`` reads back.
    """
    total = sum(max(0, n) for n in counts.values())
    if total == 0:
        return {}
    exact = {v: max(0, n) * 100 / total for v, n in counts.items()}
    weights = {v: int(share) for v, share in exact.items()}
    leftover = 100 - sum(weights.values())
    for version in sorted(exact, key=lambda v: exact[v] - weights[v], reverse=True)[:leftover]:
        weights[version] += 1
    return weights


@dataclass(frozen=True)
class ReplicaSplit:
    """How a requested share is made from instances: ``new`` of the canary beside ``old`` of the stable."""

    requested: int
    new: int
    old: int

    @property
    def share(self) -> int:
        """The canary's real share of traffic, in whole percent."""
        return proportional({"old": self.old, "new": self.new}).get("new", 0)

    @property
    def exact(self) -> bool:
        return self.share == self.requested


def replica_split(weight: int, replicas: int) -> ReplicaSplit:
    """The split closest above ``weight`` that ``replicas`` instances can make (Argo Rollouts' basic canary).

    The canary gets ceil(replicas x weight / 100) instances, at least one, and the stable keeps the rest, at least
    one while the weight is below 100, so the service keeps its size. With a single replica the canary runs beside
    it: 1 of 2 is 50%.
    """
    if weight <= 0:
        return ReplicaSplit(weight, 0, replicas)
    if weight >= 100:
        return ReplicaSplit(weight, replicas, 0)
    if replicas <= 1:
        return ReplicaSplit(weight, 1, 1)
    new = min(replicas - 1, max(1, math.ceil(replicas * weight / 100)))
    return ReplicaSplit(weight, new, replicas - new)


def same_split(asked: Mapping[str, int], applied: Mapping[str, int], *, tolerance: int = 0) -> bool:
    """Whether the split read back is the one asked for (versions missing on either side count as 0)."""
    versions = set(asked) | set(applied)
    return all(abs(asked.get(v, 0) - applied.get(v, 0)) <= tolerance for v in versions)
