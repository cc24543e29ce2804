"""A read-only session (policy.read_only = true) changes nothing, whichever tool the agent calls.

The policy is checked when a tool is called, not only by hiding tools: an agent that calls a changing tool anyway
gets a refusal that names the key a person would change, and the project is exactly as it was.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio

CONFIG = f"""\
mode = "greenfield"

[policy]
read_only = true

[services.web]
command = ["{sys.executable}", "-c", "import time; time.sleep(60)"]
health = "/health"

[services.web.environments.staging]
port = 18741
"""


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    (tmp_path / "deploy.toml").write_text(CONFIG, encoding="utf-8")
    app = App.load(tmp_path / "deploy.toml")
    try:
        async with Client(build_server(app)) as connected:
            yield connected
    finally:
        app.close()


def project_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("deploy", {"service": "web", "version": "1.0.0", "environment": "staging", "wait_seconds": 0}),
        ("rollback", {"service": "web", "environment": "staging", "reason": "drill", "wait_seconds": 0}),
        ("generate_deploy_md", {"write": True}),
    ],
)
async def test_a_changing_tool_is_refused_and_the_project_is_unchanged(
    client: Client, tmp_path: Path, tool: str, arguments: dict[str, object]
) -> None:
    before = project_files(tmp_path)
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    message = result.content[0].text
    assert "read-only" in message and "policy.read_only" in message, message
    assert "Traceback" not in message
    assert project_files(tmp_path) == before  # no DEPLOY.md, no ledger, no platform state


async def test_reading_still_works(client: Client, tmp_path: Path) -> None:
    plan = await client.call_tool("plan_deployment", {"service": "web", "version": "1.0.0", "environment": "staging"})
    assert not plan.is_error and any(gate["name"] == "read-only" for gate in plan.structured_content["gates"])
    text = await client.call_tool("generate_deploy_md", {"write": False})
    assert not text.is_error and "## Rollback" in text.structured_content["content"]
    assert not (tmp_path / "DEPLOY.md").exists()
