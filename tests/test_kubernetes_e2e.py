"""Every strategy end to end through the MCP protocol on Kubernetes (the API emulator), under steady load.

The same shape as tests/test_strategies_e2e.py, on the Kubernetes target: Deployments, a Gateway API HTTPRoute
for the weights, probes through the API server's service proxy, flags in a ConfigMap, and the analysis reading a
real Prometheus that scrapes the emulated mesh. Each environment first gets 1.0.0; then, with load running
through the environment's Service, a good release ships with zero failed requests (recreate excepted: its
downtime is stated in the plan), and bad releases (one request in five fails, three seconds per request, exits at
start) are rolled back by the server before they reach everyone, with the numbers. A namespace outside
``allowed_namespaces`` is refused with nothing created.

Set DEPLOY_MCP_TEST_K8S=1 and KUBECONFIG to run the opt-in check against a real cluster at the end.
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
from conftest import free_port, require_component
from kube_emulator import Cluster
from kube_fixtures import kubeconfig, kubectl
from mcp import Client
from prometheus_fixture import start_prometheus
from registry_fixture import RegistryServer, require_registry

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server
from deploy_mcp.targets.local.loadgen import BackgroundLoad, LoadResult

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]

RATE = 100.0
CONCURRENCY = 48
FLAG = "new-greeting"
SHORT = '{ interval = "1s", bake = "3s", min_requests = 20 }'
SLOW_ENOUGH = '{ interval = "1s", bake = "6s", min_requests = 20 }'
ERRORS, SLOW, CRASH = "3.0.0", "3.1.0", "3.2.0"
PERCENT = re.compile(r"\d+(\.\d+)?%")
REQUESTS = re.compile(r"\b\d+ requests\b")


@dataclass(frozen=True)
class Lane:
    strategy: str
    service: str
    environment: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def config(cluster: Cluster, folder: Path, prometheus: str, registry: str, lanes: dict[str, Lane]) -> str:
    lane = lanes
    return f"""
[targets.kubernetes]
kubeconfig = "{kubeconfig(cluster, folder)}"
namespace = "default"
allowed_namespaces = ["default"]
router = "gateway-api"

[targets.prometheus]
url = "{prometheus}"

[services.hello]
target = "kubernetes"
image = "{registry}/hello:{{version}}"
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.versions."{ERRORS}"]
env = {{ ERROR_RATE = "0.2" }}
[services.hello.versions."{SLOW}"]
env = {{ LATENCY_MS = "3000" }}
[services.hello.versions."{CRASH}"]
env = {{ CRASH_ON_START = "1" }}

[services.hello.environments.{lane["canary"].environment}]
strategy = "canary"
steps = [25, 100]
analysis = {SLOW_ENOUGH}

[services.hello.environments.{lane["rolling"].environment}]
strategy = "rolling"
analysis = {SHORT}

[services.hello.environments.{lane["blue-green"].environment}]
strategy = "blue-green"
scale_down_delay = "1s"
analysis = {SHORT}

[services.hello.environments.{lane["recreate"].environment}]
strategy = "recreate"
analysis = {SHORT}

[services.hello.environments.forbidden]
namespace = "kube-system"

[services.flagged]
target = "kubernetes"
image = "{registry}/hello:{{version}}"
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]
flag = {{ name = "{FLAG}" }}

[services.flagged.versions."{ERRORS}"]
env = {{ ERROR_RATE = "0.2" }}

[services.flagged.environments.{lane["feature-flag"].environment}]
strategy = "feature-flag"
steps = [50, 100]
scale_down_delay = "1s"
analysis = {SHORT}
"""


@dataclass
class Shop:
    app: App
    cluster: Cluster
    lanes: dict[str, Lane]
    folder: Path
    prometheus: str
    registry: str
    ratio_port: int


async def user_says_yes(_context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"confirm": True})


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """An emulated cluster whose stable Services listen on fixed ports, a Prometheus scraping its mesh metrics,
    and 1.0.0 deployed through MCP in every lane under light load."""
    require_component("kubectl", os.path.exists("/usr/bin/kubectl"), "install kubectl (scripts/setup.sh)")
    require_registry()
    folder = tmp_path_factory.mktemp("kubernetes-e2e")
    registry = RegistryServer(folder / "registry").start()  # preflight checks that each image exists
    for version in ("1.0.0", "2.0.0", ERRORS, SLOW, CRASH):
        registry.push("hello", version)
    lanes = {
        "canary": Lane("canary", "hello", "canary", free_port()),
        "rolling": Lane("rolling", "hello", "rolling", free_port()),
        "blue-green": Lane("blue-green", "hello", "bluegreen", free_port()),
        "recreate": Lane("recreate", "hello", "recreate", free_port()),
        "feature-flag": Lane("feature-flag", "flagged", "flag", free_port()),
    }
    ports = {("default", f"{lane.service}-{lane.environment}"): lane.port for lane in lanes.values()}
    ports[("default", "ratio-production")] = ratio_port = free_port()
    cluster = Cluster(workdir=folder / "cluster", service_ports=ports).start()
    prometheus = start_prometheus([cluster.url.removeprefix("http://")])
    (folder / "deploy.toml").write_text(
        config(cluster, folder, prometheus.url, registry.address, lanes), encoding="utf-8"
    )
    app = App.load(folder / "deploy.toml")
    shop = Shop(app, cluster, lanes, folder, prometheus.url, registry.address, ratio_port)
    try:
        started = time.monotonic()
        anyio.run(first_releases, shop)
        print(f"\n1.0.0 in {len(lanes)} lanes: {time.monotonic() - started:.1f} s")
        yield shop
    finally:
        app.close()
        prometheus.stop()
        cluster.stop()
        registry.stop()


async def first_releases(shop: Shop) -> None:
    """Light load runs from the start (refused until each Service exists: not counted) so every first analysis
    has traffic to judge; no data is never a pass."""
    loads = [BackgroundLoad(lane.url, rate=30, concurrency=4).start() for lane in shop.lanes.values()]
    try:
        async with Client(build_server(shop.app), elicitation_callback=user_says_yes) as client:
            started = []
            for lane in shop.lanes.values():
                arguments = {"service": lane.service, "version": "1.0.0", "environment": lane.environment}
                started.append(await client.call_tool("deploy", {**arguments, "wait_seconds": 0}))
            for lane, result in zip(shop.lanes.values(), started, strict=True):
                view = await settle(client, result, timeout=180)
                if view["record"]["status"] == "paused":  # judged before Prometheus had its first scrapes: again
                    deployment_id = view["record"]["id"]
                    view = await settle(client, await client.call_tool("resume", {"deployment_id": deployment_id}))
                assert view["record"]["status"] == "succeeded", (lane, view["record"])
    finally:
        for load in loads:
            load.stop()


async def settle(client: Client, result: types.CallToolResult, timeout: float = 150.0) -> dict[str, Any]:
    assert not result.is_error, result.content
    view = result.structured_content
    assert view is not None
    deadline = time.monotonic() + timeout
    while view["record"]["status"] in ("pending", "in_progress"):
        assert time.monotonic() < deadline, f"{view['record']['id']} did not settle: {view['record']}"
        await anyio.sleep(0.3)
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
        arguments = {"service": lane.service, "version": version, "environment": lane.environment}
        plan = await client.call_tool("plan_deployment", arguments)
        assert not plan.is_error, plan.content
        started = time.monotonic()
        load = BackgroundLoad(lane.url, rate=RATE, concurrency=concurrency).start()
        try:
            view = await settle(client, await client.call_tool("deploy", arguments))
        finally:
            result = load.stop()
        seconds = time.monotonic() - started
    print(f"\n{lane.strategy} {version}: {view['record']['status']} in {seconds:.1f} s; load: {result.summary()}")
    assert plan.structured_content is not None
    return Shipped(plan.structured_content, view, result, seconds)


def serving(shop: Shop, lane: Lane) -> str:
    state = shop.app.target(lane.service).state(lane.service, lane.environment)
    assert len(state.serving) == 1, state
    return state.serving[0]


def deployments(shop: Shop, lane: Lane) -> list[str]:
    """What kubectl lists for the lane, by the labels deploy-mcp puts on everything it creates."""
    selector = f"app.kubernetes.io/managed-by=deploy-mcp,app.kubernetes.io/name={lane.service}"
    selector += f",deploy-mcp.dev/environment={lane.environment}"
    found = json.loads(kubectl(shop.cluster, "get", "deploy", "-l", selector, "-o", "json").stdout)["items"]
    return sorted(d["metadata"]["annotations"]["deploy-mcp.dev/version"] for d in found)


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
    lane = shop.lanes[strategy]
    old = serving(shop, lane)
    shipped = await ship(shop, lane, "2.0.0")
    assert_good(shipped, old)
    load = shipped.load
    assert load.failures == 0, (load.summary(), load.failures_at[:10])
    assert load.requests >= 0.5 * RATE * shipped.seconds, f"the load fell behind its pace: {load.summary()}"
    assert load.versions["2.0.0"] > 0, load.summary()
    for verdict in shipped.record["verdicts"]:  # Prometheus saw real traffic at every analysis
        if verdict["phase"] == "Successful" and verdict.get("metrics"):
            assert verdict["metrics"]["requests"] >= 20, verdict
    assert deployments(shop, lane) == ["2.0.0"], "kubectl sees what deploy-mcp reports"
    owned = f"deploy-mcp.dev/deployment-id={shipped.record['id']}"
    labelled = kubectl(shop.cluster, "get", "deploy,pods", "-l", owned, "-o", "name").stdout.split()
    assert len([n for n in labelled if n.startswith("pod/")]) == 2, f"every pod names its deployment: {labelled}"
    if strategy == "rolling":  # the Deployment's own RollingUpdate, followed the way kubectl rollout status does
        assert [s["name"] for s in shipped.record["steps"]] == ["rollout", "analyze"]
        kubectl(shop.cluster, "rollout", "status", f"deployment/{lane.service}-{lane.environment}", "--timeout=5s")
    if strategy == "canary":
        assert [s["weight"] for s in shipped.steps("set_weights")] == [25, 100]
        assert load.versions[old] > 0
    elif strategy == "blue-green":
        assert [s["weight"] for s in shipped.steps("set_weights")] == [100]
    elif strategy == "feature-flag":
        assert [s["weight"] for s in shipped.steps("flag")] == [0, 50, 100]
        flags = json.loads(kubectl(shop.cluster, "get", "configmap", "flagged-flag-flags", "-o", "json").stdout)
        assert json.loads(flags["data"]["flags.json"])["flags"][FLAG]["defaultVariant"] == "on"


async def test_recreate_ships_after_the_downtime_its_plan_states(shop: Shop) -> None:
    lane = shop.lanes["recreate"]
    old = serving(shop, lane)
    shipped = await ship(shop, lane, "2.0.0")
    assert shipped.plan["expected_downtime_seconds"] > 0
    assert_good(shipped, old)
    assert set(shipped.load.statuses) <= {200, 503}, shipped.load.summary()
    assert deployments(shop, lane) == ["2.0.0"]


# -- bad releases --------------------------------------------------------------------------------------------------


def assert_numbers(reason: str, *, errors: bool) -> None:
    if errors:
        assert "error rate" in reason and PERCENT.search(reason) and "above the critical 5%" in reason, reason
    else:
        assert "p95 latency" in reason and "above the critical 2000 ms" in reason, reason
    assert REQUESTS.search(reason), f"the request count is missing: {reason}"


@pytest.mark.parametrize(("strategy", "version"), [("canary", ERRORS), ("canary", SLOW), ("rolling", ERRORS)])
async def test_a_bad_release_is_rolled_back_before_everyone_gets_it(shop: Shop, strategy: str, version: str) -> None:
    lane = shop.lanes[strategy]
    old = serving(shop, lane)
    shipped = await ship(shop, lane, version, concurrency=2 * CONCURRENCY if version == SLOW else CONCURRENCY)
    failed = assert_rolled_back(shipped, old)
    print(f"reason: {shipped.record['reason']}")
    assert_numbers(shipped.record["reason"], errors=version == ERRORS)
    assert failed["metrics"]["version"] == version and failed["metrics"]["requests"] > 0, failed
    steps = shipped.record["steps"]
    assert steps[failed["step"] - 1]["name"] == "analyze"
    if strategy == "canary":  # caught at 25%: the step that would send everyone never ran
        full = next(s for s in steps if s["name"] == "set_weights" and s["weight"] == 100)
        assert full["status"] == "pending" and failed["step"] < full["index"]
    else:  # the Deployment's own RollingUpdate, judged after it, undone as kubectl rollout undo does
        assert [s["name"] for s in steps] == ["rollout", "analyze"]
        assert "the Deployment was rolled back (kubectl rollout undo)" in shipped.record["reason"]
        history = kubectl(shop.cluster, "rollout", "history", f"deployment/{lane.service}-{lane.environment}").stdout
        revisions = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
        assert len(revisions) >= 2 and revisions == sorted(revisions, key=int), history
    assert deployments(shop, lane) == [old], "nothing of the bad release is left in the cluster"


async def test_a_release_that_crashes_at_start_never_takes_traffic(shop: Shop) -> None:
    lane = shop.lanes["canary"]
    old = serving(shop, lane)
    shipped = await ship(shop, lane, CRASH)
    record = shipped.record
    assert record["status"] in ("rolled_back", "failed"), record
    assert "crash" in record["reason"] and "CrashLoopBackOff" in record["reason"], record["reason"]
    assert "exit code 3" in record["reason"], record["reason"]
    assert record["steps"][0]["status"] == "failed"
    assert shipped.live() == [(old, 2, 100)]
    assert shipped.load.failures == 0 and CRASH not in shipped.load.versions, shipped.load.summary()
    assert deployments(shop, lane) == [old]


# -- no traffic router: weights are replica ratios ---------------------------------------------------------------


async def test_without_a_router_the_canary_plan_shows_and_makes_replica_ratios(shop: Shop) -> None:
    """router = "service": the stable Service selects one version or all of them, so a 25% step with 3 replicas
    is 1 pod of 3, 33%; the plan says so before anything runs, and the split read back is that one."""
    folder = shop.folder / "ratio"
    folder.mkdir()
    (folder / "deploy.toml").write_text(
        f"""
[targets.kubernetes]
kubeconfig = "{kubeconfig(shop.cluster, folder)}"
allowed_namespaces = ["default"]

[targets.prometheus]
url = "{shop.prometheus}"

[services.ratio]
target = "kubernetes"
image = "{shop.registry}/hello:{{version}}"
replicas = 3
smoke = ["/health", "!/nonexistent"]

[services.ratio.environments.production]
strategy = "canary"
steps = [25, 100]
analysis = {SHORT}
""",
        encoding="utf-8",
    )
    app = App.load(folder / "deploy.toml")
    url = f"http://127.0.0.1:{shop.ratio_port}/"
    arguments = {"service": "ratio", "environment": "production"}
    try:
        load = BackgroundLoad(url, rate=RATE, concurrency=CONCURRENCY).start()  # refused until the Service exists
        async with Client(build_server(app), elicitation_callback=user_says_yes) as client:
            first = await settle(client, await client.call_tool("deploy", {**arguments, "version": "1.0.0"}), 180)
            if first["record"]["status"] == "paused":
                deployment_id = first["record"]["id"]
                first = await settle(client, await client.call_tool("resume", {"deployment_id": deployment_id}))
            assert first["record"]["status"] == "succeeded", first["record"]
            load.stop()
            plan = await client.call_tool("plan_deployment", {**arguments, "version": "2.0.0"})
            assert plan.structured_content is not None
            assert plan.structured_content["capabilities"]["exact_weights"] is False
            plan_text = json.dumps(plan.structured_content)
            assert "25% requested, 33% possible with 3 replicas" in plan_text, plan_text
            load = BackgroundLoad(url, rate=RATE, concurrency=CONCURRENCY).start()
            view = await settle(client, await client.call_tool("deploy", {**arguments, "version": "2.0.0"}))
            result = load.stop()
        record = view["record"]
        assert record["status"] == "succeeded", record["reason"]
        assert [s["weight"] for s in record["steps"] if s["name"] == "set_weights"] == [33, 100]
        assert result.failures == 0 and result.versions["1.0.0"] > 0 and result.versions["2.0.0"] > 0, result.summary()
        selector = json.loads(kubectl(shop.cluster, "get", "svc", "ratio-production", "-o", "json").stdout)
        assert selector["spec"]["selector"]["app.kubernetes.io/version"] == "2.0.0", "the Service holds 2.0.0 only"
        assert [(v["version"], v["ready"], v["weight"]) for v in view["live"]["versions"]] == [("2.0.0", 3, 100)]
    finally:
        app.close()


# -- the namespace allowlist ---------------------------------------------------------------------------------------


async def test_a_namespace_outside_allowed_namespaces_is_refused_with_nothing_created(shop: Shop) -> None:
    before = shop.cluster.store.revision
    async with Client(build_server(shop.app), elicitation_callback=user_says_yes) as client:
        arguments = {"service": "hello", "version": "2.0.0", "environment": "forbidden"}
        result = await client.call_tool("deploy", arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content) + json.dumps(result.structured_content or {})
    assert "kube-system" in text and "allowed_namespaces" in text, text
    assert "Traceback" not in text
    written = [
        e for e in shop.cluster.store.events_since(before) if e.obj["metadata"].get("namespace") == "kube-system"
    ]
    assert written == [], "nothing may be created in a namespace outside the list"
    assert kubectl(shop.cluster, "get", "deploy,svc", "-n", "kube-system", "-o", "name").stdout.strip() == ""


# -- a real cluster, when asked for --------------------------------------------------------------------------------


@pytest.mark.opt_in(
    enabled=os.environ.get("DEPLOY_MCP_TEST_K8S") == "1" and bool(os.environ.get("KUBECONFIG")),
    reason="opt-in: set DEPLOY_MCP_TEST_K8S=1 and KUBECONFIG to run against a real cluster",
)
def test_the_driver_on_a_real_cluster(tmp_path: Path) -> None:
    """Start, split, preview, stop on a real cluster (namespace $DEPLOY_MCP_TEST_K8S_NAMESPACE, default
    "deploy-mcp-test", which must exist; images from $DEPLOY_MCP_TEST_K8S_IMAGE, default a public echo server)."""
    from deploy_mcp.config.loader import load_project
    from deploy_mcp.core.target import Release
    from deploy_mcp.targets.kubernetes import create_platform

    namespace = os.environ.get("DEPLOY_MCP_TEST_K8S_NAMESPACE", "deploy-mcp-test")
    image = os.environ.get("DEPLOY_MCP_TEST_K8S_IMAGE", "registry.k8s.io/e2e-test-images/agnhost:2.{version}")
    (tmp_path / "deploy.toml").write_text(
        f"""
[targets.kubernetes]
namespace = "{namespace}"
allowed_namespaces = ["{namespace}"]
container_port = 8080

[services.echo]
target = "kubernetes"
image = "{image}"
replicas = 1
health = "/"
[services.echo.environments.test]
""",
        encoding="utf-8",
    )
    project = load_project(tmp_path / "deploy.toml")
    platform = create_platform(project, "echo")
    service = project.config.services["echo"]
    try:
        for version in ("39", "40"):
            platform.workload.start_version("echo", "test", Release.resolve("echo", service, version), 1, timeout=180)
        assert platform.router.verify_weights("echo", "test") == {"39": 100, "40": 0}
        with platform.prober.http_client("echo", "test", "40") as client:
            assert client.get("/").status_code < 500
    finally:
        for version in ("39", "40"):
            try:
                platform.workload.stop_version("echo", "test", version, drain_timeout=5)
            except Exception as exc:  # best effort: the next run starts clean all the same
                print(f"cleanup of {version}: {exc}")
        platform.close()


async def test_validate_checks_health_smoke_and_metrics_through_the_cluster(shop: Shop) -> None:
    lane = shop.lanes["blue-green"]
    with BackgroundLoad(lane.url, rate=40, concurrency=4):
        await anyio.sleep(4)  # a few scrapes of real traffic for the metrics part
        async with Client(build_server(shop.app), elicitation_callback=user_says_yes) as client:
            result = await client.call_tool("validate", {"service": lane.service, "environment": lane.environment})
    assert not result.is_error, result.content
    view = result.structured_content
    assert view is not None
    text = json.dumps(view)
    assert view["verdict"] == "pass", text
    assert "/api/v1/namespaces/default/services/hello-bluegreen:http/proxy" in text or "health" in text
