"""`deploy-mcp serve`: the MCP server, over stdio or streamable HTTP with its identities."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_mcp.errors import UserError

if TYPE_CHECKING:
    from deploy_mcp.server.auth import AnyOf


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME[:PORT]",
        help="a Host name clients use to reach the server (repeatable); needed with --host 0.0.0.0 or ::",
    )
    serve.add_argument(
        "--token-file",
        help="identities and roles: a token file written by `deploy-mcp token add` (default: "
        "$DEPLOY_MCP_TOKEN_FILE); a file holding one bearer token is the single shared token, as $DEPLOY_MCP_TOKEN",
    )
    serve.add_argument(
        "--insecure-no-auth", action="store_true", help="serve HTTP without a token (loopback addresses only)"
    )
    serve.add_argument("--oidc-issuer", metavar="URL", help="also accept OIDC access tokens (JWT) of this issuer")
    serve.add_argument(
        "--oidc-resource",
        metavar="URL",
        help="with --oidc-issuer: this server's MCP URL as clients use it; tokens must be issued for it (aud)",
    )
    serve.add_argument(
        "--oidc-role-claim", default="roles", help="the claim holding viewer, deployer or releaser (default roles)"
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App
    from deploy_mcp.server.app import build_server

    app = App.load(args.config)  # read on first use; an invalid deploy.toml is reported by every tool
    if not args.http:
        build_server(app, close_app=True).run("stdio")
        return 0
    from deploy_mcp.server.http import check_startup, resolve_token, serve_http

    verifier = _identities(args)
    token = None if verifier is not None else resolve_token(args.token_file)
    allowed_hosts = args.allowed_host or []
    check_startup(args.host, token, args.insecure_no_auth, allowed_hosts, identities=verifier is not None)
    how = "identities and roles" if verifier is not None else "one shared token"
    if verifier is not None and os.environ.get("DEPLOY_MCP_TOKEN"):
        print("deploy-mcp: DEPLOY_MCP_TOKEN is not accepted: callers are known by their own tokens", file=sys.stderr)
    print(f"deploy-mcp: serving MCP on http://{args.host}:{args.port}/mcp ({how})", file=sys.stderr)
    from deploy_mcp.core.runner.takeover import TakeoverWatch

    watch = TakeoverWatch(app).start()  # replicas on one team ledger carry on the deployments of one that died
    try:
        serve_http(build_server(app, close_app=True), args.host, args.port, token, allowed_hosts, verifier)
    finally:
        watch.stop()
    return 0


def _identities(args: argparse.Namespace) -> AnyOf | None:
    """Who may call, when the server knows its callers: the token file (--token-file, else $DEPLOY_MCP_TOKEN_FILE)
    and OIDC access tokens (--oidc-issuer). None: the single shared token, as before identities; that is also
    what a --token-file holding one bearer token rather than [[tokens]] means."""
    from deploy_mcp.server.auth import AnyOf, IdentityVerifier, OidcMetadata, TokenFileVerifier
    from deploy_mcp.server.identities import TOKEN_FILE_ENV, TokenFile

    verifiers: list[IdentityVerifier] = []
    path_text = args.token_file or os.environ.get(TOKEN_FILE_ENV, "").strip()
    if path_text:
        path = Path(path_text).expanduser()
        where = "--token-file" if args.token_file else f"${TOKEN_FILE_ENV}"
        if not path.is_file():
            raise UserError(f"{where}: {path} does not exist; create it with `deploy-mcp token add NAME --role ROLE`")
        if TokenFile.is_token_file(path):
            verifiers.append(TokenFileVerifier(TokenFile(path)))
        elif not args.token_file:
            raise UserError(f"{where}: {path} has no [[tokens]]; write it with `deploy-mcp token add NAME --role ROLE`")
    if bool(args.oidc_issuer) != bool(args.oidc_resource):
        raise UserError("--oidc-issuer and --oidc-resource go together: the issuer, and this server's MCP URL")
    metadata = None
    if args.oidc_issuer:
        from deploy_mcp.server.oidc import OidcSettings, OidcVerifier, check_issuer

        check_issuer(args.oidc_issuer)
        settings = OidcSettings(args.oidc_issuer.rstrip("/"), args.oidc_resource, args.oidc_role_claim)
        verifiers.append(OidcVerifier(settings))
        metadata = OidcMetadata(settings.resource, settings.issuer)
    return AnyOf(verifiers, metadata) if verifiers else None
