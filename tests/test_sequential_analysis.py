"""The sequential method, decision by decision, on fixed sample sequences (exact, never timing-dependent).

The likelihood ratios are checked against their defining property first (expectation exactly 1 at the null, below
1 under it), because every guarantee rests on that; then each decision is pinned on a scripted run: the look at
which a bad release fails, a warn-level release pauses, a regression against the baseline pauses, a good one
passes only after the bake, and the loop's cadence on a simulated clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from deploy_mcp.config.schema import Analysis, AnalysisMethod, Thresholds, Tier
from deploy_mcp.core.analysis import Measurement
from deploy_mcp.core.records import Phase
from deploy_mcp.core.sequential import (
    Check,
    SequentialRun,
    bernoulli_log_lr,
    noncentral_hypergeometric_log_pmf,
    run_sequential,
    sample_seconds,
    slower_than_lower_bound,
)
from deploy_mcp.core.target import MetricSnapshot
from deploy_mcp.signals.metrics import LocalRouterMetrics, PrometheusMetrics

NEW, OLD = "2.0.0", "1.0.0"
THRESHOLDS = Thresholds()  # error rate 1% / 5%, p95 500 / 2000 ms
ANALYSIS = Analysis(min_requests=20, bake=3, interval=1, confidence=0.99)


def snap(
    version: str, requests: int, errors: int = 0, p50: float = 3.0, p95: float = 8.0, p99: float | None = None
) -> MetricSnapshot:
    return MetricSnapshot(
        version=version,
        window_seconds=1.0,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        p50_ms=p50 if requests else None,
        p95_ms=p95 if requests else None,
        p99_ms=p99 if requests else None,
    )


def binomial_pmf(n: int, k: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


# -- the likelihood ratios ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 40])
def test_the_error_rate_ratio_has_expectation_one_at_the_null_and_less_below(n: int) -> None:
    def expectation(p: float) -> float:
        return sum(binomial_pmf(n, k, p) * math.exp(bernoulli_log_lr(n, k, 0.01)) for k in range(n + 1))

    assert expectation(0.01) == pytest.approx(1.0, rel=1e-9)
    assert expectation(0.001) < 1.0 and expectation(0.0) < 1.0
    assert expectation(0.05) > 1.0  # and it grows above the null: that is the power


def test_the_ratio_grows_with_errors_and_starts_at_one() -> None:
    assert bernoulli_log_lr(0, 0, 0.01) == 0.0
    values = [bernoulli_log_lr(30, k, 0.01) for k in range(6)]
    assert values == sorted(values) and values[0] < 0 < values[2]


def test_the_noncentral_hypergeometric_law_is_a_law_and_central_at_one() -> None:
    total = sum(math.exp(noncentral_hypergeometric_log_pmf(x, 20, 180, 6, 4.0)) for x in range(7))
    assert total == pytest.approx(1.0, rel=1e-12)
    central = math.comb(20, 2) * math.comb(180, 4) / math.comb(200, 6)
    assert math.exp(noncentral_hypergeometric_log_pmf(2, 20, 180, 6, 1.0)) == pytest.approx(central, rel=1e-12)


def test_slow_requests_are_bounded_from_below_by_the_percentiles() -> None:
    # A p50 above the limit: at least the upper half (ranks 50..100 of 100) was slower.
    assert slower_than_lower_bound(snap(NEW, 100, p50=2500, p95=3000), 2000) == 51
    assert slower_than_lower_bound(snap(NEW, 100, p50=10, p95=3000), 2000) == 6
    assert slower_than_lower_bound(snap(NEW, 100, p50=10, p95=20, p99=2500), 2000) == 2
    assert slower_than_lower_bound(snap(NEW, 100, p50=10, p95=20), 2000) == 0


# -- decisions on fixed sequences ---------------------------------------------------------------------------------


def feed(run: SequentialRun, looks: list[tuple[MetricSnapshot | None, MetricSnapshot | None]]) -> list[Measurement]:
    seen = []
    for index, (canary, baseline) in enumerate(looks, start=1):
        seen.append(run.add(canary, baseline, index * 0.25))
        if run.decided is not None:
            break
    return seen


def test_a_release_failing_one_request_in_five_fails_at_the_fourth_error() -> None:
    run = SequentialRun(NEW, THRESHOLDS, ANALYSIS)
    seen = feed(run, [(snap(NEW, 5 * k, k), None) for k in range(1, 9)])
    # 3 errors in 15 requests falls just short of 1/0.005 = 200 (the error-rate test has half of alpha = 0.01);
    # 4 in 20 is far past it. Before min_requests: evidence does not wait for a sample size.
    assert [m.phase for m in seen] == [Phase.PENDING, Phase.PENDING, Phase.PENDING, Phase.FAILED]
    assert run.looks[2].log_lr[Check.ERROR_RATE] == pytest.approx(5.2956, abs=1e-4)
    assert run.boundary[Check.ERROR_RATE] == pytest.approx(math.log(200))
    outcome = run.outcome()
    assert outcome.phase is Phase.FAILED
    assert "4 errors in 20 requests to 2.0.0 (20.0%)" in outcome.reason and "above the critical 5%" in outcome.reason
    assert outcome.metrics["method"] == "sequential"
    assert (
        outcome.metrics["sequential"]["log_lr"]["error_rate"] > outcome.metrics["sequential"]["boundary"]["error_rate"]
    )


def test_a_lower_confidence_decides_sooner() -> None:
    run = SequentialRun(NEW, THRESHOLDS, Analysis(min_requests=20, confidence=0.95))
    seen = feed(run, [(snap(NEW, 5 * k, k), None) for k in range(1, 9)])
    assert [m.phase for m in seen] == [Phase.PENDING, Phase.PENDING, Phase.FAILED]


def test_a_release_between_warn_and_critical_pauses_instead_of_failing() -> None:
    run = SequentialRun(NEW, THRESHOLDS, ANALYSIS)
    seen = feed(run, [(snap(NEW, 100 * k, 3 * k), None) for k in range(1, 40)])
    assert len(seen) == 6 and seen[-1].phase is Phase.INCONCLUSIVE
    assert "18 errors in 600 requests" in seen[-1].reason and "investigate" in seen[-1].reason
    assert run.outcome().phase is Phase.INCONCLUSIVE


def test_a_release_at_the_baseline_rate_passes_only_when_the_bake_is_over() -> None:
    run = SequentialRun(NEW, THRESHOLDS, ANALYSIS, OLD)
    seen = feed(run, [(snap(NEW, 20 * k, k // 20), snap(OLD, 180 * k, k // 3)) for k in range(1, 41)])
    assert len(seen) == 40 and {m.phase for m in seen} == {Phase.RUNNING}
    assert run.outcome(bake_over=False).phase is Phase.RUNNING
    outcome = run.outcome(bake_over=True)
    assert outcome.phase is Phase.SUCCESSFUL
    assert "2 errors in 800 requests to 2.0.0" in outcome.reason and "no worse than 1.0.0" in outcome.reason


def test_two_percent_against_a_tenth_of_a_percent_is_caught_by_the_baseline_comparison() -> None:
    run = SequentialRun(NEW, THRESHOLDS, ANALYSIS, OLD)
    seen = feed(run, [(snap(NEW, 20 * k, (20 * k) // 50), snap(OLD, 180 * k, (180 * k) // 1000)) for k in range(1, 99)])
    last = run.looks[-1]
    assert len(seen) == 10 and seen[-1].phase is Phase.INCONCLUSIVE
    assert last.crossed(Check.BASELINE) and not last.crossed(Check.ERROR_RATE)  # the comparison, not the threshold
    assert "conclusively worse" in seen[-1].reason and "1.0.0's 0.0556% over 1800 requests" in seen[-1].reason


def test_a_statistically_clear_but_tiny_regression_is_not_worth_a_pause() -> None:
    # 0.3% against 0%: certain with this much traffic, but less than half the warn level apart.
    run = SequentialRun(NEW, THRESHOLDS, ANALYSIS, OLD)
    seen = feed(run, [(snap(NEW, 1000 * k, 3 * k), snap(OLD, 1000 * k, 0)) for k in range(1, 30)])
    assert run.looks[-1].crossed(Check.BASELINE)
    assert {m.phase for m in seen} == {Phase.RUNNING} and run.outcome().phase is Phase.SUCCESSFUL


def test_a_pause_above_critical_keeps_watching_until_the_evidence_fails_it() -> None:
    # The baseline comparison crosses first (2 errors against none in 1000), with the canary at 20%: the run goes
    # on, reports Inconclusive meanwhile, and fails once the error-rate evidence is in.
    run = SequentialRun(NEW, THRESHOLDS, ANALYSIS, OLD)
    seen = feed(run, [(snap(NEW, 5 * k, k), snap(OLD, 500 * k, 0)) for k in range(1, 9)])
    assert [m.phase for m in seen] == [Phase.PENDING, Phase.INCONCLUSIVE, Phase.INCONCLUSIVE, Phase.FAILED]
    assert run.looks[1].crossed(Check.BASELINE) and not run.looks[1].crossed(Check.ERROR_RATE)
    assert run.outcome().phase is Phase.FAILED


def test_no_data_and_too_little_data_are_never_a_pass() -> None:
    empty = SequentialRun(NEW, THRESHOLDS, ANALYSIS)
    feed(empty, [(snap(NEW, 0), None)] * 12)
    assert empty.outcome().phase is Phase.INCONCLUSIVE and "no data is not a pass" in empty.outcome().reason
    thin = SequentialRun(NEW, THRESHOLDS, ANALYSIS)
    feed(thin, [(snap(NEW, k), None) for k in range(1, 13)])  # 12 clean requests, 20 needed
    assert thin.outcome().phase is Phase.INCONCLUSIVE
    assert "only 12 request(s) reached 2.0.0" in thin.outcome().reason
    missing = SequentialRun(NEW, THRESHOLDS, ANALYSIS)
    feed(missing, [(None, None)] * 4)
    assert missing.outcome().phase is Phase.INCONCLUSIVE


def test_source_errors_count_towards_the_limit_and_never_pass() -> None:
    run = SequentialRun(NEW, THRESHOLDS, ANALYSIS)  # consecutive_error_limit 4
    for _ in range(4):
        run.add_error("Prometheus is down", 1.0)
    assert run.decided is None
    run.add(snap(NEW, 30), None, 1.0)  # a good answer resets the streak
    for _ in range(5):
        run.add_error("Prometheus is down", 2.0)
    assert run.decided is Phase.ERROR
    assert "5 errors in a row" in run.outcome().reason
    only_errors = SequentialRun(NEW, THRESHOLDS, ANALYSIS)
    only_errors.add_error("timeout", 1.0)
    assert only_errors.outcome().phase is Phase.INCONCLUSIVE
    assert "no measurement of 2.0.0 succeeded" in only_errors.outcome().reason


def test_a_median_past_the_critical_latency_fails_during_the_bake() -> None:
    run = SequentialRun(NEW, THRESHOLDS, ANALYSIS)
    seen = feed(run, [(snap(NEW, 4 * k, p50=3000, p95=3100), None) for k in range(1, 9)])
    assert seen[-1].phase is Phase.FAILED and len(seen) < 8
    assert "p95 latency of 2.0.0 is conclusively" in seen[-1].reason and "critical 2000 ms" in seen[-1].reason


def test_a_subtle_latency_regression_is_judged_once_at_the_end_of_the_bake() -> None:
    # Only the p95 is slow: the percentile bound (5% slower) is no evidence against "at most 5% slower", so
    # the looks stay Running, and the one fixed-sample check at the end fails it as the interval method would.
    run = SequentialRun(NEW, THRESHOLDS, ANALYSIS)
    seen = feed(run, [(snap(NEW, 30 * k, p50=20, p95=2500), None) for k in range(1, 13)])
    assert {m.phase for m in seen} == {Phase.RUNNING}
    outcome = run.outcome(bake_over=True)
    assert outcome.phase is Phase.FAILED and outcome.reason.startswith("at the end of the bake: p95 latency 2500 ms")


def test_a_p99_tier_is_tested_only_when_configured() -> None:
    plain = SequentialRun(NEW, THRESHOLDS, ANALYSIS)
    with_p99 = SequentialRun(NEW, Thresholds(latency_p99_ms=Tier(warn=800, critical=3000)), ANALYSIS)
    assert Check.P99_CRITICAL not in plain.boundary and Check.P99_CRITICAL in with_p99.boundary
    # alpha is split across more tests, so each boundary is higher.
    assert with_p99.boundary[Check.P95_CRITICAL] > plain.boundary[Check.P95_CRITICAL]


# -- the loop on a simulated clock --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Traffic:
    """Cumulative counts since the start, from a per-second rate: what a growing window of the router reports."""

    def __init__(self, clock: Clock, answer: Callable[[float], dict[str, MetricSnapshot] | Exception]) -> None:
        self.clock = clock
        self.started = clock.now
        self.answer = answer
        self.windows: list[float] = []

    def snapshot(self, service: str, environment: str, versions: list[str], window: float) -> dict:
        self.windows.append(round(window, 3))
        result = self.answer(self.clock.now - self.started)
        if isinstance(result, Exception):
            raise result
        return result


def run_loop(answer: Callable[[float], dict[str, MetricSnapshot] | Exception], **kw: object) -> tuple:
    clock = Clock()
    source = Traffic(clock, answer)
    reported: list[Measurement] = []
    looks: list[Measurement] = []
    outcome = run_sequential(
        source,
        "web",
        "production",
        NEW,
        kw.pop("baseline", OLD),  # type: ignore[arg-type]
        THRESHOLDS,
        ANALYSIS,
        kw.pop("bake", 3.0),  # type: ignore[arg-type]
        1.0,
        look_every_s=0.25,
        sleep=clock.sleep,
        clock=clock,
        on_measurement=lambda m, run: reported.append(m),
        on_look=lambda m, run: looks.append(m),
        **kw,  # type: ignore[arg-type]
    )
    return outcome, source, reported, looks


def per_second(canary_rate: int, every: int = 0) -> Callable[[float], dict[str, MetricSnapshot]]:
    """``canary_rate`` requests a second, every ``every``-th one failing; a clean baseline nine times larger."""

    def answer(elapsed: float) -> dict[str, MetricSnapshot]:
        n = round(canary_rate * elapsed)
        return {NEW: snap(NEW, n, n // every if every else 0), OLD: snap(OLD, 9 * n)}

    return answer


def test_the_loop_looks_at_every_sample_and_reports_once_per_interval() -> None:
    outcome, source, reported, looks = run_loop(per_second(40))
    assert outcome.phase is Phase.SUCCESSFUL
    assert len(looks) == 12  # every 0.25 s of a 3 s bake
    assert source.windows[:4] == [0.25, 0.5, 0.75, 1.0] and source.windows[-1] == 3.0  # growing windows
    assert [round(m.elapsed, 2) for m in reported] == [0.25, 1.25, 2.25, 3.0]  # events once per interval


def test_traffic_served_before_the_analysis_counts_from_its_first_look() -> None:
    # 0.5 s of unjudged traffic (10 requests, 2 errors) before the analysis began: the first window reaches back.
    outcome, source, _, looks = run_loop(
        lambda elapsed: per_second(20, every=5)(elapsed + 0.5), bake=30.0, lookback_s=0.5
    )
    assert source.windows[0] == 0.75
    assert outcome.phase is Phase.FAILED and round(looks[-1].elapsed, 2) == 0.5


def test_after_a_flag_change_windows_never_reach_back() -> None:
    _, source, _, _ = run_loop(per_second(40), lookback_s=None)
    assert source.windows[:2] == [0.25, 0.5]


def test_windows_reach_back_over_the_time_buckets_of_the_source() -> None:
    clock = Clock()
    source = Traffic(clock, per_second(40))
    source.window_granularity_seconds = 1.0  # type: ignore[attr-defined]
    run_sequential(
        source,
        "web",
        "production",
        NEW,
        OLD,
        THRESHOLDS,
        ANALYSIS,
        1.0,
        1.0,
        look_every_s=0.5,
        lookback_s=0.25,
        sleep=clock.sleep,
        clock=clock,
    )
    assert source.windows == [1.75, 2.25]


def test_the_loop_stops_at_the_first_conclusive_look() -> None:
    outcome, _, reported, looks = run_loop(per_second(20, every=5), bake=30.0)
    assert outcome.phase is Phase.FAILED
    assert round(looks[-1].elapsed, 2) == 1.0 and reported[-1] is looks[-1]  # 4 errors in 20 requests


def test_the_loop_retries_source_errors_then_ends_in_error() -> None:
    outcome, _, _, looks = run_loop(lambda elapsed: RuntimeError("connection refused"), bake=30.0)
    assert outcome.phase is Phase.ERROR and len(looks) == 5


def test_should_stop_interrupts_the_loop() -> None:
    clock_reads: list[float] = []

    def stop() -> bool:
        clock_reads.append(1)
        return len(clock_reads) > 6

    outcome, _, _, looks = run_loop(per_second(40), bake=30.0, should_stop=stop)
    assert outcome.stopped and outcome.phase is Phase.RUNNING and len(looks) < 3


# -- configuration and cadence ------------------------------------------------------------------------------------


def test_sequential_is_the_default_and_confidence_is_checked() -> None:
    assert Analysis().method is AnalysisMethod.SEQUENTIAL and Analysis().confidence == 0.95
    assert Analysis(method="interval").method is AnalysisMethod.INTERVAL
    with pytest.raises(ValidationError, match="confidence"):
        Analysis(confidence=1.0)
    with pytest.raises(ValidationError, match="method"):
        Analysis(method="bayesian")


def test_each_source_is_asked_as_often_as_it_has_news() -> None:
    assert sample_seconds(LocalRouterMetrics(object())) == 0.1  # type: ignore[arg-type]
    assert sample_seconds(PrometheusMetrics("http://127.0.0.1:9090")) == 15.0
    from deploy_mcp.config.schema import PrometheusSource

    assert (
        sample_seconds(PrometheusMetrics("http://p:9090", PrometheusSource(url="http://p:9090", scrape_interval="5s")))
        == 5.0
    )
    assert sample_seconds(object()) == 1.0
