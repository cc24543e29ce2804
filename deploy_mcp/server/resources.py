"""The MCP resources and prompts: checklists, references, the ledger, the configuration and capabilities."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from pydantic import BaseModel, Field

from deploy_mcp.app import NO_CONFIG_HINT, App
from deploy_mcp.core.masking import mask_secrets
from deploy_mcp.errors import UserError
from deploy_mcp.resources import catalog, prompts

P = ParamSpec("P")
R = TypeVar("R")


class DeploymentNotFound(UserError):
    """The id names no deployment; reported to the client as "not found" (-32602), not as a server failure."""


def _reports_user_errors(read: Callable[P, R]) -> Callable[P, R]:
    """A caller's mistake becomes a resource error carrying its message, so the client reads why.

    The SDK passes only its own ResourceError through to the client; anything else it treats as a crash, logs
    with a traceback and answers with a generic message that names the URI alone.
    """

    @functools.wraps(read)
    def reader(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return read(*args, **kwargs)
        except DeploymentNotFound as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except UserError as exc:
            raise ResourceError(str(exc)) from None

    return reader


class Capabilities(BaseModel):
    """What this session may do, so an agent can plan without trial and error."""

    configured: bool
    config_path: str | None
    config_error: str | None
    mode: str
    read_only: bool
    services: dict[str, list[str]]
    allowed_environments: list[str] | None
    production_environments: list[str]
    production: dict[str, list[str]] = Field(
        description="Per service, the environments that count as production for it: policy.production_environments "
        "unless the service's environment says `production = true/false`."
    )
    production_requires_confirmation: bool
    hint: str | None


def capabilities(app: App) -> Capabilities:
    config = app.config
    return Capabilities(
        configured=app.project.configured,
        config_path=str(app.project.config_path) if app.project.config_path else None,
        config_error=app.config_error,
        mode=config.mode.value,
        read_only=config.policy.read_only or not app.project.configured or app.config_error is not None,
        services={name: list(service.environments) for name, service in config.services.items()},
        allowed_environments=config.policy.allowed_environments,
        production_environments=config.policy.production_environments,
        production={
            name: [env for env in service.environments if config.is_production(name, env)]
            for name, service in config.services.items()
        },
        production_requires_confirmation=config.policy.require_confirmation,
        hint=None if app.project.configured else NO_CONFIG_HINT,
    )


def register_resources(server: MCPServer, app: App) -> None:
    for name, description in catalog.CHECKLISTS.items():
        _static(server, f"deploy://checklists/{name}", f"checklist-{name}", description, "checklists", name)
    for name, description in catalog.REFERENCES.items():
        _static(server, f"deploy://references/{name}", f"reference-{name}", description, "references", name)

    @server.resource(
        "deploy://deployments",
        name="deployments",
        description="The 50 most recent deployment records, newest first (JSON).",
        mime_type="application/json",
    )
    @_reports_user_errors
    def recent_deployments() -> str:
        app.settle_ledger()
        ledger = app.existing_ledger()
        records = ledger.list(limit=50) if ledger else []
        return json.dumps([r.model_dump(mode="json") for r in records], indent=2)

    @server.resource(
        "deploy://deployments/{deployment_id}",
        name="deployment",
        description="One deployment record with its steps, verdicts and event log (JSON).",
        mime_type="application/json",
    )
    @_reports_user_errors
    def one_deployment(deployment_id: str) -> str:
        app.settle_ledger()
        ledger = app.existing_ledger()
        record = ledger.get(deployment_id) if ledger else None
        if record is None:
            raise DeploymentNotFound(
                f"deployment_id: no deployment {deployment_id!r}; list them with deploy://deployments"
            )
        events = [e.model_dump(mode="json") for e in ledger.events(deployment_id)] if ledger else []
        return json.dumps({"record": record.model_dump(mode="json"), "events": events}, indent=2)

    @server.resource(
        "deploy://config",
        name="config",
        description="The effective deploy.toml with defaults filled in and secrets masked (JSON).",
        mime_type="application/json",
    )
    @_reports_user_errors
    def effective_config() -> str:
        body = {
            "config_path": str(app.project.config_path) if app.project.config_path else None,
            "config_error": app.config_error,
            "hint": None if app.project.configured else NO_CONFIG_HINT,
            "config": mask_secrets(app.config.model_dump(mode="json")),
        }
        return json.dumps(body, indent=2)

    @server.resource(
        "deploy://capabilities",
        name="capabilities",
        description="What this session may do: mode, services and environments, read-only or not.",
        mime_type="application/json",
    )
    @_reports_user_errors
    def session_capabilities() -> str:
        return capabilities(app).model_dump_json(indent=2)


def _static(server: MCPServer, uri: str, name: str, description: str, kind: str, key: str) -> None:
    @server.resource(uri, name=name, description=description, mime_type="text/markdown")
    @_reports_user_errors
    def read() -> str:
        return catalog.read_text(kind, key)  # type: ignore[arg-type]


def register_prompts(server: MCPServer) -> None:
    server.prompt(name="ship", description="Walk the SHIP phase for one service: plan, check, deploy, validate.")(
        prompts.ship
    )
    server.prompt(name="hotfix", description="Ship an urgent fix fast without skipping validation.")(prompts.hotfix)
    server.prompt(name="rollback", description="Roll a service back to its last validated version, safely.")(
        prompts.rollback
    )
