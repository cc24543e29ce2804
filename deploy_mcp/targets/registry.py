"""Which platform runs a service: the `target` key of its [services.NAME] section.

A driver is a module ``deploy_mcp.targets.<kind>`` with ``create_platform(project, service_name) -> Platform``,
imported on first use (the Kubernetes client and boto3 are slow to import). Until a driver exists, a service that
names it gets a clear refusal rather than an ImportError.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from deploy_mcp.core.target import ErrorCode, TargetError

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project
    from deploy_mcp.core.platform import Platform

DRIVER_PACKAGE = "deploy_mcp.targets"


class Targets:
    """One local platform for every local service; one platform per service for the others (a namespace, a
    cluster, a region may differ between services), created on first use."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._platforms: dict[str, Platform] = {}

    def __call__(self, service: str) -> Platform:
        config = self.project.config
        if service not in config.services:
            known = ", ".join(config.services) or "none"
            raise TargetError(f"service: {service!r} is not in deploy.toml; known services: {known}")
        from deploy_mcp.extras import missing_for_target  # before any driver import: name the pip command

        if (missing := missing_for_target(config.services[service].target.value, service)) is not None:
            raise TargetError(missing, ErrorCode.UNAVAILABLE)
        kind = config.services[service].target.value
        key = kind if kind == "local" else f"{kind}:{service}"
        if key not in self._platforms:
            self._platforms[key] = self._create(kind, service)
        return self._platforms[key]

    def _create(self, kind: str, service: str) -> Platform:
        if kind == "local":
            from deploy_mcp.targets.local.platform import create_platform

            return create_platform(self.project)
        module_name = f"{DRIVER_PACKAGE}.{kind}"
        if importlib.util.find_spec(module_name) is None:
            raise TargetError(
                f"services.{service}.target: the {kind} target is not built yet in this version of deploy-mcp; "
                'use target = "local" for now',
                ErrorCode.UNAVAILABLE,
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise TargetError(
                f"services.{service}.target: the {kind} target cannot be loaded ({exc}); reinstall deploy-mcp with "
                "its dependencies",
                ErrorCode.UNAVAILABLE,
            ) from None
        create = getattr(module, "create_platform", None)
        if create is None:
            raise TargetError(
                f"services.{service}.target: the {kind} target is not built yet in this version of deploy-mcp; "
                'use target = "local" for now',
                ErrorCode.UNAVAILABLE,
            )
        platform: Platform = create(self.project, service)
        return platform

    def close(self) -> None:
        for platform in self._platforms.values():
            platform.close()
        self._platforms.clear()
