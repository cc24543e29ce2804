"""Metric sources: where the analysis gets per-version request counts, error rates and latencies.

Prometheus when the project configures it (the numbers the team already watches), else the platform's own
router when it has one (the local platform), else nothing, and that is an error rather than a silent pass:
a deployment that cannot be measured cannot be judged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deploy_mcp.core.target import MetricSnapshot
from deploy_mcp.signals.metrics.base import MetricSource, MetricSourceError, empty_snapshot
from deploy_mcp.signals.metrics.local import LocalRouterMetrics
from deploy_mcp.signals.metrics.prometheus import PrometheusMetrics

if TYPE_CHECKING:
    from deploy_mcp.config.schema import DeployConfig
    from deploy_mcp.core.platform import Platform

__all__ = [
    "LocalRouterMetrics",
    "MetricSnapshot",
    "MetricSource",
    "MetricSourceError",
    "PrometheusMetrics",
    "empty_snapshot",
    "metric_source_for",
]


def metric_source_for(config: DeployConfig, service: str, environment: str, platform: Platform | None) -> MetricSource:
    """The metric source that judges ``service`` in ``environment``; raises MetricSourceError when there is none."""
    prometheus = config.targets.prometheus
    if prometheus is not None:
        return PrometheusMetrics(prometheus.url, prometheus)
    if platform is not None and platform.metrics is not None:
        # a platform whose metrics come from elsewhere than its own router (ECS: CloudWatch) names the source
        name = getattr(platform.metrics, "source_name", None) or f"{platform.kind}-router"
        return LocalRouterMetrics(platform.metrics, name=name)
    where = f"the {platform.kind} target" if platform is not None else "its target"
    raise MetricSourceError(
        f"{service}/{environment} cannot be measured: {where} has no built-in traffic metrics and no metric source "
        'is configured; add [targets.prometheus] with url = "http://HOST:9090" to deploy.toml'
    )
