"""Building the MCP server: our tools, resources and prompts over an `App`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio

from deploy_mcp import __version__
from deploy_mcp.app import App
from deploy_mcp.server.resources import register_prompts, register_resources
from deploy_mcp.server.toolset import DeployServer

INSTRUCTIONS = """\
deploy-mcp ships services safely. Follow the SHIP phase: plan_deployment (what would happen and which gates
apply), then deploy, then validate; roll back with rollback when the numbers say so. Read deploy://capabilities
first to learn the mode, the services and what this session may do, and the checklists under
deploy://checklists/ before production changes. Production actions are confirmed by the user; never try to
confirm on their behalf."""


def build_server(app: App | None = None, *, close_app: bool | None = None) -> DeployServer:
    """The server over ``app``. ``close_app``: the server owns the App and closes it when it stops (its lifespan
    ends); the default is to own the App only when it made it, so a caller that passes one keeps it open."""
    owned = app is None if close_app is None else close_app
    app = app or App.load()
    server = DeployServer(
        app,
        name="deploy-mcp",
        title="deploy-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        lifespan=closing_app if owned else None,
    )
    register_resources(server, app)
    register_prompts(server)
    return server


@contextlib.asynccontextmanager
async def closing_app(server: DeployServer) -> AsyncIterator[dict[str, Any]]:
    """The server's lifespan: when it stops, its App closes. Deployments it drives are handed back as interrupted
    at once (resume or abort carries them on from any process), the ledger and the platforms' clients are released.

    The lifespan spans the server's life over stdio and HTTP, and one connection of an in-memory client; the App
    opens again on first use. Closing waits for the runner's threads, so it runs in a worker thread and is shielded
    from the cancellation that stops the server (Ctrl-C, SIGTERM).
    """
    try:
        yield {}
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.app.close)
