"""The index of the packaged checklists and references, and the one way to read them.

The names here are the public resource names (deploy://checklists/{name}, deploy://references/{name}); the
descriptions become the MCP resource descriptions, so they say when an agent should read each one. Only the
standard library is imported: the server builds this list at start-up.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Literal

from deploy_mcp.errors import UserError

Kind = Literal["checklists", "references"]

CHECKLISTS: dict[str, str] = {
    "pre-deployment": "Before deploy: artifact, policy, migrations, signals, people; what preflight checks.",
    "post-deployment": "After a deploy succeeds: validation windows, the record, notifying, documenting.",
    "rollback": "Deciding on, running and verifying a rollback, then writing up the incident.",
    "enterprise-change": "Enterprise changes: approval, deploy window, on-call, 4-hour monitoring, closing.",
}

REFERENCES: dict[str, str] = {
    "deployment-strategies": "Rolling, blue-green, canary, recreate, flags: trade-offs, choosing, judging steps.",
    "deployment-commands": "deploy-mcp CLI, kubectl, aws ecs/elbv2, docker compose: deploy, shift, undo.",
    "migration-safety": "Schema changes that survive a rollout: expand/contract, PostgreSQL, linter rules.",
    "validation-checklist": "Validation windows, health JSON, smoke tests, thresholds, reading small samples.",
    "rollback-procedures": "When to roll back or fix forward, per-platform commands and times, escalation.",
    "monitoring-setup": "RED/USE metrics, PromQL, alert rules, the deployment dashboard and log retention.",
}

_INDEX: dict[str, dict[str, str]] = {"checklists": CHECKLISTS, "references": REFERENCES}


class UnknownResourceError(UserError, KeyError):
    """An unknown kind or name; a KeyError for callers that look things up, a UserError for the MCP face."""

    def __str__(self) -> str:
        # KeyError would print the message as a quoted repr; people read this one.
        return str(self.args[0]) if self.args else ""


def read_text(kind: Kind, name: str) -> str:
    """The markdown of one packaged checklist or reference, read from the installed package."""
    names = _INDEX.get(kind)
    if names is None:
        raise UnknownResourceError(f"kind: {kind!r} is not a resource kind; use one of: {', '.join(_INDEX)}")
    if name not in names:
        singular = kind.removesuffix("s")
        raise UnknownResourceError(
            f"name: there is no {singular} {name!r}; known {kind}: {', '.join(names)} "
            f"(read them as deploy://{kind}/NAME)"
        )
    return files(__package__).joinpath(kind).joinpath(f"{name}.md").read_text(encoding="utf-8")
