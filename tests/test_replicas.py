"""Three `deploy-mcp serve --http` replicas on one PostgreSQL ledger, with users on the service all along.

Any replica answers status, history and control requests for a deployment another replica drives (the request
reaches the driver through LISTEN/NOTIFY and its answer comes back the same way). Then the driving replica is
killed with SIGKILL in the middle of a canary analysis: another replica finds the deployment interrupted and
does what ``policy.on_interrupted`` says: ``resume`` takes it over and finishes it, ``rollback`` returns the
service to the version before it. Nothing is lost: the event log is
whole and numbered without gaps, and the users of the service (a local-platform service behind its router, which
belongs to no replica) see no failed request.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from local_fixtures import free_port, wait_until_gone
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from postgres_fixture import Database, make_database, postgres  # noqa: F401

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.ledger import open_ledger
from deploy_mcp.targets.local import cli
from deploy_mcp.targets.local.loadgen import BackgroundLoad
from deploy_mcp.targets.local.platform import create_platform

pytestmark = pytest.mark.anyio
HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "server.py"
SERVICE, ENVIRONMENT = "hello", "canary"
TOKEN = "replica-token-0123456789abcdef"
LEASE_SECONDS = "2"  # short, so a takeover does not wait long; the heartbeat renews every lease / 3
RATE = 80.0


def config(ledger: str, port: int, on_interrupted: str) -> str:
    command = json.dumps(["{python}", str(HELLO), "--port", "{port}"])
    return f"""\
ledger = "{ledger}"

[policy]
on_interrupted = "{on_interrupted}"

[services.hello]
command = {command}
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.environments.canary]
strategy = "canary"
steps = [25, 50, 100]
port = {port}
analysis = {{ interval = "0.5s", bake = "2s", min_requests = 8 }}
"""


@pytest.fixture
def ledger_url(make_database: Any) -> str:  # noqa: F811
    database: Database = make_database()
    return f"postgresql://postgres@127.0.0.1:{database.server.port}/{database.name}"


@pytest.fixture(params=["resume", "rollback"])
def on_interrupted(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def project(tmp_path: Path, ledger_url: str, on_interrupted: str) -> Iterator[Project]:
    (tmp_path / "deploy.toml").write_text(config(ledger_url, free_port(), on_interrupted), encoding="utf-8")
    project = load_project(tmp_path / "deploy.toml")
    try:
        yield project
    finally:
        with contextlib.suppress(Exception):
            cli.stop(project, SERVICE)
        left = wait_until_gone(tmp_path)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left running: {left}"


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """One MCP session per call, as a load balancer may send each request to another replica anyway."""
        is_error, text, content = await self._call(tool, arguments)
        assert not is_error, f"{self.name} {tool} failed: {text}"
        assert content is not None
        return content

    async def refused(self, tool: str, arguments: dict[str, Any]) -> str:
        is_error, text, _ = await self._call(tool, arguments)
        assert is_error, f"{self.name} {tool} was not refused"
        return text

    async def _call(self, tool: str, arguments: dict[str, Any]) -> tuple[bool, str, dict[str, Any] | None]:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
        async with Client(streamable_http_client(self.url, http_client=http)) as client:
            result = await client.call_tool(tool, arguments)
        text = " ".join(getattr(block, "text", "") for block in result.content)
        return bool(result.is_error), text, result.structured_content

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@contextlib.contextmanager
def replicas(project: Project, count: int) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOY_MCP_")}
    env.update(
        DEPLOY_MCP_TOKEN=TOKEN,
        DEPLOY_MCP_CONFIG=str(project.root / "deploy.toml"),
        DEPLOY_MCP_LEASE_SECONDS=LEASE_SECONDS,
    )
    try:
        for number in range(count):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "deploy_mcp", "serve", "--http", "--port", str(port)],
                env=env,
                cwd=project.root,
                stdout=subprocess.DEVNULL,
                stderr=(project.root / f"replica-{number}.log").open("wb"),
            )
            started.append(Replica(f"replica {number}", process, f"http://127.0.0.1:{port}/mcp"))
        for replica in started:
            wait_listening(replica)
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.terminate()
                try:
                    replica.process.wait(15)
                except subprocess.TimeoutExpired:
                    replica.process.kill()
                    replica.process.wait(10)


def wait_listening(replica: Replica) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert replica.process.poll() is None, f"{replica.name} exited with {replica.process.returncode}"
        try:
            httpx.get(replica.url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{replica.name} did not start listening")


def weights(project: Project) -> dict[str, int]:
    return {v.version: v.weight for v in create_platform(project).state(SERVICE, ENVIRONMENT).versions}


async def settle(replica: Replica, deployment_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        record = (await replica.call("deployment_status", {"deployment_id": deployment_id}))["record"]
        if record["status"] not in ("pending", "in_progress", "interrupted") or time.monotonic() > deadline:
            return record
        await anyio.sleep(0.3)


def wait_for_analysis(ledger_url: str, deployment_id: str, timeout: float = 60.0) -> None:
    """Until an analysis of the deployment runs (its replica is then mid-canary, traffic split)."""
    with open_ledger(ledger_url) as ledger:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = ledger.get(deployment_id)
            assert record is not None
            if record.status.value == "in_progress" and any(
                s.name == "analyze" and s.status == "running" for s in record.steps
            ):
                return
            assert record.status.value in ("in_progress", "paused"), f"{record.status.value}: {record.reason}"
            time.sleep(0.02)
    raise AssertionError("the deployment never reached an analysis")


async def test_any_replica_serves_any_deployment_and_a_killed_replicas_deployment_is_taken_over(
    project: Project, ledger_url: str, on_interrupted: str
) -> None:
    url = f"http://127.0.0.1:{project.config.services[SERVICE].environments[ENVIRONMENT].port}/"
    load: BackgroundLoad | None = None
    arguments = {"service": SERVICE, "environment": ENVIRONMENT, "wait_seconds": 0}
    try:
        with replicas(project, 3) as (first, second, third):
            started = await first.call("deploy", {**arguments, "version": "1.0.0"})
            deadline = time.monotonic() + 60
            while weights(project).get("1.0.0") != 100:
                assert time.monotonic() < deadline, "1.0.0 never took traffic"
                await anyio.sleep(0.05)
            load = BackgroundLoad(url, rate=RATE).start()
            record = await settle(second, started["record"]["id"])
            if record["status"] == "paused":  # its analysis began before the first users: judge again
                await third.call("resume", {"deployment_id": record["id"]})
                record = await settle(second, record["id"])
            assert record["status"] == "succeeded", record["reason"]

            # 2.0.0 runs in the first replica; the others see it and steer it.
            deployment_id = (await first.call("deploy", {**arguments, "version": "2.0.0"}))["record"]["id"]
            seen = await second.call("deployment_status", {"deployment_id": deployment_id})
            assert seen["record"]["status"] == "in_progress"
            # one deployment per service and environment, across replicas
            refusal = await second.refused("deploy", {**arguments, "version": "2.1.0"})
            assert deployment_id in refusal, refusal
            history = await third.call("deployment_history", {"service": SERVICE, "limit": 5})
            assert [r["id"] for r in history["records"]][:2] == [deployment_id, started["record"]["id"]]
            paused = await second.call("pause", {"deployment_id": deployment_id})
            assert paused["record"]["status"] == "paused", paused["record"]
            assert (await third.call("deployment_status", {"deployment_id": deployment_id}))["record"][
                "status"
            ] == "paused"
            resumed = await third.call("resume", {"deployment_id": deployment_id})
            assert resumed["record"]["status"] == "in_progress", resumed["record"]

            await anyio.to_thread.run_sync(wait_for_analysis, ledger_url, deployment_id)
            killed_pid = first.process.pid
            first.kill()
            assert weights(project).get("2.0.0"), "the kill landed before the canary took traffic"

            final = await settle(second, deployment_id)
            if on_interrupted == "resume":
                assert final["status"] == "succeeded", final["reason"]
                assert final["validation"]["passed"] is True
                assert weights(project) == {"2.0.0": 100}
            else:
                assert final["status"] == "rolled_back", final["reason"]
                rollback = await settle(third, final["rolled_back_by"])
                assert rollback["status"] == "succeeded" and rollback["version"] == "1.0.0", rollback["reason"]
                assert rollback["deployed_by"].startswith("takeover by ")
                assert weights(project) == {"1.0.0": 100}
    finally:
        result = load.stop() if load is not None else None

    with open_ledger(ledger_url) as ledger:
        events = ledger.events(deployment_id)
        lock = ledger.lock_state(SERVICE, ENVIRONMENT)
    kinds = [event.kind for event in events]
    assert [event.seq for event in events] == list(range(1, len(events) + 1)), "the event log has a gap"
    assert kinds.count("control") == 2 and kinds.count("control_applied") == 2  # pause and resume, both answered
    interrupted = next(event for event in events if event.kind == "interrupted")
    assert interrupted.data.get("found_by") and not interrupted.data["found_by"].startswith(f"pid {killed_pid} ")
    after = [event.kind for event in events if event.seq > interrupted.seq]
    if on_interrupted == "resume":
        took_over = [event for event in events if event.kind == "resumed" and event.seq > interrupted.seq]
        assert took_over and "policy.on_interrupted = resume" in took_over[0].message
        assert not took_over[0].data["holder"].startswith(f"pid {killed_pid} ")
    else:
        assert after[0] == "rollback_started", after
    assert lock is None
    print(f"\nload: {result.summary() if result else 'none'}")
    assert result is not None and result.requests > 300
    assert result.failures == 0, result.failures_at[:10]
