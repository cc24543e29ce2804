"""The `deploy-mcp` command: the MCP server and the same operations for people at a terminal.

Only argparse is imported at start; each command imports what it needs, so `deploy-mcp serve` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from deploy_mcp.errors import UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy-mcp", description="Ship services safely: an MCP server for coding agents, and its CLI."
    )
    parser.add_argument("--config", help="path to deploy.toml (default: $DEPLOY_MCP_CONFIG, then search upwards)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    serve.add_argument("--token-file", help="file holding the bearer token (default: $DEPLOY_MCP_TOKEN)")
    serve.add_argument(
        "--insecure-no-auth", action="store_true", help="serve HTTP without a token (loopback addresses only)"
    )

    init = commands.add_parser("init", help="write a commented starter deploy.toml here")
    init.add_argument("--service", default="web", help="name of the first service (default web)")
    init.add_argument("--force", action="store_true", help="overwrite an existing deploy.toml")

    history = commands.add_parser("history", help="show the deployment ledger")
    history.add_argument("--service")
    history.add_argument("--environment")
    history.add_argument("--limit", type=int, default=20)

    approve = commands.add_parser("approve", help="approve a change for a service and environment (people only)")
    approve.add_argument("change_id", metavar="CHANGE-ID")
    approve.add_argument("--service", required=True)
    approve.add_argument("--environment", required=True)
    approve.add_argument("--approved-by", required=True, help="your name, as it goes into the record")
    approve.add_argument("--expires-in", type=float, default=24 * 3600, help="seconds the approval holds (24 h)")

    demo = commands.add_parser("demo", help="watch the SHIP loop on the local platform, driven through MCP")
    demo.add_argument("--keep", action="store_true", help="leave the demo project and its services running")

    local = commands.add_parser("local", help="the embedded local platform: what runs, and stopping it")
    local_commands = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    local_commands.add_parser("status", help="versions, instances, weights and health of every service")
    stop = local_commands.add_parser("stop", help="stop a service's instances and router")
    stop.add_argument("service")
    stop.add_argument("--environment", help="only this environment (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except UserError as exc:
        print(f"deploy-mcp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("DEPLOY_MCP_DEBUG"):
            raise
        print(
            f"deploy-mcp: internal error: {type(exc).__name__}: {exc} (set DEPLOY_MCP_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "init":
        return _init(args)
    if args.command == "history":
        return _history(args)
    if args.command == "local":
        return _local(args)
    if args.command == "approve":
        return _approve(args)
    if args.command == "demo":
        from deploy_mcp.demo import run_demo

        return run_demo(keep=args.keep)
    raise AssertionError(args.command)


def _serve(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App
    from deploy_mcp.server.app import build_server

    app = App.load(args.config)  # read on first use; an invalid deploy.toml is reported by every tool
    if not args.http:
        build_server(app).run("stdio")
        return 0
    from deploy_mcp.server.http import check_startup, resolve_token, serve_http

    token = resolve_token(args.token_file)
    check_startup(args.host, token, args.insecure_no_auth)
    print(f"deploy-mcp: serving MCP on http://{args.host}:{args.port}/mcp", file=sys.stderr)
    serve_http(build_server(app), args.host, args.port, token)
    return 0


def _init(args: argparse.Namespace) -> int:
    from deploy_mcp.config.loader import CONFIG_NAME, parse_config
    from deploy_mcp.config.starter import starter_config

    target = Path(args.config) if args.config else Path.cwd() / CONFIG_NAME
    if target.exists() and not args.force:
        raise UserError(f"{target} already exists; pass --force to overwrite it")
    text = starter_config(project=target.resolve().parent.name, service=args.service)
    parse_config(text)  # never write a starter that would not load
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}: edit the command, health path and environments, then run `deploy-mcp serve`")
    return 0


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


def _approve(args: argparse.Namespace) -> int:
    """Consent comes from a person: an agent's shell has no terminal, so a terminal is required."""
    from deploy_mcp.app import App
    from deploy_mcp.tools.approvals import approve, describe_approval

    if not sys.stdin.isatty():
        raise UserError(
            "approve must be run by a person in an interactive terminal; an agent may not approve its own changes"
        )
    app = App.load(args.config)
    approval = approve(app, args.change_id, args.service, args.environment, args.approved_by, args.expires_in)
    print(describe_approval(approval))
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
