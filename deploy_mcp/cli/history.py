"""`deploy-mcp history`: the deployment ledger as a table."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    history = commands.add_parser("history", help="show the deployment ledger")
    history.add_argument("--service")
    history.add_argument("--environment")
    history.add_argument("--limit", type=int, default=20)
    history.set_defaults(func=_history)


def _history(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deploy_mcp.app import App
    from deploy_mcp.server.render import history_table
    from deploy_mcp.tools.history import deployment_history

    app = App.load(args.config)
    result = deployment_history(app, service=args.service, environment=args.environment, limit=args.limit)
    console = Console()
    if result.hint:
        console.print(result.hint)
    if result.records:
        console.print(history_table(result.records))
    return 0
