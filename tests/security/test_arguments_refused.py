"""Issue 9, item 7: no argument is consent, and a bad rollback target changes nothing.

An agent that adds ``confirm=true`` or ``approved_by`` and sees the call succeed learns that the argument means
something; the call is refused naming the argument instead. ``rollback(to=...)`` called while a rollout runs used to
abort the rollout and only then look at ``to``; now a ``to`` it would not honour is refused first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from shell_agent import agent_env, hello_project

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio
FORGED = {"confirm": True, "approved_by": "anyone"}
STAGING = {"service": "hello", "version": "1.0.0", "environment": "staging", "wait_seconds": 0}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with hello_project(tmp_path / "project") as folder:
        yield folder


@pytest.fixture
async def client(project: Path) -> AsyncIterator[Client]:
    app = App.load(project / "deploy.toml")
    try:
        async with Client(build_server(app)) as connected:
            yield connected
    finally:
        app.close()


def text(result: Any) -> str:
    return result.content[0].text


async def test_consent_arguments_are_refused_by_name_and_nothing_runs(client: Client, project: Path) -> None:
    result = await client.call_tool("deploy", {**STAGING, **FORGED})
    message = text(result)
    assert result.is_error, message
    assert message.startswith("deploy: unknown arguments 'confirm', 'approved_by', nothing was done."), message
    assert "No argument is consent or an approval" in message
    assert not (project / ".deploy").exists()  # no ledger, no instance, nothing started


async def test_over_stdio_as_the_agent_calls_it(project: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "deploy_mcp", "serve"],
        env=agent_env({"DEPLOY_MCP_CONFIG": str(project / "deploy.toml")}),
        cwd=str(project),
    )
    async with Client(params) as client:
        rollback = await client.call_tool(
            "rollback", {"service": "hello", "environment": "production", "reason": "drill", "confirm": "yes"}
        )
        read = await client.call_tool("deployment_history", {"service": "hello", "approved_by": "anyone"})
    assert rollback.is_error and "unknown argument 'confirm'" in text(rollback)
    assert read.is_error and "deployment_history takes: service, environment, status, limit." in text(read)
    assert not (project / ".deploy").exists()


async def wait_status(client: Client, deployment_id: str, wanted: set[str], timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await client.call_tool("deployment_status", {"deployment_id": deployment_id})
        record = status.structured_content["record"]
        if record["status"] in wanted or time.monotonic() > deadline:
            return record
        time.sleep(0.2)


async def test_rollback_to_a_target_it_would_not_honour_leaves_the_running_rollout_alone(client: Client) -> None:
    first = await client.call_tool("deploy", {**STAGING, "wait_seconds": 60})
    first_id = first.structured_content["record"]["id"]
    if (await wait_status(client, first_id, {"succeeded", "paused"}))["status"] == "paused":  # no traffic, no data
        await client.call_tool("promote", {"deployment_id": first_id})
    assert (await wait_status(client, first_id, {"succeeded", "failed"}))["status"] == "succeeded"
    # 9.0.0 answers 503 while it starts for a minute: its rollout is under way while we call rollback.
    slow = await client.call_tool("deploy", {**STAGING, "version": "9.0.0"})
    slow_id = slow.structured_content["record"]["id"]

    for to, expected in (
        ("deploy-2020-01-01-001", "to: no deployment 'deploy-2020-01-01-001' in the ledger"),
        ("7.7.7", "cannot go to 7.7.7 in the same move. Nothing was changed."),
        ("not a version!", "to (a deployment id or a version)"),
    ):
        refused = await client.call_tool(
            "rollback", {"service": "hello", "environment": "staging", "reason": "drill", "to": to, "wait_seconds": 0}
        )
        assert refused.is_error and expected in text(refused), text(refused)
        status = await client.call_tool("deployment_status", {"deployment_id": slow_id})
        assert status.structured_content["record"]["status"] in ("pending", "in_progress"), to

    # Naming what served before is the abort it always was (unless 9.0.0 gave up starting by itself meanwhile).
    back = await client.call_tool(
        "rollback", {"service": "hello", "environment": "staging", "reason": "drill", "to": "1.0.0", "wait_seconds": 30}
    )
    assert not back.is_error, text(back)
    assert (await wait_status(client, slow_id, {"aborted", "rolled_back"}))["status"] in ("aborted", "rolled_back")
