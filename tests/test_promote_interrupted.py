"""Promote of a deployment that no process drives any more, through the CLI and through MCP: one code path.

A `deploy-mcp deploy` that paused and ended, or a server that stopped, leaves its deployment interrupted. Only the
process that drives a deployment can skip one of its steps, so promote takes it over first and goes on past the
step once the take-over is back at it. The CLI did that and the promote tool refused ("resume it first"); both
now call `services.steering.promote`, and this test runs both faces on the same situation, the real local
platform and a real ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from canary_project import TIMEOUT, analyzing, canary_project
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.cli import main
from deploy_mcp.core.records import Status
from deploy_mcp.server.app import build_server
from deploy_mcp.services.launch import start_deployment


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with canary_project(tmp_path) as deploy_toml:
        yield deploy_toml


def interrupted_in_analysis(deploy_toml: Path) -> str:
    """A first deployment of 2.0.0 whose driving process let go of it in the middle of its analysis."""
    app = App.load(deploy_toml)
    try:
        record = start_deployment(app, "hello", "2.0.0", "staging", None, deployed_by="test")
        deadline = time.monotonic() + TIMEOUT
        while not analyzing(record):
            assert time.monotonic() < deadline, f"never reached its analysis: {record.status} {record.reason}"
            record = app.runner().wait(record.id, 0.2)
    finally:
        app.close()  # hands it back as interrupted, as Ctrl-C in `deploy-mcp deploy` does
    fresh = App.load(deploy_toml)
    try:
        assert fresh.runner().get(record.id).status is Status.INTERRUPTED
    finally:
        fresh.close()
    return record.id


def promote_in_a_terminal(deploy_toml: Path, deployment_id: str) -> None:
    assert main(["--config", str(deploy_toml), "promote", deployment_id]) == 0  # it watched it succeed


def promote_through_mcp(deploy_toml: Path, deployment_id: str) -> None:
    app = App.load(deploy_toml)

    async def call() -> None:
        async with Client(build_server(app)) as client:
            result = await client.call_tool("promote", {"deployment_id": deployment_id})
            assert not result.is_error, result.content

    try:
        anyio.run(call)
        deadline = time.monotonic() + TIMEOUT
        while not app.runner().wait(deployment_id, 0.5).status.finished:  # this server drives it now
            assert time.monotonic() < deadline, "the promoted deployment did not end"
    finally:
        app.close()


@pytest.mark.parametrize("face", [promote_in_a_terminal, promote_through_mcp], ids=["cli", "mcp"])
def test_promote_takes_over_an_interrupted_deployment_in_the_cli_and_through_mcp(
    project: Path, face: Callable[[Path, str], None]
) -> None:
    deployment_id = interrupted_in_analysis(project)

    face(project, deployment_id)

    app = App.load(project)
    try:
        record = app.runner().get(deployment_id)
        serving = app.serving_version("hello", "staging")
    finally:
        app.close()
    assert record.status is Status.SUCCEEDED, record.reason
    analysis = next(step for step in record.steps if step.name == "analyze")
    assert analysis.status == "promoted", analysis  # promoted past, not waited out (the bake is 600 s)
    assert serving == "2.0.0"
