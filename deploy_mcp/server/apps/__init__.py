"""The live rollout view: an MCP App (extension ``io.modelcontextprotocol/ui``) that `deploy` and
`deployment_status` point at.

A host that speaks MCP Apps renders ``ui://deploy-mcp/rollout.html`` beside the tool result: the traffic split
over time, each analysis step's error rate and p95 latency against the warn and critical lines, the verdicts and
the rollback. While the deployment runs the view asks the host to call `deployment_status` (the Apps spec lets a
view call its server's tools through the host) and redraws. A client without Apps never reads the resource and
gets the tools' text as before.

The page is one self-contained HTML file with no network access of its own (the default CSP of a host allows
none), so the same file renders a record anywhere: ``static_page`` embeds one, which is how the docs show a real
rollout.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from mcp.server.apps import Apps

ROLLOUT_URI = "ui://deploy-mcp/rollout.html"
UI_TOOLS = frozenset({"deploy", "deployment_status"})
"""The tools whose results the view draws (both return a DeploymentView)."""
EMBEDDED_MARKER = "<!--deployment-view-->"


@cache
def rollout_html() -> str:
    return resources.files(__package__).joinpath("rollout.html").read_text(encoding="utf-8")


def ui_meta(tool: str) -> dict[str, Any] | None:
    """The ``_meta`` that points a tool at the view, or None for a tool without one."""
    return {"ui": {"resourceUri": ROLLOUT_URI}} if tool in UI_TOOLS else None


def rollout_extension() -> Apps:
    """The Apps extension serving the view; the tools it belongs to are bound by the tool set (``ui_meta``)."""
    apps = Apps()
    apps.add_html_resource(
        ROLLOUT_URI,
        rollout_html(),
        name="rollout",
        title="Rollout",
        description="The live rollout of a deployment: traffic split, analysis against the thresholds, verdicts, "
        "rollback.",
        prefers_border=True,
    )
    return apps


def static_page(view: dict[str, Any]) -> str:
    """The view with one deployment's `deployment_status` result embedded: a page that needs no host."""
    payload = json.dumps(view, separators=(",", ":")).replace("</", "<\\/")
    script = f'<script type="application/json" id="deployment-view">{payload}</script>'
    return rollout_html().replace(EMBEDDED_MARKER, script, 1)
