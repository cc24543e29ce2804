"""Serving MCP over streamable HTTP, safely by default.

A deployment server reachable over HTTP is a remote control for production, so it refuses to start without a
bearer token unless the operator says `--insecure-no-auth` on a loopback address. Host and Origin headers are
checked against the bound address and the names given with `--allowed-host`, so that a web page cannot reach a
local server through DNS rebinding. A wildcard bind (0.0.0.0, ::) has no name of its own to check against, so it
refuses to start without `--allowed-host`: otherwise it would start and then reject every request.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
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


def require_private_transport(url: str, option: str) -> None:
    """A bearer token goes to ``url`` only over https, or plain http on this machine: a releaser's token sent in
    clear over a network is a production credential for whoever listens on the way."""
    from urllib.parse import urlsplit

    from deploy_mcp.errors import UserError

    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return
    raise UserError(
        f"{option}: {url!r}: give the server's https URL (plain http only on a loopback address, such as "
        "http://127.0.0.1:8765); your token would cross the network in clear. Put TLS in front of the server."
    )


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


def is_wildcard(host: str) -> bool:
    """0.0.0.0 or ::, which listen on every address and so name none that a client would send as Host."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9_.-]*[a-z0-9])?", re.IGNORECASE)


def normalize_allowed_host(value: str) -> tuple[str, str | None]:
    """``NAME[:PORT]`` as (name, port), with an IPv6 address in brackets as a Host header carries it."""
    text = value.strip().lower()
    name, port = text, None
    if not text or "/" in text or "*" in text:
        address_ok = False
    elif text.startswith("["):
        name, _, rest = text.partition("]")
        name += "]"
        if rest:
            port = rest.removeprefix(":") if rest.startswith(":") else "!"
        address_ok = _is_ip(name.strip("[]"))
    elif text.count(":") > 1:
        raise UserError(f"--allowed-host: {value!r}: write an IPv6 address in brackets, e.g. [{text}]")
    else:
        name, _, port_text = text.partition(":")
        port = port_text if ":" in text else None
        address_ok = _HOST_NAME.fullmatch(name) is not None
    if not address_ok:
        raise UserError(
            f"--allowed-host: {value!r} is not a host name; give NAME or NAME:PORT as clients write it in the URL, "
            "e.g. deploy.internal or deploy.internal:8765 (no scheme, path or wildcard)"
        )
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise UserError(f"--allowed-host: {value!r} has an invalid port; the port must be a number from 1 to 65535")
    return name, port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_startup(
    host: str, token: str | None, insecure_no_auth: bool, allowed_hosts: Sequence[str] = (), *, identities: bool = False
) -> None:
    """``identities``: a token file (or OIDC) authenticates callers, so no shared token is needed."""
    if identities:
        token, insecure_no_auth = token or "identities", False
    if token is not None and len(token) < 16 and not identities:
        raise UserError("the bearer token is too short: use at least 16 random characters (openssl rand -hex 32)")
    if token is None and not insecure_no_auth:
        raise UserError(
            f"serving HTTP needs a bearer token: set {TOKEN_ENV} or pass --token-file FILE "
            "(generate one with `openssl rand -hex 32`); for a throwaway local test only, "
            "--insecure-no-auth is allowed on 127.0.0.1"
        )
    if token is None and not is_loopback(host):
        raise UserError(f"--insecure-no-auth is only allowed on a loopback address, not {host}; set {TOKEN_ENV}")
    for value in allowed_hosts:
        normalize_allowed_host(value)
    if is_wildcard(host) and not allowed_hosts:
        raise UserError(
            f"--host {host} listens on every address, so the Host header of each request can only be checked "
            "against names you give: add --allowed-host NAME[:PORT] for each name or address clients put in the "
            "URL (e.g. --allowed-host deploy.internal:8765; repeat it for more); without it every request would "
            "be refused with 421"
        )


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


def http_app(
    server: Any,
    host: str,
    token: str | None,
    allowed_hosts: Sequence[str] = (),
    port: int | None = None,
    verifier: Any = None,
) -> ASGIApp:
    """The streamable HTTP app with DNS-rebinding protection and, when a token is set, bearer auth.

    The bound address (unless it is a wildcard) and, on loopback, the usual loopback names are allowed with the
    server's port (``port``; any numeric port when it is not known); an ``--allowed-host`` NAME is allowed with
    or without a port, and NAME:PORT with that port only. Matching is exact and case-insensitive (see hosts.py).
    Idle sessions expire and their number is capped (see http_limits.py).
    """
    from mcp.server.transport_security import TransportSecuritySettings

    from deploy_mcp.server.hosts import HostCheck
    from deploy_mcp.server.hosts import allowed_hosts as allowed
    from deploy_mcp.server.http_limits import limits_from_env

    bound = f"[{host}]" if ":" in host and not host.startswith("[") else host
    names = set() if is_wildcard(host) else {bound}
    if is_loopback(host):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    limits = limits_from_env()
    hosts = allowed(names, port or None, [normalize_allowed_host(value) for value in allowed_hosts])
    # HostCheck does the SDK's DNS-rebinding check exactly; the SDK's own still checks POST content types
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = server.streamable_http_app(
        transport_security=security,
        host=host,
        session_idle_timeout=limits.session_idle_timeout,
        max_sessions=limits.max_sessions,
    )
    guarded = HostCheck(app, hosts)
    if verifier is not None:  # identities and roles (server/auth.py) instead of one shared token
        from deploy_mcp.server.auth import IdentityAuth

        server.identity_verifier = verifier  # the consent gate asks it whether an approver is still a releaser
        return IdentityAuth(guarded, verifier, server.app, verifier.metadata)
    return BearerAuth(guarded, token)


def serve_http(
    server: Any, host: str, port: int, token: str | None, allowed_hosts: Sequence[str] = (), verifier: Any = None
) -> None:
    import uvicorn

    from deploy_mcp.server.http_limits import header_timeout_protocol, limits_from_env

    uvicorn.run(
        http_app(server, host, token, allowed_hosts, port=port, verifier=verifier),
        host=host,
        port=port,
        log_level="warning",
        http=header_timeout_protocol(limits_from_env().header_timeout),
    )
