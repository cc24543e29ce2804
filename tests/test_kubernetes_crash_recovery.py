"""A canary on Kubernetes outlives its MCP server: SIGKILL mid-canary, then interrupted, resume and rollback.

The server runs as agents run it (`deploy-mcp serve` over stdio, a subprocess); the cluster (the API emulator)
lives in the test process, as a real cluster outlives any client. Killed during a canary's analysis, the
deployment reads `interrupted` from a new server, the cluster runs only the two versions the record knows with
whole traffic, and `resume` finishes it; a second kill is finished by `rollback`. Users are served all along.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import free_port
from kube_emulator import Cluster
from kube_fixtures import kubeconfig
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from prometheus_fixture import start_prometheus
from registry_fixture import RegistryServer, require_registry

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.ledger import SqliteLedger
from deploy_mcp.targets.kubernetes import create_platform
from deploy_mcp.targets.local.loadgen import BackgroundLoad

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]
SERVICE, ENVIRONMENT = "hello", "canary"


@dataclass
class Setup:
    project: Project
    cluster: Cluster
    url: str


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    require_registry()
    registry = RegistryServer(tmp_path / "registry").start()
    for version in ("1.0.0", "2.0.0", "2.1.0"):
        registry.push("hello", version)
    port = free_port()
    cluster = Cluster(workdir=tmp_path / "cluster", service_ports={("default", "hello-canary"): port}).start()
    prometheus = start_prometheus([cluster.url.removeprefix("http://")])
    (tmp_path / "deploy.toml").write_text(
        f"""
[targets.kubernetes]
kubeconfig = "{kubeconfig(cluster, tmp_path)}"
allowed_namespaces = ["default"]
router = "gateway-api"

[targets.prometheus]
url = "{prometheus.url}"

[services.hello]
target = "kubernetes"
image = "{registry.address}/hello:{{version}}"
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.environments.canary]
strategy = "canary"
steps = [25, 50, 100]
analysis = {{ interval = "0.5s", bake = "3s", min_requests = 8 }}
""",
        encoding="utf-8",
    )
    try:
        yield Setup(load_project(tmp_path / "deploy.toml"), cluster, f"http://127.0.0.1:{port}/")
    finally:
        prometheus.stop()
        cluster.stop()
        registry.stop()


@dataclass
class Server:
    client: Client
    pid: int

    async def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, f"{tool} failed: {' '.join(getattr(c, 'text', '') for c in result.content)}"
        assert result.structured_content is not None
        return result.structured_content


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


@contextlib.asynccontextmanager
async def serve(project: Project) -> AsyncIterator[Server]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "deploy_mcp", "serve"],
        env={"DEPLOY_MCP_CONFIG": str(project.root / "deploy.toml")},
        cwd=str(project.root),
    )
    before = server_pids()
    async with Client(params) as client:
        started = server_pids() - before
        assert len(started) == 1, started
        yield Server(client, started.pop())


async def settle(server: Server, deployment_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = await server.ok("deployment_status", {"deployment_id": deployment_id})
        if view["record"]["status"] not in ("pending", "in_progress") or time.monotonic() > deadline:
            return view
        await anyio.sleep(0.3)


def weights(project: Project) -> dict[str, int]:
    platform = create_platform(project, SERVICE)
    try:
        return {v.version: v.weight for v in platform.state(SERVICE, ENVIRONMENT).versions}
    finally:
        platform.close()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_analysis(ledger: SqliteLedger, version: str, timeout: float = 90.0) -> str:
    """The deployment of ``version`` once its first analysis (at 25%) runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest = ledger.list(service=SERVICE, environment=ENVIRONMENT, limit=1)
        if newest and newest[0].version == version:
            record = newest[0]
            analyze = next(s for s in record.steps if s.name == "analyze")
            if analyze.status != "pending":
                return record.id
            assert record.status.value in ("pending", "in_progress"), f"{record.status.value}: {record.reason}"
        time.sleep(0.01)
    raise AssertionError(f"the deployment of {version} never reached its first analysis")


async def killed_mid_canary(project: Project, ledger: SqliteLedger, version: str) -> str:
    async with serve(project) as doomed:
        arguments = {"service": SERVICE, "version": version, "environment": ENVIRONMENT, "wait_seconds": 0}

        async def deploy() -> None:
            with contextlib.suppress(MCPError):
                await doomed.client.call_tool("deploy", arguments)

        async with anyio.create_task_group() as group:
            group.start_soon(deploy)
            deployment_id = await anyio.to_thread.run_sync(wait_for_analysis, ledger, version)
            await anyio.sleep(0.5)
            os.kill(doomed.pid, signal.SIGKILL)
    return deployment_id


async def test_killed_mid_canary_then_interrupted_resumed_and_rolled_back(setup: Setup) -> None:
    project = setup.project
    load: BackgroundLoad | None = None
    try:
        async with serve(project) as server:
            first = await server.ok(
                "deploy", {"service": SERVICE, "version": "1.0.0", "environment": ENVIRONMENT, "wait_seconds": 0}
            )
            deadline = time.monotonic() + 60
            while weights(project).get("1.0.0") != 100 or not answers(setup.url):
                # users arrive once it serves: the mesh is programmed a moment after the route says 100%
                assert time.monotonic() < deadline, "1.0.0 never took traffic"
                await anyio.sleep(0.1)
            load = BackgroundLoad(setup.url, rate=60, concurrency=8).start()
            view = await settle(server, first["record"]["id"])
            if view["record"]["status"] == "paused":  # its analysis began before the first users: judge again
                await server.ok("resume", {"deployment_id": first["record"]["id"]})
                view = await settle(server, first["record"]["id"])
            assert view["record"]["status"] == "succeeded", view["record"]["reason"]

        with contextlib.closing(SqliteLedger(project.state_dir / "ledger.db")) as ledger:
            # 1: killed during the analysis at 25%, finished by resume
            killed = await killed_mid_canary(project, ledger, "2.0.0")
            at_kill = weights(project)
            assert set(at_kill) == {"1.0.0", "2.0.0"} and sum(at_kill.values()) == 100, at_kill
            async with serve(project) as server:
                status = await server.ok("deployment_status", {"deployment_id": killed})
                assert status["record"]["status"] == "interrupted", status["record"]
                assert "resume" in status["next_step"]
                await server.ok("resume", {"deployment_id": killed})
                final = await settle(server, killed)
                assert final["record"]["status"] == "succeeded", final["record"]["reason"]
            assert weights(project) == {"2.0.0": 100}

            # 2: killed again, finished by rollback to the last version that passed validation
            killed = await killed_mid_canary(project, ledger, "2.1.0")
            async with serve(project) as server:
                status = await server.ok("deployment_status", {"deployment_id": killed})
                assert status["record"]["status"] == "interrupted", status["record"]
                arguments = {"service": SERVICE, "environment": ENVIRONMENT, "reason": "crash drill", "wait_seconds": 0}
                back = await server.ok("rollback", arguments)
                done = await settle(server, back["record"]["id"])
                assert done["record"]["status"] == "succeeded", done["record"]["reason"]
                assert done["record"]["version"] == "2.0.0" and done["record"]["rollback_of"] == killed
                reverted = await server.ok("deployment_status", {"deployment_id": killed})
                assert reverted["record"]["status"] == "rolled_back"
            assert weights(project) == {"2.0.0": 100}
    finally:
        result = load.stop() if load is not None else None
    print(f"\nload: {result.summary() if result else 'none'}")
    assert result is not None and result.requests > 300
    assert result.failures == 0, result.failures_at[:10]
