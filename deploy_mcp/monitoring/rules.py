"""Prometheus alert rules for one service in one environment, from its effective thresholds.

The alerts follow the skill: errors above the critical rate for 2 minutes page (critical), above the warn rate
for 5 minutes ask for a look (warning); p95 above the critical latency for 5 minutes is a warning (investigate,
latency alone is not a rollback), above warn an info; the service is down when no instance was ready at 3
health checks in a row. AutoRollbackTrigger is the same critical conditions restricted to "a deployment
happened within the hour", labelled ``action: rollback`` so an Alertmanager route can hand it to automation
that calls deploy-mcp's rollback, while the people are paged by the ordinary alerts.

Error and latency alerts only judge a window holding at least ``min_requests`` requests (the environment's
analysis setting): 1 failure in 20 requests reads as 5% and would page someone for nothing.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from deploy_mcp.config.schema import Thresholds
from deploy_mcp.core.units import percent
from deploy_mcp.monitoring.queries import Queries, duration

RULES_TEMPLATE = "alert-rules.yml.j2"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "monitoring"
ALERT_WINDOW = "5m"
RECENT_DEPLOY_WINDOW = "1h"
FAILED_CHECKS = 3


@dataclass(frozen=True)
class AlertRule:
    alert: str
    expr: str
    severity: str
    summary: str
    description: str
    for_: str | None = None
    extra_labels: dict[str, str] = field(default_factory=dict)

    def labels(self, service: str, environment: str) -> dict[str, str]:
        return {"severity": self.severity, "service": service, "environment": environment, **self.extra_labels}

    def describe(self) -> str:
        """One line for people: name, severity, and when it fires."""
        wait = f" for {self.for_}" if self.for_ else ""
        extra = "".join(f", {k}={v}" for k, v in self.extra_labels.items())
        return f"{self.alert} ({self.severity}{extra}): {self.summary}{wait}"


@dataclass(frozen=True)
class RuleSettings:
    """What the rules depend on besides the thresholds."""

    scrape_interval: float = 15.0  # seconds between two health checks (scrapes of the readiness gauge)
    min_requests: int = 50


def _seconds(ms: float) -> str:
    return f"{ms / 1000:g}"


def alert_rules(service: str, environment: str, thresholds: Thresholds, settings: RuleSettings) -> list[AlertRule]:
    q = Queries(service, environment)
    name = f"{service} in {environment}"
    traffic = q.enough_requests(ALERT_WINDOW, settings.min_requests)
    check = duration(settings.scrape_interval)
    down_window = duration(settings.scrape_interval * FAILED_CHECKS)
    # The trigger reacts faster than the paging alert, over a window that still holds several scrapes.
    trigger_window = duration(max(120.0, settings.scrape_interval * 4))
    errors, p95 = thresholds.error_rate, thresholds.latency_p95_ms
    rollback_call = f'rollback(service="{service}", environment="{environment}", reason="...")'

    def gated(expr: str, gate: str = traffic) -> str:
        return f"(\n{textwrap.indent(expr, '  ')}\n)\nand on (service, environment)\n{gate}"

    rules = [
        AlertRule(
            alert="HighErrorRate",
            expr=gated(f"{q.error_ratio(ALERT_WINDOW)}\n  > {errors.critical:g}"),
            for_="2m",
            severity="critical",
            summary=f"{name}: more than {percent(errors.critical)} of requests fail",
            description="The 5xx share over 5 minutes is {{ $value | humanizePercentage }}, above the critical "
            f"{percent(errors.critical)}. Roll back if a deploy is in progress: {rollback_call}.",
        ),
        AlertRule(
            alert="HighErrorRate",
            expr=gated(f"{q.error_ratio(ALERT_WINDOW)}\n  > {errors.warn:g}"),
            for_="5m",
            severity="warning",
            summary=f"{name}: more than {percent(errors.warn)} of requests fail",
            description="The 5xx share over 5 minutes is {{ $value | humanizePercentage }}, above the warn level "
            f"{percent(errors.warn)}. Investigate (logs, the failing endpoints) and decide within 5 minutes.",
        ),
        AlertRule(
            alert="HighLatency",
            expr=gated(f"{q.latency(0.95, ALERT_WINDOW)}\n  > {_seconds(p95.critical)}"),
            for_="5m",
            severity="warning",
            summary=f"{name}: p95 latency above {p95.critical:g} ms",
            description="p95 over 5 minutes is {{ $value | humanizeDuration }}, above the critical "
            f"{p95.critical:g} ms. Investigate: a slow dependency, saturation, or the latest release.",
        ),
        AlertRule(
            alert="HighLatency",
            expr=gated(f"{q.latency(0.95, ALERT_WINDOW)}\n  > {_seconds(p95.warn)}"),
            for_="5m",
            severity="info",
            summary=f"{name}: p95 latency above {p95.warn:g} ms",
            description="p95 over 5 minutes is {{ $value | humanizeDuration }}, above the warn level "
            f"{p95.warn:g} ms.",
        ),
    ]
    if thresholds.latency_p99_ms is not None:
        p99 = thresholds.latency_p99_ms
        rules.append(
            AlertRule(
                alert="HighLatencyP99",
                expr=gated(f"{q.latency(0.99, ALERT_WINDOW)}\n  > {_seconds(p99.critical)}"),
                for_="5m",
                severity="warning",
                summary=f"{name}: p99 latency above {p99.critical:g} ms",
                description="p99 over 5 minutes is {{ $value | humanizeDuration }}, above the critical "
                f"{p99.critical:g} ms.",
            )
        )
    down = q.down(down_window)
    recent = q.recently_deployed(RECENT_DEPLOY_WINDOW)
    rules += [
        AlertRule(
            alert="ServiceDown",
            expr=down,
            severity="critical",
            summary=f"{name}: {FAILED_CHECKS} consecutive health checks failed",
            description=f"No instance of {name} was ready at the last {FAILED_CHECKS} checks "
            f"({down_window}, one every {check}), or readiness stopped being reported. The service is "
            f"unavailable: roll back now if a deploy is in progress ({rollback_call}).",
        ),
        AlertRule(
            alert="AutoRollbackTrigger",
            expr=gated(
                gated(
                    f"{q.error_ratio(trigger_window)}\n  > {errors.critical:g}",
                    q.enough_requests(trigger_window, settings.min_requests),
                ),
                recent,
            ),
            for_="2m",
            severity="critical",
            summary=f"{name}: error rate above {percent(errors.critical)} within an hour of a deployment",
            description=f"Automation: call {rollback_call} (deploy-mcp goes back to the last version that "
            "passed validation, and refuses after an irreversible migration: then fix forward). "
            "Error rate {{ $value | humanizePercentage }}.",
            extra_labels={"action": "rollback", "automation": "deploy-mcp", "reason": "error-rate"},
        ),
        AlertRule(
            alert="AutoRollbackTrigger",
            # Only an explicit "0 ready": a setup that never reports readiness must not roll back every release.
            expr=gated(q.down(down_window, silent_counts=False), recent),
            severity="critical",
            summary=f"{name}: down within an hour of a deployment",
            description=f"Automation: call {rollback_call}. No instance was ready at the last {FAILED_CHECKS} "
            "health checks after a deployment.",
            extra_labels={"action": "rollback", "automation": "deploy-mcp", "reason": "service-down"},
        ),
    ]
    return rules


def render_rules(service: str, environment: str, rules: list[AlertRule], file_name: str) -> str:
    """The rules file as YAML text; jinja2 is imported here, not when the server starts."""
    import json

    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    # A JSON string is a valid YAML double-quoted scalar: any service name or annotation text stays one value.
    env.filters["yaml_string"] = lambda value: json.dumps(str(value), ensure_ascii=False)
    env.filters["one_line"] = lambda value: " ".join(str(value).split())
    return env.get_template(RULES_TEMPLATE).render(
        service=service,
        environment=environment,
        group=f"deploy-mcp-{service}-{environment}",
        file_name=file_name,
        rules=[
            {
                "alert": rule.alert,
                "expr": rule.expr,
                "for_": rule.for_,
                "labels": rule.labels(service, environment),
                "annotations": {"summary": rule.summary, "description": rule.description},
            }
            for rule in rules
        ],
    )
