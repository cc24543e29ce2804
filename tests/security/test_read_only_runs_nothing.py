"""Issue 9, item 4: a read-only session executes nothing, not even the project's test command.

The test command here leaves a file behind when it runs, so "it ran" is something a user would see. preflight
reports the last recorded test run instead; a deploy is refused as read-only without running anything either.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.preflight.testruns import TestRun, record
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio
MARKER = "tests-ran"
TESTS = [sys.executable, "-c", f"import pathlib; pathlib.Path({MARKER!r}).write_text('ran')"]
CONFIG = f"""\
mode = "brownfield-polish"

[policy]
read_only = true

[services.web]
command = ["{sys.executable}", "-c", "import time; time.sleep(60)"]
health = "/health"
test_command = {json.dumps(TESTS)}

[services.web.environments.staging]
"""
PREFLIGHT = {"service": "web", "version": "1.0.0", "environment": "staging"}


@pytest.fixture
async def project(tmp_path: Path) -> AsyncIterator[tuple[Client, Path]]:
    (tmp_path / "deploy.toml").write_text(CONFIG, encoding="utf-8")
    app = App.load(tmp_path / "deploy.toml")
    try:
        async with Client(build_server(app)) as client:
            yield client, tmp_path
    finally:
        app.close()


def the_tests_item(result: object) -> dict[str, str]:
    return next(item for item in result.structured_content["items"] if item["name"] == "tests")  # type: ignore[attr-defined]


async def test_preflight_reports_without_running_the_test_command(project: tuple[Client, Path]) -> None:
    client, folder = project
    result = await client.call_tool("preflight", PREFLIGHT)
    assert not result.is_error, result.content[0].text
    item = the_tests_item(result)
    assert "was not run, and no run of it is recorded" in item["evidence"]
    assert not (folder / MARKER).exists()


async def test_preflight_reports_the_last_recorded_run(project: tuple[Client, Path]) -> None:
    client, folder = project
    run = TestRun(command=TESTS, commit="0123456789abcdef", passed=True, exit_code=0, finished_at=datetime.now(UTC))
    assert record(folder / ".deploy", run) is not None
    item = the_tests_item(await client.call_tool("preflight", PREFLIGHT))
    assert item["status"] == "passed"
    assert "was not run; the last recorded run, on commit 0123456789ab" in item["evidence"]
    assert not (folder / MARKER).exists()


async def test_a_refused_deploy_runs_nothing(project: tuple[Client, Path]) -> None:
    client, folder = project
    result = await client.call_tool("deploy", {**PREFLIGHT, "wait_seconds": 0})
    assert result.is_error and "read-only" in result.content[0].text
    assert not (folder / MARKER).exists()
