"""The server's lifespan closes the App it owns: a deployment it drives is handed back as interrupted when it stops.

`deploy-mcp serve` (stdio and HTTP) owns its App; before, the process just ended and left its deployments in
progress until their lock lapsed. A server built over an App the caller passes keeps it open, as tests and
embedders expect. The lifespan is the SDK's: it spans one connection of the in-memory client used here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from canary_project import TIMEOUT, analyzing, canary_project
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.core.records import Status
from deploy_mcp.server.app import build_server
from deploy_mcp.services.launch import start_deployment

pytestmark = pytest.mark.anyio


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with canary_project(tmp_path) as deploy_toml:
        yield deploy_toml


async def start_in_server(app: App, *, close_app: bool) -> str:
    """Connect to a server over ``app``, start a deployment it drives, wait for its analysis, disconnect."""
    async with Client(build_server(app, close_app=close_app)) as client:
        assert (await client.list_tools()).tools
        record = start_deployment(app, "hello", "2.0.0", "staging", None, deployed_by="test")
        deadline = time.monotonic() + TIMEOUT
        while not analyzing(record):
            assert time.monotonic() < deadline, f"never reached its analysis: {record.status} {record.reason}"
            record = app.runner().wait(record.id, 0.2)
    return record.id


def status_in_ledger(deploy_toml: Path, deployment_id: str) -> Status:
    """The record as the ledger holds it, read by another App without recovering anything."""
    reader = App.load(deploy_toml)
    try:
        ledger = reader.existing_ledger()
        assert ledger is not None
        record = ledger.get(deployment_id)
        assert record is not None
        return record.status
    finally:
        reader.close()


async def test_a_server_that_owns_its_app_hands_its_deployments_back_when_it_stops(project: Path) -> None:
    app = App.load(project)
    try:
        deployment_id = await start_in_server(app, close_app=True)
        assert status_in_ledger(project, deployment_id) is Status.INTERRUPTED
        assert deployment_id not in app.runner().running()  # a fresh runner: the one that drove it was closed
    finally:
        app.close()


async def test_a_server_over_the_callers_app_leaves_it_open(project: Path) -> None:
    app = App.load(project)
    try:
        deployment_id = await start_in_server(app, close_app=False)
        assert deployment_id in app.runner().running()  # still driven by the caller's App
        assert status_in_ledger(project, deployment_id) is Status.IN_PROGRESS
    finally:
        app.close()
