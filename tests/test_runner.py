"""The runner against the real local platform: processes behind the weighted router, live metrics, a real
ledger file, and steady load at about 200 requests per second while versions change.

Timings are small (analysis every 1 s, bakes of 2-3 s, at least 20 requests) so the whole file stays near a
minute on two cores. Each test has its own project folder, so its own supervisors, routers and ledger; the
fixture stops everything and then checks that no process started in that folder is left.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.core.plans import Plan, build_plan
from deploy_mcp.core.records import DeploymentRecord, Phase, Status
from deploy_mcp.core.runner import Runner, RunnerError
from deploy_mcp.core.target import Release
from deploy_mcp.ledger import SqliteLedger
from deploy_mcp.targets.local.flags import FlagdFile
from deploy_mcp.targets.local.loadgen import BackgroundLoad, LoadResult
from deploy_mcp.targets.local.platform import create_platform

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "hello" / "server.py"
SERVICE = "hello"
RATE = 200.0

FAST = '{ interval = "1s", bake = "3s", min_requests = 20 }'
SHORT = '{ interval = "1s", bake = "2s", min_requests = 20 }'

CONFIG = f"""\
[services.hello]
command = {json.dumps(["{python}", str(HELLO), "--port", "{port}"])}
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.versions."2.5.0"]   # warn level: p95 about 300 ms where the warn level is 150 ms
env = {{ LATENCY_MS = "300" }}
[services.hello.versions."2.6.0"]
env = {{ LATENCY_MS = "300" }}
[services.hello.versions."3.0.0"]   # bad: one request in five fails
env = {{ ERROR_RATE = "0.2" }}
[services.hello.versions."3.1.0"]   # bad: three seconds per request
env = {{ LATENCY_MS = "3000" }}
[services.hello.versions."3.2.0"]   # bad: exits at start
env = {{ CRASH_ON_START = "1" }}
[services.hello.versions."4.0.0"]   # good, but its migrations cannot be undone
migrations_irreversible = true

[services.hello.environments.canary]
strategy = "canary"
steps = [10, 100]
analysis = {FAST}

[services.hello.environments.slow]
strategy = "canary"
steps = [50, 100]
analysis = {{ interval = "1s", bake = "15s", min_requests = 10 }}

[services.hello.environments.rolling]
strategy = "rolling"
analysis = {SHORT}

[services.hello.environments.bluegreen]
strategy = "blue-green"
scale_down_delay = "1s"
analysis = {SHORT}

[services.hello.environments.warn]
strategy = "canary"
steps = [50, 100]
analysis = {SHORT}
thresholds = {{ latency_p95_ms = {{ warn = 150, critical = 2000 }} }}

[services.hello.environments.history]
strategy = "rolling"
replicas = 1
analysis = {{ interval = "1s", bake = "1.5s", min_requests = 20 }}
thresholds = {{ latency_p95_ms = {{ warn = 150, critical = 2000 }} }}

[services.hello.environments.lock]
strategy = "canary"
steps = [50, 100]
analysis = {SHORT}

[services.hello.environments.recover]
strategy = "canary"
steps = [100]
analysis = {SHORT}
"""


class Platform:
    """One project folder: its local platform, its ledger, and runners over it."""

    def __init__(self, folder: Path) -> None:
        (folder / "deploy.toml").write_text(CONFIG, encoding="utf-8")
        self.folder = folder
        self.project: Project = load_project(folder / "deploy.toml")
        self.target = create_platform(self.project, health_interval=0.5)
        self.ledger_path = self.project.state_dir / "ledger.db"
        self.ledger = SqliteLedger(self.ledger_path)
        self.runners: list[Runner] = []
        self.ledgers: list[SqliteLedger] = [self.ledger]

    def runner(self, holder: str = "test runner", *, ledger: SqliteLedger | None = None, **options: object) -> Runner:
        options.setdefault("drain_timeout", 2.0)
        runner = Runner(self.project, ledger or self.ledger, self.target, holder=holder, **options)  # type: ignore[arg-type]
        self.runners.append(runner)
        return runner

    def second_ledger(self) -> SqliteLedger:
        """Another connection to the same file, as another process would have."""
        ledger = SqliteLedger(self.ledger_path)
        self.ledgers.append(ledger)
        return ledger

    def serving(self, environment: str) -> str | None:
        serving = self.target.state(SERVICE, environment).serving
        return serving[0] if serving else None

    def weights(self, environment: str) -> dict[str, int]:
        return {v.version: v.weight for v in self.target.state(SERVICE, environment).versions}

    def plan(self, version: str, environment: str) -> Plan:
        return build_plan(self.project.config, SERVICE, version, environment, current_version=self.serving(environment))

    def seed(self, environment: str, version: str = "1.0.0", replicas: int = 2) -> str:
        """Start a first version straight on the platform (not a recorded deployment); returns the endpoint."""
        release = Release.resolve(SERVICE, self.project.config.services[SERVICE], version)
        self.target.workload.start_version(SERVICE, environment, release, replicas)
        return self.target.endpoint(SERVICE, environment)

    def deploy(self, runner: Runner, version: str, environment: str, timeout: float = 60.0) -> DeploymentRecord:
        record = runner.start(self.plan(version, environment))
        return settled(runner, record.id, timeout)

    def close(self) -> None:
        for runner in self.runners:
            runner.close(timeout=15.0)
        for service, environment in self.target.environments():
            self.target.stop(service, environment, drain_timeout=0.5)
        for ledger in self.ledgers:
            ledger.close()


def settled(runner: Runner, deployment_id: str, timeout: float = 60.0) -> DeploymentRecord:
    record = runner.wait(deployment_id, timeout)
    assert record.status not in (Status.PENDING, Status.IN_PROGRESS), f"still {record.status} after {timeout} s"
    return record


def processes_in(folder: Path) -> list[int]:
    """Live processes whose working directory is ``folder`` (supervisors and instances run there)."""
    found = []
    wanted = str(folder.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if os.readlink(entry / "cwd") != wanted:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    folder = tmp_path / "project"
    folder.mkdir()
    platform = Platform(folder)
    try:
        yield platform
    finally:
        platform.close()
        deadline = time.monotonic() + 10
        while processes_in(folder) and time.monotonic() < deadline:
            time.sleep(0.1)
        leftovers = processes_in(folder)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"processes left running: {leftovers}"


def load_on(endpoint: str, concurrency: int = 16) -> BackgroundLoad:
    return BackgroundLoad(endpoint.rstrip("/") + "/", rate=RATE, concurrency=concurrency)


def wait_for_endpoint(platform: Platform, environment: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = platform.target.state(SERVICE, environment)
        if state.endpoint and any(v.weight for v in state.versions):
            return state.endpoint
        time.sleep(0.05)
    raise AssertionError(f"{environment} never got an endpoint with traffic")


def event_time(platform: Platform, deployment_id: str, kind: str, contains: str = "") -> float:
    for event in platform.ledger.events(deployment_id):
        if event.kind == kind and contains in event.message:
            return event.at.timestamp()
    raise AssertionError(f"no {kind} event containing {contains!r} in {deployment_id}")


def no_failures(result: LoadResult) -> None:
    assert result.requests > 100, result.summary()
    assert result.failures == 0, result.summary()


# -- good and bad releases ---------------------------------------------------------------------------------------


def test_canary_ships_a_good_release_and_rolls_back_a_bad_one_by_itself(platform: Platform) -> None:
    progress: list[str] = []
    runner = platform.runner(on_progress=lambda record, message: progress.append(f"{record.version} {message}"))
    first = runner.start(platform.plan("1.0.0", "canary"))
    endpoint = wait_for_endpoint(platform, "canary")
    load = load_on(endpoint).start()
    try:
        first = settled(runner, first.id)
        assert first.status is Status.SUCCEEDED and first.validation.passed, first.reason
        good = platform.deploy(runner, "2.0.0", "canary")
    finally:
        result = load.stop()
    assert good.status is Status.SUCCEEDED, good.reason
    assert good.previous_version == "1.0.0"
    assert good.validation.passed and good.validation.error_rate == 0.0
    assert "all 2 smoke check(s) passed" in (good.validation.smoke_tests or "")
    assert [s.status for s in good.steps] == ["succeeded"] * len(good.steps)
    assert [v.phase for v in good.verdicts if v.step] == [Phase.SUCCESSFUL] * 3  # check, 10%, 100%
    no_failures(result)
    assert result.versions["1.0.0"] > 0 and result.versions["2.0.0"] > 0
    assert platform.weights("canary") == {"2.0.0": 100}
    assert "2.0.0 step 1/10: Start 1 instance of 2.0.0 as the canary, with no traffic." in progress
    assert progress[-1] == "2.0.0 succeeded"

    with load_on(endpoint) as bad_load:
        bad = platform.deploy(runner, "3.0.0", "canary")
        bad_load.stop()
    assert bad.status is Status.ROLLED_BACK
    assert bad.reason and "error rate" in bad.reason and "above the critical 5%" in bad.reason
    assert "2.0.0 serves all traffic again and 3.0.0 was stopped" in bad.reason
    assert not bad.validation.passed
    failed = [v for v in bad.verdicts if v.phase is Phase.FAILED]
    assert failed and failed[0].metrics["errors"] >= 2 and failed[0].metrics["version"] == "3.0.0"
    # It never went past the 10% step, and the verdict was caught within one interval plus 2 s of the shift.
    assert [s.status for s in bad.steps[:5]] == ["succeeded"] * 4 + ["failed"]
    assert all(s.status == "pending" for s in bad.steps[5:])
    shifted = event_time(platform, bad.id, "step_finished", "step 4 ")
    caught = event_time(platform, bad.id, "verdict", "Failed")
    assert caught - shifted <= 1.0 + 2.0, f"caught after {caught - shifted:.2f} s"
    # The verdict and the undo were written before the platform was touched.
    events = platform.ledger.events(bad.id)
    verdict = next(e.seq for e in events if e.kind == "verdict" and "Failed" in e.message)
    undo = [e for e in events if e.kind in ("undo_started", "undo_step")]
    assert undo[0].kind == "undo_started" and verdict < undo[0].seq
    assert [e.message for e in undo[1:]] == ["send all traffic back to 2.0.0", "stop 3.0.0"]
    assert platform.weights("canary") == {"2.0.0": 100}
    print(f"\nbad canary caught {caught - shifted:.2f} s after it got traffic; load: {result.summary()}")


def test_slow_and_crashing_releases_are_rolled_back(platform: Platform) -> None:
    runner = platform.runner()
    endpoint = platform.seed("slow", "1.0.0")
    with load_on(endpoint, concurrency=48):
        slow = platform.deploy(runner, "3.1.0", "slow")
    assert slow.status is Status.ROLLED_BACK
    assert slow.reason and "p95 latency" in slow.reason and "above the critical 2000 ms" in slow.reason
    assert slow.steps[-1].status == "pending"  # never reached 100%
    crash = platform.deploy(runner, "3.2.0", "slow")
    assert crash.status is Status.ROLLED_BACK
    assert crash.reason and "step 1 (start) failed" in crash.reason and "crash" in crash.reason
    assert platform.weights("slow") == {"1.0.0": 100}


def test_rolling_and_blue_green_ship_without_a_failed_request(platform: Platform) -> None:
    runner = platform.runner()  # one runner drives both at once, in two environments
    environments = ("rolling", "bluegreen")
    loads = {environment: load_on(platform.seed(environment, "1.0.0")).start() for environment in environments}
    try:
        started = {environment: runner.start(platform.plan("2.0.0", environment)) for environment in environments}
        records = {environment: settled(runner, record.id) for environment, record in started.items()}
    finally:
        results = {environment: load.stop() for environment, load in loads.items()}
    for environment in environments:
        record = records[environment]
        assert record.status is Status.SUCCEEDED and record.validation.passed, (environment, record.reason)
        no_failures(results[environment])
        assert results[environment].versions["2.0.0"] > 0
        state = platform.target.state(SERVICE, environment)
        assert [(v.version, v.ready, v.weight) for v in state.versions] == [("2.0.0", 2, 100)]
    assert [s.name for s in records["rolling"].steps].count("analyze") == 2  # one per batch
    assert "pause" in [s.name for s in records["bluegreen"].steps]  # the old side was kept warm, then stopped


# -- decisions ---------------------------------------------------------------------------------------------------


def test_a_warn_level_release_pauses_and_promote_resume_abort_work(platform: Platform) -> None:
    runner = platform.runner()
    endpoint = platform.seed("warn", "1.0.0")
    with load_on(endpoint):
        record = platform.deploy(runner, "2.5.0", "warn")
        assert record.status is Status.PAUSED
        assert record.reason and "p95 latency" in record.reason and "above the warn level 150 ms" in record.reason
        assert record.steps[record.current_step - 1].status == "inconclusive"
        assert platform.weights("warn") == {"1.0.0": 50, "2.5.0": 50}

        resumed = runner.resume(record.id, by="alice")  # judge it again
        assert resumed.status is Status.IN_PROGRESS
        again = settled(runner, record.id)
        assert again.status is Status.PAUSED and len(again.verdicts) == len(record.verdicts) + 1

        runner.promote(record.id, by="alice")  # go on to 100% despite the warning
        at_full = settled(runner, record.id)
        assert at_full.status is Status.PAUSED and platform.weights("warn") == {"1.0.0": 0, "2.5.0": 100}
        runner.promote(record.id, by="alice")
        done = settled(runner, record.id)
        assert done.status is Status.SUCCEEDED
        assert not done.validation.passed and "promoted past" in (done.validation.verdict or "")
        assert "promoted" in [s.status for s in done.steps]

        other = platform.deploy(runner, "2.6.0", "warn")
        assert other.status is Status.PAUSED
        aborted = runner.abort(other.id, "too slow for checkout", by="bob")
        aborted = settled(runner, aborted.id)
    assert aborted.status is Status.ABORTED
    assert aborted.reason and aborted.reason.startswith("aborted by bob: too slow for checkout")
    assert platform.weights("warn") == {"2.5.0": 100}
    with pytest.raises(RunnerError, match="already ended"):
        runner.promote(other.id)


def test_rollback_returns_to_the_last_validated_release(platform: Platform) -> None:
    runner = platform.runner()
    first = runner.start(platform.plan("1.0.0", "history"))
    with load_on(wait_for_endpoint(platform, "history")):
        first = settled(runner, first.id)
        bad = platform.deploy(runner, "3.0.0", "history")
        warned = platform.deploy(runner, "2.5.0", "history")
        runner.promote(warned.id)
        warned = settled(runner, warned.id)
        good = platform.deploy(runner, "2.0.0", "history")
    assert first.status is Status.SUCCEEDED and first.validation.passed, first.reason
    assert bad.status is Status.ROLLED_BACK, bad.reason
    assert warned.status is Status.SUCCEEDED and not warned.validation.passed, warned.reason
    assert good.status is Status.SUCCEEDED and good.validation.passed, good.reason
    assert good.previous_version == "2.5.0"

    back = runner.rollback(SERVICE, "history", reason="checkout errors after 2.0.0")
    back = settled(runner, back.id)
    assert back.status is Status.SUCCEEDED, back.reason
    assert back.strategy == "rollback" and back.version == "1.0.0" and back.rollback_of == good.id
    assert back.reason and f"validated by {first.id}" in back.reason
    assert [s.name for s in back.steps] == ["start", "wait_ready", "check", "set_weights", "stop"]  # 1.0.0 was gone
    reverted = runner.get(good.id)
    assert reverted.status is Status.ROLLED_BACK and reverted.rolled_back_by == back.id
    assert platform.weights("history") == {"1.0.0": 100}

    # A release whose migrations cannot be undone is fixed forward, never rolled back.
    with load_on(platform.target.endpoint(SERVICE, "history")):
        forward = platform.deploy(runner, "4.0.0", "history")
    assert forward.status is Status.SUCCEEDED and forward.roll_forward_only
    with pytest.raises(RunnerError, match="migrations_irreversible") as refused:
        runner.rollback(SERVICE, "history", reason="try")
    assert "Fix forward" in str(refused.value)


# -- one at a time, and surviving a crash --------------------------------------------------------------------------


def test_two_runners_on_one_ledger_start_exactly_one_deployment(platform: Platform) -> None:
    platform.seed("lock", "1.0.0")
    runners = [platform.runner("process A"), platform.runner("process B", ledger=platform.second_ledger())]
    plan = platform.plan("2.0.0", "lock")
    barrier = threading.Barrier(2)
    started: list[DeploymentRecord] = []
    refused: list[str] = []

    def go(runner: Runner) -> None:
        barrier.wait()
        try:
            started.append(runner.start(plan))
        except RunnerError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=go, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(started) == 1 and len(refused) == 1, (started, refused)
    winner = started[0]
    assert f"{winner.id} is running for hello/lock" in refused[0]
    assert len(platform.ledger.list(environment="lock")) == 1
    # The loser steers the winner through the ledger, as another process would.
    loser = next(r for r in runners if r.running() == [])
    owner = next(r for r in runners if r.running() == [winner.id])
    paused = loser.pause(winner.id, by="process B")
    assert paused.status is Status.PAUSED, paused
    aborted = loser.abort(winner.id, "not today", by="process B")
    final = settled(owner, aborted.id)
    assert final.status is Status.ABORTED and platform.weights("lock") == {"1.0.0": 100}
    # A runner that shuts down hands its deployments back as interrupted, and frees the lock at once.
    again = owner.start(platform.plan("2.0.0", "lock"))
    owner.close()
    handed_back = platform.ledger.get(again.id)
    assert handed_back is not None and handed_back.status is Status.INTERRUPTED
    assert handed_back.reason and "deploy-mcp stopped while driving it" in handed_back.reason
    assert platform.ledger.lock_state(SERVICE, "lock") is None


WORKER = """
import sys, time
from deploy_mcp.config.loader import load_project
from deploy_mcp.core.plans import build_plan
from deploy_mcp.core.runner import Runner
from deploy_mcp.ledger import SqliteLedger
from deploy_mcp.targets.local.platform import create_platform

config, version, environment = sys.argv[1:4]
project = load_project(config)
target = create_platform(project)
ledger = SqliteLedger(project.state_dir / "ledger.db")
current = target.state("hello", environment).serving[0]
runner = Runner(project, ledger, target, holder="worker process", lease_seconds=1.0)
record = runner.start(build_plan(project.config, "hello", version, environment, current_version=current))
print(record.id, flush=True)
time.sleep(600)
"""


def killed_mid_analysis(platform: Platform, version: str, environment: str) -> str:
    """A deployment started by another process, which is killed (SIGKILL) during its first analysis."""
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(platform.folder / "deploy.toml"), version, environment],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert worker.stdout is not None
        deployment_id = worker.stdout.readline().strip()
        assert deployment_id.startswith("deploy-"), deployment_id
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            record = platform.ledger.get(deployment_id)
            assert record is not None
            step = record.steps[record.current_step - 1] if record.current_step else None
            if step is not None and step.name == "analyze" and step.status == "running":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the worker never reached its analysis")
    finally:
        worker.kill()
        worker.wait(10)
    return deployment_id


def test_a_deployment_whose_process_died_is_recovered_then_resumed_or_rolled_back(platform: Platform) -> None:
    endpoint = platform.seed("recover", "1.0.0")
    runner = platform.runner("process B", lease_seconds=1.0)
    with load_on(endpoint) as load:
        orphan = killed_mid_analysis(platform, "2.0.0", "recover")
        found: list[DeploymentRecord] = []
        deadline = time.monotonic() + 10
        while not found and time.monotonic() < deadline:  # until the dead worker's 1 s lease runs out
            found = runner.recover()
            time.sleep(0.1)
        assert [record.id for record in found] == [orphan]
        interrupted = runner.get(orphan)
        assert interrupted.status is Status.INTERRUPTED
        assert interrupted.reason and "stopped at step 5 (analyze" in interrupted.reason
        assert platform.weights("recover") == {"1.0.0": 0, "2.0.0": 100}  # the platform kept serving
        with pytest.raises(RunnerError, match="interrupted"):
            runner.start(platform.plan("2.1.0", "recover"))

        resumed = runner.resume(orphan, by="process B")
        assert resumed.status is Status.IN_PROGRESS
        finished = settled(runner, orphan)
        assert finished.status is Status.SUCCEEDED and finished.validation.passed, finished.reason
        assert "resumed" in [e.kind for e in platform.ledger.events(orphan)]

        second = killed_mid_analysis(platform, "2.1.0", "recover")
        back = None
        deadline = time.monotonic() + 10
        while back is None and time.monotonic() < deadline:
            try:
                back = runner.rollback(SERVICE, "recover", reason="the worker died")
            except RunnerError as exc:
                assert "is running" in str(exc)  # the dead worker's lease has not run out yet
                time.sleep(0.2)
        assert back is not None
        back = settled(runner, back.id)
        result = load.stop()
    assert back.status is Status.SUCCEEDED and back.version == "2.0.0" and back.rollback_of == second
    assert [s.name for s in back.steps] == ["set_weights", "stop"]  # 2.0.0 was still warm
    assert runner.get(second).status is Status.ROLLED_BACK
    assert platform.weights("recover") == {"2.0.0": 100}
    no_failures(result)


def test_flag_steps_write_a_flagd_file_the_service_reads(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("hello_server", HELLO)
    assert spec and spec.loader
    hello = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hello)
    (tmp_path / "deploy.toml").write_text(CONFIG + '\n[services.hello.flag]\nname = "new-greeting"\n', "utf-8")
    project = load_project(tmp_path / "deploy.toml")
    flags = tmp_path / ".deploy" / "flags.json"
    flags.parent.mkdir()
    flags.write_text(json.dumps({"flags": {"other": {"state": "DISABLED"}}}), "utf-8")
    reader = hello.FlagReader(str(flags), "new-greeting")
    users = [f"user-{n}" for n in range(2000)]
    for percentage in (0, 25, 100, 0):
        FlagdFile(project).set_flag(SERVICE, "staging", "new-greeting", percentage)
        assert FlagdFile(project).get_flag(SERVICE, "staging", "new-greeting") == percentage
        document = json.loads(flags.read_text("utf-8"))
        assert document["flags"]["other"] == {"state": "DISABLED"}  # other flags are kept
        flag = document["flags"]["new-greeting"]
        assert flag["defaultVariant"] == ("on" if percentage == 100 else "off")
        assert ("targeting" in flag) == (percentage == 25)
        assert reader.share() == percentage
        seeing_it = sum(reader.enabled(user) for user in users) / len(users)
        assert abs(seeing_it - percentage / 100) < 0.04, (percentage, seeing_it)
        # one user keeps one answer while the flag stays put
        assert {reader.enabled("user-7") for _ in range(20)} in ({True}, {False})
