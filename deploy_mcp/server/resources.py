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
# Words that make a flag secret; `pass` and `auth` only as whole words, so --bypass and --oauth-scopes stay readable.
_SECRET_FLAG_WORDS = r"(?:password|passwd|passphrase|pwd|token|secret|key|credentials?|(?<![a-z0-9])(?:pass|auth))"
# A secret flag's name: --db-password, --api-key, --pass, --auth.
_FLAG_NAME = rf"-{{1,2}}[\w.-]*?{_SECRET_FLAG_WORDS}"
# A quoted value, masked whole so `--password "hunter 2"` leaks no part of it: "..." (backslash escapes) or '...'.
_QUOTED = r""""(?:\\.|[^"\\])*"|'[^']*'"""
# --db-password=VALUE or --db-password VALUE inside one command string; VALUE may be quoted or start with `-`,
# but a following secret flag is not a value (`--password --token X` masks X).
_SECRET_FLAG = re.compile(
    rf"(?<![\w-])(?P<flag>{_FLAG_NAME})(?P<sep>=|\s+)(?!{_FLAG_NAME}(?:[=\s]|$))(?P<value>{_QUOTED}|[^\s'\"]+)",
    re.IGNORECASE,
)
# --db-password as one list item: the next item is its value, whatever it looks like.
_SECRET_FLAG_ALONE = re.compile(_FLAG_NAME, re.IGNORECASE)
# NAME=VALUE, as in `DB_PASSWORD="x y" ./run` or a query string (a bare value stops at `&`); masked if NAME is secret.
_ASSIGNMENT = re.compile(rf"(?<![\w.-])(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>{_QUOTED}|[^\s'\"&]+)")
# mysql's -p takes the password glued on (-phunter2, -p"hunter 2"). Elsewhere -p is mostly a port or a path, so this
# applies only when the command's program is one of these. Case-sensitive: mysql's -P is the port.
_GLUED_PASSWORD_PROGRAMS = frozenset({"mysql", "mysqldump", "mysqladmin", "mariadb", "mariadb-dump"})
_GLUED_PASSWORD = re.compile(rf"(?<![\w-])-p(?P<value>{_QUOTED}|[^\s'\"]+)")
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
    text = _SECRET_FLAG.sub(lambda m: f"{m['flag']}{m['sep']}{_masked(m['value'])}", text)
    text = _ASSIGNMENT.sub(
        lambda m: f"{m['name']}={_masked(m['value'])}" if _SECRET_KEY.search(m["name"]) else m[0], text
    )
    if _program(text) in _GLUED_PASSWORD_PROGRAMS:
        text = _GLUED_PASSWORD.sub(lambda m: f"-p{_masked(m['value'])}", text)
    return text


def _mask_flag_values(items: list[Any]) -> list[Any]:
    """In an argument list, the item after a secret flag such as ``--db-password`` is its value.

    Even when it starts with `-`: ``-x9!`` is a fine password, and masking a flag by mistake costs only readability.
    For mysql-like programs the rest of a ``-p<password>`` item is a password too.
    """
    masked = list(items)
    for index, (item, following) in enumerate(itertools.pairwise(items)):
        if isinstance(item, str) and isinstance(following, str) and _SECRET_FLAG_ALONE.fullmatch(item):
            masked[index + 1] = MASK
    if items and isinstance(items[0], str) and _program(items[0]) in _GLUED_PASSWORD_PROGRAMS:
        masked[1:] = [_mask_glued_password(item) for item in masked[1:]]
    return masked


def _mask_glued_password(item: Any) -> Any:
    """One list item is one argument, so everything after ``-p`` is the password, spaces included."""
    if isinstance(item, str) and item.startswith("-p") and len(item) > len("-p"):
        return f"-p{MASK}"
    return item


def _masked(value: str) -> str:
    """The mask inside the value's own quotes, so the command still reads as written."""
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{quote}{MASK}{quote}"


def _program(command: str) -> str:
    """The program a command runs: its first word without a directory (mysql for ``/usr/bin/mysql -u root``)."""
    words = command.split(maxsplit=1)
    return words[0].rsplit("/", 1)[-1] if words else ""


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
