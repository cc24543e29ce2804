"""Where a service's environment lives on AWS: its cluster, its ALB listener, its two target groups (version
slots), and the names of the ECS services deploy-mcp creates there, with the allowlist checked before any call.

A version runs as its own ECS service, ``<service>-<environment>-<slot>-<version>``, registered with the slot's
target group; the listener's weighted forward splits traffic between the two slots. Two slots are enough for every
strategy: a release only ever runs beside the one it replaces.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from deploy_mcp.core.target import ErrorCode, TargetError

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project
    from deploy_mcp.config.schema import EcsRouting, Environment, Service

TAG_SERVICE = "deploy-mcp.service"
TAG_ENVIRONMENT = "deploy-mcp.environment"
TAG_VERSION = "deploy-mcp.version"
TAG_SLOT = "deploy-mcp.slot"
TAG_DEPLOYMENT = "deploy-mcp.deployment"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class Slot(StrEnum):
    BLUE = "blue"
    GREEN = "green"


@dataclass(frozen=True)
class Place:
    """One service's environment on AWS."""

    service: str
    environment: str
    cluster: str
    routing: EcsRouting
    config: Service

    @property
    def prefix(self) -> str:
        return f"{self.service}-{self.environment}-"

    def ecs_name(self, slot: Slot, version: str) -> str:
        return f"{self.prefix}{slot}-{_UNSAFE.sub('-', version)}"[:255]

    def target_group(self, slot: Slot) -> str:
        return self.routing.target_groups[0 if slot is Slot.BLUE else 1]

    def slot_of(self, target_group: str) -> Slot | None:
        for slot in Slot:
            if self.target_group(slot) == target_group:
                return slot
        return None

    @property
    def where(self) -> str:
        return f"{self.service}/{self.environment} (ECS cluster {self.cluster})"


class Layout:
    """Reads deploy.toml for the ECS target and refuses what the allowlist does not cover."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.target = project.config.targets.ecs

    def place(self, service: str, environment: str) -> Place:
        config = self.project.config.services.get(service)
        if config is None:
            known = ", ".join(self.project.config.services) or "none"
            raise TargetError(f"service {service!r} is not in deploy.toml; known: {known}", ErrorCode.UNKNOWN_SERVICE)
        env: Environment | None = config.environments.get(environment)
        if env is None:
            known = ", ".join(config.environments) or "none"
            raise TargetError(
                f"{service} has no environment {environment!r} in deploy.toml; known: {known}",
                ErrorCode.UNKNOWN_ENVIRONMENT,
            )
        cluster = env.cluster or self.target.cluster
        self.check_cluster(cluster, f"services.{service}.environments.{environment}.cluster")
        if env.ecs is None:
            raise TargetError(
                f"services.{service}.environments.{environment}.ecs: required for the ECS target: the ALB listener "
                'and its two target groups, e.g. ecs = { listener = "arn:aws:elasticloadbalancing:...:listener/...", '
                'target_groups = ["arn:...:targetgroup/web-blue/...", "arn:...:targetgroup/web-green/..."] }',
                ErrorCode.UNAVAILABLE,
            )
        return Place(service=service, environment=environment, cluster=cluster, routing=env.ecs, config=config)

    def check_cluster(self, cluster: str, field: str) -> None:
        allowed = self.allowed_clusters()
        if cluster not in allowed:
            raise TargetError(
                f"{field}: cluster {cluster!r} is outside [targets.ecs] allowed_clusters "
                f"({', '.join(sorted(allowed))}); nothing was changed. Add it to allowed_clusters if deploy-mcp "
                "may deploy there",
                ErrorCode.UNAVAILABLE,
            )

    def allowed_clusters(self) -> set[str]:
        if self.target.allowed_clusters:
            return set(self.target.allowed_clusters)
        configured = {self.target.cluster}
        for service in self.project.config.services.values():
            configured.update(env.cluster for env in service.environments.values() if env.cluster)
        return configured

    def check_service_name(self, place: Place, name: str) -> None:
        """Refuse an ECS service outside [targets.ecs] allowed_services, before anything is changed."""
        patterns = self.target.allowed_services
        if patterns and not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            raise TargetError(
                f"{place.where}: ECS service {name!r} is outside [targets.ecs] allowed_services "
                f"({', '.join(patterns)}); nothing was changed. Add a pattern such as '{place.prefix}*' if "
                "deploy-mcp may manage it",
                ErrorCode.UNAVAILABLE,
            )
