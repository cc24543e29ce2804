"""`deploy-mcp approve`: a person's approval, through the team server (it counts for production) or into the
local ledger (a change record only). Not an MCP tool on purpose: a model that could approve would approve itself."""

from __future__ import annotations

import argparse
import sys

from deploy_mcp.cli.common import paragraphs
from deploy_mcp.errors import UserError


def register(commands: argparse._SubParsersAction) -> None:
    approve = commands.add_parser(
        "approve",
        help="approve a change for a service and environment (people only; for production, through --server)",
        description=paragraphs(
            "Record a person's approval of a change. With --server it goes to the team server and is recorded "
            "under the identity of your token, which must have the releaser role: that approval lets another "
            "caller's production change go ahead. Without --server it is written to this project's ledger as a "
            "change record only: it never counts as consent for production, because a program running as you "
            "could run this command too.",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    approve.add_argument("change_id", metavar="CHANGE-ID")
    approve.add_argument("--service", required=True)
    approve.add_argument("--environment", required=True)
    approve.add_argument(
        "--approved-by", help="your name, as it goes into the record (local only; the server uses your identity)"
    )
    approve.add_argument("--server", metavar="URL", help="the team server, e.g. https://deploy.internal:8765")
    approve.add_argument(
        "--token-file", help="with --server: a file holding your own bearer token (default: $DEPLOY_MCP_TOKEN)"
    )
    approve.add_argument("--expires-in", type=float, default=24 * 3600, help="seconds the approval holds (24 h)")
    approve.add_argument(
        "--version",
        help="approve only this version (default: any version); either way one deployment can start under it",
    )
    approve.set_defaults(func=_approve)


def _approve(args: argparse.Namespace) -> int:
    """An approval through the team server counts for production; a local one is a change record only."""
    if args.server:
        return _approve_on_server(args)
    from deploy_mcp.app import App
    from deploy_mcp.services.approvals import approve, describe_approval

    if not args.approved_by:
        raise UserError("--approved-by: give your name (or use --server URL, where your token names you)")
    if not sys.stdin.isatty():  # a courtesy to well-meaning agents, not a security boundary (see below)
        raise UserError(
            "approve must be run by a person in an interactive terminal; an agent may not approve its own changes"
        )
    app = App.load(args.config)
    approval = approve(
        app, args.change_id, args.service, args.environment, args.approved_by, args.expires_in, version=args.version
    )
    print(describe_approval(approval))
    if app.config.is_production(args.service, args.environment):
        print(
            "note: recorded as a change record only. It does not let a production change go ahead by itself: a "
            "program running as you could have run this command. The person confirms in their MCP client, or a "
            "releaser approves through the team server (`deploy-mcp approve ... --server URL`).",
            file=sys.stderr,
        )
    return 0


def _approve_on_server(args: argparse.Namespace) -> int:
    import httpx

    from deploy_mcp.server.http import require_private_transport, resolve_token

    if args.approved_by:
        raise UserError("--approved-by: not with --server; the server records the identity your token belongs to")
    token = resolve_token(args.token_file)
    if token is None:
        raise UserError("--server: needs your own bearer token: set $DEPLOY_MCP_TOKEN or pass --token-file FILE")
    require_private_transport(args.server, "--server")
    base = args.server.rstrip("/").removesuffix("/mcp")
    body: dict[str, object] = {
        "change_id": args.change_id,
        "service": args.service,
        "environment": args.environment,
        "expires_in": args.expires_in,
    }
    if args.version:
        body["version"] = args.version
    try:
        response = httpx.post(
            f"{base}/approvals", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )
    except httpx.HTTPError as exc:
        raise UserError(f"--server: cannot reach {base}: {exc}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code == 404:
        raise UserError(
            f"--server: {base} has no approvals endpoint: it serves one shared token, not identities; its "
            "operator gives it a token file with roles (`deploy-mcp token add NAME --role releaser`)"
        )
    if response.status_code != 200:
        detail = answer.get("error_description") or response.text[:300]
        raise UserError(f"the server refused the approval ({response.status_code}): {detail}")
    print(answer.get("approved", "approved"))
    return 0
