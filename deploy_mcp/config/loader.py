"""Finding and reading deploy.toml, and turning pydantic's errors into sentences a person can act on."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from deploy_mcp.config.schema import DeployConfig
from deploy_mcp.errors import UserError

CONFIG_NAME = "deploy.toml"
ENV_VAR = "DEPLOY_MCP_CONFIG"
STATE_DIR = ".deploy"


class ConfigError(UserError):
    """deploy.toml is missing, unreadable or invalid; the message says where and how to fix it."""


class ConfigNotFound(ConfigError):
    """``--config`` or ``$DEPLOY_MCP_CONFIG`` names a file that is not there: a wrong path, not an invalid file."""


@dataclass(frozen=True)
class Project:
    """A loaded project: its configuration and where its files and state live."""

    config: DeployConfig
    config_path: Path | None

    @property
    def root(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def configured(self) -> bool:
        return self.config_path is not None


def discover(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path | None:
    """``--config``, then ``$DEPLOY_MCP_CONFIG``, then deploy.toml in the working directory or a parent."""
    for candidate, origin in ((explicit, "--config"), (os.environ.get(ENV_VAR), ENV_VAR)):
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_dir():
                path = path / CONFIG_NAME
            if not path.is_file():
                raise ConfigNotFound(
                    f"{origin} points to {path}, which does not exist; correct the path, or create the file with "
                    f"`deploy-mcp --config {path} init`"
                )
            return path.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    return None


def load_project(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Project:
    """The project for this process; an empty default configuration when no deploy.toml exists."""
    path = discover(explicit, start)
    if path is None:
        return Project(config=DeployConfig(), config_path=None)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}; check its permissions") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save deploy.toml as UTF-8") from None
    return Project(config=parse_config(text, source=str(path)), config_path=path)


def parse_config(text: str, source: str = CONFIG_NAME) -> DeployConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return DeployConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(_describe(error) for error in exc.errors())) from None


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    path = ".".join(str(part) for part in loc) or "(top level)"
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        parent = ".".join(str(p) for p in loc[:-1]) or "the top level"
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key in {parent}{hint}"
    if kind == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        choices = expected.replace("'", "").replace(" or ", ", ")
        return f"{path}: {value!r} is not one of {choices}"
    if kind == "missing":
        return f"{path}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if "ctx" in error and kind.startswith(("greater", "less")):
        return f"{path}: {value!r} is out of range: {message.lower()}"
    shown = f" (got {value!r})" if kind not in {"value_error", "assertion_error"} and value is not None else ""
    if "env" in loc:
        shown = ""  # env values are often secrets, and this message reaches agents and logs
    if not loc and ": " in message:
        return message  # a whole-model check already names its own key path
    return f"{path}: {message}{shown}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Walk the schema along a location to list the keys allowed there."""
    model: Any = DeployConfig
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = _field_type(model, part)
        if annotation is None:
            return []
        model = annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _field_type(model: Any, key: str) -> Any:
    """The model type stored under ``key`` (looking through dict and optional types)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        field = model.model_fields.get(key)
        return _unwrap(field.annotation) if field else None
    if get_origin(model) is dict:
        return _unwrap(get_args(model)[1])
    return None


def _unwrap(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is dict:
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel | Enum):
            return arg
        if get_origin(arg) is dict:
            return arg
    return annotation
