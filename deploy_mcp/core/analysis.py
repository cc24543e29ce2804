"""Verdicts from metrics: is the new version as good as the thresholds (and the version it replaces) demand?

The semantics are Argo Rollouts' analysis, made concrete for RED metrics:

- One *measurement* judges the new version over a window and is Successful, Failed or Inconclusive. A metric
  source that raises gives an Error measurement instead: it is not a measurement of the service, only counts
  towards ``consecutive_error_limit`` (default 4), is retried at the next interval and is never a pass.
- A sample smaller than ``min_requests`` decides nothing (phase Pending here): fixed thresholds on tiny samples
  are noise, and no data is never a pass. The step keeps measuring; when the bake time ends without a sufficient
  sample the run is Inconclusive, so the deployment pauses for a decision. (Flagger counts no data as a failed
  check and rolls back; we pause instead, because silence is not evidence of a bad release, and a rollback on an
  idle environment would block every quiet deploy. Either way it never passes.) One exception: when the errors
  already seen would keep the error rate above critical even if every request still missing from the minimum
  sample succeeded, the evidence is in, and the measurement is Failed at once.
- Thresholds: error rate or p95 (or p99 when configured) above critical -> Failed; above warn -> Inconclusive.
- Against the stable baseline (``compare_baseline``, and only when the baseline has a sufficient sample too):
  an error rate worse than the baseline's by more than max(warn / 2, 3 standard errors of the difference), or a
  p95 more than twice the baseline's (and at least a tenth of the latency warn level slower, because
  millisecond latencies double by noise) -> Inconclusive: the skill's "latency > 2x normal -> investigate". A
  comparison never fails a release on its own: the absolute critical thresholds are the service's SLO.
- The run: Failed when failed measurements > failure_limit, Error when errors in a row > consecutive_error_limit,
  Inconclusive when inconclusive measurements > inconclusive_limit, checked in that order (worst first) after
  every measurement, so a bad release ends the run at once. Otherwise, once the bake time is over, the run takes
  the newest sufficient measurement: windows grow from the start of the step, so that one covers the whole bake.

Each window runs from the start of the step to now (at least one interval): at a 5% canary share a one-interval
window rarely holds enough requests, while the growing window reaches ``min_requests`` as fast as traffic allows.

Pure except for ``run_analysis``, which calls the metric source and sleeps through what it is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from deploy_mcp.config.schema import Analysis, Thresholds, Tier
from deploy_mcp.core.records import Phase
from deploy_mcp.core.target import MetricSnapshot

__all__ = [
    "PHASE_ORDER",
    "AnalysisOutcome",
    "AnalysisRun",
    "Baseline",
    "Measurement",
    "MetricSource",
    "baseline_findings",
    "judge",
    "latency_findings",
    "run_analysis",
    "source_error",
    "worst",
]

PHASE_ORDER = [Phase.SUCCESSFUL, Phase.RUNNING, Phase.PENDING, Phase.INCONCLUSIVE, Phase.ERROR, Phase.FAILED]
"""Argo Rollouts' order, best first: a run's result is its worst finding."""

BASELINE_STANDARD_ERRORS = 3.0
BASELINE_LATENCY_RATIO = 2.0
BASELINE_LATENCY_FLOOR_SHARE = 0.1
"""A latency regression against the baseline must also be at least this share of the warn level in ms."""

_POLL_SECONDS = 0.1
"""How often a wait checks ``should_stop``: an abort must not wait for the end of an interval."""


class MetricSource(Protocol):
    """Per-version RED numbers for one service and environment: what both analyses ask of Prometheus, a platform's
    router or any other source (signals.metrics has the implementations; the runner is given one)."""

    name: str
    """Where the numbers come from, as reports say it ("prometheus", "local-router")."""
    sample_seconds: float
    """How often the source has new numbers; the sequential analysis looks no more often (sequential.sample_seconds
    falls back to one second for a source without it)."""
    window_granularity_seconds: float
    """How much earlier than asked a window must start to surely cover an instant: the source's time buckets
    (0 when its windows are exact)."""

    def snapshot(
        self, service: str, environment: str, versions: list[str], window_seconds: float
    ) -> dict[str, MetricSnapshot]:
        """One MetricSnapshot per requested version; a version that served nothing is an empty snapshot, never a
        missing key. Raises MetricSourceError (signals.metrics) when the source cannot answer."""
        ...


@dataclass(frozen=True)
class Baseline:
    """The 'normal' a version is compared with, and how a sentence names it.

    Live: the previous version serving beside the new one, measured over the same window (``requests`` and
    ``errors`` are its sample). Recorded: the numbers the last validated deployment wrote down; their sample size
    was not kept (``requests`` None), so the recorded rate is taken as known and only the current sample's noise
    widens the margin.
    """

    whose: str
    """The baseline as a possessive in a sentence: "1.0.0's", "the pre-deploy baseline's"."""
    error_rate: float | None
    p95_ms: float | None
    requests: int | None = None
    errors: float | None = None
    provenance: str = ""
    """Said after the baseline's numbers, e.g. " (1.0.0 as validated in deploy-...)"; empty for a live one."""

    @classmethod
    def live(cls, version: str, snapshot: MetricSnapshot) -> Baseline:
        return cls(
            whose=f"{version}'s",
            error_rate=snapshot.error_rate,
            p95_ms=snapshot.p95_ms,
            requests=snapshot.requests,
            errors=snapshot.errors,
        )


def worst(*phases: Phase) -> Phase:
    return max(phases, key=PHASE_ORDER.index)


@dataclass(frozen=True)
class Measurement:
    """One look at the new version (and its baseline) over a window.

    ``phase`` is Successful, Failed or Inconclusive for a judged sample, Pending for a sample too small to judge
    and Error when the metric source failed. ``elapsed`` counts seconds from the start of the analysis.
    """

    phase: Phase
    reason: str
    elapsed: float = 0.0
    canary: MetricSnapshot | None = None
    baseline: MetricSnapshot | None = None
    statistics: dict[str, Any] = field(default_factory=dict)
    """The sequential method's evidence (log likelihood ratios against their boundaries); empty for interval."""

    @property
    def judged(self) -> bool:
        return self.phase not in (Phase.PENDING, Phase.ERROR)

    def numbers(self) -> dict[str, Any]:
        """The figures behind the verdict, for the record and the event log."""
        numbers: dict[str, Any] = {"phase": self.phase.value, "elapsed_seconds": round(self.elapsed, 3)}
        if self.canary is not None:
            numbers.update(_snapshot_numbers(self.canary))
        if self.baseline is not None:
            numbers["baseline"] = _snapshot_numbers(self.baseline)
        if self.statistics:
            numbers["sequential"] = self.statistics
        return numbers


def source_error(message: str, elapsed: float = 0.0) -> Measurement:
    return Measurement(Phase.ERROR, f"the metric source failed: {message}", elapsed)


def judge(
    canary: MetricSnapshot | None,
    baseline: MetricSnapshot | None,
    thresholds: Thresholds,
    analysis: Analysis,
    *,
    version: str,
    baseline_version: str | None = None,
    elapsed: float = 0.0,
) -> Measurement:
    """One measurement from the numbers of one window; see the module docstring for the rules."""
    needed = max(1, analysis.min_requests)
    requests = canary.requests if canary is not None else 0
    if canary is None or requests < needed:
        errors = canary.errors if canary is not None else 0
        critical = thresholds.error_rate.critical
        if errors and errors / needed > critical:
            reason = (
                f"{errors} errors in the first {requests} requests to {version}: even if every request until "
                f"min_requests ({needed}) succeeded, the error rate would be {_percent(errors / needed)}, above "
                f"the critical {_percent(critical)}"
            )
            return Measurement(Phase.FAILED, reason, elapsed, canary, baseline)
        reason = f"only {requests} request(s) to {version} so far; {needed} are needed for a verdict"
        return Measurement(Phase.PENDING, reason, elapsed, canary, baseline)

    findings: list[tuple[Phase, str]] = []
    findings += _tier_findings(
        "error rate", canary.error_rate, thresholds.error_rate, _percent, f"over {requests} requests to {version}"
    )
    findings += latency_findings(canary, None, thresholds, version, None)
    if analysis.compare_baseline and baseline is not None and baseline_version and baseline.requests >= needed:
        findings += baseline_findings(canary, Baseline.live(baseline_version, baseline), thresholds, version)

    if findings:
        phase = worst(*(phase for phase, _ in findings))
        reason = "; ".join(sentence for found, sentence in findings if found == phase)
        return Measurement(phase, reason, elapsed, canary, baseline)
    reason = (
        f"error rate {_percent(canary.error_rate)} over {requests} requests to {version} and p95 latency "
        f"{_ms(canary.p95_ms)} are within the thresholds (warn {_percent(thresholds.error_rate.warn)} / "
        f"{_ms(thresholds.latency_p95_ms.warn)})"
    )
    if analysis.compare_baseline and baseline is not None and baseline_version and baseline.requests >= needed:
        reason += (
            f" and no worse than {baseline_version} (error rate {_percent(baseline.error_rate)}, p95 "
            f"{_ms(baseline.p95_ms)} over {baseline.requests} requests)"
        )
    return Measurement(Phase.SUCCESSFUL, reason, elapsed, canary, baseline)


def _tier_findings(
    label: str, value: float, tier: Tier, show: Callable[[float | None], str], where: str
) -> list[tuple[Phase, str]]:
    if value > tier.critical:
        return [(Phase.FAILED, f"{label} {show(value)} {where} is above the critical {show(tier.critical)}")]
    if value > tier.warn:
        return [
            (
                Phase.INCONCLUSIVE,
                f"{label} {show(value)} {where} is above the warn level {show(tier.warn)} (critical "
                f"{show(tier.critical)}): investigate before going further",
            )
        ]
    return []


def latency_findings(
    canary: MetricSnapshot,
    baseline: MetricSnapshot | None,
    thresholds: Thresholds,
    version: str,
    baseline_version: str | None,
    *,
    tiers: bool = True,
) -> list[tuple[Phase, str]]:
    """p95 (and p99) against their tiers, and p95 against twice the baseline's when a baseline is given."""
    findings: list[tuple[Phase, str]] = []
    if tiers:
        for label, value, tier in (
            ("p95 latency", canary.p95_ms, thresholds.latency_p95_ms),
            ("p99 latency", canary.p99_ms, thresholds.latency_p99_ms),
        ):
            if value is not None and tier is not None:
                findings += _tier_findings(label, value, tier, _ms, f"over {canary.requests} requests to {version}")
    if baseline is not None and baseline_version:
        findings += _slower_than(canary, Baseline.live(baseline_version, baseline), thresholds, version)
    return findings


def baseline_findings(
    canary: MetricSnapshot, baseline: Baseline, thresholds: Thresholds, version: str
) -> list[tuple[Phase, str]]:
    """The skill's 'error rate above normal' and 'latency > 2x normal' (both Inconclusive: investigate).

    An error rate is above normal when it exceeds the baseline's by more than the larger of half the warn level
    and 3 standard errors: of the pooled rate for a live baseline, of the baseline's rate over the current sample
    for a recorded one. Latency is more than twice the baseline's p95, and by at least a tenth of the warn level.
    """
    findings: list[tuple[Phase, str]] = []
    if baseline.error_rate is not None:
        n1 = canary.requests
        if baseline.requests is None or baseline.errors is None:
            normal = baseline.error_rate
            standard_error = math.sqrt(normal * (1 - normal) / max(1, n1))
        else:
            n0 = baseline.requests
            pooled = (canary.errors + baseline.errors) / (n1 + n0)
            standard_error = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
        margin = max(thresholds.error_rate.warn / 2, BASELINE_STANDARD_ERRORS * standard_error)
        over = "" if baseline.requests is None else f" over {baseline.requests} requests"
        if canary.error_rate - baseline.error_rate > margin:
            findings.append(
                (
                    Phase.INCONCLUSIVE,
                    f"error rate {_percent(canary.error_rate)} over {n1} requests to {version} is worse than "
                    f"{baseline.whose} {_percent(baseline.error_rate)}{over}{baseline.provenance} by more than "
                    f"{_percent(margin)} (the larger of half the warn level and 3 standard errors): investigate",
                )
            )
    return findings + _slower_than(canary, baseline, thresholds, version)


def _slower_than(
    canary: MetricSnapshot, baseline: Baseline, thresholds: Thresholds, version: str
) -> list[tuple[Phase, str]]:
    if canary.p95_ms is None or baseline.p95_ms is None:
        return []
    floor = BASELINE_LATENCY_FLOOR_SHARE * thresholds.latency_p95_ms.warn
    if canary.p95_ms > BASELINE_LATENCY_RATIO * baseline.p95_ms and canary.p95_ms - baseline.p95_ms >= floor:
        return [
            (
                Phase.INCONCLUSIVE,
                f"p95 latency {_ms(canary.p95_ms)} of {version} is more than {BASELINE_LATENCY_RATIO:g}x "
                f"{baseline.whose} {_ms(baseline.p95_ms)}{baseline.provenance}: investigate",
            )
        ]
    return []


@dataclass
class AnalysisOutcome:
    """How an analysis ended. ``stopped`` means it was interrupted (pause, abort, promote) before a result."""

    phase: Phase
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    stopped: bool = False

    @property
    def passed(self) -> bool:
        return self.phase is Phase.SUCCESSFUL


class AnalysisRun:
    """Measurements of one step, counted against the limits of ``analysis``."""

    def __init__(self, version: str, thresholds: Thresholds, analysis: Analysis) -> None:
        self.version = version
        self.thresholds = thresholds
        self.analysis = analysis
        self.measurements: list[Measurement] = []
        self.successful = 0
        self.failed = 0
        self.inconclusive = 0
        self.errors = 0
        self.errors_in_a_row = 0

    def add(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        if measurement.phase is Phase.ERROR:
            self.errors += 1
            self.errors_in_a_row += 1
            return
        self.errors_in_a_row = 0
        if measurement.phase is Phase.FAILED:
            self.failed += 1
        elif measurement.phase is Phase.INCONCLUSIVE:
            self.inconclusive += 1
        elif measurement.phase is Phase.SUCCESSFUL:
            self.successful += 1

    @property
    def decided(self) -> Phase | None:
        """The result once a limit is exceeded, worst first; None while the run may still go either way."""
        limits = self.analysis
        if self.failed > limits.failure_limit:
            return Phase.FAILED
        if self.errors_in_a_row > limits.consecutive_error_limit:
            return Phase.ERROR
        if self.inconclusive > limits.inconclusive_limit:
            return Phase.INCONCLUSIVE
        return None

    def counts(self) -> dict[str, int]:
        return {
            "measurements": len(self.measurements),
            "successful": self.successful,
            "failed": self.failed,
            "inconclusive": self.inconclusive,
            "source_errors": self.errors,
            "source_errors_in_a_row": self.errors_in_a_row,
        }

    def _latest(self, phase: Phase | None = None) -> Measurement | None:
        for measurement in reversed(self.measurements):
            if (phase is None and measurement.judged) or measurement.phase is phase:
                return measurement
        return None

    def outcome(self, *, bake_over: bool = True) -> AnalysisOutcome:
        """The run's result now; before the bake is over only a decided run has one (else phase Running)."""
        decided = self.decided
        if decided is not None:
            return self._ended(decided, self._decided_reason(decided))
        if not bake_over:
            return self._ended(Phase.RUNNING, "the analysis is still running")
        latest = self._latest()
        if latest is None:
            return self._ended(Phase.INCONCLUSIVE, self._no_sample_reason())
        if latest.phase is Phase.SUCCESSFUL:
            return self._ended(Phase.SUCCESSFUL, latest.reason, latest)
        # Within the limits, yet the newest (whole-bake) window is not clean: Argo calls this Successful, because
        # the limits allowed it; say what was tolerated.
        tolerated = f"{latest.reason} (tolerated: {self.failed} failed and {self.inconclusive} inconclusive "
        tolerated += f"measurement(s) are within failure_limit {self.analysis.failure_limit} and "
        tolerated += f"inconclusive_limit {self.analysis.inconclusive_limit})"
        return self._ended(Phase.SUCCESSFUL, tolerated, latest)

    def _latest_any(self) -> Measurement | None:
        return self.measurements[-1] if self.measurements else None

    def _decided_reason(self, phase: Phase) -> str:
        limits = self.analysis
        if phase is Phase.FAILED:
            cause = self._latest(Phase.FAILED)
            assert cause is not None
            if limits.failure_limit == 0:
                return cause.reason
            return f"{cause.reason} ({self.failed} failed measurements, more than failure_limit {limits.failure_limit})"
        if phase is Phase.ERROR:
            cause = self._latest(Phase.ERROR)
            assert cause is not None
            return (
                f"{cause.reason}; {self.errors_in_a_row} errors in a row, more than consecutive_error_limit "
                f"{limits.consecutive_error_limit}: the release cannot be judged, so it does not pass"
            )
        cause = self._latest(Phase.INCONCLUSIVE)
        assert cause is not None
        if limits.inconclusive_limit == 0:
            return cause.reason
        return (
            f"{cause.reason} ({self.inconclusive} inconclusive measurements, more than inconclusive_limit "
            f"{limits.inconclusive_limit})"
        )

    def _no_sample_reason(self) -> str:
        needed = max(1, self.analysis.min_requests)
        latest = self.measurements[-1] if self.measurements else None
        pending = self._latest(Phase.PENDING)
        if pending is not None:
            seen = pending.canary.requests if pending.canary else 0
            reason = (
                f"only {seen} request(s) reached {self.version} in {pending.elapsed:.0f} s of analysis; at least "
                f"{needed} are needed: no data is not a pass"
            )
            if latest is not None and latest.phase is Phase.ERROR:
                reason += f" (and the last measurement failed: {latest.reason})"
            return reason
        if latest is not None:
            return (
                f"no measurement succeeded ({self.errors} metric-source error(s), the last: {latest.reason}); "
                "no data is not a pass"
            )
        return f"no measurement was taken of {self.version}; no data is not a pass"

    def _ended(self, phase: Phase, reason: str, basis: Measurement | None = None) -> AnalysisOutcome:
        basis = basis or self._latest() or self._latest_any()
        metrics = basis.numbers() if basis is not None else {}
        metrics.update(self.counts())
        return AnalysisOutcome(phase=phase, reason=reason, metrics=metrics, measurements=list(self.measurements))


def run_analysis(
    source: MetricSource,
    service: str,
    environment: str,
    version: str,
    baseline_version: str | None,
    thresholds: Thresholds,
    analysis: Analysis,
    duration_s: float,
    interval_s: float,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], object] = time.sleep,  # an Event.wait returns whether it was woken: ignored
    on_measurement: Callable[[Measurement, AnalysisRun], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AnalysisOutcome:
    """Measure every ``interval_s`` for ``duration_s`` (the bake), ending early once the limits decide.

    Blocking. The window of each measurement runs from the start of this call. ``should_stop`` is polled at
    least every 0.1 s; when it answers True the outcome has ``stopped=True`` and the result so far.
    """
    interval = max(0.05, interval_s)
    run = AnalysisRun(version, thresholds, analysis)
    started = clock()
    versions = [version] + ([baseline_version] if baseline_version and baseline_version != version else [])
    next_at = started + min(interval, duration_s)
    while True:
        while (remaining := next_at - clock()) > 0:
            if should_stop():
                return _stopped(run)
            sleep(min(_POLL_SECONDS, remaining))
        if should_stop():
            return _stopped(run)
        elapsed = clock() - started
        window = max(interval, elapsed)
        try:
            snapshots = source.snapshot(service, environment, versions, window)
        except Exception as exc:  # any failure of the source is an Error measurement, never a pass
            measurement = source_error(str(exc) or type(exc).__name__, elapsed)
        else:
            measurement = judge(
                snapshots.get(version),
                snapshots.get(baseline_version) if baseline_version else None,
                thresholds,
                analysis,
                version=version,
                baseline_version=baseline_version,
                elapsed=elapsed,
            )
        run.add(measurement)
        if on_measurement is not None:
            on_measurement(measurement, run)
        if run.decided is not None:
            return run.outcome()
        if elapsed >= duration_s - 1e-6:
            return run.outcome(bake_over=True)
        next_at = min(next_at + interval, started + duration_s)


def _stopped(run: AnalysisRun) -> AnalysisOutcome:
    outcome = run.outcome(bake_over=False)
    outcome.stopped = True
    return outcome


def _snapshot_numbers(snapshot: MetricSnapshot) -> dict[str, Any]:
    return {
        "version": snapshot.version,
        "window_seconds": round(snapshot.window_seconds, 3),
        "requests": snapshot.requests,
        "errors": snapshot.errors,
        "error_rate": round(snapshot.error_rate, 6),
        "p95_ms": snapshot.p95_ms,
        "p99_ms": snapshot.p99_ms,
    }


def _percent(fraction: float | None) -> str:
    if fraction is None:
        return "n/a"
    value = fraction * 100
    if value == 0:
        return "0%"
    return f"{value:.3g}%" if value < 10 else f"{value:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
