"""The SDK seams server/toolset.py relies on still apply: fails when an SDK upgrade moves them.

DeployServer builds a tool on its first call and answers `tools/list` from a cached listing. It hooks two private
parts of the MCP SDK (pinned in pyproject to the minor version tested): `MCPServer._tool_input_schema`, which the
SDK calls for a tool's input schema before the call reaches `call_tool`, and the tool manager's `get_tool`. If a
new SDK renamed the hook, the override would be dead code and a tool not yet built would go unchecked; if the
tool manager changed, the schemas would stay long. Each test names what broke.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path

import pytest
from mcp import Client
from mcp.server import MCPServer

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server
from deploy_mcp.server.toolset import DeployServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(tmp_path: Path) -> DeployServer:
    return build_server(App.load(None, start=tmp_path))


def test_the_overridden_methods_have_the_sdks_signatures() -> None:
    for name in ("_tool_input_schema", "list_tools", "call_tool"):
        theirs = getattr(MCPServer, name, None)
        assert theirs is not None, f"MCPServer.{name} is gone: DeployServer.{name} no longer overrides anything"
        ours = getattr(DeployServer, name)
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters), (
            f"MCPServer.{name} changed its signature: {inspect.signature(theirs)}"
        )


def test_the_sdk_asks_the_override_for_an_input_schema_and_gets_the_tool_built(server: DeployServer) -> None:
    """What the SDK calls before a call (Mcp-Param-* headers) is our override, which builds the lazy tool."""
    hook = server._lowlevel_server.get_tool_input_schema
    assert getattr(hook, "__func__", None) is DeployServer._tool_input_schema, (
        "the SDK no longer asks MCPServer._tool_input_schema for input schemas: find what replaced it"
    )
    assert server._sdk_tool("deploy") is None  # not built yet
    schema = hook("deploy")
    assert schema is not None and {"service", "version", "environment"} <= set(schema["properties"])
    assert server._sdk_tool("deploy") is not None


async def test_a_built_tool_is_listed_as_the_cached_listing_says(server: DeployServer) -> None:
    """The listing shortened through the tool manager's tools is the one served before any tool is built."""
    async with Client(server) as client:
        cached = {tool.name: tool for tool in (await client.list_tools()).tools}
        await client.call_tool("deployment_history", {})  # builds it
        built = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert server._sdk_tool("deployment_history") is not None
    assert built["deployment_history"] == cached["deployment_history"]


def test_the_sdk_is_the_minor_version_these_seams_were_tested_with() -> None:
    installed = tuple(int(part) for part in version("mcp").split(".")[:2])
    assert installed == (2, 3), (
        f"mcp {version('mcp')} is installed; server/toolset.py's private seams were tested with 2.3: run this file, "
        "then move the pin in pyproject.toml"
    )
