"""validate: is what serves now healthy? Health, smoke, and metrics against the thresholds and the baseline.

The verdict follows the skill's rollback table: a critical signal (service unavailable, failing smoke tests,
error rate over critical) means roll back now; a warning (error rate over warn, latency over warn or twice the
previous version's) means investigate for 5 minutes, then decide; after an irreversible migration the advice is
to fix forward, never to roll the application back onto a schema it cannot read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from deploy_mcp.app import App
from deploy_mcp.core.analysis import judge
from deploy_mcp.core.recommend import lookup
from deploy_mcp.core.records import DeploymentRecord, Phase, Status
from deploy_mcp.core.target import MetricSnapshot
from deploy_mcp.errors import UserError
from deploy_mcp.signals.health import HealthSummary, check_instances
from deploy_mcp.signals.metrics import MetricSourceError, metric_source_for
from deploy_mcp.signals.smoke import SmokeReport, run_smoke

Verdict = Literal["pass", "warn", "fail"]
RECOMMENDATION = {
    "pass": "continue: keep watching error rate and latency for the next 30 minutes",
    "warn": "investigate for 5 minutes (logs, the numbers below), then roll back if it does not recover",
    "fail": "roll back now",
}
FIX_FORWARD = (
    "do not roll the application back: {id} applied a migration the previous version cannot run against; "
    "fix forward with a new release (and roll back a reversible migration only after the application)"
)


class MetricCheck(BaseModel):
    source: str
    window_seconds: float
    version: str | None
    phase: str
    reason: str
    current: MetricSnapshot | None = None
    baseline: MetricSnapshot | None = None


class ValidationReport(BaseModel):
    service: str
    environment: str
    verdict: Verdict
    recommendation: str
    reasons: list[str]
    deployment_id: str | None
    serving: list[str]
    health: HealthSummary
    smoke: SmokeReport | None
    metrics: MetricCheck | None
    checked_at: datetime


def validate(
    app: App,
    service: Annotated[str, Field(description="The service to check (a key of [services] in deploy.toml).")],
    environment: Annotated[str, Field(description="The environment to check, e.g. production.")],
    deployment_id: Annotated[
        str | None, Field(description="The deployment to judge (default: the latest one here).")
    ] = None,
) -> ValidationReport:
    """Check what serves now: every instance's health, the smoke tests, and error rate and latency against the
    thresholds and the previous version. Returns pass / warn / fail with the recommendation (continue,
    investigate, roll back, or fix forward after an irreversible migration) and records it on the deployment.
    """
    svc, _ = lookup(app.require_config(), service, environment)
    record = _deployment(app, service, environment, deployment_id)
    target = app.target(service)
    state = target.state(service, environment)
    health = check_instances(target, service, environment)
    smoke = (
        run_smoke(target.endpoint(service, environment), svc.smoke, health_path=svc.health) if state.running else None
    )
    metrics = _metrics(app, service, environment, state.serving, record)

    reasons: list[str] = []
    verdict: Verdict = "pass"
    if not state.serving:
        verdict, reasons = "fail", [f"nothing serves {service} in {environment}: the service is unavailable"]
    if not health.healthy:
        verdict = "fail"
        reasons.append(f"health: {health.detail}")
    if smoke is not None and not smoke.passed:
        verdict = "fail"
        reasons.append(f"smoke: {smoke.summary}")
    if metrics is not None:
        if metrics.phase == Phase.FAILED.value:
            verdict = "fail"
        elif metrics.phase != Phase.SUCCESSFUL.value and verdict == "pass":
            verdict = "warn"
        if metrics.phase != Phase.SUCCESSFUL.value:
            reasons.append(f"metrics: {metrics.reason}")
    if not reasons:
        reasons.append("all instances healthy, smoke tests pass, metrics within thresholds")
    recommendation = RECOMMENDATION[verdict]
    if verdict == "fail" and record is not None and record.roll_forward_only:
        recommendation = FIX_FORWARD.format(id=record.id)
    report = ValidationReport(
        service=service,
        environment=environment,
        verdict=verdict,
        recommendation=recommendation,
        reasons=reasons,
        deployment_id=record.id if record else None,
        serving=state.serving,
        health=health,
        smoke=smoke,
        metrics=metrics,
        checked_at=datetime.now(UTC),
    )
    if record is not None:
        _remember(app, record, report)
    return report


def _deployment(app: App, service: str, environment: str, deployment_id: str | None) -> DeploymentRecord | None:
    ledger = app.existing_ledger()
    if deployment_id is not None:
        record = ledger.get(deployment_id) if ledger else None
        if record is None or (record.service, record.environment) != (service, environment):
            raise UserError(
                f"deployment_id: {deployment_id!r} is not a deployment of {service} in {environment}; "
                "deployment_history lists them"
            )
        return record
    if ledger is None:
        return None
    latest = ledger.list(service=service, environment=environment, limit=1)
    return latest[0] if latest else None


def _metrics(
    app: App, service: str, environment: str, serving: list[str], record: DeploymentRecord | None
) -> MetricCheck | None:
    if not serving:
        return None
    config = app.config
    env = config.services[service].environments[environment]
    window = max(env.analysis.bake, env.analysis.interval)
    version = record.version if record and record.version in serving else serving[0]
    baseline_version = next((v for v in serving if v != version), None)
    try:
        source = metric_source_for(config, service, environment, app.target(service))
        numbers = source.snapshot(service, environment, [v for v in (version, baseline_version) if v], window)
    except MetricSourceError as exc:
        return MetricCheck(source="unavailable", window_seconds=window, version=version, phase="Error", reason=str(exc))
    measurement = judge(
        numbers.get(version),
        numbers.get(baseline_version) if baseline_version else None,
        config.thresholds_for(service, environment),
        env.analysis,
        version=version,
        baseline_version=baseline_version,
    )
    reason = measurement.reason
    if measurement.phase is Phase.PENDING:
        reason += "; too little traffic to judge the metrics (never a pass: send traffic or wait, then validate again)"
    return MetricCheck(
        source=source.name,
        window_seconds=window,
        version=version,
        phase=measurement.phase.value,
        reason=reason,
        current=numbers.get(version),
        baseline=numbers.get(baseline_version) if baseline_version else None,
    )


def _remember(app: App, record: DeploymentRecord, report: ValidationReport) -> None:
    """A failed validation demotes the deployment: rollback then looks past it for the last validated one."""
    validation = record.validation.model_copy(
        update={
            "health_check": "pass" if report.health.healthy else "fail",
            "smoke_tests": None if report.smoke is None else ("pass" if report.smoke.passed else "fail"),
            "error_rate": report.metrics.current.error_rate if report.metrics and report.metrics.current else None,
            "latency_p95_ms": report.metrics.current.p95_ms if report.metrics and report.metrics.current else None,
            "verdict": report.verdict,
            "checked_at": report.checked_at,
        }
    )
    if report.verdict == "fail":
        validation.passed = False
    elif report.verdict == "pass" and record.status is Status.SUCCEEDED:
        validation.passed = True
    ledger = app.ledger()
    ledger.update(record.id, validation=validation)
    ledger.append_event(record.id, "validated", f"validate: {report.verdict}; {'; '.join(report.reasons)}")
