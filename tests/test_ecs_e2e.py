"""Every strategy end to end through the MCP protocol on ECS (moto, with the fleet harness), under steady load.

The same shape as tests/test_strategies_e2e.py on the ECS target: one ECS service per version behind the blue or
green target group, the ALB listener's weighted forward for traffic, previews through the test listener, and the
analysis reading CloudWatch's ALB metrics (RequestCount, HTTPCode_Target_5XX_Count, TargetResponseTime p95). Each
environment first gets 1.0.0; then, with load running through the environment's listener, a good release ships
with zero failed requests (recreate excepted: its downtime is stated in the plan), and bad releases (one request in
five fails, three seconds per request, exits at start) are rolled back by the server before they reach everyone,
with the numbers. A cluster outside the allowlist is refused with nothing changed.

Set DEPLOY_MCP_TEST_AWS=1 (with AWS credentials and DEPLOY_MCP_TEST_AWS_CONFIG) for the opt-in real-account check.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from conftest import require_component
from ecs_fixtures import CLUSTER, CREDENTIALS, Lane, World, aws_credentials, build_world, project_toml, running_version
from ecs_fleet import EcsFleet
from mcp import Client
from registry_fixture import RegistryServer, require_registry

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server
from deploy_mcp.targets.local.loadgen import BackgroundLoad, LoadResult

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]

RATE = 80.0
CONCURRENCY = 40
SHORT = 'analysis = { interval = "1s", bake = "3s", min_requests = 20 }'
SLOW_ENOUGH = 'analysis = { interval = "1s", bake = "6s", min_requests = 20 }'
GOOD, ERRORS, CRASH, SLOW = "2.0.0", "3.0.0", "4.0.0", "5.0.0"
PERCENT = re.compile(r"\d+(\.\d+)?%")
REQUESTS = re.compile(r"\b\d+ requests\b")
LANES = {
    "canary": "canary",
    "rolling": "rolling",
    "blue-green": "bluegreen",
    "recreate": "recreate",
    "feature-flag": "flag",
}
FLAG = "new-greeting"


@dataclass
class Shop:
    app: App
    world: World

    def lane(self, strategy: str) -> Lane:
        return self.world.lanes[LANES[strategy]]


async def user_says_yes(_context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"confirm": True})


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """moto with the fleet harness, one ALB with a listener per lane, and 1.0.0 deployed through MCP in every
    lane under light load."""
    import importlib.util

    require_component("moto", importlib.util.find_spec("moto") is not None, 'pip install "moto[server]"')
    require_registry()
    folder = tmp_path_factory.mktemp("ecs-e2e")
    registry = RegistryServer(folder / "registry").start()  # preflight checks that each image exists
    for version in ("1.0.0", GOOD, ERRORS, CRASH, SLOW):
        registry.push("hello", version)
    with aws_credentials(), EcsFleet(workdir=folder / "fleet") as fleet:
        world = build_world(fleet, list(LANES.values()))
        settings = {
            "canary": f'strategy = "canary"\nsteps = [25, 100]\n{SLOW_ENOUGH}',
            "rolling": f'strategy = "rolling"\n{SHORT}',
            "bluegreen": f'strategy = "blue-green"\nscale_down_delay = "1s"\n{SHORT}',
            "recreate": f'strategy = "recreate"\n{SHORT}',
            "flag": f'strategy = "feature-flag"\nsteps = [50, 100]\nscale_down_delay = "1s"\n{SHORT}',
        }
        extra = '\n[services.hello.environments.elsewhere]\ncluster = "payments"\n'
        flag = f'\n[services.hello.flag]\nname = "{FLAG}"\n'
        text = project_toml(world, settings=settings, image=f"{registry.address}/hello:{{version}}", extra=flag)
        text = text.replace(
            'allowed_services = ["hello-*"]', f'allowed_clusters = ["{CLUSTER}"]\nallowed_services = ["hello-*"]'
        )
        (folder / "deploy.toml").write_text(text + extra, encoding="utf-8")
        app = App.load(folder / "deploy.toml")
        shop = Shop(app, world)
        try:
            started = time.monotonic()
            anyio.run(first_releases, shop)
            print(f"\n1.0.0 in {len(LANES)} lanes: {time.monotonic() - started:.1f} s")
            yield shop
        finally:
            app.close()
            registry.stop()


async def first_releases(shop: Shop) -> None:
    """Light load from the start (refused until a listener has targets: not counted), so every first analysis has
    traffic to judge; no data is never a pass."""
    loads = [BackgroundLoad(lane.url + "/", rate=20, concurrency=4).start() for lane in shop.world.lanes.values()]
    try:
        async with Client(build_server(shop.app), elicitation_callback=user_says_yes) as client:
            started = []
            for environment in shop.world.lanes:
                arguments = {"service": "hello", "version": "1.0.0", "environment": environment}
                started.append(await client.call_tool("deploy", {**arguments, "wait_seconds": 0}))
            for environment, result in zip(shop.world.lanes, started, strict=True):
                view = await settle(client, result, timeout=240)
                record = view["record"]
                assert record["status"] == "succeeded", (environment, record["reason"], record["steps"])
    finally:
        for load in loads:
            load.stop()


async def settle(client: Client, result: types.CallToolResult, timeout: float = 240.0) -> dict[str, Any]:
    assert not result.is_error, result.content
    view = result.structured_content
    assert view is not None
    deadline = time.monotonic() + timeout
    while view["record"]["status"] in ("pending", "in_progress"):
        assert time.monotonic() < deadline, f"{view['record']['id']} did not settle: {view['record']}"
        await anyio.sleep(0.5)
        status = await client.call_tool("deployment_status", {"deployment_id": view["record"]["id"]})
        assert not status.is_error, status.content
        view = status.structured_content
    return view


@dataclass
class Shipped:
    plan: dict[str, Any]
    view: dict[str, Any]
    load: LoadResult
    seconds: float

    @property
    def record(self) -> dict[str, Any]:
        return self.view["record"]

    def live(self) -> list[tuple[str, int, int]]:
        return [(v["version"], v["ready"], v["weight"]) for v in self.view["live"]["versions"]]

    def steps(self, name: str) -> list[dict[str, Any]]:
        return [step for step in self.record["steps"] if step["name"] == name]


async def ship(shop: Shop, lane: Lane, version: str, *, concurrency: int = CONCURRENCY) -> Shipped:
    async with Client(build_server(shop.app), elicitation_callback=user_says_yes) as client:
        arguments = {"service": "hello", "version": version, "environment": lane.environment}
        plan = await client.call_tool("plan_deployment", arguments)
        assert not plan.is_error, plan.content
        started = time.monotonic()
        load = BackgroundLoad(lane.url + "/", rate=RATE, concurrency=concurrency).start()
        try:
            view = await settle(client, await client.call_tool("deploy", arguments))
        finally:
            result = load.stop()
        seconds = time.monotonic() - started
    print(f"\n{lane.environment} {version}: {view['record']['status']} in {seconds:.1f} s; load: {result.summary()}")
    print(f"reason: {view['record'].get('reason')}")
    assert plan.structured_content is not None
    return Shipped(plan.structured_content, view, result, seconds)


def serving(shop: Shop, lane: Lane) -> str:
    state = shop.app.platform("hello").state("hello", lane.environment)
    assert len(state.serving) == 1, state
    return state.serving[0]


def ecs_services(shop: Shop, lane: Lane) -> list[str]:
    """What `aws ecs list-services` shows for the lane (ACTIVE services, by the name prefix deploy-mcp uses)."""
    ecs = shop.world.fleet.client("ecs")
    names = [a.rsplit("/", 1)[-1] for a in ecs.list_services(cluster=CLUSTER)["serviceArns"]]
    names = [n for n in names if n.startswith(f"hello-{lane.environment}-")]
    if not names:
        return []
    described = ecs.describe_services(cluster=CLUSTER, services=names, include=["TAGS"])["services"]
    return sorted(running_version(ecs, s["taskDefinition"]) for s in described if s["status"] == "ACTIVE")


def listener_weights(shop: Shop, lane: Lane) -> list[int]:
    """The share of traffic the listener sends to the blue and the green target group, read from ELBv2."""
    elbv2 = shop.world.fleet.client("elbv2")
    action = elbv2.describe_listeners(ListenerArns=[lane.listener])["Listeners"][0]["DefaultActions"][0]
    weights = {g["TargetGroupArn"]: g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]}
    total = sum(weights.values())
    return [round(100 * weights.get(group, 0) / total) for group in lane.target_groups]  # each slot's share


def assert_good(shipped: Shipped, old: str) -> None:
    record = shipped.record
    assert record["status"] == "succeeded", record["reason"]
    assert record["previous_version"] == old
    assert record["validation"]["passed"] is True, record["validation"]
    assert shipped.live() == [(record["version"], 2, 100)], shipped.view["live"]


def assert_rolled_back(shipped: Shipped, old: str) -> dict[str, Any]:
    record = shipped.record
    assert record["status"] == "rolled_back", record
    assert record["validation"]["passed"] is False
    assert f"{old} serves all traffic again" in record["reason"], record["reason"]
    assert shipped.live() == [(old, 2, 100)], shipped.view["live"]
    failed = [v for v in record["verdicts"] if v["phase"] == "Failed"]
    assert failed, record["verdicts"]
    return failed[0]


# -- good releases -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["canary", "rolling", "blue-green", "feature-flag"])
async def test_a_good_release_ships_without_a_single_failed_request(shop: Shop, strategy: str) -> None:
    lane = shop.lane(strategy)
    old = serving(shop, lane)
    shipped = await ship(shop, lane, GOOD)
    assert_good(shipped, old)
    load = shipped.load
    assert load.failures == 0, (load.summary(), load.failures_at[:10])
    assert load.requests >= 0.5 * RATE * shipped.seconds, f"the load fell behind its pace: {load.summary()}"
    assert load.versions[GOOD] > 0, load.summary()
    for verdict in shipped.record["verdicts"]:  # CloudWatch had real traffic at every analysis
        if verdict["phase"] == "Successful" and verdict.get("metrics"):
            assert verdict["metrics"]["requests"] >= 20, verdict
    assert ecs_services(shop, lane) == [GOOD], "ECS lists what deploy-mcp reports"
    assert sorted(listener_weights(shop, lane)) == [0, 100]
    if strategy == "canary":
        assert [s["weight"] for s in shipped.steps("set_weights")] == [25, 100]
        assert load.versions[old] > 0
    elif strategy == "blue-green":
        assert [s["weight"] for s in shipped.steps("set_weights")] == [100]
    elif strategy == "feature-flag":  # the flag lives in SSM, where the tasks read it
        assert [s["weight"] for s in shipped.steps("flag")] == [0, 50, 100]
        ssm = shop.world.fleet.client("ssm")
        document = json.loads(
            ssm.get_parameter(Name=f"/deploy-mcp/hello/{lane.environment}/flags")["Parameter"]["Value"]
        )
        assert document["flags"][FLAG]["defaultVariant"] == "on"


async def test_recreate_ships_after_the_downtime_its_plan_states(shop: Shop) -> None:
    lane = shop.lane("recreate")
    old = serving(shop, lane)
    shipped = await ship(shop, lane, GOOD)
    assert shipped.plan["expected_downtime_seconds"] > 0
    assert_good(shipped, old)
    assert set(shipped.load.statuses) <= {200, 502, 503}, shipped.load.summary()
    assert ecs_services(shop, lane) == [GOOD]


# -- bad releases --------------------------------------------------------------------------------------------------


def assert_numbers(reason: str, *, errors: bool) -> None:
    if errors:
        assert "error rate" in reason and PERCENT.search(reason) and "above the critical 5%" in reason, reason
    else:
        assert "p95 latency" in reason and "above the critical 2000 ms" in reason, reason
    assert REQUESTS.search(reason), f"the request count is missing: {reason}"


@pytest.mark.parametrize(("strategy", "version"), [("canary", ERRORS), ("canary", SLOW), ("rolling", ERRORS)])
async def test_a_bad_release_is_rolled_back_before_everyone_gets_it(shop: Shop, strategy: str, version: str) -> None:
    lane = shop.lane(strategy)
    old = serving(shop, lane)
    shipped = await ship(shop, lane, version, concurrency=2 * CONCURRENCY if version == SLOW else CONCURRENCY)
    failed = assert_rolled_back(shipped, old)
    assert_numbers(shipped.record["reason"], errors=version == ERRORS)
    assert failed["metrics"]["version"] == version and failed["metrics"]["requests"] > 0, failed
    steps = shipped.record["steps"]
    assert steps[failed["step"] - 1]["name"] == "analyze"
    if strategy == "canary":  # caught at 25%: the step that would send everyone never ran
        full = next(s for s in steps if s["name"] == "set_weights" and s["weight"] == 100)
        assert full["status"] == "pending" and failed["step"] < full["index"]
    assert ecs_services(shop, lane) == [old], "nothing of the bad release is left on ECS"
    assert sorted(listener_weights(shop, lane)) == [0, 100]


async def test_a_release_that_crashes_at_start_never_takes_traffic(shop: Shop) -> None:
    lane = shop.lane("canary")
    old = serving(shop, lane)
    shipped = await ship(shop, lane, CRASH)
    record = shipped.record
    assert record["status"] in ("rolled_back", "failed"), record
    assert "task(s) failed" in record["reason"] and "circuit breaker" in record["reason"], record["reason"]
    assert "exit code 3" in record["reason"], record["reason"]
    assert shipped.live() == [(old, 2, 100)]
    assert shipped.load.failures == 0 and CRASH not in shipped.load.versions, shipped.load.summary()
    assert ecs_services(shop, lane) == [old]


# -- validate ------------------------------------------------------------------------------------------------------


async def test_validate_judges_the_service_on_cloudwatch_through_the_alb(shop: Shop) -> None:
    lane = shop.lane("blue-green")
    load = BackgroundLoad(lane.url + "/", rate=40, concurrency=8).start()
    try:
        await anyio.sleep(3)  # a few published seconds of ALB metrics
        async with Client(build_server(shop.app), elicitation_callback=user_says_yes) as client:
            result = await client.call_tool("validate", {"service": "hello", "environment": lane.environment})
    finally:
        load.stop()
    assert not result.is_error, result.content
    report = result.structured_content
    assert report is not None
    assert report["health"]["healthy"] is True, report["health"]
    assert report["smoke"]["passed"] is True, report["smoke"]
    assert report["metrics"]["source"] == "cloudwatch", report["metrics"]
    assert report["metrics"]["current"]["requests"] > 0, report["metrics"]
    assert report["verdict"] == "pass", report["reasons"]


# -- the allowlist -------------------------------------------------------------------------------------------------


async def test_a_cluster_outside_the_allowlist_is_refused_with_nothing_changed(shop: Shop) -> None:
    ecs = shop.world.fleet.client("ecs")
    definitions = ecs.list_task_definitions()["taskDefinitionArns"]
    async with Client(build_server(shop.app), elicitation_callback=user_says_yes) as client:
        arguments = {"service": "hello", "version": GOOD, "environment": "elsewhere"}
        result = await client.call_tool("deploy", arguments)
        if not result.is_error and result.structured_content:
            result_view = await settle(client, result)
            text = json.dumps(result_view)
        else:
            text = " ".join(getattr(c, "text", "") for c in result.content) + json.dumps(
                result.structured_content or {}
            )
    assert "payments" in text and "allowed_clusters" in text, text
    assert "Traceback" not in text
    assert ecs.list_task_definitions()["taskDefinitionArns"] == definitions, "no task definition was registered"
    assert [c.rsplit("/", 1)[-1] for c in ecs.list_clusters()["clusterArns"]] == [CLUSTER]


def test_credentials_never_reach_a_record_or_an_answer(shop: Shop) -> None:
    """Everything deploy-mcp wrote about these deployments: no key from the AWS chain appears anywhere."""
    ledger = shop.app.project.state_dir
    written = "".join(
        p.read_text(errors="replace") for p in Path(ledger).rglob("*") if p.is_file() and p.suffix != ".db"
    )
    written += (
        Path(ledger, "ledger.db").read_bytes().decode(errors="replace") if Path(ledger, "ledger.db").exists() else ""
    )
    for secret in (CREDENTIALS["AWS_SECRET_ACCESS_KEY"],):
        assert secret not in written


# -- a real account, when asked for ----------------------------------------------------------------------------------


@pytest.mark.opt_in(
    enabled=os.environ.get("DEPLOY_MCP_TEST_AWS") == "1" and bool(os.environ.get("DEPLOY_MCP_TEST_AWS_CONFIG")),
    reason="opt-in: set DEPLOY_MCP_TEST_AWS=1, AWS credentials (the standard chain) and DEPLOY_MCP_TEST_AWS_CONFIG "
    "(a deploy.toml whose service 'web' has an environment 'test' on ECS with its listener and target groups)",
)
def test_the_driver_on_a_real_account() -> None:
    """Start, split, preview and stop on a real account: the same calls the moto suite makes."""
    from deploy_mcp.config.loader import load_project
    from deploy_mcp.core.target import Release
    from deploy_mcp.targets.ecs import create_platform

    project = load_project(Path(os.environ["DEPLOY_MCP_TEST_AWS_CONFIG"]))
    platform = create_platform(project, "web")
    service = project.config.services["web"]
    versions = os.environ.get("DEPLOY_MCP_TEST_AWS_VERSIONS", "1,2").split(",")
    try:
        for version in versions:
            platform.workload.start_version("web", "test", Release.resolve("web", service, version), 1, timeout=600)
        assert platform.router.verify_weights("web", "test") == {versions[0]: 100, versions[1]: 0}
        platform.router.set_weights("web", "test", {versions[0]: 90, versions[1]: 10})
        assert platform.router.verify_weights("web", "test") == {versions[0]: 90, versions[1]: 10}
        platform.router.set_weights("web", "test", {versions[0]: 100})
    finally:
        for version in reversed(versions):
            try:
                platform.workload.stop_version("web", "test", version, drain_timeout=30)
            except Exception as exc:  # cleanup: report, go on
                print(f"cleanup of {version}: {exc}")
        platform.close()


async def test_a_rolling_release_that_crashes_is_rolled_back_by_the_circuit_breaker_and_recorded(shop: Shop) -> None:
    """ECS's own rolling deployment: the circuit breaker's rollback is our rollback, in the record and on ECS."""
    lane = shop.lane("rolling")
    old = serving(shop, lane)
    shipped = await ship(shop, lane, CRASH)
    record = shipped.record
    assert record["status"] == "rolled_back", record
    assert "circuit breaker" in record["reason"], record["reason"]
    assert shipped.load.failures == 0, shipped.load.summary()
    assert serving(shop, lane) == old
