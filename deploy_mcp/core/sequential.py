"""Sequential analysis: judge every new sample with tests that stay valid however often they are looked at.

The interval method checks fixed thresholds once per interval, so it must wait for a sample large enough that
noise cannot cross a threshold, and users meet the bad release meanwhile. Here every scrape (or router window)
updates mixture likelihood ratios, which are test supermartingales: under the null hypothesis their expected
value never grows, so by Ville's inequality the chance that one EVER reaches 1/alpha is at most alpha, at any
number of looks and with the decision to stop taken on the data itself. That is what makes continuous
monitoring safe: the boundary does not move with the number of looks.

What is tested, on the counts since the start of the step (``confidence`` = 1 - alpha):

- Error rate (alpha / 2): null "error rate <= warn" against a mixture of alternatives above warn, Wald's
  acceptable / rejectable quality levels with warn as the acceptable one. Crossing the boundary with an observed
  rate above critical is Failed (rollback); below critical it is Inconclusive (pause: "investigate"). So a release
  at or under warn is stopped with probability at most alpha / 2; a release above critical is caught within a
  handful of errors (3 errors in the first 15 requests is conclusive at 99%).
- Against the baseline (compare_baseline, alpha / 4): each new sample's errors are split between canary and
  baseline; given their totals, the canary's share follows Fisher's noncentral hypergeometric law with the odds
  ratio of the two error rates. Null "the canary's error odds are no higher than the baseline's", mixed over
  odds ratios 2 to 64, multiplied across samples (a conditional likelihood ratio, still a supermartingale). It
  pauses (Inconclusive) when crossed and the canary's rate is also worse by more than half the warn level, as in
  the interval method: a comparison never rolls back on its own.
- Latency (the rest of alpha, split evenly): a p95 above L means more than 5% of requests are slower than L, so
  "p95 <= L" is the Bernoulli null "share slower than L <= 5%" (1% for p99). The sources report percentiles, not
  counts, so the count of slow requests is bounded from below by the percentiles reported (a p50 above L means
  at least half were slower); the likelihood ratio grows with that count, so a lower bound keeps the test valid,
  only less powerful: gross regressions are caught at once. Subtle ones are judged at the end of the bake by one
  fixed-sample check of p95 / p99 against the tiers and twice the baseline's, as the interval method does (one
  look, so no multiple-testing problem).

Semantics kept from the interval method: Failed stops at once; Successful only when the bake is over, with at
least ``min_requests`` requests seen (no data is never a pass) and no boundary crossed; a metric-source error is
not a sample and counts towards ``consecutive_error_limit``. failure_limit and inconclusive_limit count interval
measurements and do not apply: a boundary crossing is conclusive by construction.

Pure except for ``run_sequential``, which calls the metric source and sleeps through what it is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from deploy_mcp.config.schema import Analysis, Thresholds
from deploy_mcp.core.analysis import (
    AnalysisOutcome,
    Measurement,
    MetricSource,
    latency_findings,
    source_error,
    worst,
)
from deploy_mcp.core.records import Phase
from deploy_mcp.core.target import MetricSnapshot

__all__ = [
    "BASELINE_NULL_ODDS_RATIO",
    "DEFAULT_SAMPLE_SECONDS",
    "Check",
    "Look",
    "SequentialRun",
    "bernoulli_log_lr",
    "noncentral_hypergeometric_log_pmf",
    "run_sequential",
    "sample_seconds",
    "slower_than_lower_bound",
    "window_granularity",
]

BASELINE_NULL_ODDS_RATIO = 1.0
"""The baseline null: the canary's error odds are at most this multiple of the baseline's. 1 tests "no worse";
how much worse matters is left to the materiality rule (more than half the warn level), not to the null."""

GRID_STEPS = 6
"""Alternatives in each mixture: the null level times 2, 4, ... 64 (capped below 1 for rates)."""

DEFAULT_SAMPLE_SECONDS = 1.0
"""How often to look when the metric source does not say how often it has new numbers."""

_POLL_SECONDS = 0.1
_MIN_NULL_RATE = 1e-4
"""A warn level of 0 would make any single error infinite evidence; below this the null is held at this rate."""


class Check(StrEnum):
    """The sequential tests, as they appear in the record's numbers."""

    ERROR_RATE = "error_rate"
    BASELINE = "baseline_error_rate"
    P95_CRITICAL = "p95_critical"
    P95_WARN = "p95_warn"
    P99_CRITICAL = "p99_critical"
    P99_WARN = "p99_warn"


def sample_seconds(source: object) -> float:
    """How often ``source`` has new numbers (its ``sample_seconds`` attribute), so looking more often is waste."""
    value = getattr(source, "sample_seconds", None)
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_SAMPLE_SECONDS


def window_granularity(source: object) -> float:
    """How much earlier than asked a window must start to surely cover an instant (the source's time buckets)."""
    value = getattr(source, "window_granularity_seconds", None)
    return float(value) if isinstance(value, int | float) and value > 0 else 0.0


# -- the likelihood ratios ---------------------------------------------------------------------------------------


def _rate_grid(null: float) -> list[float]:
    grid: list[float] = []
    for step in range(1, GRID_STEPS + 1):
        rate = null * 2**step
        if rate >= 1:
            grid.append((grid[-1] + 1) / 2 if grid else (null + 1) / 2)
            break
        grid.append(rate)
    return grid


def _log_mean_exp(values: list[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def bernoulli_log_lr(requests: int, events: int, null: float) -> float:
    """log of the mixture likelihood ratio "rate > null" against "rate <= null" after ``events`` in ``requests``.

    The mixture is uniform over ``_rate_grid(null)``. Each component's ratio has expectation <= 1 under any rate
    <= null (it is increasing in the rate and 1 at null), so the mixture is a test supermartingale there.
    """
    null = min(max(null, _MIN_NULL_RATE), 1 - 1e-9)
    if requests <= 0:
        return 0.0
    events = min(max(events, 0), requests)
    terms = [
        events * math.log(rate / null) + (requests - events) * math.log((1 - rate) / (1 - null))
        for rate in _rate_grid(null)
    ]
    return _log_mean_exp(terms)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def noncentral_hypergeometric_log_pmf(x: int, canary: int, baseline: int, errors: int, odds_ratio: float) -> float:
    """log P(x of ``errors`` fall on the canary | request counts, odds ratio): Fisher's noncentral hypergeometric."""
    low, high = max(0, errors - baseline), min(errors, canary)
    log_psi = math.log(odds_ratio)
    terms = [_log_comb(canary, y) + _log_comb(baseline, errors - y) + y * log_psi for y in range(low, high + 1)]
    top = max(terms)
    normaliser = top + math.log(sum(math.exp(t - top) for t in terms))
    return _log_comb(canary, x) + _log_comb(baseline, errors - x) + x * log_psi - normaliser


class _BaselineEvidence:
    """The two-sample conditional likelihood ratio, multiplied over samples, one product per alternative."""

    def __init__(self, null_odds_ratio: float = BASELINE_NULL_ODDS_RATIO) -> None:
        self.null = null_odds_ratio
        self.alternatives = [null_odds_ratio * 2**step for step in range(1, GRID_STEPS + 1)]
        self.log_products = [0.0 for _ in self.alternatives]

    def add(self, canary_requests: int, canary_errors: int, baseline_requests: int, baseline_errors: int) -> None:
        errors = canary_errors + baseline_errors
        if errors == 0 or canary_requests == 0 or baseline_requests == 0:
            return  # an empty split carries no information about the odds ratio (its ratio is exactly 1)
        null = noncentral_hypergeometric_log_pmf(canary_errors, canary_requests, baseline_requests, errors, self.null)
        for i, psi in enumerate(self.alternatives):
            alternative = noncentral_hypergeometric_log_pmf(
                canary_errors, canary_requests, baseline_requests, errors, psi
            )
            self.log_products[i] += alternative - null

    @property
    def log_lr(self) -> float:
        return _log_mean_exp(self.log_products)


def slower_than_lower_bound(snapshot: MetricSnapshot, limit_ms: float) -> int:
    """At least how many requests of ``snapshot`` took longer than ``limit_ms``, from the percentiles it reports.

    A q-quantile above the limit (the value at rank ceil(q n)) means every request from that rank up was slower.
    """
    n = snapshot.requests
    bound = 0
    for quantile, value in ((0.5, snapshot.p50_ms), (0.95, snapshot.p95_ms), (0.99, snapshot.p99_ms)):
        if value is not None and value > limit_ms:
            bound = max(bound, n - math.ceil(quantile * n) + 1)
    return max(0, min(bound, n))


# -- one run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """The evidence at one look: each test's log likelihood ratio and the boundary it must reach."""

    elapsed: float
    requests: int
    errors: int
    log_lr: dict[Check, float]
    boundary: dict[Check, float]
    phase: Phase

    def crossed(self, test: Check) -> bool:
        return self.log_lr.get(test, 0.0) >= self.boundary.get(test, math.inf)


@dataclass
class _Cumulative:
    requests: int = 0
    errors: int = 0

    def advance(self, snapshot: MetricSnapshot | None) -> tuple[int, int]:
        """The new requests and errors since the last look; windows that shrink (extrapolation) add nothing."""
        if snapshot is None:
            return 0, 0
        requests = max(self.requests, snapshot.requests)
        errors = min(max(self.errors, snapshot.errors), requests)
        new = (requests - self.requests, errors - self.errors)
        self.requests, self.errors = requests, errors
        return new


@dataclass
class SequentialRun:
    """The looks of one step, fed cumulative snapshots (each window runs from the start of the step)."""

    version: str
    thresholds: Thresholds
    analysis: Analysis
    baseline_version: str | None = None
    measurements: list[Measurement] = field(default_factory=list)
    looks: list[Look] = field(default_factory=list)
    errors_in_a_row: int = 0
    source_errors: int = 0

    def __post_init__(self) -> None:
        alpha = 1 - self.analysis.confidence
        others = [Check.P95_CRITICAL, Check.P95_WARN]
        if self.thresholds.latency_p99_ms is not None:
            others += [Check.P99_CRITICAL, Check.P99_WARN]
        self.compares = bool(self.analysis.compare_baseline and self.baseline_version)
        if self.compares:
            self.boundary = {Check.ERROR_RATE: math.log(2 / alpha), Check.BASELINE: math.log(4 / alpha)}
            share = alpha / 4 / len(others)
        else:
            self.boundary = {Check.ERROR_RATE: math.log(2 / alpha)}
            share = alpha / 2 / len(others)
        self.boundary.update({test: math.log(1 / share) for test in others})
        self._canary = _Cumulative()
        self._baseline = _Cumulative()
        self._versus_baseline = _BaselineEvidence()
        self._alarm: Measurement | None = None
        self._warned: Measurement | None = None

    # -- feeding ------------------------------------------------------------------------------------------------

    def add_error(self, message: str, elapsed: float) -> Measurement:
        measurement = source_error(message, elapsed)
        self.measurements.append(measurement)
        self.errors_in_a_row += 1
        self.source_errors += 1
        return measurement

    def add(self, canary: MetricSnapshot | None, baseline: MetricSnapshot | None, elapsed: float) -> Measurement:
        """One look at the counts since the start of the step; returns its measurement (Running until decided)."""
        self.errors_in_a_row = 0
        new_requests, new_errors = self._canary.advance(canary)
        base_requests, base_errors = self._baseline.advance(baseline if self.compares else None)
        if self.compares:
            self._versus_baseline.add(new_requests, new_errors, base_requests, base_errors)
        n, x = self._canary.requests, self._canary.errors
        log_lr = {Check.ERROR_RATE: bernoulli_log_lr(n, x, self.thresholds.error_rate.warn)}
        if self.compares:
            log_lr[Check.BASELINE] = self._versus_baseline.log_lr
        if canary is not None and n > 0:
            for test, tier, share in (
                (Check.P95_CRITICAL, self.thresholds.latency_p95_ms.critical, 0.05),
                (Check.P95_WARN, self.thresholds.latency_p95_ms.warn, 0.05),
                (Check.P99_CRITICAL, getattr(self.thresholds.latency_p99_ms, "critical", None), 0.01),
                (Check.P99_WARN, getattr(self.thresholds.latency_p99_ms, "warn", None), 0.01),
            ):
                if tier is not None and test in self.boundary:
                    log_lr[test] = bernoulli_log_lr(n, slower_than_lower_bound(canary, tier), share)
        phase, reason = self._judge(log_lr, canary, baseline)
        if phase in (Phase.PENDING, Phase.RUNNING) and self._warned is not None:
            phase, reason = Phase.INCONCLUSIVE, self._warned.reason
        look = Look(elapsed, n, x, log_lr, self.boundary, phase)
        self.looks.append(look)
        measurement = Measurement(phase, reason, elapsed, canary, baseline, self._statistics(look))
        self.measurements.append(measurement)
        if phase is Phase.INCONCLUSIVE:
            self._warned = self._warned or measurement
        # A pause waits for the bake's end only while the canary runs above critical: a few more samples then
        # decide between Failed and Inconclusive, and a bad release must not stop at a pause it would outrun.
        below_critical = n > 0 and x / n <= self.thresholds.error_rate.critical
        if self._alarm is None and (phase is Phase.FAILED or (phase is Phase.INCONCLUSIVE and below_critical)):
            self._alarm = measurement
        return measurement

    def _judge(
        self, log_lr: dict[Check, float], canary: MetricSnapshot | None, baseline: MetricSnapshot | None
    ) -> tuple[Phase, str]:
        n, x = self._canary.requests, self._canary.errors
        rate = x / n if n else 0.0
        warn, critical = self.thresholds.error_rate.warn, self.thresholds.error_rate.critical
        confidence = f"{self.analysis.confidence:.4g}"
        findings: list[tuple[Phase, str]] = []
        if log_lr[Check.ERROR_RATE] >= self.boundary[Check.ERROR_RATE]:
            evidence = (
                f"{x} errors in {n} requests to {self.version} ({_percent(rate)}) is conclusive evidence (at "
                f"confidence {confidence}, valid under continuous monitoring) that its error rate is above the "
                f"warn level {_percent(warn)}"
            )
            if rate > critical:
                findings.append((Phase.FAILED, f"{evidence}, and it runs above the critical {_percent(critical)}"))
            else:
                findings.append((Phase.INCONCLUSIVE, f"{evidence} (critical {_percent(critical)}): investigate"))
        if self.compares and log_lr[Check.BASELINE] >= self.boundary[Check.BASELINE]:
            base_n, base_x = self._baseline.requests, self._baseline.errors
            base_rate = base_x / base_n if base_n else 0.0
            if rate - base_rate > warn / 2:
                findings.append(
                    (
                        Phase.INCONCLUSIVE,
                        f"error rate {_percent(rate)} over {n} requests to {self.version} is conclusively worse "
                        f"(at confidence {confidence}) than {self.baseline_version}'s {_percent(base_rate)} over "
                        f"{base_n} requests, and worse by more than half the warn level: investigate",
                    )
                )
        for test, label, tier, phase in (
            (Check.P95_CRITICAL, "p95", self.thresholds.latency_p95_ms, Phase.FAILED),
            (Check.P95_WARN, "p95", self.thresholds.latency_p95_ms, Phase.INCONCLUSIVE),
            (Check.P99_CRITICAL, "p99", self.thresholds.latency_p99_ms, Phase.FAILED),
            (Check.P99_WARN, "p99", self.thresholds.latency_p99_ms, Phase.INCONCLUSIVE),
        ):
            if tier is None or test not in log_lr or log_lr[test] < self.boundary[test]:
                continue
            level = tier.critical if phase is Phase.FAILED else tier.warn
            name = "critical" if phase is Phase.FAILED else "warn level"
            shown = canary.p95_ms if label == "p95" and canary is not None else getattr(canary, "p99_ms", None)
            findings.append(
                (
                    phase,
                    f"{label} latency of {self.version} is conclusively (at confidence {confidence}) above the "
                    f"{name} {_ms(level)}: too many of its {n} requests were slower (window {label} "
                    f"{_ms(shown)})" + ("" if phase is Phase.FAILED else ": investigate"),
                )
            )
        if findings:
            phase = worst(*(found for found, _ in findings))
            return phase, "; ".join(sentence for found, sentence in findings if found == phase)
        needed = max(1, self.analysis.min_requests)
        if n < needed:
            return Phase.PENDING, f"only {n} request(s) to {self.version} so far; {needed} are needed for a pass"
        return (
            Phase.RUNNING,
            f"no evidence against {self.version} yet: {x} errors in {n} requests ({_percent(rate)}), error-rate "
            f"evidence {_evidence(log_lr[Check.ERROR_RATE], self.boundary[Check.ERROR_RATE])}",
        )

    def _statistics(self, look: Look) -> dict[str, Any]:
        return {
            "confidence": self.analysis.confidence,
            "log_lr": {test.value: round(value, 4) for test, value in look.log_lr.items()},
            "boundary": {test.value: round(self.boundary[test], 4) for test in look.log_lr},
        }

    # -- the result ---------------------------------------------------------------------------------------------

    @property
    def decided(self) -> Phase | None:
        """Failed or Inconclusive once a boundary is crossed, Error after too many source errors in a row."""
        if self._alarm is not None:
            return self._alarm.phase
        if self.errors_in_a_row > self.analysis.consecutive_error_limit:
            return Phase.ERROR
        return None

    def counts(self) -> dict[str, int]:
        return {
            "measurements": len(self.measurements),
            "looks": len(self.looks),
            "source_errors": self.source_errors,
            "source_errors_in_a_row": self.errors_in_a_row,
        }

    def outcome(self, *, bake_over: bool = True) -> AnalysisOutcome:
        """The run's result now; before the bake is over only a decided run has one (else phase Running)."""
        if self._alarm is not None:
            return self._ended(self._alarm.phase, self._alarm.reason, self._alarm)
        last = self.measurements[-1] if self.measurements else None
        if self.errors_in_a_row > self.analysis.consecutive_error_limit:
            assert last is not None
            return self._ended(
                Phase.ERROR,
                f"{last.reason}; {self.errors_in_a_row} errors in a row, more than consecutive_error_limit "
                f"{self.analysis.consecutive_error_limit}: the release cannot be judged, so it does not pass",
                last,
            )
        if not bake_over:
            return self._ended(Phase.RUNNING, "the analysis is still running")
        if self._warned is not None:
            return self._ended(Phase.INCONCLUSIVE, self._warned.reason, self._warned)
        judged = next((m for m in reversed(self.measurements) if m.phase is not Phase.ERROR), None)
        needed = max(1, self.analysis.min_requests)
        if judged is None or self._canary.requests < needed:
            seen = self._canary.requests
            reason = (
                f"only {seen} request(s) reached {self.version} during the bake; at least {needed} are needed: "
                "no data is not a pass"
                if judged is not None
                else f"no measurement of {self.version} succeeded ({self.source_errors} metric-source error(s)); "
                "no data is not a pass"
            )
            return self._ended(Phase.INCONCLUSIVE, reason, judged or last)
        # One fixed-sample look at the whole bake for latency regressions too subtle for the percentile bound.
        assert judged.canary is not None
        findings = latency_findings(judged.canary, None, self.thresholds, self.version, None)
        if self.compares and judged.baseline is not None and judged.baseline.requests >= needed:
            findings += latency_findings(
                judged.canary, judged.baseline, self.thresholds, self.version, self.baseline_version, tiers=False
            )
        if findings:
            phase = worst(*(found for found, _ in findings))
            reason = "; ".join(sentence for found, sentence in findings if found == phase)
            return self._ended(phase, f"at the end of the bake: {reason}", judged)
        n, x = self._canary.requests, self._canary.errors
        reason = (
            f"{x} errors in {n} requests to {self.version} ({_percent(x / n)}) over the whole bake: no boundary "
            f"crossed at confidence {self.analysis.confidence:.4g} (error-rate evidence "
            f"{_evidence(self.looks[-1].log_lr[Check.ERROR_RATE], self.boundary[Check.ERROR_RATE])}), p95 "
            f"{_ms(judged.canary.p95_ms)} within the thresholds"
        )
        if self.compares:
            reason += f", no worse than {self.baseline_version}"
        return self._ended(Phase.SUCCESSFUL, reason, judged)

    def _ended(self, phase: Phase, reason: str, basis: Measurement | None = None) -> AnalysisOutcome:
        metrics = basis.numbers() if basis is not None else {}
        metrics["method"] = "sequential"
        metrics.update(self.counts())
        return AnalysisOutcome(phase=phase, reason=reason, metrics=metrics, measurements=list(self.measurements))


def run_sequential(
    source: MetricSource,
    service: str,
    environment: str,
    version: str,
    baseline_version: str | None,
    thresholds: Thresholds,
    analysis: Analysis,
    duration_s: float,
    report_every_s: float,
    *,
    look_every_s: float = DEFAULT_SAMPLE_SECONDS,
    lookback_s: float | None = 0.0,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], object] = time.sleep,  # an Event.wait returns whether it was woken: ignored
    on_measurement: Callable[[Measurement, SequentialRun], None] | None = None,
    on_look: Callable[[Measurement, SequentialRun], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AnalysisOutcome:
    """Look every ``look_every_s`` (the source's own cadence) for ``duration_s``, stopping at the first alarm.

    Blocking. Each window runs from ``lookback_s`` before the start of this call (traffic already served and not
    yet judged, reaching back over the source's time buckets), so the counts are cumulative; the test is valid from
    wherever its data begin. ``lookback_s=None`` means the traffic before this call behaved differently (a flag
    changed), so windows start at the call itself and never reach back. ``on_measurement`` is
    told at most once per ``report_every_s`` (and of the deciding look), so a 15-minute bake does not write
    thousands of events; ``on_look`` hears every look. ``should_stop`` is polled at least every 0.1 s.
    """
    tick = max(0.05, look_every_s)
    reach_back = 0.0 if lookback_s is None else max(0.0, lookback_s) + window_granularity(source)
    run = SequentialRun(version, thresholds, analysis, baseline_version)
    started = clock()
    versions = [version] + ([baseline_version] if baseline_version and baseline_version != version else [])
    next_at = started + min(tick, duration_s)
    reported_at = -math.inf
    while True:
        while (remaining := next_at - clock()) > 0:
            if should_stop():
                return _stopped(run)
            sleep(min(_POLL_SECONDS, remaining))
        if should_stop():
            return _stopped(run)
        elapsed = clock() - started
        try:
            snapshots = source.snapshot(service, environment, versions, max(tick, elapsed + reach_back))
        except Exception as exc:  # any failure of the source is an Error, never a pass
            measurement = run.add_error(str(exc) or type(exc).__name__, elapsed)
        else:
            measurement = run.add(
                snapshots.get(version), snapshots.get(baseline_version) if baseline_version else None, elapsed
            )
        if on_look is not None:
            on_look(measurement, run)
        bake_over = elapsed >= duration_s - 1e-6
        decided = run.decided is not None
        if on_measurement is not None and (decided or bake_over or elapsed - reported_at >= report_every_s - 1e-6):
            reported_at = elapsed
            on_measurement(measurement, run)
        if decided:
            return run.outcome()
        if bake_over:
            return run.outcome(bake_over=True)
        next_at = min(next_at + tick, started + duration_s)


def _stopped(run: SequentialRun) -> AnalysisOutcome:
    outcome = run.outcome(bake_over=False)
    outcome.stopped = True
    return outcome


def _evidence(log_lr: float, boundary: float) -> str:
    return f"{math.exp(min(log_lr, 700)):.3g} of the {math.exp(boundary):.3g} needed"


def _percent(fraction: float) -> str:
    value = fraction * 100
    if value == 0:
        return "0%"
    return f"{value:.3g}%" if value < 10 else f"{value:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
