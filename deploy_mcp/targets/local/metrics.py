"""RED metrics per version, kept by the router: cumulative for Prometheus, per second for windowed snapshots.

Analysis asks "what did the canary do in the last 30 seconds", which cumulative counters answer only by
differencing scrapes. So each version also keeps one slot per second with its request and error counts and a
log-scaled latency histogram (5% wide buckets, so percentiles are within a few percent); a snapshot merges the
slots inside the window. Recording costs a few dictionary updates, cheap enough for the request path; the
Prometheus exposition is built from the same numbers only when /metrics is scraped, so prometheus_client is
never imported on the request path or at start-up.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from deploy_mcp.core.target import MetricSnapshot

# Prometheus histogram bounds in seconds (finer than the client's defaults at the low end: local calls are fast).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RETENTION_SECONDS = 900

_FINE_BASE_MS = 0.01
_FINE_LOG_RATIO = math.log(1.05)


def _fine_index(seconds: float) -> int:
    ms = seconds * 1000.0
    if ms <= _FINE_BASE_MS:
        return 0
    return int(math.log(ms / _FINE_BASE_MS) / _FINE_LOG_RATIO) + 1


def _fine_value_ms(index: int) -> float:
    """The middle of a fine bucket, in milliseconds."""
    if index == 0:
        return _FINE_BASE_MS
    return _FINE_BASE_MS * math.exp((index - 0.5) * _FINE_LOG_RATIO)


class _Slot:
    __slots__ = ("errors", "latencies", "requests", "second")

    def __init__(self, second: int) -> None:
        self.second = second
        self.requests = 0
        self.errors = 0
        self.latencies: dict[int, int] = {}


class VersionMetrics:
    """Everything counted for one version since the router started."""

    __slots__ = ("buckets", "by_status", "latency_sum", "slots")

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.slots: deque[_Slot] = deque(maxlen=RETENTION_SECONDS)

    def record(self, status: int, seconds: float, now: float) -> None:
        second = int(now)
        slots = self.slots
        if not slots or slots[-1].second != second:
            slots.append(_Slot(second))
        slot = slots[-1]
        slot.requests += 1
        if status >= 500:
            slot.errors += 1
        index = _fine_index(seconds)
        latencies = slot.latencies
        latencies[index] = latencies.get(index, 0) + 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    @property
    def requests(self) -> int:
        return sum(self.by_status.values())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 500)

    def snapshot(self, version: str, window_seconds: float, now: float) -> MetricSnapshot:
        oldest = int(now - window_seconds)
        requests = errors = 0
        merged: dict[int, int] = {}
        for slot in reversed(self.slots):
            if slot.second <= oldest:
                break
            requests += slot.requests
            errors += slot.errors
            for index, count in slot.latencies.items():
                merged[index] = merged.get(index, 0) + count
        p50, p95, p99 = _percentiles(merged, requests, (0.50, 0.95, 0.99))
        return MetricSnapshot(
            version=version,
            window_seconds=window_seconds,
            requests=requests,
            errors=errors,
            error_rate=errors / requests if requests else 0.0,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            requests_per_second=requests / window_seconds if window_seconds > 0 else 0.0,
        )


def _percentiles(histogram: dict[int, int], total: int, quantiles: tuple[float, ...]) -> list[float | None]:
    if total == 0:
        return [None for _ in quantiles]
    results: list[float | None] = []
    ordered = sorted(histogram.items())
    for quantile in quantiles:
        rank = max(1, math.ceil(quantile * total))
        seen = 0
        for index, count in ordered:
            seen += count
            if seen >= rank:
                results.append(round(_fine_value_ms(index), 3))
                break
    return results


class RouterMetrics:
    """The router's counters for one service and environment, keyed by version."""

    def __init__(self, service: str, environment: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.environment = environment
        self.versions: dict[str, VersionMetrics] = {}
        self._clock = clock

    def record(self, version: str, status: int, seconds: float) -> None:
        metrics = self.versions.get(version)
        if metrics is None:
            metrics = self.versions[version] = VersionMetrics()
        metrics.record(status, seconds, self._clock())

    def snapshot(self, window_seconds: float, versions: list[str] | None = None) -> dict[str, MetricSnapshot]:
        """Per-version numbers over the last ``window_seconds``; a version with no traffic reports zeros."""
        now = self._clock()
        names = versions if versions is not None else list(self.versions)
        empty = VersionMetrics()
        return {name: self.versions.get(name, empty).snapshot(name, window_seconds, now) for name in names}

    def exposition(self, gauges: dict[str, dict[str, float]] | None = None) -> tuple[bytes, str]:
        """Prometheus text format of the cumulative counters; ``gauges`` adds per-version gauges by name."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, gauges or {}))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _Collector:
    def __init__(self, metrics: RouterMetrics, gauges: dict[str, dict[str, float]]) -> None:
        self.metrics = metrics
        self.gauges = gauges

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        base = [self.metrics.service, self.metrics.environment]
        requests = CounterMetricFamily(
            "deploy_mcp_requests",
            "Requests the router sent to each version, by HTTP status (502: connection failure).",
            labels=["service", "environment", "version", "status"],
        )
        durations = HistogramMetricFamily(
            "deploy_mcp_request_duration_seconds",
            "Time from forwarding a request to the end of its response, per version.",
            labels=["service", "environment", "version"],
        )
        for version, numbers in sorted(self.metrics.versions.items()):
            for status, count in sorted(numbers.by_status.items()):
                requests.add_metric([*base, version, str(status)], count)
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*BUCKETS, math.inf), numbers.buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
            durations.add_metric([*base, version], buckets, numbers.latency_sum)
        yield requests
        yield durations
        for name, per_version in self.gauges.items():
            gauge = GaugeMetricFamily(name, _GAUGE_HELP.get(name, name), labels=["service", "environment", "version"])
            for version, value in sorted(per_version.items()):
                gauge.add_metric([*base, version], value)
            yield gauge


_GAUGE_HELP = {
    "deploy_mcp_traffic_weight": "Share of traffic (percent) the router sends to each version.",
    "deploy_mcp_instances_ready": "Ready instances of each version.",
}
