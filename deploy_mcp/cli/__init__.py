"""The `deploy-mcp` command: the MCP server and the same operations for people at a terminal.

One module per command family registers its sub-commands with argparse and sets ``func``, the function that runs
the command. Only argparse is imported at start; each command imports what it needs, so `deploy-mcp serve` starts
fast. The commands call the same services as the MCP tools (deploy_mcp/services).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from deploy_mcp import __version__
from deploy_mcp.cli import approvals, demo, deployments, history, init, local, serve, tokens
from deploy_mcp.errors import UserError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy-mcp", description="Ship services safely: an MCP server for coding agents, and its CLI."
    )
    parser.add_argument("--config", help="path to deploy.toml (default: $DEPLOY_MCP_CONFIG, then search upwards)")
    parser.add_argument("--version", action="version", version=f"deploy-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in (serve, init, history, approvals, tokens, deployments, demo, local):  # the order of --help
        family.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
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


if __name__ == "__main__":
    sys.exit(main())
