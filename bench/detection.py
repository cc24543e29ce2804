"""How fast a bad release is caught, how many users it hurts first, and how often a good one is stopped.

Part 1, live: for each analysis method (sequential and interval, side by side in one run) and each strategy that
judges live traffic (canary at its first step, blue-green after the switch, rolling after
its first batch, feature flag with the flag still off), on the local platform in a temporary project and under
steady load: ship a good release (it must succeed: no false alarm), then a bad one whose instances answer one
request in five with a 500. The load generator notes when it received the first 5xx; the ledger notes when the
runner wrote ``undo_started``. Both are put on the wall clock (the load's offsets are taken from a wall-clock
reading made just before it starts), and the difference is the detection time.

The failed requests users saw are counted from the load generator, from the bad release's start to the end of its
rollback. Target: within one analysis interval plus 2 s, at 200 requests/s.

Part 2, simulated (seconds, no processes): the same analysis loops, run on a simulated clock against generated
per-version request and error counts. False alarms: good canaries (canary and baseline both at 0.1% errors)
through the default canary ramp and analysis settings; how many were rolled back or paused. Regression: a canary
at 2% errors against a 0.1% baseline (below the 5% critical level, above the 1% warn level), 10% of 200 requests/s,
the default 30 s bake: how often, how fast and by which finding each method catches it.

  python bench/detection.py [--rate 200] [--interval 2] [--bake 4] [--strategies canary,rolling]
                            [--methods sequential,interval] [--repeat 3] [--canaries 200] [--no-live] [--check]

(--check exits 1 when a strategy is over its budget or did not roll back, when the sequential method misses its
goals (a mean of at most 4 failed requests on canary, at most half the interval method's elsewhere), or when a
good simulated canary was rolled back.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy_mcp.config.loader import Project, load_project  # noqa: E402
from deploy_mcp.config.schema import Analysis, AnalysisMethod, Thresholds  # noqa: E402
from deploy_mcp.core.analysis import AnalysisOutcome, run_analysis  # noqa: E402
from deploy_mcp.core.plans import build_plan  # noqa: E402
from deploy_mcp.core.records import DeploymentRecord, Phase, Status  # noqa: E402
from deploy_mcp.core.runner import Runner  # noqa: E402
from deploy_mcp.core.sequential import run_sequential  # noqa: E402
from deploy_mcp.core.target import MetricSnapshot, Release  # noqa: E402
from deploy_mcp.ledger import SqliteLedger  # noqa: E402
from deploy_mcp.targets.local.loadgen import LoadResult, run_load  # noqa: E402
from deploy_mcp.targets.local.platform import LocalPlatform, create_platform  # noqa: E402

HELLO = ROOT / "examples" / "hello" / "server.py"
SERVICE = "hello"
STABLE, GOOD, BAD = "1.0.0", "1.1.0", "2.0.0"
STRATEGIES = ("canary", "blue-green", "rolling", "feature-flag")
METHODS = tuple(method.value for method in AnalysisMethod)
SLACK_SECONDS = 2.0
CANARY_GOAL = "at most 4 failed requests on average"
WHERE_CAUGHT = {
    "canary": "at its first step (10%)",
    "blue-green": "after the switch",
    "rolling": "after its first batch",
    "feature-flag": "with the flag off",
}


def environment_name(strategy: str, method: str) -> str:
    return f"{strategy}-{method}"


def write_project(folder: Path, interval: float, bake: float) -> Project:
    environments = "\n".join(
        f"[services.hello.environments.{environment_name(name, method)}]\n"
        f'strategy = "{name}"\n'
        f'analysis = {{ method = "{method}", interval = "{interval:g}s", bake = "{bake:g}s", min_requests = 20 }}\n'
        'scale_down_delay = "1s"\n' + ("steps = [10, 50, 100]\n" if name == "canary" else "")
        for name in STRATEGIES
        for method in METHODS
    )
    config = f"""\
[services.hello]
command = {json.dumps(["{python}", str(HELLO), "--port", "{port}"])}
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]  # "/" fails one time in five in the bad release: that is for the analysis

[services.hello.flag]
name = "new-greeting"

[services.hello.versions."{BAD}"]
env = {{ ERROR_RATE = "0.2" }}

{environments}"""
    (folder / "deploy.toml").write_text(config, encoding="utf-8")
    return load_project(folder / "deploy.toml")


class Load:
    """Open-loop load from a thread, with the wall-clock time its offsets count from."""

    def __init__(self, url: str, rate: float) -> None:
        self.url = url
        self.rate = rate
        self.wall_start = 0.0
        self.result: LoadResult | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="load", daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        self.wall_start = time.time()  # run_load reads its own clock microseconds later, before any await
        self.result = await run_load(self.url, concurrency=16, duration=None, rate=self.rate, stop=self._stop)

    def start(self) -> Load:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> LoadResult:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert self.result is not None, "the load generator did not finish"
        return self.result


@dataclass
class Outcome:
    strategy: str
    method: str
    good: DeploymentRecord
    bad: DeploymentRecord
    detection: float | None  # seconds from the first 5xx a user saw to undo_started
    verdict_after: float | None  # seconds from the first 5xx to the Failed verdict
    failures_before: int  # failed requests before the bad release (must be 0)
    failures_during: int
    requests: int


def measure(
    runner: Runner, target: LocalPlatform, ledger: SqliteLedger, strategy: str, method: str, rate: float
) -> Outcome:
    project = runner.ctx.project
    environment = environment_name(strategy, method)
    release = Release.resolve(SERVICE, project.config.services[SERVICE], STABLE)
    target.workload.start_version(SERVICE, environment, release, 2)
    target.router.set_weights(SERVICE, environment, {STABLE: 100})
    load = Load(target.endpoint(SERVICE, environment).rstrip("/") + "/", rate).start()
    try:
        good = deploy(runner, environment, GOOD, STABLE)
        bad_started = time.time()
        bad = deploy(runner, environment, BAD, GOOD)
    finally:
        result = load.stop()
        target.stop(SERVICE, environment, drain_timeout=0.5)  # the next repeat starts from the stable version again
    first_bad = next(
        (load.wall_start + offset for offset, status in result.failures_at if load.wall_start + offset >= bad_started),
        None,
    )
    events = ledger.events(bad.id)
    undo = next((e.at.timestamp() for e in events if e.kind == "undo_started"), None)
    verdict = next((e.at.timestamp() for e in events if e.kind == "verdict" and "Failed" in e.message), None)
    before = sum(1 for offset, _ in result.failures_at if load.wall_start + offset < bad_started)
    return Outcome(
        strategy=strategy,
        method=method,
        good=good,
        bad=bad,
        detection=undo - first_bad if undo is not None and first_bad is not None else None,
        verdict_after=verdict - first_bad if verdict is not None and first_bad is not None else None,
        failures_before=before,
        failures_during=result.failures - before,
        requests=result.requests,
    )


def deploy(runner: Runner, environment: str, version: str, current: str) -> DeploymentRecord:
    plan = build_plan(runner.ctx.project.config, SERVICE, version, environment, current_version=current)
    record = runner.start(plan, deployed_by="bench")
    record = runner.wait(record.id, timeout=300)
    if record.status is Status.PAUSED:  # a warn-level verdict waits for a human; here that is a miss
        runner.abort(record.id, "bench: paused instead of deciding")
        record = runner.wait(record.id, timeout=120)
    return record


# -- part 2: simulated canaries --------------------------------------------------------------------------------

SIM_TICK = 0.25
"""Seconds per generated sample; the sequential method looks once per tick (as at the local router's cadence)."""


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class SimulatedTraffic:
    """A metric source over generated traffic: per tick, each request goes to the canary with its share and fails
    with its version's error rate. Windows sum whole ticks, as the router sums its per-second slots."""

    def __init__(
        self, clock: SimulatedClock, rng: random.Random, rate: float, share: float, canary: float, baseline: float
    ) -> None:
        self.clock = clock
        self.rng = rng
        self.per_tick = round(rate * SIM_TICK)
        self.share, self.rates = share, {"canary": canary, "baseline": baseline}
        self.ticks: list[tuple[int, int, int, int]] = []  # canary requests, errors, baseline requests, errors

    def _generate_until(self, now: float) -> None:
        while len(self.ticks) * SIM_TICK < now - 1e-9:
            n = x = m = y = 0
            for _ in range(self.per_tick):
                if self.rng.random() < self.share:
                    n += 1
                    x += self.rng.random() < self.rates["canary"]
                else:
                    m += 1
                    y += self.rng.random() < self.rates["baseline"]
            self.ticks.append((n, x, m, y))

    def snapshot(
        self, service: str, environment: str, versions: list[str], window_seconds: float
    ) -> dict[str, MetricSnapshot]:
        self._generate_until(self.clock.now)
        last = len(self.ticks)
        first = max(0, last - round(window_seconds / SIM_TICK))
        sums = [sum(tick[i] for tick in self.ticks[first:last]) for i in range(4)]
        numbers = {versions[0]: (sums[0], sums[1])}
        if len(versions) > 1:
            numbers[versions[1]] = (sums[2], sums[3])
        return {
            version: MetricSnapshot(
                version=version,
                window_seconds=window_seconds,
                requests=n,
                errors=x,
                error_rate=x / n if n else 0.0,
                p50_ms=3.0 if n else None,
                p95_ms=8.0 if n else None,
                p99_ms=12.0 if n else None,
            )
            for version, (n, x) in numbers.items()
        }


def simulate_step(
    method: str, rng: random.Random, share: float, canary: float, baseline: float, rate: float, analysis: Analysis
) -> AnalysisOutcome:
    """One analysis step of a canary at ``share`` of ``rate`` requests/s, through the real analysis loop."""
    clock = SimulatedClock()
    source = SimulatedTraffic(clock, rng, rate, share, canary, baseline)
    has_baseline = share < 1
    arguments = (source, SERVICE, "sim", "new", "old" if has_baseline else None, Thresholds(), analysis)
    if method == AnalysisMethod.SEQUENTIAL:
        return run_sequential(
            *arguments, analysis.bake, analysis.interval, look_every_s=SIM_TICK, sleep=clock.sleep, clock=clock
        )
    return run_analysis(*arguments, analysis.bake, analysis.interval, sleep=clock.sleep, clock=clock)


@dataclass
class Simulated:
    method: str
    runs: int
    rolled_back: int
    paused: int
    caught_at: list[float]


def simulate_good_canaries(method: str, runs: int, rate: float, error_rate: float, seed: int) -> Simulated:
    """Good canaries through the default ramp (5, 25, 50, 100%) with the default analysis settings."""
    rng = random.Random(seed)
    analysis = Analysis(method=AnalysisMethod(method))
    rolled_back = paused = 0
    for _ in range(runs):
        for weight in (5, 25, 50, 100):
            outcome = simulate_step(method, rng, weight / 100, error_rate, error_rate, rate, analysis)
            if outcome.phase is not Phase.SUCCESSFUL:
                rolled_back += outcome.phase in (Phase.FAILED, Phase.ERROR)
                paused += outcome.phase is Phase.INCONCLUSIVE
                break
    return Simulated(method, runs, rolled_back, paused, [])


def simulate_regression(method: str, runs: int, rate: float, seed: int) -> Simulated:
    """A 2% error canary against a 0.1% baseline, at 10% of the traffic, default analysis settings (30 s bake)."""
    rng = random.Random(seed)
    analysis = Analysis(method=AnalysisMethod(method))
    caught: list[float] = []
    rolled_back = paused = 0
    for _ in range(runs):
        outcome = simulate_step(method, rng, 0.10, 0.02, 0.001, rate, analysis)
        if outcome.phase is not Phase.SUCCESSFUL:
            rolled_back += outcome.phase is Phase.FAILED
            paused += outcome.phase is Phase.INCONCLUSIVE
            caught.append(outcome.measurements[-1].elapsed)
    return Simulated(method, runs, rolled_back, paused, caught)


def report_simulation(methods: list[str], runs: int, rate: float) -> bool:
    """Print the simulated false alarms and the 2% regression; True when no good canary was stopped."""
    clean = True
    print(f"\nSimulated, {rate:g} requests/s, default analysis settings (bake 30 s, interval 10 s, min_requests 50):")
    print(f"{'method':12}{'good canaries (0.1%)':>22}{'rolled back':>13}{'paused':>8}{'false-alarm rate':>18}")
    for method in methods:
        good = simulate_good_canaries(method, runs, rate, 0.001, seed=15)
        clean &= good.rolled_back == 0
        stopped = good.rolled_back + good.paused
        rate_text = f"{good.rolled_back / good.runs:.2%} rolled back, {stopped / good.runs:.2%} stopped"
        print(f"{method:12}{good.runs:>22}{good.rolled_back:>13}{good.paused:>8}  {rate_text}")
    print(
        f"\n{'method':12}{'2% vs 0.1% baseline':>22}{'caught':>9}{'paused':>8}{'failed':>8}{'median s':>10}"
        f"{'90th s':>8}"
    )
    for method in methods:
        found = simulate_regression(method, runs, rate, seed=2)
        median = f"{statistics.median(found.caught_at):.2f}" if found.caught_at else "-"
        ninetieth = f"{sorted(found.caught_at)[int(0.9 * (len(found.caught_at) - 1))]:.2f}" if found.caught_at else "-"
        caught = len(found.caught_at)
        print(
            f"{method:12}{found.runs:>22}{caught / found.runs:>9.0%}{found.paused:>8}{found.rolled_back:>8}"
            f"{median:>10}{ninetieth:>8}"
        )
    return clean


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--interval", type=float, default=2.0, help="analysis interval in seconds (default 2)")
    parser.add_argument("--bake", type=float, default=4.0, help="analysis length per step in seconds (default 4)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated subset to measure")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated analysis methods to compare")
    parser.add_argument("--canaries", type=int, default=200, help="simulated good canaries per method (default 200)")
    parser.add_argument("--repeat", type=int, default=1, help="live runs per strategy and method (default 1)")
    parser.add_argument("--no-live", action="store_true", help="only the simulation (seconds, no processes)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a strategy misses its budget")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(STRATEGIES))
    if unknown:
        parser.error(f"--strategies: unknown {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    if sorted(set(methods) - set(METHODS)):
        parser.error(f"--methods: choose from {', '.join(METHODS)}")
    missed = False if args.no_live else run_live(args, chosen, methods)
    clean = report_simulation(methods, args.canaries, args.rate)
    return 1 if args.check and (missed or not clean) else 0


def run_live(args: argparse.Namespace, chosen: list[str], methods: list[str]) -> bool:
    """Part 1; True when a strategy missed its budget or did not roll back."""
    budget = args.interval + SLACK_SECONDS
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="deploy-mcp-detection-") as folder:
        project = write_project(Path(folder), args.interval, args.bake)
        target = create_platform(project, health_interval=0.5)
        ledger = SqliteLedger(project.state_dir / "ledger.db")
        runner = Runner(project, ledger, target, holder="bench/detection.py", drain_timeout=2.0)
        print(
            f"{args.rate:g} requests/s, analysis every {args.interval:g} s for {args.bake:g} s per step, bad release "
            f"fails 20% of requests; budget {args.interval:g} + {SLACK_SECONDS:g} = {budget:g} s"
        )
        try:
            for repeat in range(1, args.repeat + 1):
                for strategy in chosen:
                    for method in methods:  # side by side: each strategy's two methods run back to back
                        outcome = measure(runner, target, ledger, strategy, method, args.rate)
                        outcomes.append(outcome)
                        print(
                            f"  run {repeat}, {strategy} ({method}): good {outcome.good.status.value}, bad "
                            f"{outcome.bad.status.value}, {outcome.failures_during} failed requests",
                            flush=True,
                        )
        finally:
            runner.close()
            for service, environment in target.environments():
                target.stop(service, environment, drain_timeout=0.5)
            ledger.close()

    print()
    print(
        f"{'strategy':14}{'method':12}{'caught':24}{'failed reqs':>12}{'detection s':>12}{'verdict s':>11}"
        f"{'budget s':>10}  result"
    )
    missed = False
    for outcome in outcomes:
        rolled_back = outcome.good.status is Status.SUCCEEDED and outcome.bad.status is Status.ROLLED_BACK
        ok = rolled_back and outcome.detection is not None and outcome.detection <= budget
        missed |= not ok
        detection = f"{outcome.detection:.2f}" if outcome.detection is not None else "-"
        verdict = f"{outcome.verdict_after:.2f}" if outcome.verdict_after is not None else "-"
        why = "ok" if ok else ("over" if rolled_back and outcome.detection is not None else "NOT ROLLED BACK")
        print(
            f"{outcome.strategy:14}{outcome.method:12}{WHERE_CAUGHT[outcome.strategy]:24}{outcome.failures_during:>12}"
            f"{detection:>12}{verdict:>11}{budget:>10.2f}  {why}  (of {outcome.requests} requests; "
            f"{outcome.failures_before} failed before the bad release)"
        )
        if not rolled_back:
            print(f"    good: {outcome.good.status.value} {outcome.good.reason or ''}")
            print(f"    bad: {outcome.bad.status.value} {outcome.bad.reason or ''}")
    print(f"\nMeans over {args.repeat} run(s):")
    print(f"{'strategy':14}{'method':12}{'failed reqs':>12}{'max':>6}{'detection s':>13}{'verdict s':>11}")
    means: dict[tuple[str, str], float] = {}
    for strategy in chosen:
        for method in methods:
            runs = [o for o in outcomes if o.strategy == strategy and o.method == method]
            failed = [o.failures_during for o in runs]
            detection = [o.detection for o in runs if o.detection is not None]
            verdict = [o.verdict_after for o in runs if o.verdict_after is not None]
            means[strategy, method] = statistics.mean(failed)
            print(
                f"{strategy:14}{method:12}{statistics.mean(failed):>12.1f}{max(failed):>6}"
                f"{statistics.mean(detection) if detection else math.nan:>13.2f}"
                f"{statistics.mean(verdict) if verdict else math.nan:>11.2f}"
            )
        if (strategy, "sequential") in means and means.get((strategy, "interval")):
            ratio = means[strategy, "sequential"] / means[strategy, "interval"]
            goal = CANARY_GOAL if strategy == "canary" else "at most 0.5x"
            met = means[strategy, "sequential"] <= 4 if strategy == "canary" else ratio <= 0.5
            missed |= not met
            print(
                f"{'':14}sequential / interval failed requests: {ratio:.2f}x (goal: {goal}: "
                f"{'met' if met else 'MISSED'})"
            )
    return missed


if __name__ == "__main__":
    sys.exit(main())
