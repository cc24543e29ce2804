"""Review: a viewer of the team server made it run the project's test command, and read-only evidence leaked it.

A viewer "changes nothing", and issue 9 says a read-only session executes nothing. But `preflight` (and a `deploy`
the viewer is refused anyway, whose preflight runs first) ran `test_command` on the server for any viewer token,
each run up to test_timeout, as often and as many at once as the viewer liked, and recorded its result. Now a
viewer's preflight reports the last recorded run, as a read-only session does. And that report showed the test
command unmasked: a `--token=...` in it reached every reader.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from shell_agent import agent_env
from test_identities_http import add_token

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio
MARKER = "tests-ran"
SECRET = "tok-9d1e7c55aa"
TESTS = [sys.executable, "-c", f"import pathlib; pathlib.Path({MARKER!r}).write_text('ran')", f"--token={SECRET}"]
PREFLIGHT = {"service": "web", "version": "1.0.0", "environment": "staging"}


def config(read_only: bool) -> str:
    return f"""\
mode = "brownfield-polish"

[policy]
read_only = {"true" if read_only else "false"}

[services.web]
command = ["{sys.executable}", "-c", "import time; time.sleep(60)"]
health = "/health"
test_command = {json.dumps(TESTS)}

[services.web.environments.staging]
"""


@pytest.fixture
def viewer_server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    token_file = tmp_path / "tokens.toml"
    token = add_token(token_file, "dashboards", "viewer")
    project = tmp_path / "p"
    project.mkdir()
    (project / "deploy.toml").write_text(config(read_only=False), encoding="utf-8")
    port = free_port()
    env = agent_env({"DEPLOY_MCP_CONFIG": str(project / "deploy.toml"), "DEPLOY_MCP_TOKEN_FILE": str(token_file)})
    with open(tmp_path / "server.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy_mcp", "serve", "--http", "--port", str(port)],
            cwd=project,
            env=env,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", token, project
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def the_tests_item(result: Any) -> dict[str, str]:
    return next(item for item in result.structured_content["items"] if item["name"] == "tests")


async def test_a_viewer_does_not_make_the_server_run_the_test_command(viewer_server: tuple[str, str, Path]) -> None:
    url, token, project = viewer_server
    transport = streamable_http_client(
        url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    )
    async with Client(transport) as client:
        checked = await client.call_tool("preflight", PREFLIGHT)
        refused = await client.call_tool("deploy", {**PREFLIGHT, "wait_seconds": 0})
    assert not checked.is_error, checked.content[0].text
    item = the_tests_item(checked)
    assert "token:dashboards has the viewer role" in item["evidence"] and "was not run" in item["evidence"]
    assert refused.is_error
    assert not (project / MARKER).exists(), "a viewer's call ran the test command on the server"


@pytest.fixture
async def read_only(tmp_path: Path) -> AsyncIterator[Client]:
    (tmp_path / "deploy.toml").write_text(config(read_only=True), encoding="utf-8")
    app = App.load(tmp_path / "deploy.toml")
    try:
        async with Client(build_server(app)) as client:
            yield client
    finally:
        app.close()


async def test_read_only_evidence_masks_the_test_command(read_only: Client) -> None:
    checked = await read_only.call_tool("preflight", PREFLIGHT)
    evidence = the_tests_item(checked)["evidence"]
    assert "was not run" in evidence and "--token=****" in evidence, evidence
    assert SECRET not in json.dumps(checked.structured_content)
