"""A Grafana dashboard for one service in one environment: the four rows to watch during a rollout.

Top to bottom in the order they are read: health now (ready instances, error rate, request rate, p95), trends
over 24 hours (error rate per version, p50 / p95 / p99, requests by status), resources (CPU, memory, instances)
and deployments (traffic weight and share of requests per version). Deployments are also drawn on every graph
as annotations: each change of a version's traffic weight (from the router's gauge) and any Grafana annotation
tagged ``deploy`` + service + environment. Threshold lines come from deploy.toml, so the graph shows the very
limits the rollout is judged by.

The JSON is what Grafana's "Import dashboard" takes: a ``datasource`` variable picks the Prometheus to read.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from deploy_mcp.config.schema import Thresholds, Tier
from deploy_mcp.monitoring.queries import Queries, label_value

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
ROWS = ("Health", "Trends", "Resources", "Deployments")


def dashboard_uid(service: str, environment: str) -> str:
    """Stable across regenerations (re-importing replaces the dashboard), at most Grafana's 40 characters."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"deploy-mcp-{service}-{environment}").strip("-")
    if len(slug) <= 40:
        return slug
    digest = hashlib.sha1(f"{service}\0{environment}".encode()).hexdigest()[:8]
    return f"{slug[:31]}-{digest}"


class _Grid:
    """Places panels left to right and starts a new line when the 24 columns are full."""

    def __init__(self) -> None:
        self.x = self.y = 0
        self.line_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> dict[str, int]:
        if self.x + width > GRID_WIDTH:
            self.newline()
        position = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.line_height = max(self.line_height, height)
        return position

    def newline(self) -> None:
        if self.x:
            self.y += self.line_height
        self.x, self.line_height = 0, 0

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _steps(tier: Tier | None, scale: float = 1.0, base: str = "green") -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": base, "value": None}]
    if tier is not None:
        steps += [{"color": "orange", "value": tier.warn * scale}, {"color": "red", "value": tier.critical * scale}]
    return {"mode": "absolute", "steps": steps}


def _target(expr: str, legend: str, ref: str = "A", instant: bool = False) -> dict[str, Any]:
    target: dict[str, Any] = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        target["instant"] = True
        target["range"] = False
    return target


class _Builder:
    def __init__(self) -> None:
        self.grid = _Grid()
        self.panels: list[dict[str, Any]] = []

    def row(self, title: str) -> None:
        self.grid.newline()
        self.panels.append(
            {
                "type": "row",
                "id": self.grid.take_id(),
                "title": title,
                "collapsed": False,
                "gridPos": self.grid.place(GRID_WIDTH, 1),
                "panels": [],
            }
        )
        self.grid.newline()

    def stat(self, title: str, expr: str, unit: str, thresholds: dict[str, Any], description: str) -> None:
        self.panels.append(
            {
                "type": "stat",
                "id": self.grid.take_id(),
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": self.grid.place(6, 4),
                "targets": [_target(expr, title, instant=True)],
                "fieldConfig": {"defaults": {"unit": unit, "thresholds": thresholds, "noValue": "no data"}},
                "options": {
                    "colorMode": "background",
                    "graphMode": "area",
                    "reduceOptions": {"calcs": ["lastNotNull"]},
                },
            }
        )

    def graph(
        self,
        title: str,
        targets: list[tuple[str, str]],
        unit: str,
        description: str,
        thresholds: dict[str, Any] | None = None,
        width: int = 12,
        stacked: bool = False,
        maximum: float | None = None,
    ) -> None:
        custom: dict[str, Any] = {"lineWidth": 1, "fillOpacity": 20 if stacked else 5, "showPoints": "never"}
        if stacked:
            custom["stacking"] = {"mode": "normal", "group": "A"}
        if thresholds is not None:
            custom["thresholdsStyle"] = {"mode": "line"}
        defaults: dict[str, Any] = {"unit": unit, "custom": custom, "min": 0}
        if maximum is not None:
            defaults["max"] = maximum
        defaults["thresholds"] = thresholds or _steps(None)
        self.panels.append(
            {
                "type": "timeseries",
                "id": self.grid.take_id(),
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": self.grid.place(width, 8),
                "targets": [_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)],
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
            }
        )

    def text(self, title: str, markdown: str, width: int = 24, height: int = 4) -> None:
        self.panels.append(
            {
                "type": "text",
                "id": self.grid.take_id(),
                "title": title,
                "gridPos": self.grid.place(width, height),
                "options": {"mode": "markdown", "content": markdown},
            }
        )


def build_dashboard(
    service: str,
    environment: str,
    thresholds: Thresholds,
    *,
    kubernetes_namespace: str | None = None,
) -> dict[str, Any]:
    """The dashboard JSON; ``kubernetes_namespace`` switches the resources row to cAdvisor and kube-state-metrics."""
    q = Queries(service, environment)
    errors, p95 = thresholds.error_rate, thresholds.latency_p95_ms
    b = _Builder()

    b.row("Health")
    b.stat(
        "Ready instances",
        q.ready_instances(),
        "none",
        {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]},
        "Instances passing their health check, all versions. 0 for 3 checks fires ServiceDown.",
    )
    b.stat(
        "Error rate (5m)",
        q.error_ratio_total("5m"),
        "percentunit",
        _steps(errors),
        f"Share of 5xx responses. Warn above {errors.warn * 100:g}%, "
        f"critical (roll back) above {errors.critical * 100:g}%.",
    )
    b.stat("Requests per second", q.request_rate(window="5m"), "reqps", _steps(None), "All versions, over 5 minutes.")
    b.stat(
        "p95 latency (5m)",
        q.latency_total(0.95, "5m"),
        "s",
        _steps(p95, 0.001),
        f"Warn above {p95.warn:g} ms, critical (investigate) above {p95.critical:g} ms.",
    )

    b.row("Trends")
    b.graph(
        "Error rate by version",
        [(q.error_ratio_by_version(), "{{version}}"), (q.error_ratio_total(), "all versions")],
        "percentunit",
        "A canary's line apart from stable's is the signal the rollout is judged by.",
        _steps(errors),
    )
    latency_lines = [(q.latency_total(quantile), f"p{round(quantile * 100)}") for quantile in (0.5, 0.95, 0.99)]
    b.graph(
        "Latency p50 / p95 / p99",
        latency_lines,
        "s",
        "From the request duration histogram, all versions; threshold lines are the p95 limits.",
        _steps(p95, 0.001),
    )
    b.graph(
        "Requests per second by status",
        [(q.request_rate(by="status"), "{{status}}")],
        "reqps",
        "502 means the router could not reach an instance.",
        stacked=True,
    )
    b.graph(
        "p95 latency by version",
        [(q.latency_by_version(0.95), "{{version}}")],
        "s",
        "Compare the new version with the one it replaces.",
        _steps(p95, 0.001),
    )

    b.row("Resources")
    if kubernetes_namespace is not None:
        pods = f'namespace="{label_value(kubernetes_namespace)}",container="{label_value(service)}"'
        b.graph(
            "CPU used / limit",
            [
                (
                    f"sum(rate(container_cpu_usage_seconds_total{{{pods}}}[$__rate_interval]))"
                    f' / sum(kube_pod_container_resource_limits{{{pods},resource="cpu"}})',
                    "cpu",
                )
            ],
            "percentunit",
            "cAdvisor usage over kube-state-metrics limits. Scale up above 70%, act above 90%.",
            _steps(Tier(warn=0.7, critical=0.9)),
            width=8,
        )
        b.graph(
            "Memory used / limit",
            [
                (
                    f"sum(container_memory_working_set_bytes{{{pods}}})"
                    f' / sum(kube_pod_container_resource_limits{{{pods},resource="memory"}})',
                    "memory",
                )
            ],
            "percentunit",
            "Working set over the limit. Investigate above 80%, act above 95% (the OOM killer is near).",
            _steps(Tier(warn=0.8, critical=0.95)),
            width=8,
        )
    else:
        b.graph(
            "CPU (cores)",
            [('sum by (instance) (rate(process_cpu_seconds_total{job=~"$job"}[$__rate_interval]))', "{{instance}}")],
            "none",
            "From the process collector of the service's own /metrics (scrape job chosen above).",
            width=8,
        )
        b.graph(
            "Memory (resident)",
            [('sum by (instance) (process_resident_memory_bytes{job=~"$job"})', "{{instance}}")],
            "bytes",
            "From the process collector of the service's own /metrics (scrape job chosen above).",
            width=8,
        )
    b.graph(
        "Ready instances by version",
        [(q.ready_instances(by="version"), "{{version}}")],
        "none",
        "Instances per version passing their health check.",
        width=8,
        stacked=True,
    )

    b.row("Deployments")
    b.graph(
        "Traffic weight by version",
        [(q.traffic_weight(), "{{version}}")],
        "percent",
        "The router's split: each rollout step (5 -> 25 -> 50 -> 100) and each rollback shows as a step here.",
        stacked=True,
        maximum=100,
    )
    b.graph(
        "Share of requests by version",
        [(q.version_share(), "{{version}}")],
        "percentunit",
        "What each version actually served: the version distribution.",
        stacked=True,
        maximum=1,
    )
    b.text(
        "Recent deployments",
        f"Every deployment of **{service}** in **{environment}** is recorded in deploy-mcp's ledger with its steps, "
        "verdicts and what each rollback reverted: ask the agent for `deployment_history`, or run "
        f"`deploy-mcp history --service {service} --environment {environment}`. The markers on the graphs are "
        "traffic shifts (from the router) and Grafana annotations tagged `deploy`.",
    )

    variables: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        }
    ]
    if kubernetes_namespace is None:
        variables.append(
            {
                "name": "job",
                "label": "Scrape job of the service",
                "type": "custom",
                "query": service,
                "current": {"text": service, "value": service},
                "options": [{"selected": True, "text": service, "value": service}],
                "hide": 0,
            }
        )
    return {
        "id": None,
        "uid": dashboard_uid(service, environment),
        "title": f"{service} in {environment} (deploy-mcp)",
        "description": f"Rollout dashboard for {service} in {environment}, generated by deploy-mcp from deploy.toml.",
        "tags": ["deploy-mcp", service, environment],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": _annotations(q, service, environment)},
        "panels": b.panels,
    }


def _annotations(q: Queries, service: str, environment: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "Annotations & Alerts",
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "type": "dashboard",
        },
        {
            "name": "Deployments",
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "iconColor": "purple",
            "target": {"type": "tags", "tags": ["deploy", service, environment], "matchAny": False, "limit": 100},
        },
        {
            "name": "Traffic shifts",
            "datasource": DATASOURCE,
            "enable": True,
            "iconColor": "orange",
            "expr": q.traffic_shifts("1m"),
            "step": "1m",
            "titleFormat": "Traffic shift",
            "textFormat": "{{version}}",
            "tagKeys": "version",
            "useValueForTime": False,
        },
    ]
