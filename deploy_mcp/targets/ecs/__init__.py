"""The AWS ECS target: one ECS service per version behind an ALB target group (blue or green), traffic split by
the listener's weighted forward, previews through a test listener, metrics from CloudWatch, flags in SSM.

boto3 is imported only here, and only when a service with ``target = "ecs"`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project
    from deploy_mcp.core.platform import Platform


def create_platform(project: Project, service_name: str) -> Platform:
    """The ECS platform of one service: its parts share one set of AWS clients."""
    from deploy_mcp.core.platform import Platform
    from deploy_mcp.targets.ecs.aws import Aws
    from deploy_mcp.targets.ecs.flags import SsmFlags
    from deploy_mcp.targets.ecs.fleet import Fleet
    from deploy_mcp.targets.ecs.layout import Layout
    from deploy_mcp.targets.ecs.metrics import CloudWatchMetrics
    from deploy_mcp.targets.ecs.probing import AlbProber
    from deploy_mcp.targets.ecs.routing import AlbRouter
    from deploy_mcp.targets.ecs.workload import EcsWorkload

    config = project.config.targets.ecs
    aws = Aws(config)
    layout = Layout(project)
    fleet = Fleet(aws)
    service = project.config.services.get(service_name)
    preview = service is not None and all(
        env.ecs is not None and env.ecs.test_listener for env in service.environments.values()
    )
    workload = EcsWorkload(project, aws, layout, fleet)
    router = AlbRouter(layout, fleet, preview=preview)
    workload.router = router
    platform = Platform(
        workload=workload,
        router=router,
        prober=AlbProber(layout, fleet),
        flags=SsmFlags(layout, aws),
        metrics=CloudWatchMetrics(layout, fleet, aws, config.metrics_period),
    )
    workload.close = aws.close  # type: ignore[attr-defined]  # Platform.close releases the clients once
    return platform
