"""The MCP resources and prompts: checklists, references, the ledger, the configuration and capabilities."""

from __future__ import annotations

import json
import re
from typing import Any

from mcp.server import MCPServer
from pydantic import BaseModel

from deploy_mcp.app import NO_CONFIG_HINT, App
from deploy_mcp.errors import UserError
from deploy_mcp.resources import catalog, prompts

_SECRET_KEY = re.compile(r"secret|token|password|passwd|credential|api[_-]?key|private|auth", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
MASK = "****"


def mask_secrets(value: Any, key: str = "") -> Any:
    """Secrets never leave the server: values under secret-looking keys and passwords in URLs are masked."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, str):
        if key and _SECRET_KEY.search(key):
            return MASK
        return _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", value)
    return value


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
    def one_deployment(deployment_id: str) -> str:
        app.settle_ledger()
        ledger = app.existing_ledger()
        record = ledger.get(deployment_id) if ledger else None
        if record is None:
            raise UserError(f"deployment_id: no deployment {deployment_id!r}; list them with deploy://deployments")
        events = [e.model_dump(mode="json") for e in ledger.events(deployment_id)] if ledger else []
        return json.dumps({"record": record.model_dump(mode="json"), "events": events}, indent=2)

    @server.resource(
        "deploy://config",
        name="config",
        description="The effective deploy.toml with defaults filled in and secrets masked (JSON).",
        mime_type="application/json",
    )
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
    def session_capabilities() -> str:
        return capabilities(app).model_dump_json(indent=2)


def _static(server: MCPServer, uri: str, name: str, description: str, kind: str, key: str) -> None:
    @server.resource(uri, name=name, description=description, mime_type="text/markdown")
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
