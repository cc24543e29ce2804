"""The Kubernetes platform: Deployments as the workload, the stable Service or a Gateway API HTTPRoute as the
router, the API server's service proxy as the prober, a ConfigMap for feature flags.

Importing this package is cheap; the official client is imported when a platform is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project
    from deploy_mcp.core.platform import Platform


def create_platform(project: Project, service_name: str) -> Platform:
    """The Platform for one service: ``Targets`` calls this for ``target = "kubernetes"``."""
    from deploy_mcp.config.schema import KubernetesRouter
    from deploy_mcp.targets.kubernetes.parts import build

    settings = project.config.targets.kubernetes
    return build(project, gateway=settings.router is KubernetesRouter.GATEWAY_API)
