"""One DEPLOY.md from a project: scan, build the context, render, carry the keep blocks over, check the rollback.

This is the whole of the generator without any file writing, so the MCP tool, its command line and the tests all
produce exactly the same text; the tool adds only where the file goes and how it is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploy_mcp.deploymd import markers
from deploy_mcp.deploymd.context import build_context
from deploy_mcp.deploymd.render import render, require_rollback, sections
from deploy_mcp.deploymd.scan import scan_project
from deploy_mcp.errors import UserError

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project
    from deploy_mcp.ledger.base import Ledger

GENERATED_MARK = "<!-- deploy-mcp:generated"
"""The first line of every generated DEPLOY.md: how a file we may replace is told from one a person wrote."""


class DeployMdError(UserError):
    """DEPLOY.md cannot be generated from this project as it is; the message says what to add or fix."""


@dataclass(frozen=True)
class Document:
    content: str
    sections: list[str]
    notes: list[str]


def build_document(
    project: Project,
    ledger: Ledger | None,
    existing: str | None = None,
    *,
    source: str = "DEPLOY.md",
    generated_at: str | None = None,
) -> Document:
    """The DEPLOY.md text for ``project``; ``existing`` is the current file, whose keep blocks are carried over.

    Raises DeployMdError when there is nothing whose rollback could be documented, and the configuration's own
    errors (an impossible plan) unchanged: a DEPLOY.md without its rollback procedure is never produced.
    """
    config = project.config
    if not config.services:
        raise DeployMdError(
            "deploy.toml has no services, so there is no deployment or rollback to document; add a "
            "[services.NAME] section with its command or image, then [services.NAME.environments.staging]"
        )
    pairs = [(name, env) for name, service in config.services.items() for env in service.environments]
    if not pairs:
        first = next(iter(config.services))
        raise DeployMdError(
            "no service in deploy.toml has an environment, so there is no deployment or rollback to document; add "
            f"[services.{first}.environments.staging] (and production) to deploy.toml"
        )
    root = project.root
    configured = tuple(sorted({m for s in config.services.values() if (m := getattr(s, "migrations", None))}))
    files = scan_project(root, configured)
    context = build_context(
        config,
        project_name=config.project or root.name,
        config_file=project.config_path.name if project.config_path else "deploy.toml",
        files=files,
        ledger=ledger,
        cli_commands=cli_commands(),
        tool_names=tool_names(),
        generated_at=generated_at,
    )
    merged = markers.merge(render(context), existing, source)
    require_rollback(merged.text, pairs)
    notes = list(context["warnings"])
    if merged.kept:
        notes.append(f"kept {len(merged.kept)} edited section(s) from {source}: {', '.join(merged.kept)}")
    if merged.placed:
        notes.append(f"kept your own block(s) {', '.join(merged.placed)} under the headings they followed")
    if merged.orphaned:
        notes.append(
            f"block(s) {', '.join(merged.orphaned)} followed a heading that no longer exists; they are under "
            f"'{markers.KEPT_NOTES_HEADING[3:]}' at the end"
        )
    return Document(content=merged.text, sections=sections(merged.text), notes=notes)


def is_generated(text: str) -> bool:
    """Whether ``text`` is a DEPLOY.md this generator wrote (and may therefore replace)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first.strip().startswith(GENERATED_MARK)


def cli_commands() -> frozenset[str]:
    """The `deploy-mcp` subcommands that exist in this version, so the document never shows one that does not."""
    import argparse

    from deploy_mcp.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return frozenset(action.choices)
    return frozenset()


def tool_names() -> frozenset[str]:
    """The MCP tools this version registers, so the document only sends an agent to tools that exist."""
    from deploy_mcp.server.toolset import TOOLS

    return frozenset(spec.name for spec in TOOLS)
