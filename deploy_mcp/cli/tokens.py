"""`deploy-mcp token add`: identities and roles of the HTTP server, in a token file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deploy_mcp.errors import UserError


def register(commands: argparse._SubParsersAction) -> None:
    token = commands.add_parser("token", help="identities of the HTTP server: add a token to a token file")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    add = token_commands.add_parser(
        "add", help="add an identity with a role; prints its token once, the file keeps only the hash"
    )
    add.add_argument("name", metavar="NAME", help="who holds it, as records will name them, e.g. alice or ci-agent")
    add.add_argument("--role", required=True, choices=["viewer", "deployer", "releaser"])
    add.add_argument("--token-file", help="the token file (default: $DEPLOY_MCP_TOKEN_FILE); created 0600")
    add.set_defaults(func=_token)


def _token(args: argparse.Namespace) -> int:
    from deploy_mcp.server.identities import TOKEN_FILE_ENV, add_token

    path_text = args.token_file or os.environ.get(TOKEN_FILE_ENV, "").strip()
    if not path_text:
        raise UserError(f"--token-file: say which token file to add to (or set ${TOKEN_FILE_ENV})")
    path = Path(path_text).expanduser()
    token = add_token(path, args.name, args.role)
    print(token)
    print(
        f"added {args.name} ({args.role}) to {path}. This is the only time the token is shown: the file keeps its "
        "hash. Give it to its holder, who sends it as `Authorization: Bearer TOKEN`.",
        file=sys.stderr,
    )
    return 0
