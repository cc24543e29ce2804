"""Every strategy end to end through the MCP protocol, on the real local platform, under steady load.

One project holds one environment per strategy (and a second service for the feature flag, whose flagd file
hello reads). Each environment first gets 1.0.0 under load; then, at 150 requests per second through the
router, a good release must ship with zero failed requests (recreate excepted: its downtime is by design and
stated in the plan), and bad releases (one request in five fails, three seconds per request, or exits at start)
must be rolled back by the server itself before they reach everyone, with a reason that carries the numbers.
A last release is sound as a build but broken behind its flag (a small variant of hello written into the project):
ramping the flag to users fails it, and the undo turns the flag off first.

Timings are small (analysis every 1 s, bakes of 2-5 s, at least 20 requests) so the file stays well under three
minutes on two busy cores. The module fixture stops everything and then checks that no process is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from local_fixtures import free_port, wait_until_gone
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server
from deploy_mcp.targets.local.loadgen import BackgroundLoad, LoadResult

pytestmark = pytest.mark.anyio
HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "server.py"

RATE = 150.0
CONCURRENCY = 64
"""Enough connections that requests slowed to 3 s by a bad release do not starve the open-loop pace."""
FLAG = "new-greeting"
NEW_GREETING = "Welcome to the new hello"

SHORT = '{ interval = "1s", bake = "2s", min_requests = 20 }'
SLOW_ENOUGH = '{ interval = "1s", bake = "5s", min_requests = 20 }'
"""A request to a 3 s release is counted when it completes: the bake must outlast it by a couple of intervals."""


@dataclass(frozen=True)
class Lane:
    """One strategy's place in the project: the service and environment that run it, and its fixed port."""

    strategy: str
    service: str
    environment: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


BROKEN_FEATURE = """\
\"\"\"hello whose new feature is broken: with the flag on, one request to / in five fails (ERROR_RATE ignores it).\"\"\"
import importlib.util, random, sys
from http import HTTPStatus

spec = importlib.util.spec_from_file_location("hello_server", {hello!r})
hello = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hello)
route = hello.Handler._route


def broken_when_on(self):
    if self.path == "/" and self.flags.enabled() and random.random() < 0.2:
        self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {{"error": "the new greeting failed"}})
        return
    route(self)


hello.Handler._route = broken_when_on
sys.exit(hello.main())
"""


def config(lanes: dict[str, Lane], flags_file: Path, broken_feature: Path) -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    broken = json.dumps([sys.executable, str(broken_feature), "--port", "{port}"])
    lane = lanes  # short, for the f-string below
    return f"""
[services.hello]
command = {command}
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]  # "/" fails in the bad releases by design: that is the analysis' job

[services.hello.versions."3.0.0"]  # one request in five answers 500
env = {{ ERROR_RATE = "0.2" }}
[services.hello.versions."3.1.0"]  # three seconds per request
env = {{ LATENCY_MS = "3000" }}
[services.hello.versions."3.2.0"]  # exits before it listens
env = {{ CRASH_ON_START = "1" }}

[services.hello.environments.{lane["canary"].environment}]
strategy = "canary"
production = true  # the user confirms through elicitation
steps = [25, 100]
port = {lane["canary"].port}
analysis = {SLOW_ENOUGH}

[services.hello.environments.{lane["rolling"].environment}]
strategy = "rolling"
port = {lane["rolling"].port}
analysis = {SHORT}

[services.hello.environments.{lane["blue-green"].environment}]
strategy = "blue-green"
scale_down_delay = "1s"
port = {lane["blue-green"].port}
analysis = {SHORT}

[services.hello.environments.{lane["recreate"].environment}]
strategy = "recreate"
port = {lane["recreate"].port}
analysis = {SHORT}

[services.flagged]
command = {command}
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]
env = {{ FLAGS_FILE = {json.dumps(str(flags_file))}, FLAG_NAME = "{FLAG}" }}
flag = {{ name = "{FLAG}" }}

[services.flagged.versions."3.0.0"]
env = {{ ERROR_RATE = "0.2" }}
[services.flagged.versions."3.5.0"]  # sound with the flag off, broken with it on
command = {broken}

[services.flagged.environments.{lane["feature-flag"].environment}]
strategy = "feature-flag"
steps = [50, 100]
scale_down_delay = "1s"
port = {lane["feature-flag"].port}
analysis = {SHORT}
"""


@dataclass
class Shop:
    app: App
    folder: Path
    lanes: dict[str, Lane]
    flags_file: Path


asked: list[str] = []


async def user_says_yes(_context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
    asked.append(params.message)
    return types.ElicitResult(action="accept", content={"confirm": True})


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The project with 1.0.0 serving in every lane (deployed through MCP under light load), torn down after."""
    folder = tmp_path_factory.mktemp("strategies")
    lanes = {
        "canary": Lane("canary", "hello", "canary", free_port()),
        "rolling": Lane("rolling", "hello", "rolling", free_port()),
        "blue-green": Lane("blue-green", "hello", "bluegreen", free_port()),
        "recreate": Lane("recreate", "hello", "recreate", free_port()),
        "feature-flag": Lane("feature-flag", "flagged", "flag", free_port()),
    }
    flags_file = folder / ".deploy" / "flags.json"
    broken_feature = folder / "broken_feature.py"
    broken_feature.write_text(BROKEN_FEATURE.format(hello=str(HELLO)), encoding="utf-8")
    (folder / "deploy.toml").write_text(config(lanes, flags_file, broken_feature), encoding="utf-8")
    app = App.load(folder / "deploy.toml")
    shop = Shop(app, folder, lanes, flags_file)
    try:
        started = time.monotonic()
        anyio.run(first_releases, shop)
        print(f"\n1.0.0 in {len(lanes)} lanes: {time.monotonic() - started:.1f} s")
        yield shop
    finally:
        app.close()
        from deploy_mcp.targets.local import cli

        for service in ("hello", "flagged"):
            with contextlib.suppress(Exception):
                cli.stop(app.project, service)
        left = wait_until_gone(folder)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert left == [], f"processes left running: {left}"


async def first_releases(shop: Shop) -> None:
    """1.0.0 everywhere at once. The routers' ports are fixed, so light load runs before they exist: its
    connection errors until then mean nothing and are not counted; it gives each first analysis its data."""
    loads = [BackgroundLoad(lane.url, rate=40, concurrency=8).start() for lane in shop.lanes.values()]
    try:
        async with Client(build_server(shop.app), elicitation_callback=user_says_yes) as client:
            started = []
            for lane in shop.lanes.values():
                arguments = {"service": lane.service, "version": "1.0.0", "environment": lane.environment}
                started.append(await client.call_tool("deploy", {**arguments, "wait_seconds": 0}))
            for lane, result in zip(shop.lanes.values(), started, strict=True):
                view = await settle(client, result)
                assert view["record"]["status"] == "succeeded", (lane, view["record"])
    finally:
        for load in loads:
            load.stop()


async def settle(client: Client, result: types.CallToolResult, timeout: float = 90.0) -> dict[str, Any]:
    assert not result.is_error, result.content
    view = result.structured_content
    assert view is not None
    deadline = time.monotonic() + timeout
    while view["record"]["status"] in ("pending", "in_progress"):
        assert time.monotonic() < deadline, f"{view['record']['id']} did not settle: {view['record']['status']}"
        await anyio.sleep(0.25)
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
        """(version, ready instances, weight) of everything the platform runs now."""
        return [(v["version"], v["ready"], v["weight"]) for v in self.view["live"]["versions"]]

    def steps(self, name: str) -> list[dict[str, Any]]:
        return [step for step in self.record["steps"] if step["name"] == name]


async def ship(shop: Shop, lane: Lane, version: str, *, concurrency: int = CONCURRENCY) -> Shipped:
    """Plan, then deploy ``version`` to the lane while load runs through its router for the whole change."""
    async with Client(build_server(shop.app), elicitation_callback=user_says_yes) as client:
        arguments = {"service": lane.service, "version": version, "environment": lane.environment}
        plan = await client.call_tool("plan_deployment", arguments)
        assert not plan.is_error, plan.content
        assert plan.structured_content is not None
        started = time.monotonic()
        with BackgroundLoad(lane.url, rate=RATE, concurrency=concurrency) as load:
            view = await settle(client, await client.call_tool("deploy", arguments))
            seconds = time.monotonic() - started
            result = load.stop()
    print(f"\n{lane.strategy} {version}: {view['record']['status']} in {seconds:.1f} s; load: {result.summary()}")
    return Shipped(plan.structured_content, view, result, seconds)


def assert_no_failed_request(shipped: Shipped) -> None:
    load = shipped.load
    assert load.requests >= 0.6 * RATE * shipped.seconds, f"the load fell behind its pace: {load.summary()}"
    assert load.failures == 0, (load.summary(), load.failures_at[:10])


def assert_good(shipped: Shipped, old: str) -> None:
    record = shipped.record
    assert record["status"] == "succeeded", record["reason"]
    assert record["previous_version"] == old
    assert record["validation"]["passed"] is True, record["validation"]
    assert all(step["status"] == "succeeded" for step in record["steps"]), record["steps"]
    assert shipped.live() == [(record["version"], 2, 100)]


def assert_rolled_back(shipped: Shipped, old: str) -> dict[str, Any]:
    """The server undid it by itself: the old version serves everything at full size, nothing of the new is left.
    Returns the verdict that failed it."""
    record = shipped.record
    assert record["status"] == "rolled_back", record
    assert record["previous_version"] == old
    assert record["validation"]["passed"] is False
    assert f"{old} serves all traffic again" in record["reason"], record["reason"]
    assert shipped.live() == [(old, 2, 100)], shipped.view["live"]
    assert shipped.view["next_step"].startswith("read the reason and the numbers")
    failed = [v for v in record["verdicts"] if v["phase"] == "Failed"]
    assert failed, record["verdicts"]
    return failed[0]


def serving(shop: Shop, lane: Lane) -> str:
    state = shop.app.target(lane.service).state(lane.service, lane.environment)
    assert len(state.serving) == 1, state
    return state.serving[0]


def greeting(lane: Lane) -> str:
    with urllib.request.urlopen(lane.url, timeout=5) as answer:
        return json.loads(answer.read())["message"]


def flag_document(shop: Shop) -> dict[str, Any]:
    return json.loads(shop.flags_file.read_text(encoding="utf-8"))["flags"][FLAG]


# -- good releases -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["canary", "rolling", "blue-green", "feature-flag"])
async def test_a_good_release_ships_without_a_single_failed_request(shop: Shop, strategy: str) -> None:
    lane = shop.lanes[strategy]
    old = serving(shop, lane)
    asked.clear()
    shipped = await ship(shop, lane, "2.0.0")
    assert_good(shipped, old)
    assert_no_failed_request(shipped)
    assert shipped.load.versions["2.0.0"] > 0 and shipped.load.versions[old] > 0, shipped.load.summary()
    analyses = shipped.steps("analyze")
    verdicts = {v["step"]: v for v in shipped.record["verdicts"]}
    for step in analyses:  # every analysis judged real traffic: none was waved through on no data
        assert verdicts[step["index"]]["phase"] == "Successful", verdicts[step["index"]]
        assert verdicts[step["index"]]["metrics"]["requests"] >= 20
    if strategy == "canary":
        assert len(asked) == 1 and asked[0].startswith("Deploy hello 2.0.0 to canary"), "production asks the user"
        assert [s["weight"] for s in shipped.steps("set_weights")] == [25, 100]
    elif strategy == "rolling":
        assert len(analyses) == 2, "one analysis per batch, while old and new instances both serve"
        assert not shipped.steps("set_weights"), "traffic follows the instances"
    elif strategy == "blue-green":
        assert [s["weight"] for s in shipped.steps("set_weights")] == [100]
        assert [s["name"] for s in shipped.record["steps"]][-2:] == ["pause", "stop"], "old side kept warm"
    else:
        assert [s["weight"] for s in shipped.steps("flag")] == [0, 50, 100]
        assert flag_document(shop)["defaultVariant"] == "on"
        assert NEW_GREETING in greeting(lane), "users see the feature once the flag is at 100%"


async def test_recreate_ships_after_the_downtime_its_plan_states(shop: Shop) -> None:
    lane = shop.lanes["recreate"]
    old = serving(shop, lane)
    shipped = await ship(shop, lane, "2.0.0")
    plan = shipped.plan
    assert plan["strategy"] == "recreate" and plan["production"] is False
    assert plan["expected_downtime_seconds"] > 0
    assert any("downtime" in warning and old in warning for warning in plan["warnings"]), plan["warnings"]
    assert [s["action"] for s in plan["steps"]][:2] == ["stop", "start"]
    assert_good(shipped, old)
    # The outage is real, as stated: requests failed (503, no version) only between the stop and the start, and
    # for less time than the plan said to expect.
    failed_at = [at for at, _ in shipped.load.failures_at]
    assert failed_at, "recreate stops the old version before the new one starts: some requests must fail"
    outage = max(failed_at) - min(failed_at)
    print(f"recreate outage: {outage:.2f} s, {len(failed_at)} failed requests of {shipped.load.requests}")
    assert outage < plan["expected_downtime_seconds"]
    assert set(shipped.load.statuses) <= {200, 503} and not shipped.load.exceptions, shipped.load.summary()


# -- bad releases --------------------------------------------------------------------------------------------------

ERRORS, SLOW, CRASH = "3.0.0", "3.1.0", "3.2.0"
PERCENT = re.compile(r"\d+(\.\d+)?%")
REQUESTS = re.compile(r"\b\d+ requests\b")


def assert_numbers(reason: str, *, errors: bool) -> None:
    if errors:
        assert "error rate" in reason and PERCENT.search(reason), reason
        assert "above the critical 5%" in reason, reason
    else:
        assert "p95 latency" in reason and "above the critical 2000 ms" in reason, reason
    assert REQUESTS.search(reason), f"the request count is missing: {reason}"


@pytest.mark.parametrize(
    ("strategy", "version"),
    [
        ("canary", ERRORS),
        ("canary", SLOW),
        ("rolling", ERRORS),
        ("blue-green", ERRORS),
        ("recreate", ERRORS),
        ("feature-flag", ERRORS),
    ],
)
async def test_a_bad_release_is_rolled_back_by_the_server_with_the_numbers(
    shop: Shop, strategy: str, version: str
) -> None:
    lane = shop.lanes[strategy]
    old = serving(shop, lane)
    shipped = await ship(shop, lane, version, concurrency=2 * CONCURRENCY if version == SLOW else CONCURRENCY)
    failed = assert_rolled_back(shipped, old)
    record, reason = shipped.record, shipped.record["reason"]
    assert_numbers(reason, errors=version == ERRORS)
    assert failed["metrics"]["version"] == version and failed["metrics"]["requests"] > 0, failed
    if version == ERRORS:
        assert failed["metrics"]["errors"] > 0 and failed["metrics"]["error_rate"] > 0.05, failed
    else:
        assert failed["metrics"]["p95_ms"] > 2000, failed
    steps = record["steps"]
    failed_step = steps[failed["step"] - 1]
    assert failed_step["name"] == "analyze" and failed_step["status"] == "failed", failed_step
    later = steps[failed["step"] :]
    assert all(step["status"] == "pending" for step in later), "nothing ran after the failed analysis"

    if strategy == "canary":  # caught at 25%: the step that would send everyone never ran
        full = next(s for s in steps if s["name"] == "set_weights" and s["weight"] == 100)
        assert full["status"] == "pending"
        assert failed_step["index"] < full["index"]
        assert shipped.load.versions[version] < 0.5 * shipped.load.versions[old], shipped.load.summary()
    elif strategy == "rolling":  # caught after the first batch: the second never started
        first_analysis = shipped.steps("analyze")[0]
        assert failed_step["index"] == first_analysis["index"]
        assert [s["name"] for s in later][:2] == ["scale", "wait_ready"], "batch 2 never started"
    elif strategy == "blue-green":  # checked before the switch, judged after it, and switched back
        assert failed_step["index"] > shipped.steps("set_weights")[0]["index"]
        assert shipped.steps("stop")[0]["status"] == "pending", f"{old} was kept warm and takes traffic again"
    elif strategy == "recreate":  # no old version to shift back to: it is started again
        undone = [e.message for e in shop.app.ledger().events(record["id"]) if e.kind == "undo_step"]
        assert any("start it again" in message for message in undone), undone
    else:  # dark launch caught it with the flag off; rollback turns the flag off (it never went on)
        assert all(s["status"] == "pending" for s in shipped.steps("flag") if s["weight"])
        assert flag_document(shop)["defaultVariant"] == "off" and "targeting" not in flag_document(shop)
        assert NEW_GREETING not in greeting(lane)
    assert serving(shop, lane) == old


async def test_a_release_that_crashes_at_start_never_takes_traffic(shop: Shop) -> None:
    lane = shop.lanes["canary"]
    old = serving(shop, lane)
    shipped = await ship(shop, lane, CRASH)
    record = shipped.record
    assert record["status"] in ("rolled_back", "failed"), record
    assert "step 1 (start) failed" in record["reason"] and "crash" in record["reason"], record["reason"]
    assert record["steps"][0]["status"] == "failed"
    assert all(step["status"] == "pending" for step in record["steps"][1:])
    assert shipped.live() == [(old, 2, 100)], "nothing of the crashing release is left, the old one serves all"
    assert_no_failed_request(shipped)
    assert CRASH not in shipped.load.versions


async def test_a_feature_that_fails_behind_its_flag_is_turned_off(shop: Shop) -> None:
    lane = shop.lanes["feature-flag"]
    old = serving(shop, lane)
    shipped = await ship(shop, lane, "3.5.0")
    record, reason = shipped.record, shipped.record["reason"]
    assert record["status"] == "rolled_back", record
    assert_numbers(reason, errors=True)
    flags = shipped.steps("flag")
    failed = next(v for v in record["verdicts"] if v["phase"] == "Failed")
    ramp = [step for step in flags if step["weight"]]
    assert failed["step"] > ramp[0]["index"], "the build passed dark; the feature failed once users saw it"
    assert all(v["phase"] == "Successful" for v in record["verdicts"] if v["step"] and v["step"] < failed["step"])
    assert flag_document(shop)["defaultVariant"] == "off" and "targeting" not in flag_document(shop)
    assert NEW_GREETING not in greeting(lane)
    # Turning the flag off is the first thing the undo does, within moments of the verdict.
    events = shop.app.ledger().events(record["id"])
    verdict = next(e for e in events if e.kind == "verdict" and "Failed" in e.message)
    flag_off = next(e for e in events if e.kind == "undo_step" and "flag" in e.message)
    assert "off (0%)" in flag_off.message
    assert (flag_off.at - verdict.at).total_seconds() < 1.0
    # Then the previous build comes back, as the plan said it would.
    assert shipped.plan["rollback"].startswith(f"Turn flag '{FLAG}' off (0%) first"), shipped.plan["rollback"]
    assert f"Then {old} takes all traffic again" in shipped.plan["rollback"]
    assert shipped.live() == [(old, 2, 100)], shipped.view["live"]
