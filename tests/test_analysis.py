"""The analysis rules, one by one: thresholds, sample size, baseline, limits, and the measuring loop.

Pure functions of numbers, so the tests feed numbers; the loop runs on a simulated clock with a metric source
that replays scripted windows, so a 30 s bake takes microseconds and every boundary is exact.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from deploy_mcp.config.schema import Analysis, Thresholds, Tier
from deploy_mcp.core.analysis import AnalysisRun, Measurement, judge, run_analysis, source_error, worst
from deploy_mcp.core.records import Phase
from deploy_mcp.core.target import MetricSnapshot

THRESHOLDS = Thresholds()  # the skill's: error rate 1% / 5%, p95 500 / 2000 ms
ANALYSIS = Analysis(interval=1, bake=3, min_requests=20)


def snap(
    version: str, requests: int, errors: int = 0, p95: float | None = 5.0, p99: float | None = None
) -> MetricSnapshot:
    return MetricSnapshot(
        version=version,
        window_seconds=1.0,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        p95_ms=p95 if requests else None,
        p99_ms=p99,
    )


def canary(requests: int, errors: int = 0, p95: float | None = 5.0, **kw: object) -> Measurement:
    return judge(
        snap("2.0.0", requests, errors, p95),
        kw.get("baseline"),  # type: ignore[arg-type]
        kw.get("thresholds", THRESHOLDS),  # type: ignore[arg-type]
        kw.get("analysis", ANALYSIS),  # type: ignore[arg-type]
        version="2.0.0",
        baseline_version="1.0.0" if kw.get("baseline") is not None else None,
    )


# -- one measurement ---------------------------------------------------------------------------------------------


def test_phases_are_ordered_like_argo() -> None:
    assert worst(Phase.SUCCESSFUL, Phase.INCONCLUSIVE) is Phase.INCONCLUSIVE
    assert worst(Phase.ERROR, Phase.INCONCLUSIVE) is Phase.ERROR
    assert worst(Phase.FAILED, Phase.ERROR, Phase.PENDING) is Phase.FAILED
    assert worst(Phase.RUNNING, Phase.SUCCESSFUL) is Phase.RUNNING


def test_no_data_is_not_a_pass() -> None:
    missing = judge(None, None, THRESHOLDS, ANALYSIS, version="2.0.0")
    assert missing.phase is Phase.PENDING
    empty = canary(0)
    assert empty.phase is Phase.PENDING and "only 0 request(s) to 2.0.0" in empty.reason


def test_a_small_sample_decides_nothing() -> None:
    # 1 error in 19 requests reads as 5.3%, above critical: noise on a tiny sample, not a verdict.
    small = canary(19, errors=1)
    assert small.phase is Phase.PENDING
    assert "only 19 request(s)" in small.reason and "20 are needed" in small.reason


def test_min_requests_zero_still_needs_one_request() -> None:
    assert canary(0, analysis=Analysis(min_requests=0)).phase is Phase.PENDING
    assert canary(1, analysis=Analysis(min_requests=0)).phase is Phase.SUCCESSFUL


def test_errors_that_already_sink_the_minimum_sample_fail_at_once() -> None:
    # 2 errors: even if the next 10 requests succeed, 2/20 = 10% > 5%.
    early = canary(10, errors=2)
    assert early.phase is Phase.FAILED
    assert "2 errors in the first 10 requests to 2.0.0" in early.reason and "10.0%" in early.reason
    # 1 error: 1/20 = 5% is not above 5%, so wait for more.
    assert canary(10, errors=1).phase is Phase.PENDING


def test_critical_error_rate_fails_with_the_numbers() -> None:
    failed = canary(187, errors=40)
    assert failed.phase is Phase.FAILED
    assert failed.reason == "error rate 21.4% over 187 requests to 2.0.0 is above the critical 5%"
    assert failed.numbers()["requests"] == 187 and failed.numbers()["errors"] == 40


def test_warn_error_rate_is_inconclusive() -> None:
    warned = canary(1000, errors=20)
    assert warned.phase is Phase.INCONCLUSIVE
    assert "error rate 2% over 1000 requests to 2.0.0 is above the warn level 1% (critical 5%)" in warned.reason


def test_exactly_at_a_threshold_passes() -> None:
    assert canary(100, errors=1).phase is Phase.SUCCESSFUL  # 1% is not above 1%
    assert canary(100, errors=5).phase is Phase.INCONCLUSIVE  # 5% is not above 5%
    assert canary(100, p95=2000).phase is Phase.INCONCLUSIVE


def test_latency_tiers() -> None:
    slow = canary(100, p95=3012)
    assert slow.phase is Phase.FAILED
    assert slow.reason == "p95 latency 3012 ms over 100 requests to 2.0.0 is above the critical 2000 ms"
    sluggish = canary(100, p95=700)
    assert sluggish.phase is Phase.INCONCLUSIVE and "above the warn level 500 ms" in sluggish.reason


def test_p99_counts_only_when_configured() -> None:
    tail = MetricSnapshot(version="2.0.0", window_seconds=1, requests=100, p95_ms=5, p99_ms=900)
    assert judge(tail, None, THRESHOLDS, ANALYSIS, version="2.0.0").phase is Phase.SUCCESSFUL
    strict = Thresholds(latency_p99_ms=Tier(warn=300, critical=800))
    judged = judge(tail, None, strict, ANALYSIS, version="2.0.0")
    assert judged.phase is Phase.FAILED and "p99 latency 900 ms" in judged.reason


def test_the_worst_finding_wins_and_names_itself() -> None:
    both = canary(200, errors=20, p95=700)  # 10% errors (critical) and p95 700 ms (warn)
    assert both.phase is Phase.FAILED
    assert "error rate 10.0%" in both.reason and "p95" not in both.reason


def test_a_clean_sample_passes_with_its_numbers() -> None:
    good = canary(250, errors=1, p95=12.5)
    assert good.phase is Phase.SUCCESSFUL
    assert "error rate 0.4% over 250 requests to 2.0.0 and p95 latency 12 ms" in good.reason


# -- against the baseline ----------------------------------------------------------------------------------------


def test_error_rate_clearly_worse_than_baseline_is_inconclusive() -> None:
    # 0.8% is under the warn level, but the stable version has none in 20000 requests: investigate.
    judged = canary(10_000, errors=80, baseline=snap("1.0.0", 20_000, errors=0))
    assert judged.phase is Phase.INCONCLUSIVE
    assert "worse than 1.0.0's 0% over 20000 requests" in judged.reason


def test_a_difference_within_noise_is_not_a_regression() -> None:
    # 0.6% vs 0.3% on 1000 requests each: well inside 3 standard errors and under half the warn level.
    judged = canary(1000, errors=6, baseline=snap("1.0.0", 1000, errors=3))
    assert judged.phase is Phase.SUCCESSFUL and "no worse than 1.0.0" in judged.reason


def test_latency_twice_the_baseline_is_inconclusive() -> None:
    judged = canary(500, p95=130, baseline=snap("1.0.0", 5000, p95=40))
    assert judged.phase is Phase.INCONCLUSIVE
    assert "p95 latency 130 ms of 2.0.0 is more than 2x 1.0.0's 40 ms" in judged.reason


def test_millisecond_latencies_doubling_is_noise() -> None:
    # 9 ms vs 3 ms is 3x, but 6 ms slower is under a tenth of the 500 ms warn level.
    assert canary(500, p95=9, baseline=snap("1.0.0", 5000, p95=3)).phase is Phase.SUCCESSFUL


def test_a_baseline_without_enough_requests_is_ignored() -> None:
    assert canary(500, p95=130, baseline=snap("1.0.0", 10, p95=40)).phase is Phase.SUCCESSFUL


def test_baseline_comparison_can_be_switched_off() -> None:
    off = Analysis(interval=1, bake=3, min_requests=20, compare_baseline=False)
    assert canary(500, p95=130, baseline=snap("1.0.0", 5000, p95=40), analysis=off).phase is Phase.SUCCESSFUL


def test_a_baseline_comparison_never_fails_on_its_own() -> None:
    judged = canary(1000, errors=40, baseline=snap("1.0.0", 1000, errors=0))  # 4%: warn, far worse than 0%
    assert judged.phase is Phase.INCONCLUSIVE


# -- the run and its limits --------------------------------------------------------------------------------------


def run_of(*phases: Phase, analysis: Analysis = ANALYSIS) -> AnalysisRun:
    run = AnalysisRun("2.0.0", THRESHOLDS, analysis)
    for phase in phases:
        if phase is Phase.ERROR:
            run.add(source_error("connection refused"))
        else:
            run.add(Measurement(phase, f"a {phase.value} measurement", canary=snap("2.0.0", 100)))
    return run


def test_one_failure_fails_by_default() -> None:
    run = run_of(Phase.SUCCESSFUL, Phase.FAILED)
    assert run.decided is Phase.FAILED
    outcome = run.outcome(bake_over=False)
    assert outcome.phase is Phase.FAILED and outcome.reason == "a Failed measurement"
    assert outcome.metrics["failed"] == 1 and outcome.metrics["measurements"] == 2


def test_failure_limit_is_strict() -> None:
    limited = Analysis(interval=1, bake=3, min_requests=20, failure_limit=1)
    assert run_of(Phase.FAILED, analysis=limited).decided is None
    two = run_of(Phase.FAILED, Phase.SUCCESSFUL, Phase.FAILED, analysis=limited)
    assert two.decided is Phase.FAILED
    assert "2 failed measurements, more than failure_limit 1" in two.outcome().reason


def test_inconclusive_limit() -> None:
    assert run_of(Phase.INCONCLUSIVE).decided is Phase.INCONCLUSIVE
    tolerant = Analysis(interval=1, bake=3, min_requests=20, inconclusive_limit=2)
    run = run_of(Phase.INCONCLUSIVE, Phase.INCONCLUSIVE, Phase.SUCCESSFUL, analysis=tolerant)
    assert run.decided is None
    assert run.outcome(bake_over=True).phase is Phase.SUCCESSFUL
    tolerated = run_of(Phase.SUCCESSFUL, Phase.INCONCLUSIVE, analysis=tolerant).outcome(bake_over=True)
    assert tolerated.phase is Phase.SUCCESSFUL and "tolerated" in tolerated.reason


def test_errors_count_only_in_a_row_and_are_never_measurements() -> None:
    four = run_of(*[Phase.ERROR] * 4)
    assert four.decided is None and four.counts()["measurements"] == 4 and four.successful == 0
    reset = run_of(*[Phase.ERROR] * 4, Phase.SUCCESSFUL, *[Phase.ERROR] * 4)
    assert reset.decided is None and reset.errors == 8 and reset.errors_in_a_row == 4
    five = run_of(*[Phase.ERROR] * 5)
    assert five.decided is Phase.ERROR
    reason = five.outcome().reason
    assert "connection refused" in reason and "5 errors in a row, more than consecutive_error_limit 4" in reason


def test_failed_outranks_error_and_inconclusive() -> None:
    tolerant = Analysis(interval=1, bake=3, min_requests=20, consecutive_error_limit=0)
    run = run_of(Phase.INCONCLUSIVE, Phase.FAILED, Phase.ERROR, analysis=tolerant)
    assert run.decided is Phase.FAILED


def test_bake_over_without_a_sufficient_sample_is_inconclusive() -> None:
    run = AnalysisRun("2.0.0", THRESHOLDS, ANALYSIS)
    run.add(judge(snap("2.0.0", 7), None, THRESHOLDS, ANALYSIS, version="2.0.0", elapsed=3.0))
    assert run.decided is None
    outcome = run.outcome(bake_over=True)
    assert outcome.phase is Phase.INCONCLUSIVE
    assert outcome.reason == (
        "only 7 request(s) reached 2.0.0 in 3 s of analysis; at least 20 are needed: no data is not a pass"
    )


def test_bake_over_with_only_source_errors_is_not_a_pass() -> None:
    outcome = run_of(Phase.ERROR, Phase.ERROR).outcome(bake_over=True)
    assert outcome.phase is Phase.INCONCLUSIVE
    assert "2 metric-source error(s)" in outcome.reason and "no data is not a pass" in outcome.reason


def test_bake_over_with_a_clean_last_window_passes() -> None:
    outcome = run_of(Phase.PENDING, Phase.SUCCESSFUL, Phase.ERROR).outcome(bake_over=True)
    assert outcome.phase is Phase.SUCCESSFUL and outcome.passed
    assert outcome.metrics["requests"] == 100


# -- the measuring loop ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Replay:
    """A metric source that answers from a script indexed by the call number, recording the windows asked."""

    def __init__(self, clock: Clock, answer: Callable[[int, float], dict[str, MetricSnapshot] | Exception]) -> None:
        self.clock = clock
        self.answer = answer
        self.calls: list[tuple[float, float, list[str]]] = []

    def snapshot(
        self, service: str, environment: str, versions: list[str], window_seconds: float
    ) -> dict[str, MetricSnapshot]:
        self.calls.append((self.clock.now, window_seconds, versions))
        result = self.answer(len(self.calls), window_seconds)
        if isinstance(result, Exception):
            raise result
        return result


def loop(answer: Callable[[int, float], dict[str, MetricSnapshot] | Exception], **kw: object) -> tuple:
    clock = Clock()
    source = Replay(clock, answer)
    seen: list[Measurement] = []
    analysis = kw.pop("analysis", ANALYSIS)
    outcome = run_analysis(
        source,
        "web",
        "production",
        "2.0.0",
        kw.pop("baseline_version", "1.0.0"),
        THRESHOLDS,
        analysis,  # type: ignore[arg-type]
        kw.pop("duration", 3.0),  # type: ignore[arg-type]
        kw.pop("interval", 1.0),  # type: ignore[arg-type]
        sleep=clock.sleep,
        clock=clock,
        on_measurement=lambda m, run: seen.append(m),
        **kw,  # type: ignore[arg-type]
    )
    return outcome, source, seen, clock


def steady(rate_per_second: int, error_share: float = 0.0, p95: float = 5.0) -> Callable:
    def answer(call: int, window: float) -> dict[str, MetricSnapshot]:
        requests = int(rate_per_second * window)
        return {
            "2.0.0": snap("2.0.0", requests, int(requests * error_share), p95),
            "1.0.0": snap("1.0.0", requests * 10, 0, 5.0),
        }

    return answer


def test_a_good_version_passes_when_the_bake_ends() -> None:
    outcome, source, seen, _ = loop(steady(50))
    assert outcome.phase is Phase.SUCCESSFUL
    assert [round(at - 1000.0, 3) for at, _, _ in source.calls] == [1.0, 2.0, 3.0]
    # Windows grow from the start of the step, and the baseline is measured alongside.
    assert [round(window, 3) for _, window, _ in source.calls] == [1.0, 2.0, 3.0]
    assert source.calls[0][2] == ["2.0.0", "1.0.0"]
    assert len(seen) == 3 and outcome.metrics["requests"] == 150


def test_a_bad_version_is_caught_at_the_first_sufficient_measurement() -> None:
    outcome, source, _, clock = loop(steady(50, error_share=0.2), duration=30.0)
    assert outcome.phase is Phase.FAILED
    assert len(source.calls) == 1 and clock.now - 1000.0 == pytest.approx(1.0)
    assert "error rate 20.0% over 50 requests to 2.0.0 is above the critical 5%" in outcome.reason


def test_a_thin_canary_waits_for_its_sample_then_passes() -> None:
    outcome, _, seen, _ = loop(steady(5))  # 5, 10, 15 requests: never 20
    assert [m.phase for m in seen] == [Phase.PENDING] * 3
    assert outcome.phase is Phase.INCONCLUSIVE and "only 15 request(s) reached 2.0.0" in outcome.reason


def test_source_errors_are_retried_then_end_in_error() -> None:
    outcome, source, _, _ = loop(lambda call, window: RuntimeError("prometheus is down"), duration=30.0)
    assert outcome.phase is Phase.ERROR and len(source.calls) == 5
    assert "prometheus is down" in outcome.reason


def test_a_passing_run_survives_a_few_source_errors() -> None:
    good = steady(50)
    outcome, *_ = loop(lambda call, window: RuntimeError("blip") if call in (1, 2) else good(call, window))
    assert outcome.phase is Phase.SUCCESSFUL and outcome.metrics["source_errors"] == 2
    assert outcome.metrics["errors"] == 0  # the HTTP errors of the version, not the source's failures


def test_should_stop_ends_the_wait_promptly() -> None:
    polls = {"n": 0}

    def stop() -> bool:
        polls["n"] += 1
        return polls["n"] > 15  # after about 1.5 s of 0.1 s polls

    outcome, source, _, clock = loop(steady(50), duration=30.0, should_stop=stop)
    assert outcome.stopped and outcome.phase is Phase.RUNNING
    assert len(source.calls) == 1 and clock.now - 1000.0 < 2.0


def test_a_bake_shorter_than_the_interval_measures_once_at_its_end() -> None:
    outcome, source, _, _ = loop(steady(50), duration=0.5, interval=10.0)
    assert outcome.phase is Phase.SUCCESSFUL
    assert len(source.calls) == 1 and source.calls[0][0] - 1000.0 == pytest.approx(0.5)


def test_no_baseline_means_one_version_asked() -> None:
    _, source, _, _ = loop(steady(50), baseline_version=None)
    assert source.calls[0][2] == ["2.0.0"]
