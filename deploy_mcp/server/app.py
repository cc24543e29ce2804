"""Building the MCP server: our tools, resources and prompts over an `App`."""

from __future__ import annotations

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


def build_server(app: App | None = None) -> DeployServer:
    app = app or App.load()
    server = DeployServer(
        app, name="deploy-mcp", title="deploy-mcp", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    register_resources(server, app)
    register_prompts(server)
    return server
