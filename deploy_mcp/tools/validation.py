"""validate: is what serves now healthy? Health, smoke, and metrics against the thresholds and the baseline.

The verdict follows the skill's rollback table: a critical signal (service unavailable, failing smoke tests,
error rate over critical) means roll back now; a warning (error rate over warn, latency over warn or twice the
normal) means investigate for 5 minutes, then decide. After an irreversible migration the advice is to fix
forward, for a warning as for a failure: the application must never go back onto a schema it cannot read.

"Normal" is the pre-deploy baseline: the previous version while it still serves beside the new one (a canary, a
rolling batch), else the numbers recorded by the last deployment before the current one that passed validation,
so the comparison still works once a rollout has finished and only one version serves.

The verdict is written only where it is true: onto the current deployment (the runner's notion: the newest one
not failed, rolled back or aborted), once it has succeeded and while its version takes the traffic. A verdict
written anywhere else would describe another version's numbers, and a `fail` there would strike a good release
off the rollback targets. Under policy.read_only nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from deploy_mcp.app import App
from deploy_mcp.config.schema import Thresholds
from deploy_mcp.core.analysis import Baseline, baseline_findings, judge
from deploy_mcp.core.masking import redact_strings, service_secrets
from deploy_mcp.core.recommend import lookup
from deploy_mcp.core.records import DeploymentRecord, Phase, Status, VerdictOutcome
from deploy_mcp.core.runner.base import RunnerError
from deploy_mcp.core.runner.rollback import choose_target, crossing_blocker, current_deployment, lifted
from deploy_mcp.core.target import MetricSnapshot, TargetError, TargetState
from deploy_mcp.errors import UserError
from deploy_mcp.server.identities import caller_is_viewer
from deploy_mcp.signals.health import HealthSummary, check_instances
from deploy_mcp.signals.metrics import MetricSourceError, metric_source_for
from deploy_mcp.signals.smoke import SmokeReport, run_smoke

if TYPE_CHECKING:
    from collections.abc import Mapping

    from deploy_mcp.config.schema import ReleaseOverride
    from deploy_mcp.core.platform import Platform
    from deploy_mcp.ledger.base import Ledger

CONTINUE = "continue: keep watching error rate and latency for the next 30 minutes"
INVESTIGATE = "investigate for 5 minutes (logs, the numbers below)"
_LOOKBACK = 50
"""How many validated deployments the recorded baseline looks through for one with numbers."""


class RecordedBaseline(BaseModel):
    """The numbers a deployment that passed validation recorded: 'normal' once only one version serves."""

    deployment_id: str
    version: str
    error_rate: float | None = None
    latency_p95_ms: float | None = None
    checked_at: datetime | None = None


class MetricCheck(BaseModel):
    source: str
    window_seconds: float
    version: str | None
    phase: Phase
    reason: str
    current: MetricSnapshot | None = None
    baseline: MetricSnapshot | None = Field(
        default=None, description="the previous version's numbers now, when it still serves beside this one"
    )
    baseline_used: str = Field(
        default="none",
        description="which pre-deploy baseline the numbers were compared with: 'live: ...' (the previous version "
        "serving beside this one), 'recorded: ...' (the last validated deployment's numbers) or 'none: why'",
    )
    recorded_baseline: RecordedBaseline | None = None


class ValidationReport(BaseModel):
    service: str
    environment: str
    verdict: VerdictOutcome
    recommendation: str
    reasons: list[str]
    deployment_id: str | None = Field(description="the deployment asked about, else the current one here")
    serving: list[str]
    health: HealthSummary
    smoke: SmokeReport | None
    metrics: MetricCheck | None
    recorded: bool = Field(default=False, description="whether this verdict was written onto deployment_id")
    record_note: str = Field(default="", description="where the verdict was written, or why it was not")
    checked_at: datetime


@dataclass(frozen=True)
class _WayBack:
    """What a rollback from the current deployment would do: go to ``version``, or why it cannot."""

    version: str | None = None
    proof: str | None = None
    blocker: DeploymentRecord | None = None
    missing: str | None = None


def validate(
    app: App,
    service: Annotated[str, Field(description="The service to check (a key of [services] in deploy.toml).")],
    environment: Annotated[str, Field(description="The environment to check, e.g. production.")],
    deployment_id: Annotated[
        str | None,
        Field(
            description="A deployment to check (default: the current one here, the newest not failed, rolled back "
            "or aborted). The verdict is recorded only on the current deployment while its version serves; for "
            "any other the report says why nothing was recorded."
        ),
    ] = None,
) -> ValidationReport:
    """Check what serves now: every instance's health, the smoke tests, and error rate and latency against the
    thresholds and the pre-deploy baseline (the previous version while it serves beside this one, else the
    numbers of the last deployment that passed validation). Returns pass / warn / fail with the recommendation
    (continue, investigate for 5 minutes, roll back now, or fix forward after an irreversible migration).
    Changes nothing that runs; it records its verdict on the current deployment when that deployment succeeded
    and its version serves (a fail removes it from the rollback targets), never under policy.read_only.
    """
    config = app.require_config()
    svc, _ = lookup(config, service, environment)
    app.settle_ledger()
    ledger = app.existing_ledger()
    asked = _asked(ledger, service, environment, deployment_id)
    current = current_deployment(ledger, service, environment) if ledger else None
    platform = app.platform(service)
    state = platform.workload.state(service, environment)
    if not state.versions and not (ledger and ledger.list(service=service, environment=environment, limit=1)):
        raise UserError(
            f"nothing has been deployed to {service} in {environment}: the ledger has no deployment there and "
            "nothing runs, so there is nothing to validate and nothing to roll back; deploy a version first"
        )
    record = asked or current
    health = check_instances(platform, service, environment)
    smoke = _smoke(platform, service, environment, svc.smoke, svc.health) if state.running else None
    version = record.version if record and record.version in state.serving else next(iter(state.serving), None)
    prior, no_prior = _recorded_baseline(ledger, current)
    metrics = _metrics(app, service, environment, state.serving, version, prior, no_prior)

    reasons: list[str] = []
    verdict = VerdictOutcome.PASS
    if not state.serving:
        verdict, reasons = (
            VerdictOutcome.FAIL,
            [f"nothing serves {service} in {environment}: the service is unavailable"],
        )
    if not health.healthy:
        verdict = VerdictOutcome.FAIL
        reasons.append(f"health: {health.detail}")
    if smoke is not None and not smoke.passed:
        verdict = VerdictOutcome.FAIL
        reasons.append(f"smoke: {smoke.summary}")
    if metrics is not None:
        if metrics.phase is Phase.FAILED:
            verdict = VerdictOutcome.FAIL
        elif metrics.phase is not Phase.SUCCESSFUL and verdict is VerdictOutcome.PASS:
            verdict = VerdictOutcome.WARN
        if metrics.phase is not Phase.SUCCESSFUL:
            reasons.append(f"metrics: {metrics.reason}")
    if not reasons:
        reasons.append("all instances healthy, smoke tests pass, metrics within thresholds")
    way_back = _way_back(ledger, current, svc.versions) if verdict is not VerdictOutcome.PASS else _WayBack()
    report = ValidationReport(
        service=service,
        environment=environment,
        verdict=verdict,
        recommendation=_recommendation(verdict, way_back),
        reasons=reasons,
        deployment_id=record.id if record else None,
        serving=state.serving,
        health=health,
        smoke=smoke,
        metrics=metrics,
        checked_at=datetime.now(UTC),
    )
    # What the service answered may echo its env (an error page printing its configuration): mask it before the
    # verdict is shown or recorded.
    report = ValidationReport.model_validate(redact_strings(report.model_dump(), service_secrets(svc)))
    candidate, note = _where_to_record(app, asked, current, state)
    if candidate is not None:
        report.recorded, note = _remember(app, candidate, report)
    report.record_note = note
    return report


def _smoke(platform: Platform, service: str, environment: str, checks: list[str], health_path: str) -> SmokeReport:
    """The smoke tests as users reach the service, through the platform's prober (never a URL built here)."""
    try:
        client = platform.prober.http_client(service, environment)
    except TargetError as exc:
        return SmokeReport(base_url="", passed=False, summary=f"the smoke tests could not reach the service: {exc}")
    with client:
        return run_smoke(client, list(checks), health_path=health_path)


def _asked(ledger: Ledger | None, service: str, environment: str, deployment_id: str | None) -> DeploymentRecord | None:
    if deployment_id is None:
        return None
    record = ledger.get(deployment_id) if ledger else None
    if record is None or (record.service, record.environment) != (service, environment):
        raise UserError(
            f"deployment_id: {deployment_id!r} is not a deployment of {service} in {environment}; "
            "deployment_history lists them"
        )
    return record


# -- the numbers and the baseline ------------------------------------------------------------------------------


def _recorded_baseline(ledger: Ledger | None, current: DeploymentRecord | None) -> tuple[RecordedBaseline | None, str]:
    """The last deployment before the current one that passed validation and recorded numbers, or why none."""
    if ledger is None or current is None:
        return None, "no deployment stands here, so there is no earlier validated one to compare with"
    anchor = current.id
    for _ in range(_LOOKBACK):
        good = ledger.last_good(current.service, current.environment, before=anchor)
        if good is None:
            break
        numbers = good.validation
        # "normal" is what a healthy release measured: numbers taken under a warning are not a baseline
        if numbers.verdict != VerdictOutcome.WARN and (
            numbers.error_rate is not None or numbers.latency_p95_ms is not None
        ):
            return RecordedBaseline(
                deployment_id=good.id,
                version=good.version,
                error_rate=numbers.error_rate,
                latency_p95_ms=numbers.latency_p95_ms,
                checked_at=numbers.checked_at,
            ), ""
        anchor = good.id
    return None, f"no deployment before {current.id} passed validation with recorded error rate or latency"


def _metrics(
    app: App,
    service: str,
    environment: str,
    serving: list[str],
    version: str | None,
    prior: RecordedBaseline | None,
    no_prior: str,
) -> MetricCheck | None:
    if not serving or version is None:
        return None
    config = app.config
    env = config.services[service].environments[environment]
    thresholds = config.thresholds_for(service, environment)
    window = max(env.analysis.bake, env.analysis.interval)
    baseline_version = next((v for v in serving if v != version), None)
    try:
        source = metric_source_for(config, service, environment, app.platform(service))
        numbers = source.snapshot(service, environment, [v for v in (version, baseline_version) if v], window)
    except MetricSourceError as exc:
        return MetricCheck(
            source="unavailable",
            window_seconds=window,
            version=version,
            phase=Phase.ERROR,
            reason=str(exc),
            baseline_used="none: the metric source failed",
        )
    current = numbers.get(version)
    live = numbers.get(baseline_version) if baseline_version else None
    measurement = judge(current, live, thresholds, env.analysis, version=version, baseline_version=baseline_version)
    phase, reason = measurement.phase, measurement.reason
    recorded: RecordedBaseline | None = None
    if not env.analysis.compare_baseline:
        used = "none: analysis.compare_baseline is false for this environment"
    elif baseline_version is not None:
        count = live.requests if live else 0
        used = (
            f"live: {baseline_version}, serving beside {version} ({count} request(s) in the window; "
            f"{max(1, env.analysis.min_requests)} needed to compare)"
        )
    elif prior is None:
        used = f"none: {no_prior}"
    else:
        recorded = prior
        used = (
            f"recorded: {prior.version} as validated in {prior.deployment_id} (error rate "
            f"{_percent(prior.error_rate)}, p95 {_ms(prior.latency_p95_ms)})"
        )
        if current is not None and phase in (Phase.SUCCESSFUL, Phase.INCONCLUSIVE):
            findings = _against_recorded(current, prior, thresholds, version)
            if findings:
                found = "; ".join(findings)
                reason = found if phase is Phase.SUCCESSFUL else f"{reason}; {found}"
                phase = Phase.INCONCLUSIVE
    if phase is Phase.PENDING:
        reason += "; too little traffic to judge the metrics (never a pass: send traffic or wait, then validate again)"
    return MetricCheck(
        source=source.name,
        window_seconds=window,
        version=version,
        phase=phase,
        reason=f"{reason}; baseline: {used}",
        current=current,
        baseline=live,
        baseline_used=used,
        recorded_baseline=recorded,
    )


def _against_recorded(
    current: MetricSnapshot, prior: RecordedBaseline, thresholds: Thresholds, version: str
) -> list[str]:
    """The skill's 'error rate above normal' and 'latency > 2x normal' against recorded numbers: the analysis's
    own comparison (core.analysis.baseline_findings), with the recorded rate taken as known."""
    baseline = Baseline(
        whose="the pre-deploy baseline's",
        error_rate=prior.error_rate,
        p95_ms=prior.latency_p95_ms,
        provenance=f" ({prior.version} as validated in {prior.deployment_id})",
    )
    return [sentence for _, sentence in baseline_findings(current, baseline, thresholds, version)]


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


# -- the advice ------------------------------------------------------------------------------------------------


def _way_back(
    ledger: Ledger | None, current: DeploymentRecord | None, releases: Mapping[str, ReleaseOverride]
) -> _WayBack:
    """What `rollback` with no target would do from here, decided by the runner's own rules."""
    if ledger is None or current is None:
        return _WayBack(
            missing="no deployment stands here (each one failed, was rolled back or was aborted), so there is no "
            "validated version to return to"
        )
    if _irreversible(current, releases):
        return _WayBack(blocker=current)
    try:
        version, proof = choose_target(ledger, current, None)
    except RunnerError as exc:
        return _WayBack(missing=str(exc))
    blocker = crossing_blocker(ledger, current, version, releases)
    if blocker is not None:
        return _WayBack(blocker=blocker)
    return _WayBack(version=version, proof=proof.id if proof else None)


def _irreversible(record: DeploymentRecord, releases: Mapping[str, ReleaseOverride]) -> bool:
    """Roll-forward-only, unless deploy.toml now says explicitly that the release's migrations can be undone."""
    return record.roll_forward_only and not lifted(record, releases)


def _recommendation(verdict: VerdictOutcome, way: _WayBack) -> str:
    if verdict is VerdictOutcome.PASS:
        return CONTINUE
    if way.blocker is not None:
        why = (
            f"do not roll the application back: {way.blocker.id} shipped {way.blocker.version} with a migration "
            "the older version cannot run against"
        )
        if verdict is VerdictOutcome.FAIL:
            return (
                f"fix forward now with a new release; {why} (a reversible migration is rolled back only after the "
                "application)"
            )
        return f"{INVESTIGATE}, then fix forward with a new release if it does not recover; {why}"
    if way.missing is not None:
        if verdict is VerdictOutcome.FAIL:
            return f"no rollback is possible ({way.missing}): restore service with a release known to work"
        return f"{INVESTIGATE}; if it does not recover, fix forward with a new release: {way.missing}"
    to = f" (to {way.version}, which passed validation in {way.proof})" if way.version else ""
    if verdict is VerdictOutcome.FAIL:
        return f"roll back now{to}"
    return f"{INVESTIGATE}, then roll back{to} if it does not recover"


# -- the record ------------------------------------------------------------------------------------------------


def _where_to_record(
    app: App, asked: DeploymentRecord | None, current: DeploymentRecord | None, state: TargetState
) -> tuple[DeploymentRecord | None, str]:
    """The deployment this verdict is true of, or why none is written."""
    if app.config.policy.read_only:
        return None, "not recorded: this session is read-only (policy.read_only = true in deploy.toml)"
    if caller_is_viewer():
        return None, "not recorded: this caller has the viewer role on the team server, which changes nothing"
    if current is None:
        return None, "not recorded: no deployment stands here (each one failed, was rolled back or was aborted)"
    serving = ", ".join(state.serving) or "nothing"
    if asked is not None and asked.id != current.id:
        serves = "serves" if asked.version in state.serving else "does not serve"
        return None, (
            f"not recorded on {asked.id}: it is not the current deployment here ({current.id}, {current.version}, "
            f"is) and its version {asked.version} {serves} now ({serving} does); the checks above judge what serves"
        )
    if current.status is not Status.SUCCEEDED:
        return None, (
            f"not recorded on {current.id}: it is {current.status.value}, and its own final checks write its "
            "validation when it ends"
        )
    if state.serving[:1] != [current.version]:
        return None, (
            f"not recorded on {current.id}: its version {current.version} does not take the traffic now "
            f"({serving} does)"
        )
    return current, ""


def _remember(app: App, candidate: DeploymentRecord, report: ValidationReport) -> tuple[bool, str]:
    """A failed validation demotes the deployment: rollback then looks past it for the last validated one.

    Checked again right before writing: a rollback or deploy that started meanwhile makes this verdict stale.
    Numbers from too small a sample are not written: they would become the next release's 'normal'.
    """
    ledger = app.ledger()
    record = ledger.get(candidate.id)
    now = current_deployment(ledger, candidate.service, candidate.environment)
    if record is None or now is None or now.id != record.id or record.status is not Status.SUCCEEDED:
        return False, f"not recorded on {candidate.id}: another deployment started while it was being validated"
    metrics = report.metrics
    judged = metrics is not None and metrics.current is not None and metrics.phase not in (Phase.PENDING, Phase.ERROR)
    updates: dict[str, object] = {
        "health_check": "pass" if report.health.healthy else "fail",
        "smoke_tests": None if report.smoke is None else ("pass" if report.smoke.passed else "fail"),
        "verdict": report.verdict.value,
        "checked_at": report.checked_at,
    }
    if judged and metrics is not None and metrics.current is not None:
        updates.update(error_rate=metrics.current.error_rate, latency_p95_ms=metrics.current.p95_ms)
    validation = record.validation.model_copy(update=updates)
    if report.verdict is VerdictOutcome.FAIL:
        validation.passed = False
    elif report.verdict is VerdictOutcome.PASS:
        validation.passed = True
    ledger.update(record.id, validation=validation)
    ledger.append_event(record.id, "validated", f"validate: {report.verdict}; {'; '.join(report.reasons)}")
    return True, f"recorded on {record.id}"
