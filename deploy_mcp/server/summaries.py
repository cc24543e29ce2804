"""What an agent reads of a tool result: a few lines instead of the whole record.

A tool result goes to the model as its text content, and the model pays for every character on every turn. The
structured content keeps the full record for clients that want it; the text says what happened, the numbers that
decided it and what to do next, each fact once. Steps that finished or wait are counted, not listed; only the step
that matters now (running, paused, failed) is described. A result type without a summary here is sent as compact
JSON, never pretty-printed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from functools import cache, singledispatch
from typing import Any

from pydantic import BaseModel

from deploy_mcp.core.records import DeploymentRecord, Status, Step, StepStatus, Verdict

NOTEWORTHY_STEPS = {
    StepStatus.RUNNING,
    StepStatus.FAILED,
    StepStatus.INCONCLUSIVE,
    StepStatus.WAITING,
    StepStatus.INTERRUPTED,
}
"""Steps described in full in a summary; the others are only counted."""
STEP_ORDER = (
    StepStatus.SUCCEEDED,
    StepStatus.PROMOTED,
    StepStatus.SKIPPED,
    StepStatus.FAILED,
    StepStatus.INCONCLUSIVE,
    StepStatus.WAITING,
    StepStatus.INTERRUPTED,
    StepStatus.RUNNING,
    StepStatus.PENDING,
)
"""The order steps are counted in: what is done, what went wrong, what is left."""


@singledispatch
def summarize(result: Any) -> str:
    """The text an agent reads for a tool's result."""
    if isinstance(result, BaseModel):
        return result.model_dump_json(exclude_none=True)
    return json.dumps(result, separators=(",", ":"), default=str)


# -- deployments ----------------------------------------------------------------------------------------------------


def _deployment_view(view: Any) -> str:
    record: DeploymentRecord = view.record
    lines = [headline(record)]
    if record.reason:
        lines.append(f"reason: {record.reason}")
    lines.append(f"steps: {step_counts(record.steps)}")
    for step in record.steps:
        if step.status in NOTEWORTHY_STEPS or (
            step.index == record.current_step and record.status in (Status.PENDING, Status.IN_PROGRESS)
        ):
            lines.append(f"  step {step.index} {step.name} {step.status}: {step.detail}")
    lines.extend(verdict_lines(record.verdicts, said=record.reason or ""))
    if record.validation.checked_at is not None and record.validation.verdict:
        passed = "passed" if record.validation.passed else "not passed"
        last = record.verdicts[-1] if record.verdicts else None
        said = last is not None and last.reason in record.validation.verdict
        lines.append(f"validation: {passed}" + (" (the last verdict)" if said else f", {record.validation.verdict}"))
    if view.live is not None:
        lines.append(f"serving: {serving_line(view.live)}")
    if record.rollback_of:
        lines.append(f"reverts {record.rollback_of}")
    if record.rolled_back_by:
        lines.append(f"reverted by {record.rolled_back_by}")
    if record.status in (Status.PENDING, Status.IN_PROGRESS) and view.recent_events:
        lines.append(f"last event: {view.recent_events[-1].message}")
    lines.append(f"next: {view.next_step}")
    return "\n".join(lines)


def headline(record: DeploymentRecord) -> str:
    """``id: service version to environment (strategy, from previous): status after N s``."""
    since = f", from {record.previous_version}" if record.previous_version else ""
    took = f" after {record.duration_seconds:.0f} s" if record.duration_seconds is not None else ""
    at = ""
    if record.current_step and record.status in (Status.PENDING, Status.IN_PROGRESS, Status.PAUSED):
        at = f" at step {record.current_step}/{len(record.steps)}"
    return (
        f"{record.id}: {record.service} {record.version} to {record.environment} ({record.strategy}{since}): "
        f"{record.status.value}{at}{took}"
    )


def step_counts(steps: Iterable[Step]) -> str:
    steps = list(steps)
    counts = Counter(str(step.status) for step in steps)
    order = [state.value for state in STEP_ORDER]
    parts = [f"{counts[name]} {name}" for name in sorted(counts, key=lambda s: order.index(s) if s in order else 99)]
    return f"{len(steps)} in all, " + ", ".join(parts) if parts else "none"


def verdict_lines(verdicts: list[Verdict], said: str = "") -> list[str]:
    """Every verdict in one short line with its numbers; the last, which decided, with its reason unless ``said``
    (the record's reason) already holds it."""
    if not verdicts:
        return []
    lines = ["verdicts:"]
    for verdict in verdicts[:-1]:
        lines.append(f"  step {verdict.step} {verdict.phase.value}: {short_verdict(verdict)}")
    last = verdicts[-1]
    told = last.reason in said
    lines.append(f"  step {last.step} {last.phase.value}: {short_verdict(last) if told else last.reason}")
    return lines


def short_verdict(verdict: Verdict) -> str:
    """The numbers of a verdict, or the first clause of its reason when it has none (health and smoke checks)."""
    if any(key in verdict.metrics for key in ("error_rate", "requests", "p95_ms")):
        return metric_numbers(verdict.metrics)
    return verdict.reason.split(": ", 1)[0]


def metric_numbers(metrics: dict[str, Any]) -> str:
    """``error rate 0.4% of 250 requests, p95 12 ms`` from a verdict's metrics, or what it lacked."""
    parts = []
    if metrics.get("error_rate") is not None:
        parts.append(f"error rate {percent(metrics['error_rate'])} of {metrics.get('requests', 0)} requests")
    elif "requests" in metrics:
        parts.append(f"{metrics['requests']} requests")
    if metrics.get("p95_ms") is not None:
        parts.append(f"p95 {milliseconds(metrics['p95_ms'])}")
    baseline = metrics.get("baseline")
    if isinstance(baseline, dict) and baseline.get("error_rate") is not None:
        parts.append(
            f"baseline {baseline.get('version')} {percent(baseline['error_rate'])}"
            + (f"/{milliseconds(baseline['p95_ms'])}" if baseline.get("p95_ms") is not None else "")
        )
    return ", ".join(parts) or "no numbers"


def serving_line(state: Any) -> str:
    if not state.versions:
        return state.problem or "nothing runs"
    parts = []
    for version in state.versions:
        weight = f", {version.weight}% of traffic" if version.weight is not None else ""
        problem = f", {version.problem}" if version.problem else ""
        parts.append(f"{version.version} {version.ready}/{version.replicas} ready{weight}{problem}")
    return "; ".join(parts)


def percent(rate: float) -> str:
    value = rate * 100
    return f"{value:.0f}%" if value == int(value) else f"{value:.2g}%" if value < 1 else f"{value:.1f}%"


def milliseconds(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


# -- the other results ----------------------------------------------------------------------------------------------


def _plan(plan: Any) -> str:
    current = f" over {plan.current_version}" if plan.current_version else " (nothing serves yet)"
    production = ", production" if plan.production else ""
    lines = [
        f"plan: {plan.service} {plan.version} to {plan.environment}{current}{production}: {plan.strategy} "
        f"({plan.chosen_by}), {plan.replicas} replicas, {len(plan.steps)} steps, about "
        f"{plan.estimated_duration_seconds:.0f} s, downtime {plan.expected_downtime_seconds:.0f} s",
    ]
    if plan.recommendation.strategy != plan.strategy:
        lines.append(f"recommended instead: {plan.recommendation.strategy}: {plan.recommendation.reason}")
    lines.append("steps: " + "; ".join(f"{step.index} {step.description}" for step in plan.steps))
    blocking = [gate for gate in plan.gates if gate.blocking]
    for gate in blocking:
        lines.append(f"gate {gate.name} ({gate.kind}): {gate.description}")
    if advice := [gate.name for gate in plan.gates if not gate.blocking]:
        lines.append(f"advice (never blocks): {', '.join(advice)}")
    error, latency = plan.thresholds.error_rate, plan.thresholds.latency_p95_ms
    lines.append(
        f"judged on: health, {sum(c.startswith('smoke') for c in plan.checks)} smoke checks, error rate warn "
        f"{percent(error.warn)} / critical {percent(error.critical)}, p95 warn {latency.warn:.0f} / critical "
        f"{latency.critical:.0f} ms, {plan.analysis.bake:.0f} s per analysis, at least "
        f"{plan.analysis.min_requests} requests"
    )
    lines.extend(f"warning: {warning}" for warning in plan.warnings)
    lines.append(f"rollback: {plan.rollback}")
    lines.append(
        "next: preflight, then deploy" if not any(g.kind == "refusal" for g in blocking) else "next: see gates"
    )
    return "\n".join(lines)


def _preflight(report: Any) -> str:
    lines = [f"preflight: {report.summary}"]
    for item in report.items:
        if item.status in ("failed", "warning"):
            fix = f"; fix: {item.fix}" if item.fix else ""
            required = "required, " if item.required else ""
            lines.append(f"  {item.name} ({required}{item.status}): {item.evidence}{fix}")
    passed = [item.name for item in report.items if item.status == "passed"]
    if passed:
        lines.append(f"passed: {', '.join(passed)}")
    rollback = next((item for item in report.items if item.name == "rollback-target"), None)
    if rollback is not None and rollback.status == "passed":
        lines.append(f"rollback target: {rollback.evidence}")
    skipped = sum(item.status == "not_applicable" for item in report.items)
    if skipped:
        lines.append(f"not applicable: {skipped} (structuredContent.items says why)")
    lines.append("next: deploy" if report.passed else "next: fix the failed required items, then run preflight again")
    return "\n".join(lines)


def _validation(report: Any) -> str:
    subject = f" ({report.deployment_id})" if report.deployment_id else ""
    lines = [f"validate {report.service} in {report.environment}{subject}: {report.verdict}"]
    lines.extend(f"  {reason}" for reason in report.reasons)
    lines.append(f"serving: {', '.join(report.serving) or 'nothing'}; health: {report.health.detail}")
    if report.smoke is not None:
        lines.append(f"smoke: {report.smoke.summary}")
    if report.metrics is not None and report.metrics.current is not None:
        current = report.metrics.current
        lines.append(
            f"metrics ({report.metrics.source}, {report.metrics.window_seconds:.0f} s): {report.metrics.phase}, "
            f"error rate {percent(current.error_rate)} of {current.requests} requests, p95 "
            f"{milliseconds(current.p95_ms) if current.p95_ms is not None else 'unknown'}; baseline: "
            f"{report.metrics.baseline_used}"
        )
    elif report.metrics is not None:
        lines.append(f"metrics: {report.metrics.phase}: {report.metrics.reason}")
    if report.record_note:
        lines.append(f"record: {report.record_note}")
    lines.append(f"next: {report.recommendation}")
    return "\n".join(lines)


def _history(history: Any) -> str:
    if not history.records:
        return f"no deployments: {history.hint}" if history.hint else "no deployments"
    lines = [f"{history.count} deployment(s), newest first:"]
    for record in history.records:
        validated = ", validated" if record.validation.passed else ""
        note = f": {record.reason}" if record.reason else ""
        link = f" (reverts {record.rollback_of})" if record.rollback_of else ""
        took = f" in {record.duration_seconds:.0f} s" if record.duration_seconds is not None else ""
        when = record.deployed_at.strftime("%Y-%m-%d %H:%M")
        lines.append(
            f"{record.id} {record.service} {record.version} {record.environment} {record.strategy} "
            f"{record.status.value}{validated}{took}, {when}{link}{note}"
        )
    return "\n".join(lines)


@cache
def _register() -> None:
    """Registered on first use: the result models live in the tool modules, which import the App, the ledger and
    the platforms, and a bare import of this module must not pull those in."""
    from deploy_mcp.core.plans import Plan
    from deploy_mcp.preflight import PreflightReport
    from deploy_mcp.tools.history import History
    from deploy_mcp.tools.validation import ValidationReport
    from deploy_mcp.tools.views import DeploymentView

    registrations: list[tuple[type, Callable[[Any], str]]] = [
        (DeploymentView, _deployment_view),
        (Plan, _plan),
        (PreflightReport, _preflight),
        (ValidationReport, _validation),
        (History, _history),
    ]
    for kind, function in registrations:
        summarize.register(kind, function)


def summary_for(result: Any) -> str:
    """The text an agent reads for a tool's result, with every result type registered."""
    _register()
    return summarize(result)
