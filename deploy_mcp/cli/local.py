"""`deploy-mcp local`: the embedded local platform, what runs and stopping it."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    local = commands.add_parser("local", help="the embedded local platform: what runs, and stopping it")
    local_commands = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    status = local_commands.add_parser("status", help="versions, instances, weights and health of every service")
    status.set_defaults(func=_local)
    stop = local_commands.add_parser("stop", help="stop a service's instances and router")
    stop.add_argument("service")
    stop.add_argument("--environment", help="only this environment (default: all)")
    stop.set_defaults(func=_local)


def _local(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App
    from deploy_mcp.targets.local import cli

    app = App.load(args.config)
    app.require_config()
    if args.local_command == "status":
        print(cli.status(app.project))
    else:
        print(cli.stop(app.project, args.service, args.environment))
    return 0
