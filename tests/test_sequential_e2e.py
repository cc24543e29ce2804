"""The sequential method end to end: the runner on the real local platform, under load, both ways.

A canary of hello at 25% under 150 requests per second, judged by the sequential method (the default): a good
release goes through every step and is promoted with verdicts that carry the evidence, and a release failing one
request in five is rolled back by the runner at its first step, before its bake is over. No timing is asserted,
only outcomes and where they came from; how much sooner than the interval method is bench/detection.py's job.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.core.plans import build_plan
from deploy_mcp.core.records import DeploymentRecord, Phase, Status
from deploy_mcp.core.runner import Runner
from deploy_mcp.core.target import Release
from deploy_mcp.ledger import SqliteLedger
from deploy_mcp.targets.local.loadgen import BackgroundLoad
from deploy_mcp.targets.local.platform import create_platform

HELLO = Path(__file__).resolve().parent.parent / "examples" / "hello" / "server.py"
SERVICE = "hello"
RATE = 150.0
BAKE = 4.0

CONFIG = f"""
[services.hello]
command = {json.dumps(["{python}", str(HELLO), "--port", "{port}"])}
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.versions."2.0.0"]
env = {{ ERROR_RATE = "0.2" }}

[services.hello.environments.sequential]
strategy = "canary"
steps = [25, 100]
scale_down_delay = "1s"
analysis = {{ interval = "1s", bake = "{BAKE:g}s", min_requests = 20 }}
"""


class Shop:
    def __init__(self, folder: Path) -> None:
        (folder / "deploy.toml").write_text(CONFIG, encoding="utf-8")
        self.folder = folder
        self.project: Project = load_project(folder / "deploy.toml")
        self.target = create_platform(self.project, health_interval=0.5)
        self.ledger = SqliteLedger(self.project.state_dir / "ledger.db")
        self.runner = Runner(self.project, self.ledger, self.target, holder="test", drain_timeout=1.0)

    def seed(self, environment: str) -> str:
        release = Release.resolve(SERVICE, self.project.config.services[SERVICE], "1.0.0")
        self.target.workload.start_version(SERVICE, environment, release, 2)
        return self.target.endpoint(SERVICE, environment).rstrip("/") + "/"

    def deploy(self, environment: str, version: str, current: str) -> DeploymentRecord:
        plan = build_plan(self.project.config, SERVICE, version, environment, current_version=current)
        record = self.runner.start(plan, deployed_by="test")
        record = self.runner.wait(record.id, timeout=120)
        assert record.status not in (Status.PENDING, Status.IN_PROGRESS), f"still {record.status}"
        return record

    def close(self) -> None:
        self.runner.close(timeout=15.0)
        for service, environment in self.target.environments():
            self.target.stop(service, environment, drain_timeout=0.5)
        self.ledger.close()


def processes_in(folder: Path) -> list[int]:
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
def shop(tmp_path: Path) -> Iterator[Shop]:
    folder = tmp_path / "project"
    folder.mkdir()
    shop = Shop(folder)
    try:
        yield shop
    finally:
        shop.close()
        deadline = time.monotonic() + 10
        while processes_in(folder) and time.monotonic() < deadline:
            time.sleep(0.1)
        leftovers = processes_in(folder)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"processes left running: {leftovers}"


def test_a_good_canary_is_promoted_and_a_bad_one_rolled_back_by_the_sequential_method(shop: Shop) -> None:
    load = BackgroundLoad(shop.seed("sequential"), rate=RATE, concurrency=16).start()
    try:
        good = shop.deploy("sequential", "1.1.0", "1.0.0")
        bad = shop.deploy("sequential", "2.0.0", "1.1.0")
    finally:
        result = load.stop()

    assert good.status is Status.SUCCEEDED, good.reason
    judged = [v for v in good.verdicts if v.metrics.get("method") == "sequential"]
    assert [v.phase for v in judged] == [Phase.SUCCESSFUL, Phase.SUCCESSFUL]  # the 25% step and the 100% step
    first = judged[0].metrics
    assert first["looks"] > BAKE  # more than one look a second: every router sample, not once per interval
    assert first["sequential"]["log_lr"]["error_rate"] < first["sequential"]["boundary"]["error_rate"]
    assert first["baseline"]["version"] == "1.0.0"  # compared with the stable version while it took traffic

    assert bad.status is Status.ROLLED_BACK, bad.reason
    failed = next(v for v in bad.verdicts if v.phase is Phase.FAILED)
    assert failed.metrics["method"] == "sequential"
    assert "conclusive evidence" in failed.reason and "above the critical 5%" in failed.reason
    assert failed.metrics["elapsed_seconds"] < BAKE  # decided during the first step, not at the end of its bake
    assert (
        failed.metrics["sequential"]["log_lr"]["error_rate"] >= failed.metrics["sequential"]["boundary"]["error_rate"]
    )
    # Events are written once per interval, not once per look.
    events = [e for e in shop.ledger.events(good.id) if e.kind == "measurement"]
    assert len(events) <= 2 * (BAKE + 1) + 2
    assert shop.target.state(SERVICE, "sequential").serving == ["1.1.0"]
    assert result.failures > 0  # the bad release did reach users before the verdict
