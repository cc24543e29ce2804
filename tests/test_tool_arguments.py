"""Arguments of the wrong type or shape get an answer an agent can act on: the field, what it sent, what it takes.

The SDK validates arguments before our code runs; its own text names an internal model and a documentation URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio

CONFIG = """\
[services.web]
command = ["web", "--port", "{port}"]

[services.web.environments.staging]
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


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            {"service": "web", "version": "1.0.0", "environment": "staging", "wait_seconds": "soon"},
            "wait_seconds: input should be a valid number, unable to parse string as a number (got 'soon') "
            "(Return after this long with the current state; poll after)",
        ),
        ({"service": "web"}, "version: is required (The version to ship, e.g. 2.1.0)"),
        (
            {"service": "web", "version": "1.0.0", "environment": "staging", "strategy": "canery"},
            "strategy: input should be 'rolling', 'blue-green', 'canary', 'recreate' or 'feature-flag' (got 'canery')",
        ),
    ],
)
async def test_a_wrong_argument_is_named_with_what_it_takes(
    client: Client, tmp_path: Path, arguments: dict[str, object], expected: str
) -> None:
    result = await client.call_tool("deploy", arguments)
    message = result.content[0].text
    assert result.is_error and message.startswith("deploy: invalid arguments, nothing was done."), message
    assert expected in message, message
    assert "pydantic" not in message and "deployArguments" not in message and "Traceback" not in message
    assert not (tmp_path / ".deploy").exists()  # refused before anything was opened or started
