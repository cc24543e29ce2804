"""`deploy-mcp demo`: the SHIP loop on the local platform, driven through MCP."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="watch the SHIP loop on the local platform, driven through MCP")
    demo.add_argument("--keep", action="store_true", help="leave the demo project and its services running")
    demo.add_argument(
        "--short", action="store_true", help="ship one release to staging only: a quick check that an install works"
    )
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from deploy_mcp.demo import run_demo

    return run_demo(keep=args.keep, short=args.short)
