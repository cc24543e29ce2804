"""Serving MCP over streamable HTTP, safely by default.

A deployment server reachable over HTTP is a remote control for production, so it refuses to start without a
bearer token unless the operator says `--insecure-no-auth` on a loopback address. Host and Origin headers are
checked against the bound address so that a web page cannot reach a local server through DNS rebinding.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from deploy_mcp.errors import UserError

TOKEN_ENV = "DEPLOY_MCP_TOKEN"
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(token_file: str | None) -> str | None:
    """The bearer token from --token-file, else from $DEPLOY_MCP_TOKEN."""
    if token_file:
        path = Path(token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(f"--token-file: cannot read {path}: {exc.strerror}") from None
        if not token:
            raise UserError(f"--token-file: {path} is empty; put the bearer token in it")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def check_startup(host: str, token: str | None, insecure_no_auth: bool) -> None:
    if token is not None and len(token) < 16:
        raise UserError("the bearer token is too short: use at least 16 random characters (openssl rand -hex 32)")
    if token is None and not insecure_no_auth:
        raise UserError(
            f"serving HTTP needs a bearer token: set {TOKEN_ENV} or pass --token-file FILE "
            "(generate one with `openssl rand -hex 32`); for a throwaway local test only, "
            "--insecure-no-auth is allowed on 127.0.0.1"
        )
    if token is None and not is_loopback(host):
        raise UserError(f"--insecure-no-auth is only allowed on a loopback address, not {host}; set {TOKEN_ENV}")


HEALTH_PATH = "/health"


class BearerAuth:
    """Pure ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`.

    The one exception is `GET /health`, which says only that the server is up and its version, so load balancers
    and deploy-mcp's own rollouts can probe it without holding the token.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "GET" and scope.get("path") == HEALTH_PATH:
            await _healthy(send)
            return
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if self.expected is not None and not hmac.compare_digest(given, self.expected):
                await _unauthorized(send)
                return
        await self.app(scope, receive, send)


async def _healthy(send: Any) -> None:
    from deploy_mcp import __version__

    body = f'{{"status":"ok","version":"{__version__}"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _unauthorized(send: Any) -> None:
    body = b'{"error":"unauthorized","error_description":"send Authorization: Bearer <DEPLOY_MCP_TOKEN>"}'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="deploy-mcp"'),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def http_app(server: Any, host: str, token: str | None) -> ASGIApp:
    """The streamable HTTP app with DNS-rebinding protection and, when a token is set, bearer auth."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = {host, "127.0.0.1", "localhost", "[::1]"} if is_loopback(host) else {host}
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{h}:*" for h in sorted(hosts)],
        allowed_origins=[f"{scheme}://{h}:*" for h in sorted(hosts) for scheme in ("http", "https")],
    )
    app = server.streamable_http_app(transport_security=security, host=host)
    return BearerAuth(app, token)


def serve_http(server: Any, host: str, port: int, token: str | None) -> None:
    import uvicorn

    uvicorn.run(http_app(server, host, token), host=host, port=port, log_level="warning")
