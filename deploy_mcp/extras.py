"""The optional parts of deploy-mcp (pyproject's extras) and the exact command that installs each one.

A user who runs `pip install deploy-mcp` gets the local platform only. A feature that needs an extra must say
which command adds it, at the moment it is asked for, instead of failing on an import deep inside a driver.
"""

from __future__ import annotations

import importlib.util
from enum import StrEnum


class Extra(StrEnum):
    """The extras of pyproject.toml that bring a Python module (migrations brings the squawk binary, which
    migrations/squawk.py looks for and names the same way)."""

    KUBERNETES = "kubernetes"
    ECS = "ecs"


MODULE = {Extra.KUBERNETES: "kubernetes", Extra.ECS: "boto3"}
"""The module whose absence means the extra is missing."""

TARGET_EXTRA = {"kubernetes": Extra.KUBERNETES, "ecs": Extra.ECS}
"""deploy.toml's `target` values that need an extra."""


def install_command(extra: Extra) -> str:
    """The pip command that adds ``extra`` to the environment deploy-mcp runs in."""
    return f"pip install 'deploy-mcp[{extra}]'"


def is_installed(extra: Extra) -> bool:
    return importlib.util.find_spec(MODULE[extra]) is not None


def missing_for_target(kind: str, service: str) -> str | None:
    """Why ``service`` cannot run on ``kind`` here and what to run, or None when nothing is missing."""
    extra = TARGET_EXTRA.get(kind)
    if extra is None or is_installed(extra):
        return None
    return (
        f'services.{service}.target: "{kind}" needs the [{extra}] extra, which is not installed where deploy-mcp '
        f"runs; run {install_command(extra)} (with uvx: uvx --from 'deploy-mcp[{extra}]' deploy-mcp serve), "
        "then restart the server"
    )
