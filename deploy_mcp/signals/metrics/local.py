"""Metrics straight from a platform that routes traffic itself (the local platform's router).

No Prometheus needed: the router already counts every request per version, so the analysis of a laptop
deployment works out of the box with exact numbers.
"""

from __future__ import annotations

from deploy_mcp.core.target import MetricSnapshot, TargetError, TrafficMetrics
from deploy_mcp.signals.metrics.base import MetricSourceError, empty_snapshot


class LocalRouterMetrics:
    """Adapts a platform's own ``TrafficMetrics`` (its router counts every request) to the MetricSource protocol;
    ``name`` says whose router it is in reports ("local-router")."""

    sample_seconds = 0.1
    """The router counts every request as it ends, so there is news at any instant: ten looks a second keep the
    time from a conclusive sample to the verdict small, and each look is one cheap local call."""
    window_granularity_seconds = 1.0
    """The router sums whole seconds and leaves out the second a window starts in: a window that must reach back
    to an instant asks for one second more."""

    def __init__(self, traffic: TrafficMetrics, name: str = "local-router") -> None:
        self.traffic = traffic
        self.name = name

    def snapshot(
        self, service: str, environment: str, versions: list[str], window_seconds: float
    ) -> dict[str, MetricSnapshot]:
        if window_seconds <= 0:
            raise MetricSourceError(f"the metric window must be longer than 0 s, got {window_seconds:g}")
        try:
            measured = self.traffic.metrics(service, environment, window_seconds)
        except TargetError as exc:
            raise MetricSourceError(f"the router of {service}/{environment} has no metrics to give: {exc}") from None
        return {v: measured.get(v) or empty_snapshot(v, window_seconds) for v in versions}
