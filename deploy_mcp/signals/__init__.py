"""Signals: the evidence a deployment step is judged on (health, smoke tests, metrics).

Everything here is cheap to import: HTTP clients are imported inside the functions that use them, because the
MCP server imports this package at start and start-up time is a feature.
"""

from deploy_mcp.signals.health import HealthCheck, HealthSummary, check_health, check_instances
from deploy_mcp.signals.metrics import (
    LocalRouterMetrics,
    MetricSource,
    MetricSourceError,
    PrometheusMetrics,
    metric_source_for,
)
from deploy_mcp.signals.smoke import SmokeReport, SmokeResult, run_smoke

__all__ = [
    "HealthCheck",
    "HealthSummary",
    "LocalRouterMetrics",
    "MetricSource",
    "MetricSourceError",
    "PrometheusMetrics",
    "SmokeReport",
    "SmokeResult",
    "check_health",
    "check_instances",
    "metric_source_for",
    "run_smoke",
]
