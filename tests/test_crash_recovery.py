"""A deployment outlives its MCP server, and one environment takes one deployment at a time, across processes.

The server runs as agents' clients run it: `deploy-mcp serve` over stdio in a subprocess. The test kills it with
SIGKILL at seeded random moments of a canary (while the canary starts, while an analysis runs, around a weight
change), starts a new server, and expects what a user would: the record says interrupted, the platform runs
nothing the record does not know about, and both resume and rollback finish the job. The new server does not
wait for the dead one's lock lease to run out: the lock names a process on this machine that is gone. The local
platform's supervisor and router are nobody's children, so users are served all along: zero failed requests.

Two servers on one project then race to deploy the same service and environment: exactly one starts, and the
other's error names the deployment that runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from local_fixtures import free_port, processes_in, wait_until_gone
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.core.records import DeploymentRecord
from deploy_mcp.core.target import TargetState
from deploy_mcp.ledger import SqliteLedger
from deploy_mcp.targets.local import cli
from deploy_mcp.targets.local import state as local_state
from deploy_mcp.targets.local.loadgen import BackgroundLoad
from deploy_mcp.targets.local.platform import create_platform

pytestmark = pytest.mark.anyio
HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "server.py"
SERVICE, ENVIRONMENT = "hello", "canary"
SEED = int(os.environ.get("CRASH_SEED", "20261126"))  # another seed: other moments
RATE = 100.0


def config(port: int) -> str:
    command = json.dumps(["{python}", str(HELLO), "--port", "{port}"])
    return f"""\
[services.hello]
command = {command}
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.environments.canary]  # not production: no one needs to be asked
strategy = "canary"
steps = [25, 50, 100]
port = {port}
analysis = {{ interval = "0.5s", bake = "1.5s", min_requests = 8 }}
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    (tmp_path / "deploy.toml").write_text(config(free_port()), encoding="utf-8")
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


# -- servers as subprocesses -----------------------------------------------------------------------------------


def server_pids() -> set[int]:
    """This test's `deploy_mcp serve` children (the stdio client starts them; it does not tell their pid)."""
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

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return await self.client.call_tool(tool, arguments)

    async def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.call(tool, arguments)
        assert not result.is_error, f"{tool} failed: {text(result)}"
        assert result.structured_content is not None
        return result.structured_content

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)


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


async def call_until_killed(server: Server, tool: str, arguments: dict[str, Any]) -> None:
    """A call that may be cut off by the server's death; any answer it gets must be a success."""
    try:
        result = await server.call(tool, arguments)
    except MCPError:
        return
    assert not result.is_error, f"{tool} failed: {text(result)}"


def text(result: types.CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def settle(server: Server, deployment_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = await server.ok("deployment_status", {"deployment_id": deployment_id})
        if view["record"]["status"] not in ("pending", "in_progress") or time.monotonic() > deadline:
            return view
        await anyio.sleep(0.2)


# -- the platform's truth --------------------------------------------------------------------------------------


def platform_state(project: Project) -> TargetState:
    return create_platform(project).state(SERVICE, ENVIRONMENT)


def weights(project: Project) -> dict[str, int]:
    return {v.version: v.weight for v in platform_state(project).versions}


def accounted_for(project: Project, record: DeploymentRecord, ignore: set[int]) -> str | None:
    """What is wrong with the platform after a crash, or None: only the record's two versions run, traffic is
    whole, and every process in the project folder is the supervisor or an instance the platform lists."""
    state = platform_state(project)
    known = {record.version, record.previous_version}
    strangers = [v.version for v in state.versions if v.version not in known]
    if not state.running or state.problem or strangers:
        return f"running {state.running}, problem {state.problem}, versions the record does not know {strangers}"
    if sum(state.weights.values()) != 100:
        return f"weights {state.weights} do not add up to 100"
    supervisor = (local_state.read_state(local_state.Paths(project.state_dir, SERVICE, ENVIRONMENT)) or {}).get(
        "supervisor", {}
    )
    listed = {i.pid for v in state.versions for i in v.instances if i.pid} | {supervisor.get("pid")}
    unlisted = set(processes_in(project.root)) - listed - ignore
    return f"processes the platform does not list: {sorted(unlisted)}" if unlisted else None


def eventually(check: Callable[[], str | None], timeout: float = 5.0) -> None:
    """A process being started when the server died shows up in the supervisor's state a moment later."""
    deadline = time.monotonic() + timeout
    while (problem := check()) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert problem is None, problem


# -- killing at a chosen moment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """When to kill: once step ``step`` (by action name, the ``nth`` of them) has started, after ``delay`` s."""

    name: str
    step: str
    nth: int
    delay: float


def kill_points(rng: random.Random) -> list[KillPoint]:
    """Starting one instance takes 0.1-0.3 s here, a weight change a few ms, an analysis 1.5 s."""
    return [
        KillPoint("while the canary starts", "start", 1, rng.uniform(0.0, 0.08)),
        KillPoint("during an analysis", "analyze", rng.choice([1, 2, 3]), rng.uniform(0.1, 1.4)),
        KillPoint("between weight changes", "set_weights", rng.choice([1, 2]), rng.uniform(0.0, 0.02)),
        KillPoint("at a random step", rng.choice(["wait_ready", "check", "analyze", "scale"]), 1, rng.uniform(0, 0.5)),
    ]


def wait_for_step(ledger: SqliteLedger, version: str, point: KillPoint, timeout: float = 60.0) -> str:
    """The id of the deployment of ``version`` once it is at ``point`` (polled from the ledger file, as fast as the
    server writes it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest = ledger.list(service=SERVICE, environment=ENVIRONMENT, limit=1)
        record = newest[0] if newest and newest[0].version == version else None
        if record is not None:
            step = [s for s in record.steps if s.name == point.step][point.nth - 1]
            if step.status != "pending":
                return record.id
            assert record.status.value in ("pending", "in_progress"), f"{record.status.value}: {record.reason}"
        time.sleep(0.002)
    raise AssertionError(f"the deployment of {version} never reached {point.name}")


def where(record: DeploymentRecord) -> str:
    step = record.steps[record.current_step - 1] if record.current_step else None
    return f"step {step.index} ({step.name}, {step.status})" if step else "before its first step"


# -- the tests -------------------------------------------------------------------------------------------------


async def test_killed_mid_canary_the_deployment_is_interrupted_then_resumed_or_rolled_back(project: Project) -> None:
    rng = random.Random(SEED)
    url = f"http://127.0.0.1:{project.config.services[SERVICE].environments[ENVIRONMENT].port}/"
    load: BackgroundLoad | None = None
    landed: list[str] = []
    try:
        async with serve(project) as server:
            first = await server.ok(
                "deploy", {"service": SERVICE, "version": "1.0.0", "environment": ENVIRONMENT, "wait_seconds": 0}
            )
            first_id = first["record"]["id"]
            deadline = time.monotonic() + 30
            while weights(project).get("1.0.0") != 100:  # users arrive once there is something to serve
                assert time.monotonic() < deadline, "1.0.0 never took traffic"
                await anyio.sleep(0.02)
            load = BackgroundLoad(url, rate=RATE).start()
            view = await settle(server, first_id)
            if view["record"]["status"] == "paused":  # its analysis began before the first users: judge again
                await server.ok("resume", {"deployment_id": first_id})
                view = await settle(server, first_id)
            assert view["record"]["status"] == "succeeded", view["record"]["reason"]
        serving = "1.0.0"
        with contextlib.closing(SqliteLedger(project.state_dir / "ledger.db")) as ledger:
            for round_number, point in enumerate(kill_points(rng)):
                action = "resume" if round_number % 2 == 0 else "rollback"
                serving, where_killed = await kill_and_recover(
                    project, ledger, f"2.{round_number}.0", serving, point, action
                )
                landed.append(f"{point.name}: killed at {where_killed}, then {action}")
    finally:
        result = load.stop() if load is not None else None
    print("\n" + "\n".join(landed) + f"\nload: {result.summary() if result else 'none'}")
    assert result is not None and result.requests > 500
    assert result.failures == 0, result.failures_at[:10]


async def kill_and_recover(
    project: Project, ledger: SqliteLedger, version: str, serving: str, point: KillPoint, action: str
) -> tuple[str, str]:
    """Deploy ``version`` over ``serving``, kill its server at ``point``, and finish from a new server with
    ``action`` (resume or rollback). Returns what serves afterwards and where the kill landed."""
    async with serve(project) as doomed:
        arguments = {"service": SERVICE, "version": version, "environment": ENVIRONMENT, "wait_seconds": 0}
        async with anyio.create_task_group() as group:
            group.start_soon(call_until_killed, doomed, "deploy", arguments)
            deployment_id = await anyio.to_thread.run_sync(wait_for_step, ledger, version, point)
            await anyio.sleep(point.delay)
            doomed.kill()
    at_kill = ledger.get(deployment_id)
    assert at_kill is not None and at_kill.status.value == "in_progress", at_kill
    lock = ledger.lock_state(SERVICE, ENVIRONMENT)  # the dead server's lease has not run out: nobody waits for it
    assert lock is not None and lock.holder.startswith(f"pid {doomed.pid} "), lock
    eventually(lambda: accounted_for(project, at_kill, {doomed.pid}))

    async with serve(project) as server:
        # What a reader of the ledger sees first, before any tool has touched the deployment: interrupted.
        if action == "rollback":
            contents = await server.client.read_resource(f"deploy://deployments/{deployment_id}")
            read = json.loads(contents.contents[0].text)["record"]
            assert read["status"] == "interrupted", (point, read["status"], read["reason"])
        else:
            history = await server.ok("deployment_history", {"status": "interrupted"})
            assert [r["id"] for r in history["records"]] == [deployment_id], (point, history)
        status = await server.ok("deployment_status", {"deployment_id": deployment_id})
        record = status["record"]
        assert record["status"] == "interrupted", (point, record["status"], record["reason"])
        assert "resume" in status["next_step"]
        eventually(lambda: accounted_for(project, at_kill, {server.pid}))
        if action == "resume":
            await server.ok("resume", {"deployment_id": deployment_id})
            final = await settle(server, deployment_id)
            assert final["record"]["status"] == "succeeded", (point, final["record"]["reason"])
            assert final["record"]["validation"]["passed"] is True
            serving = version
        else:
            arguments = {"service": SERVICE, "environment": ENVIRONMENT, "reason": "crash drill", "wait_seconds": 0}
            back = await server.ok("rollback", arguments)
            done = await settle(server, back["record"]["id"])
            assert done["record"]["status"] == "succeeded", (point, done["record"]["reason"])
            assert done["record"]["version"] == serving and done["record"]["rollback_of"] == deployment_id
            reverted = await server.ok("deployment_status", {"deployment_id": deployment_id})
            assert reverted["record"]["status"] == "rolled_back"
    assert weights(project) == {serving: 100}, (point, weights(project))  # the other version was stopped
    eventually(lambda: accounted_for(project, ledger.list(limit=1)[0], set()))
    return serving, where(at_kill)


async def test_two_servers_deploying_one_environment_at_once_start_exactly_one(project: Project) -> None:
    async with serve(project) as first, serve(project) as second:
        for server in (first, second):  # both warm, so neither wins by having loaded its code first
            await server.call("deployment_status", {"deployment_id": "deploy-2000-01-01-001"})
            refused = await server.call(
                "deploy", {"service": SERVICE, "version": "1.0.0", "environment": ENVIRONMENT, "wait_seconds": -1}
            )
            assert refused.is_error and "wait_seconds" in text(refused)
        results: dict[str, types.CallToolResult] = {}

        async def deploy(name: str, server: Server, version: str) -> None:
            arguments = {"service": SERVICE, "version": version, "environment": ENVIRONMENT, "wait_seconds": 0}
            results[name] = await server.call("deploy", arguments)

        async with anyio.create_task_group() as group:
            group.start_soon(deploy, "first", first, "1.0.0")
            group.start_soon(deploy, "second", second, "1.1.0")
        winners = [name for name, result in results.items() if not result.is_error]
        assert len(winners) == 1, {name: text(result) for name, result in results.items()}
        winner = results[winners[0]].structured_content["record"]["id"]
        loser_name = "second" if winners[0] == "first" else "first"
        refusal = text(results[loser_name])
        assert winner in refusal and "is running" in refusal, refusal
        assert "Traceback" not in refusal
        history = await first.ok("deployment_history", {"service": SERVICE})
        assert [r["id"] for r in history["records"]] == [winner]
        # The loser steers the winner through the ledger, as any other process may.
        loser = second if loser_name == "second" else first
        await loser.ok("abort", {"deployment_id": winner, "reason": "race drill over"})
        final = await settle(loser, winner)
        assert final["record"]["status"] == "aborted", final["record"]
