"""Which platform driver runs a service: the `target` key of its [services.NAME] section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deploy_mcp.core.target import ErrorCode, TargetError

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project
    from deploy_mcp.core.target import Target


class Targets:
    """One driver instance per kind, created on first use (Kubernetes and boto3 are slow to import)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._drivers: dict[str, Target] = {}

    def __call__(self, service: str) -> Target:
        config = self.project.config
        if service not in config.services:
            known = ", ".join(config.services) or "none"
            raise TargetError(f"service: {service!r} is not in deploy.toml; known services: {known}")
        from deploy_mcp.extras import missing_for_target  # before any driver import: name the pip command

        if (missing := missing_for_target(config.services[service].target.value, service)) is not None:
            raise TargetError(missing, ErrorCode.UNAVAILABLE)
        kind = config.services[service].target.value
        if kind not in self._drivers:
            self._drivers[kind] = self._create(kind, service)
        return self._drivers[kind]

    def _create(self, kind: str, service: str) -> Target:
        if kind == "local":
            from deploy_mcp.targets.local import LocalTarget

            return LocalTarget(self.project)
        raise TargetError(
            f"services.{service}.target: the {kind} target is not built yet in this version of deploy-mcp; "
            'use target = "local" for now',
            ErrorCode.UNAVAILABLE,
        )
