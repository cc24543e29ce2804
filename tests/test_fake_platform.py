"""The runner on the in-memory fake platform: what a plan shows is what runs, on every kind of router.

No processes: the fake keeps the platform contract (tests/conformance checks it) and counts requests per version in
proportion to the split, so plans, the runner, its undo and the analysis are exercised in well under a second per
deployment. Each test reads the fake's call log, the platform's own record of what was done to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.core.plans import CheckVia, Plan, build_plan
from deploy_mcp.core.platform import EXACT
from deploy_mcp.core.records import DeploymentRecord, Phase, Status
from deploy_mcp.core.runner import Runner, RunnerError, actions
from deploy_mcp.core.target import Release
from deploy_mcp.ledger import SqliteLedger
from deploy_mcp.targets.fake import FakePlatform, create_fake_platform

SERVICE = "hello"
QUICK = '{ interval = "100ms", bake = "300ms", min_requests = 5 }'
CONFIG = f"""\
[services.hello]
command = ["{{python}}", "-m", "hello"]
replicas = 4
health = "/health"
smoke = ["/health", "/", "!/nonexistent"]

[services.hello.flag]
name = "new-greeting"

[services.hello.environments.canary]
strategy = "canary"
analysis = {QUICK}

[services.hello.environments.rolling]
strategy = "rolling"
analysis = {QUICK}

[services.hello.environments.recreate]
strategy = "recreate"
analysis = {QUICK}

[services.hello.environments.bluegreen]
strategy = "blue-green"
scale_down_delay = "100ms"
analysis = {QUICK}

[services.hello.environments.flags]
strategy = "feature-flag"
steps = [50, 100]
scale_down_delay = "100ms"
analysis = {QUICK}
"""


class Shop:
    """A project, its ledger and a runner over one fake platform."""

    def __init__(self, folder: Path, platform: FakePlatform) -> None:
        (folder / "deploy.toml").write_text(CONFIG, encoding="utf-8")
        self.project: Project = load_project(folder / "deploy.toml")
        self.platform = platform
        platform.metrics.requests_per_second = 2000.0  # type: ignore[union-attr]
        self.ledger = SqliteLedger(self.project.state_dir / "ledger.db")
        self.runner = Runner(self.project, self.ledger, platform, holder="fake test", drain_timeout=0.1)

    def seed(self, environment: str, version: str = "1.0.0") -> None:
        release = Release.resolve(SERVICE, self.project.config.services[SERVICE], version)
        self.platform.workload.start_version(SERVICE, environment, release, 4)

    def plan(self, version: str, environment: str) -> Plan:
        serving = self.platform.state(SERVICE, environment).serving
        return build_plan(
            self.project.config,
            SERVICE,
            version,
            environment,
            current_version=serving[0] if serving else None,
            capabilities=self.platform.capabilities,
        )

    def deploy(self, plan: Plan) -> DeploymentRecord:
        self.calls_before = len(self.platform.calls)
        record = self.runner.start(plan)
        return self.runner.wait(record.id, timeout=60)

    def calls(self, name: str) -> list[tuple[str, ...]]:
        return [call for call in self.platform.calls[self.calls_before :] if call[0] == name]

    def close(self) -> None:
        self.runner.close()
        self.ledger.close()


@pytest.fixture
def exact(tmp_path: Path) -> Iterator[Shop]:
    shop = Shop(tmp_path, create_fake_platform(health_path="/health"))
    yield shop
    shop.close()


@pytest.fixture
def no_router(tmp_path: Path) -> Iterator[Shop]:
    """As Kubernetes with only the Service: weights are replica ratios and no version can be reached alone."""
    shop = Shop(tmp_path, create_fake_platform(exact_weights=False, preview=False, health_path="/health"))
    yield shop
    shop.close()


def planned_weights(plan: Plan) -> list[dict[str, int]]:
    return [step.weights or {} for step in plan.steps if step.action == "set_weights"]


def applied_weights(shop: Shop) -> list[dict[str, int]]:
    return [json.loads(call[1]) for call in shop.calls("set_weights")]


def sizes(plan: Plan) -> list[tuple[str, str, str]]:
    wanted = {"start": "start_version", "scale": "scale"}
    return [(wanted[s.action], s.version or "", str(s.replicas)) for s in plan.steps if s.action in wanted]


def test_a_canary_with_exact_weights_runs_the_5_95_split_the_plan_shows(exact: Shop) -> None:
    exact.seed("canary")
    plan = exact.plan("2.0.0", "canary")
    assert planned_weights(plan)[0] == {"1.0.0": 95, "2.0.0": 5}

    record = exact.deploy(plan)

    assert record.status is Status.SUCCEEDED, record.reason
    assert applied_weights(exact) == planned_weights(plan)
    assert [c for c in exact.calls("start_version") + exact.calls("scale")] == sizes(plan)
    assert exact.platform.state(SERVICE, "canary").weights == {"2.0.0": 100}


def test_a_canary_without_a_router_runs_exactly_the_replica_splits_the_plan_shows(no_router: Shop) -> None:
    no_router.seed("canary")
    plan = no_router.plan("2.0.0", "canary")
    assert planned_weights(plan) == [
        {"1.0.0": 75, "2.0.0": 25},
        {"1.0.0": 50, "2.0.0": 50},
        {"1.0.0": 0, "2.0.0": 100},
    ]

    record = no_router.deploy(plan)

    assert record.status is Status.SUCCEEDED, record.reason
    assert applied_weights(no_router) == planned_weights(plan)
    assert no_router.calls("start_version") + no_router.calls("scale") == sizes(plan)
    read_back = [e.message for e in no_router.ledger.events(record.id) if e.message.startswith("traffic now")]
    assert read_back[:2] == [
        "traffic now: 1.0.0 75%, 2.0.0 25% (read back from the platform)",
        "traffic now: 1.0.0 50%, 2.0.0 50% (read back from the platform)",
    ]
    # no preview: the canary's instances were probed before it took traffic, and the service was checked after
    checks = [v.reason for v in record.verdicts if v.phase is Phase.SUCCESSFUL and "checks" in v.reason]
    assert "the platform has no preview" in checks[0]
    assert any("checks through the service passed" in reason for reason in checks)
    assert record.validation.passed


def test_a_router_that_does_not_apply_a_split_stops_the_deployment(
    exact: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "VERIFY_SECONDS", 0.3)
    exact.seed("canary")
    exact.platform.router.ignore_weights = True

    record = exact.deploy(exact.plan("2.0.0", "canary"))

    assert record.status is Status.ROLLED_BACK
    assert "did not apply the split: asked 1.0.0=95%, 2.0.0=5%, the platform reports 1.0.0=100%, 2.0.0=0%" in (
        record.reason or ""
    )
    assert exact.platform.state(SERVICE, "canary").versions[0].version == "1.0.0"
    assert [v.version for v in exact.platform.state(SERVICE, "canary").versions] == ["1.0.0"]


def test_a_router_that_refuses_weights_fails_the_step_and_the_undo_says_what_runs(exact: Shop) -> None:
    exact.seed("canary")
    exact.platform.router.refuse_weights = True

    record = exact.deploy(exact.plan("2.0.0", "canary"))

    assert record.status is Status.FAILED
    reason = record.reason or ""
    assert "the traffic router refused the change" in reason and "undoing it failed too" in reason
    assert "1.0.0: 4/4 ready, 100% of traffic" in reason  # what runs now, said honestly


def test_a_crash_looping_release_never_takes_traffic(no_router: Shop) -> None:
    no_router.seed("canary")
    no_router.platform.behave("2.0.0", crash_loop=True)

    record = no_router.deploy(no_router.plan("2.0.0", "canary"))

    assert record.status is Status.ROLLED_BACK
    assert "crash loop" in (record.reason or "")
    assert all(w.get("2.0.0", 0) == 0 for w in applied_weights(no_router))
    assert no_router.platform.state(SERVICE, "canary").weights == {"1.0.0": 100}


def test_an_erroring_canary_is_rolled_back_at_its_first_step_on_either_router(exact: Shop, no_router: Shop) -> None:
    for shop, first in ((exact, 5), (no_router, 25)):
        shop.seed("canary")
        shop.platform.behave("2.0.0", error_rate=0.5)

        record = shop.deploy(shop.plan("2.0.0", "canary"))

        assert record.status is Status.ROLLED_BACK, record.reason
        assert "error rate" in (record.reason or "")
        assert [w.get("2.0.0", 0) for w in applied_weights(shop)] == [first, 0]  # one step, then back
        assert shop.platform.state(SERVICE, "canary").weights == {"1.0.0": 100}
        assert shop.platform.state(SERVICE, "canary").version("1.0.0").replicas == 4  # type: ignore[union-attr]


def test_blue_green_without_a_preview_refuses_unhealthy_instances_before_the_switch(no_router: Shop) -> None:
    no_router.seed("bluegreen")
    no_router.platform.behave("2.0.0", unhealthy=True)
    plan = no_router.plan("2.0.0", "bluegreen")
    assert [s.via for s in plan.steps if s.action == "check"] == [CheckVia.INSTANCES, CheckVia.SERVICE]

    record = no_router.deploy(plan)

    assert record.status is Status.ROLLED_BACK
    assert "pre-promotion checks of 2.0.0 failed" in (record.reason or "")
    assert applied_weights(no_router) == [{"1.0.0": 100}]  # only the undo's: the switch never happened


def test_a_feature_flag_ramps_where_the_platform_keeps_flags_and_goes_off_on_failure(exact: Shop) -> None:
    exact.seed("flags")
    record = exact.deploy(exact.plan("2.0.0", "flags"))
    assert record.status is Status.SUCCEEDED, record.reason
    assert exact.calls("set_flag") == [("set_flag", "new-greeting", p) for p in ("0", "50", "100")]
    assert exact.platform.flags.get_flag(SERVICE, "flags", "new-greeting") == 100

    exact.platform.behave("3.0.0", error_rate=0.5)
    failed = exact.deploy(exact.plan("3.0.0", "flags"))
    assert failed.status is Status.ROLLED_BACK
    assert exact.platform.flags.get_flag(SERVICE, "flags", "new-greeting") == 0
    assert exact.platform.state(SERVICE, "flags").serving == ["2.0.0"]


def test_rolling_and_recreate_without_a_router_let_traffic_follow_the_instances(no_router: Shop) -> None:
    no_router.seed("rolling")
    record = no_router.deploy(no_router.plan("2.0.0", "rolling"))
    assert record.status is Status.SUCCEEDED, record.reason
    # every split given was the ready-instance ratio at that moment, ending with the new version alone
    splits = applied_weights(no_router)
    assert splits[0] == {"1.0.0": 80, "2.0.0": 20}  # 4 old + 1 new, before the first old one goes
    assert splits[-1] == {"2.0.0": 100}
    assert no_router.platform.state(SERVICE, "rolling").weights == {"2.0.0": 100}
    assert no_router.platform.state(SERVICE, "rolling").version("2.0.0").replicas == 4  # type: ignore[union-attr]

    no_router.seed("recreate")
    record = no_router.deploy(no_router.plan("2.0.0", "recreate"))
    assert record.status is Status.SUCCEEDED, record.reason
    assert no_router.platform.state(SERVICE, "recreate").weights == {"2.0.0": 100}


def test_a_plan_made_for_another_router_is_refused_before_anything_runs(no_router: Shop) -> None:
    no_router.seed("canary")
    made_for_exact = build_plan(
        no_router.project.config, SERVICE, "2.0.0", "canary", current_version="1.0.0", capabilities=EXACT
    )
    with pytest.raises(RunnerError, match="plan the deployment again"):
        no_router.runner.start(made_for_exact)
    assert no_router.platform.calls == [("start_version", "1.0.0", "4")]  # only the seed
    assert no_router.ledger.list(service=SERVICE) == []
