"""Assemble the driver's parts into the platform contract's Platform."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploy_mcp.core.platform import Platform
from deploy_mcp.targets.kubernetes.api import Kube
from deploy_mcp.targets.kubernetes.connection import connect
from deploy_mcp.targets.kubernetes.flags import ConfigMapFlags
from deploy_mcp.targets.kubernetes.probing import ServiceProxyProber
from deploy_mcp.targets.kubernetes.routing import Routing
from deploy_mcp.targets.kubernetes.workload import KubernetesWorkload

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project


@dataclass
class Parts:
    """The four parts, for callers that want them without the contract's Platform (tests, the bench)."""

    workload: KubernetesWorkload
    router: Routing
    prober: ServiceProxyProber
    flags: ConfigMapFlags


def parts(project: Project, *, gateway: bool) -> Parts:
    kube = Kube(connect(project))
    router = Routing(kube, gateway=gateway)
    workload = KubernetesWorkload(project, kube)
    workload.routing = router
    return Parts(workload, router, ServiceProxyProber(project, kube), ConfigMapFlags(kube))


def build(project: Project, *, gateway: bool) -> Platform:
    made = parts(project, gateway=gateway)
    return Platform(workload=made.workload, router=made.router, prober=made.prober, flags=made.flags)
