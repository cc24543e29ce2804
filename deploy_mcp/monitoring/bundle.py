"""generate_monitoring's answer: the alert rules and the dashboard as file contents, and what to do with them.

Nothing is written: the agent (or person) decides where the files go in their repository and how they reach
Prometheus and Grafana, which differs per setup (a rules ConfigMap, a PrometheusRule, a provisioning folder).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from deploy_mcp.config.schema import DeployConfig, PrometheusSource, TargetKind, Thresholds
from deploy_mcp.core.recommend import lookup
from deploy_mcp.monitoring.dashboard import ROWS, build_dashboard
from deploy_mcp.monitoring.queries import METRICS, duration
from deploy_mcp.monitoring.rules import FAILED_CHECKS, RuleSettings, alert_rules, render_rules


class MonitoringBundle(BaseModel):
    service: str
    environment: str
    thresholds: Thresholds = Field(description="The effective thresholds (global, then service, then environment).")
    alert_rules_file: str = Field(description="Suggested path for the rules file, relative to the project root.")
    alert_rules_yaml: str = Field(description="Prometheus alerting rules; check with `promtool check rules FILE`.")
    alerts: list[str] = Field(description="Each alert in one line: name, severity, when it fires.")
    dashboard_file: str = Field(description="Suggested path for the dashboard JSON, relative to the project root.")
    dashboard: dict[str, Any] = Field(description="Grafana dashboard JSON (Dashboards > New > Import).")
    notes: list[str]


def build_monitoring(
    config: DeployConfig, service: str, environment: str, *, scrape_interval: float = 15.0
) -> MonitoringBundle:
    svc, env = lookup(config, service, environment)
    thresholds = config.thresholds_for(service, environment)
    settings = RuleSettings(scrape_interval=scrape_interval, min_requests=env.analysis.min_requests)
    rules = alert_rules(service, environment, thresholds, settings)
    stem = f"monitoring/{_file_safe(service)}-{_file_safe(environment)}"
    rules_file = f"{stem}-alerts.yml"
    namespace = None
    if svc.target is TargetKind.KUBERNETES:
        namespace = env.namespace or config.targets.kubernetes.namespace
    check = duration(scrape_interval)
    notes = [
        f"Alert rules: add {rules_file} to rule_files in prometheus.yml (or wrap it in a PrometheusRule), check it "
        f"with `promtool check rules {rules_file}`, and route severity=critical to the pager, warning to the "
        "team channel, info to a low-noise channel.",
        f"ServiceDown counts {FAILED_CHECKS} failed health checks as {FAILED_CHECKS} scrapes {check} apart; if "
        f"Prometheus scrapes the router at another interval, call again with scrape_interval set to it.",
        "AutoRollbackTrigger carries action=rollback and automation=deploy-mcp: route it to whatever calls "
        f'rollback(service="{service}", environment="{environment}") for you, or to a person if nothing does. It '
        "fires only within an hour of a deployment (two versions took traffic), when there is a version to go "
        "back to.",
        f"Dashboard: import {stem}-dashboard.json in Grafana and pick the Prometheus data source; rows: "
        f"{', '.join(r.lower() for r in ROWS)}. Post an annotation tagged deploy, {service}, {environment} at "
        "each deployment to mark it on every graph (see deploy://references/monitoring-setup).",
    ]
    if svc.target is not TargetKind.LOCAL:
        notes.append(
            f"The expressions read the metric names deploy-mcp's local router exports ({', '.join(METRICS)}); on "
            f"{svc.target.value}, export the same names from the service (labels service, environment, version, "
            "status) or rewrite the selectors to your own metrics."
        )
    source = config.targets.prometheus
    if source is not None and _custom_queries(source):
        notes.append(
            "[targets.prometheus] in deploy.toml uses its own query templates; these rules and panels use "
            "deploy-mcp's metric names, so point them at the same metrics before loading them."
        )
    return MonitoringBundle(
        service=service,
        environment=environment,
        thresholds=thresholds,
        alert_rules_file=rules_file,
        alert_rules_yaml=render_rules(service, environment, rules, rules_file),
        alerts=[rule.describe() for rule in rules],
        dashboard_file=f"{stem}-dashboard.json",
        dashboard=build_dashboard(service, environment, thresholds, kubernetes_namespace=namespace),
        notes=notes,
    )


def _custom_queries(source: PrometheusSource) -> bool:
    defaults = PrometheusSource(url=source.url)
    return any(getattr(source, name) != getattr(defaults, name) for name in ("error_rate", "latency_p95", "requests"))


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-") or "service"
