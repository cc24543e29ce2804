"""A deployment to ECS outlives its MCP server: SIGKILL mid-canary, then interrupted, resume or rollback.

The server runs as agents' clients run it, `deploy-mcp serve` over stdio in a subprocess, talking to ECS on moto
with the fleet harness in this test's process: like real ECS tasks and a real ALB, they are nobody's children and
keep serving while the server is dead. The new server finds the record interrupted; resume finishes the canary,
rollback puts the old version back on 100% and deletes the new version's ECS service. Users are served all along.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from conftest import require_component
from ecs_fixtures import CLUSTER, CREDENTIALS, World, aws_credentials, build_world, project_toml, running_version
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from registry_fixture import RegistryServer, require_registry

from deploy_mcp.ledger import SqliteLedger
from deploy_mcp.targets.local.loadgen import BackgroundLoad

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]
SERVICE, ENVIRONMENT = "hello", "canary"
CANARY = 'strategy = "canary"\nsteps = [25, 50, 100]\nanalysis = { interval = "1s", bake = "3s", min_requests = 10 }'


@dataclass
class Setup:
    world: World
    root: Path
    registry: RegistryServer

    @property
    def url(self) -> str:
        return self.world.lanes[ENVIRONMENT].url + "/"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    require_component("moto", importlib.util.find_spec("moto") is not None, 'pip install "moto[server]"')
    require_registry()
    from ecs_fleet import EcsFleet

    registry = RegistryServer(tmp_path / "registry").start()
    for version in ("1.0.0", "2.0.0", "2.1.0"):
        registry.push("hello", version)
    try:
        with aws_credentials(), EcsFleet(workdir=tmp_path / "fleet") as fleet:
            world = build_world(fleet, [ENVIRONMENT])
            text = project_toml(world, settings={ENVIRONMENT: CANARY}, image=f"{registry.address}/hello:{{version}}")
            (tmp_path / "deploy.toml").write_text(text, encoding="utf-8")
            yield Setup(world, tmp_path, registry)
    finally:
        registry.stop()


def server_pids() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"serve" in argv and b"deploy_mcp" in argv:
            found.add(int(entry.name))
    return found


@dataclass
class Server:
    client: Client
    pid: int

    async def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, f"{tool} failed: {' '.join(getattr(b, 'text', '') for b in result.content)}"
        assert result.structured_content is not None
        return result.structured_content


@contextlib.asynccontextmanager
async def serve(setup: Setup) -> AsyncIterator[Server]:
    """The server with AWS credentials in its environment, the standard way; nothing else tells it about AWS."""
    env = {"DEPLOY_MCP_CONFIG": str(setup.root / "deploy.toml"), **CREDENTIALS}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "deploy_mcp", "serve"], env=env, cwd=str(setup.root)
    )
    before = server_pids()
    async with Client(params) as client:
        started = server_pids() - before
        assert len(started) == 1, started
        yield Server(client, started.pop())


async def settle(server: Server, deployment_id: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = await server.ok("deployment_status", {"deployment_id": deployment_id})
        if view["record"]["status"] not in ("pending", "in_progress") or time.monotonic() > deadline:
            return view
        await anyio.sleep(0.5)


async def deploy_until_killed(server: Server, arguments: dict[str, Any]) -> None:
    with contextlib.suppress(MCPError):
        result: types.CallToolResult = await server.client.call_tool("deploy", arguments)
        assert not result.is_error


def wait_for_analysis_at(ledger: SqliteLedger, version: str, weight: int, timeout: float = 120.0) -> str:
    """The deployment of ``version`` once the analysis after the ``weight``% step is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest = ledger.list(service=SERVICE, environment=ENVIRONMENT, limit=1)
        record = newest[0] if newest and newest[0].version == version else None
        if record is not None:
            assert record.status.value in ("pending", "in_progress"), f"{record.status.value}: {record.reason}"
            shifted = [s for s in record.steps if s.name == "set_weights" and s.weight == weight]
            if shifted and shifted[0].status == "succeeded":
                after = record.steps[shifted[0].index]  # the step right after the shift
                if after.name == "analyze" and after.status == "running":
                    return record.id
        time.sleep(0.05)
    raise AssertionError(f"the deployment of {version} never reached the analysis at {weight}%")


def ecs_versions(setup: Setup) -> list[str]:
    ecs = setup.world.fleet.client("ecs")
    names = [a.rsplit("/", 1)[-1] for a in ecs.list_services(cluster=CLUSTER)["serviceArns"]]
    described = ecs.describe_services(cluster=CLUSTER, services=names, include=["TAGS"])["services"] if names else []
    return sorted(running_version(ecs, s["taskDefinition"]) for s in described if s["status"] == "ACTIVE")


async def kill_mid_canary(setup: Setup, ledger: SqliteLedger, version: str) -> str:
    async with serve(setup) as doomed:
        arguments = {"service": SERVICE, "version": version, "environment": ENVIRONMENT, "wait_seconds": 0}
        async with anyio.create_task_group() as group:
            group.start_soon(deploy_until_killed, doomed, arguments)
            deployment_id = await anyio.to_thread.run_sync(wait_for_analysis_at, ledger, version, 25)
            os.kill(doomed.pid, signal.SIGKILL)
    at_kill = ledger.get(deployment_id)
    assert at_kill is not None and at_kill.status.value == "in_progress", at_kill
    return deployment_id


async def test_killed_mid_canary_then_interrupted_resumed_and_rolled_back(setup: Setup) -> None:
    load: BackgroundLoad | None = None
    try:
        async with serve(setup) as server:
            first = await server.ok(
                "deploy", {"service": SERVICE, "version": "1.0.0", "environment": ENVIRONMENT, "wait_seconds": 0}
            )
            load = BackgroundLoad(setup.url, rate=40, concurrency=8).start()  # counted from the first release on
            view = await settle(server, first["record"]["id"])
            assert view["record"]["status"] == "succeeded", view["record"]["reason"]
        load.stop()
        load = BackgroundLoad(setup.url, rate=40, concurrency=8).start()
        with contextlib.closing(SqliteLedger(setup.root / ".deploy" / "ledger.db")) as ledger:
            # 1: killed during the analysis at 25%, then resumed by a new server
            killed = await kill_mid_canary(setup, ledger, "2.0.0")
            assert ecs_versions(setup) == ["1.0.0", "2.0.0"], "ECS keeps running both while the server is dead"
            async with serve(setup) as server:
                status = await server.ok("deployment_status", {"deployment_id": killed})
                assert status["record"]["status"] == "interrupted", status["record"]
                assert "resume" in status["next_step"]
                await server.ok("resume", {"deployment_id": killed})
                final = await settle(server, killed)
                assert final["record"]["status"] == "succeeded", final["record"]["reason"]
            assert ecs_versions(setup) == ["2.0.0"]

            # 2: killed again, then rolled back by a new server
            killed = await kill_mid_canary(setup, ledger, "2.1.0")
            async with serve(setup) as server:
                status = await server.ok("deployment_status", {"deployment_id": killed})
                assert status["record"]["status"] == "interrupted", status["record"]
                arguments = {"service": SERVICE, "environment": ENVIRONMENT, "reason": "crash drill", "wait_seconds": 0}
                back = await server.ok("rollback", arguments)
                done = await settle(server, back["record"]["id"])
                assert done["record"]["status"] == "succeeded", done["record"]["reason"]
                assert done["record"]["version"] == "2.0.0" and done["record"]["rollback_of"] == killed
                reverted = await server.ok("deployment_status", {"deployment_id": killed})
                assert reverted["record"]["status"] == "rolled_back"
                assert [(v["version"], v["weight"]) for v in done["live"]["versions"]] == [("2.0.0", 100)]
            assert ecs_versions(setup) == ["2.0.0"], "nothing of the rolled-back canary is left on ECS"
    finally:
        result = load.stop() if load is not None else None
    print(f"\nload while servers were killed: {result.summary() if result else 'none'}")
    assert result is not None and result.requests > 200
    assert result.failures == 0, result.failures_at[:10]
