"""Per-version RED numbers from CloudWatch, as the ALB publishes them for each target group.

RequestCount and HTTPCode_Target_5XX_Count (Sum) give the error rate; TargetResponseTime (seconds) gives p95 and
p99 through CloudWatch's extended statistics. The window is whole periods of ``metrics_period`` (60 s for the
ALB's standard metrics), so an analysis interval shorter than a minute reads the last full minute on AWS.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from deploy_mcp.core.target import MetricSnapshot
from deploy_mcp.targets.ecs.aws import Aws, calling
from deploy_mcp.targets.ecs.fleet import Fleet, RunningVersion, listener_of
from deploy_mcp.targets.ecs.layout import Layout, Place

NAMESPACE = "AWS/ApplicationELB"
QUERIES = (
    ("requests", "RequestCount", "Sum"),
    ("errors", "HTTPCode_Target_5XX_Count", "Sum"),
    ("p50", "TargetResponseTime", "p50"),
    ("p95", "TargetResponseTime", "p95"),
    ("p99", "TargetResponseTime", "p99"),
)


def dimension(arn: str) -> str:
    """CloudWatch's dimension value of an ELB ARN: what follows the resource type's colon ("app/shop/abc...")."""
    resource = arn.split(":", 5)[-1]
    return resource.split("/", 1)[1] if resource.startswith("loadbalancer/") else resource


class CloudWatchMetrics:
    """The platform's TrafficMetrics on ECS: the ALB's target group metrics in CloudWatch."""

    source_name = "cloudwatch"
    """How analyses and validate name where their numbers came from."""

    def __init__(self, layout: Layout, fleet: Fleet, aws: Aws, period: int) -> None:
        self.layout = layout
        self.fleet = fleet
        self.aws = aws
        self.period = period
        self._balancers: dict[str, str] = {}

    def _balancer(self, listener: str, what: str) -> str:
        if listener not in self._balancers:
            with calling(what):
                found = self.aws.elbv2.describe_listeners(ListenerArns=[listener_of(listener)])["Listeners"]
            self._balancers[listener] = dimension(found[0]["LoadBalancerArn"])
        return self._balancers[listener]

    def metrics(self, service: str, environment: str, window_seconds: float) -> dict[str, MetricSnapshot]:
        place = self.layout.place(service, environment)
        versions = self.fleet.versions(place, with_targets=False)
        if not versions:
            return {}
        balancer = self._balancer(place.routing.listener, f"{place.where}: finding the ALB of the listener")
        period = self.period * max(1, math.ceil(window_seconds / self.period))
        end = datetime.now(UTC)
        return {running.version: self._snapshot(place, balancer, running, period, end) for running in versions}

    def _snapshot(
        self, place: Place, balancer: str, running: RunningVersion, period: int, end: datetime
    ) -> MetricSnapshot:
        """One version's numbers: its slot's target group, counted from when its deployment began at the earliest,
        since a target group is reused by every other release and must not lend this one an older one's errors."""
        start = end - timedelta(seconds=period)
        since = running.deployment.get("createdAt") or running.created  # this version's deployment began
        if isinstance(since, datetime) and since > start:
            start = since
        if start >= end - timedelta(seconds=1):
            return MetricSnapshot(version=running.version, window_seconds=float(period))
        dimensions = [
            {"Name": "TargetGroup", "Value": dimension(place.target_group(running.slot))},
            {"Name": "LoadBalancer", "Value": balancer},
        ]
        queries = [
            {
                "Id": key,
                "MetricStat": {
                    "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                    "Period": period,
                    "Stat": stat,
                },
                "ReturnData": True,
            }
            for key, metric, stat in QUERIES
        ]
        with calling(f"{place.where}: reading the ALB metrics of {running.version} from CloudWatch"):
            results = self.aws.cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)
        values = {r["Id"]: [v for v in r.get("Values", []) if v is not None] for r in results["MetricDataResults"]}
        requests = int(sum(values.get("requests", [])))
        errors = min(requests, int(sum(values.get("errors", []))))

        def latency(key: str) -> float | None:
            found = values.get(key, [])
            return max(found) * 1000.0 if found and requests else None

        return MetricSnapshot(
            version=running.version,
            window_seconds=float(period),
            requests=requests,
            errors=errors,
            error_rate=errors / requests if requests else 0.0,
            p50_ms=latency("p50"),
            p95_ms=latency("p95"),
            p99_ms=latency("p99"),
            requests_per_second=requests / period if period else 0.0,
        )
