"""The emulated mesh's metrics: every Service router's per-version RED counters in one Prometheus exposition.

A mesh (Istio, Linkerd) or a Gateway (Envoy Gateway) exports request counts per destination workload; here the
Service routers play that part, and the API server's /metrics serves them all, each series labelled with the
Service it went through (``kubernetes_service``) so the stable Service and a version's preview never collide.
The metric names are the local router's, so deploy-mcp's default PromQL reads them unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from deploy_mcp.targets.local.metrics import BUCKETS, RouterMetrics


class MeshCollector:
    def __init__(self, routers: dict[tuple[str, str], RouterMetrics]) -> None:
        self.routers = routers

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        labels = ["service", "environment", "version", "namespace", "kubernetes_service"]
        requests = CounterMetricFamily(
            "deploy_mcp_requests",
            "Requests each Service sent to each version, by HTTP status.",
            labels=[*labels, "status"],
        )
        durations = HistogramMetricFamily(
            "deploy_mcp_request_duration_seconds", "Time to the end of each response, per version.", labels=labels
        )
        for (namespace, name), metrics in sorted(self.routers.items()):
            for version, numbers in sorted(metrics.versions.items()):
                base = [metrics.service, metrics.environment, version, namespace, name]
                for status, count in sorted(numbers.by_status.items()):
                    requests.add_metric([*base, str(status)], count)
                cumulative = 0
                buckets: list[tuple[str, float]] = []
                for bound, count in zip((*BUCKETS, math.inf), numbers.buckets, strict=True):
                    cumulative += count
                    buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
                durations.add_metric(base, buckets, numbers.latency_sum)
        yield requests
        yield durations


def exposition(routers: dict[tuple[str, str], RouterMetrics]) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(MeshCollector(routers))  # type: ignore[arg-type]
    return generate_latest(registry)
