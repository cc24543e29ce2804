"""The MCP resources and prompts: checklists, references, the ledger, the configuration and capabilities."""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from pydantic import BaseModel, Field

from deploy_mcp.app import NO_CONFIG_HINT, App
from deploy_mcp.errors import UserError
from deploy_mcp.resources import catalog, prompts

# Keys whose values are secrets wherever they appear; env tables are masked whole (see mask_secrets).
_SECRET_KEY = re.compile(
    r"secret|token|passw|passphrase|pwd|credential|api[_-]?key|private|auth|signing|session|cookie|salt|dsn"
    r"|(?:^|[_.-])(?:pass|key)(?:$|[_.-])",
    re.IGNORECASE,
)
_SECRET_FLAG_WORDS = r"(?:password|passwd|passphrase|pwd|token|secret|key|credentials?)"
# --db-password=VALUE or --db-password VALUE inside one command string.
_SECRET_FLAG = re.compile(rf"(?<![\w-])(-{{1,2}}[\w.-]*?{_SECRET_FLAG_WORDS})(=|\s+)(?!-)[^\s'\"]+", re.IGNORECASE)
# --db-password as one list item: the next item is its value.
_SECRET_FLAG_ALONE = re.compile(rf"-{{1,2}}[\w.-]*?{_SECRET_FLAG_WORDS}", re.IGNORECASE)
# DB_PASSWORD=VALUE, as in `env DB_PASSWORD=... ./run` or a query string.
_ASSIGNMENT = re.compile(r"(?<![\w.-])([A-Za-z_][A-Za-z0-9_]*)=(?!-)[^\s'\"&]+")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
MASK = "****"
P = ParamSpec("P")
R = TypeVar("R")


class DeploymentNotFound(UserError):
    """The id names no deployment; reported to the client as "not found" (-32602), not as a server failure."""


def mask_secrets(value: Any, key: str = "") -> Any:
    """Secrets never leave the server.

    Masked: every value of an ``env`` table (any of them may be a secret, and its name is enough to plan with),
    values under secret-looking keys, passwords in URLs, and secret-looking flags and assignments inside commands.
    Masking too much costs a look at deploy.toml; masking too little leaks a credential to every agent.
    """
    if isinstance(value, dict):
        if key == "env" and all(isinstance(v, str) for v in value.values()):
            return {name: MASK if text else text for name, text in value.items()}
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return _mask_flag_values([mask_secrets(v, key) for v in value])
    if isinstance(value, str):
        if key and _SECRET_KEY.search(key):
            return MASK
        return _mask_text(value)
    return value


def _mask_text(text: str) -> str:
    text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    text = _SECRET_FLAG.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _ASSIGNMENT.sub(lambda m: f"{m.group(1)}={MASK}" if _SECRET_KEY.search(m.group(1)) else m.group(0), text)


def _mask_flag_values(items: list[Any]) -> list[Any]:
    """In an argument list, the item after a secret flag such as ``--db-password`` is its value."""
    masked = list(items)
    for index, (item, following) in enumerate(itertools.pairwise(items)):
        is_flag = isinstance(item, str) and _SECRET_FLAG_ALONE.fullmatch(item) is not None
        if is_flag and isinstance(following, str) and not following.startswith("-"):
            masked[index + 1] = MASK
    return masked


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
