"""`deploy-mcp init`: a commented starter deploy.toml."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy_mcp.errors import UserError


def register(commands: argparse._SubParsersAction) -> None:
    init = commands.add_parser("init", help="write a commented starter deploy.toml here")
    init.add_argument("--service", default="web", help="name of the first service (default web)")
    init.add_argument("--force", action="store_true", help="overwrite an existing deploy.toml")
    init.set_defaults(func=_init)


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
