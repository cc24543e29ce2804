"""How fast a bad release is caught: from the first failed request a user sees to the moment the rollback starts.

For each strategy that judges live traffic (canary at its first step, blue-green after the switch, rolling after
its first batch, feature flag with the flag still off), on the local platform in a temporary project and under
steady load: ship a good release (it must succeed: no false alarm), then a bad one whose instances answer one
request in five with a 500. The load generator notes when it received the first 5xx; the ledger notes when the
runner wrote ``undo_started``. Both are put on the wall clock (the load's offsets are taken from a wall-clock
reading made just before it starts), and the difference is the detection time.

Target: within one analysis interval plus 2 s, at 200 requests/s. Run from the repository root:

  python bench/detection.py [--rate 200] [--interval 2] [--bake 4] [--strategies canary,rolling] [--check]

(--check exits 1 when a strategy is over its budget or did not roll back.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy_mcp.config.loader import Project, load_project  # noqa: E402
from deploy_mcp.core.plans import build_plan  # noqa: E402
from deploy_mcp.core.records import DeploymentRecord, Status  # noqa: E402
from deploy_mcp.core.runner import Runner  # noqa: E402
from deploy_mcp.core.target import Release  # noqa: E402
from deploy_mcp.ledger import SqliteLedger  # noqa: E402
from deploy_mcp.targets.local.loadgen import LoadResult, run_load  # noqa: E402
from deploy_mcp.targets.local.platform import LocalPlatform, create_platform  # noqa: E402

HELLO = ROOT / "examples" / "hello" / "server.py"
SERVICE = "hello"
STABLE, GOOD, BAD = "1.0.0", "1.1.0", "2.0.0"
STRATEGIES = ("canary", "blue-green", "rolling", "feature-flag")
SLACK_SECONDS = 2.0
WHERE_CAUGHT = {
    "canary": "at its first step (10%)",
    "blue-green": "after the switch",
    "rolling": "after its first batch",
    "feature-flag": "with the flag off",
}


def write_project(folder: Path, interval: float, bake: float) -> Project:
    analysis = f'{{ interval = "{interval:g}s", bake = "{bake:g}s", min_requests = 20 }}'
    environments = "\n".join(
        f'[services.hello.environments.{name}]\nstrategy = "{name}"\nanalysis = {analysis}\nscale_down_delay = "1s"\n'
        + ("steps = [10, 50, 100]\n" if name == "canary" else "")
        for name in STRATEGIES
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
    good: DeploymentRecord
    bad: DeploymentRecord
    detection: float | None  # seconds from the first 5xx a user saw to undo_started
    verdict_after: float | None  # seconds from the first 5xx to the Failed verdict
    failures_before: int  # failed requests before the bad release (must be 0)
    failures_during: int
    requests: int


def measure(runner: Runner, target: LocalPlatform, ledger: SqliteLedger, strategy: str, rate: float) -> Outcome:
    project = runner.ctx.project
    stable = Release.resolve(SERVICE, project.config.services[SERVICE], STABLE)
    target.workload.start_version(SERVICE, strategy, stable, 2)
    target.router.set_weights(SERVICE, strategy, {STABLE: 100})
    load = Load(target.endpoint(SERVICE, strategy).rstrip("/") + "/", rate).start()
    try:
        good = deploy(runner, strategy, GOOD, STABLE)
        bad_started = time.time()
        bad = deploy(runner, strategy, BAD, GOOD)
    finally:
        result = load.stop()
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--interval", type=float, default=2.0, help="analysis interval in seconds (default 2)")
    parser.add_argument("--bake", type=float, default=4.0, help="analysis length per step in seconds (default 4)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated subset to measure")
    parser.add_argument("--check", action="store_true", help="exit 1 when a strategy misses its budget")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(STRATEGIES))
    if unknown:
        parser.error(f"--strategies: unknown {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
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
            for strategy in chosen:
                outcome = measure(runner, target, ledger, strategy, args.rate)
                outcomes.append(outcome)
                print(f"  {strategy}: good {outcome.good.status.value}, bad {outcome.bad.status.value}", flush=True)
        finally:
            runner.close()
            for service, environment in target.environments():
                target.stop(service, environment, drain_timeout=0.5)
            ledger.close()

    print()
    print(f"{'strategy':14}{'caught':24}{'detection s':>12}{'verdict s':>11}{'budget s':>10}  result")
    missed = False
    for outcome in outcomes:
        rolled_back = outcome.good.status is Status.SUCCEEDED and outcome.bad.status is Status.ROLLED_BACK
        ok = rolled_back and outcome.detection is not None and outcome.detection <= budget
        missed |= not ok
        detection = f"{outcome.detection:.2f}" if outcome.detection is not None else "-"
        verdict = f"{outcome.verdict_after:.2f}" if outcome.verdict_after is not None else "-"
        why = "ok" if ok else ("over" if rolled_back and outcome.detection is not None else "NOT ROLLED BACK")
        print(
            f"{outcome.strategy:14}{WHERE_CAUGHT[outcome.strategy]:24}{detection:>12}{verdict:>11}{budget:>10.2f}  "
            f"{why}  ({outcome.failures_during} of {outcome.requests} requests failed; "
            f"{outcome.failures_before} before the bad release)"
        )
        if not rolled_back:
            print(f"    good: {outcome.good.status.value} {outcome.good.reason or ''}")
            print(f"    bad: {outcome.bad.status.value} {outcome.bad.reason or ''}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
