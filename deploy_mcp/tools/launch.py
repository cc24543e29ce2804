"""Starting a deployment: the part the MCP tool and `deploy-mcp deploy` share, free of the MCP SDK.

The checklist first, then (after the caller has consent) the plan from what the platform serves now, handed to
this process's Runner. Keeping it here, not beside the tool, lets the CLI start without loading the SDK.
"""

from __future__ import annotations

from deploy_mcp.app import App
from deploy_mcp.config.schema import StrategyName
from deploy_mcp.core.plans import build_plan
from deploy_mcp.core.records import DeploymentRecord
from deploy_mcp.core.runner.api import Progress
from deploy_mcp.errors import UserError
from deploy_mcp.preflight import PreflightReport, run_preflight

__all__ = ["require_preflight", "start_deployment"]


def start_deployment(
    app: App,
    service: str,
    version: str,
    environment: str,
    strategy: StrategyName | str | None,
    *,
    deployed_by: str,
    change_id: str | None = None,
    on_progress: Progress | None = None,
) -> DeploymentRecord:
    """Plan from what the platform serves now and hand the plan to this process's Runner; returns the new record.

    Consent is the caller's job and must come first: the MCP tool gets it from its resolver, `deploy-mcp deploy`
    from the person at the terminal. Sharing this part is what makes a record written from a terminal the same
    thing as one written by an agent. Blocks (platform calls), so the MCP tool runs it in a worker thread.
    """
    config = app.require_config()
    runner = app.runner()
    current = app.serving_version(service, environment)
    plan = build_plan(config, service, version, environment, strategy, current_version=current)
    return runner.start(plan, deployed_by=deployed_by, change_id=change_id, on_progress=on_progress)


def require_preflight(
    app: App,
    service: str,
    version: str,
    environment: str,
    strategy: StrategyName | str | None = None,
    change_id: str | None = None,
) -> PreflightReport:
    """The preflight report, or UserError listing every failed required item with its fix."""
    report = run_preflight(app, service, version, environment, strategy=strategy, change_id=change_id)
    if not report.passed:
        raise UserError(report.refusal())
    return report
