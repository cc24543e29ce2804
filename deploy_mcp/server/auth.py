"""Identities on the HTTP server: bearer tokens verified into who is calling, and the approvals endpoint.

Verification follows the MCP SDK's auth model: a `TokenVerifier` turns a bearer token into an `AccessToken`, and
the request's scope carries an `AuthenticatedUser`, so the SDK binds each MCP session to the identity that opened
it (another token cannot use the session) and the tools read the caller from the request. The verifiers here are
the token file (`identities.TokenFile`) and, optionally, OIDC access tokens checked against the issuer's JWKS
(`oidc.OidcVerifier`).

``POST /approvals`` is how a releaser approves a change: `deploy-mcp approve --server URL` sends it with the
releaser's own token. It is not an MCP tool, so an agent's tool list never offers it, and it records the approval
under the releaser's identity, which no argument can name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials

from deploy_mcp.errors import UserError
from deploy_mcp.server.http import HEALTH_PATH, ASGIApp, Scope, _healthy
from deploy_mcp.server.identities import Identity, Role, TokenFile, identity_from_claims

APPROVALS_PATH = "/approvals"
MAX_APPROVAL_BODY = 16 * 1024


class IdentityVerifier(Protocol):
    """The SDK's TokenVerifier protocol; ours always put an identity in the AccessToken's claims."""

    async def verify_token(self, token: str) -> AccessToken | None: ...


class TokenFileVerifier:
    """Tokens of the token file."""

    def __init__(self, tokens: TokenFile) -> None:
        self.tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        identity = self.tokens.verify(token)
        return access_token(token, identity) if identity else None


class AnyOf:
    """The first verifier that knows the token wins (the token file, then OIDC). ``metadata``: what the server
    publishes for OIDC clients, when OIDC is on."""

    def __init__(self, verifiers: Sequence[IdentityVerifier], metadata: OidcMetadata | None = None) -> None:
        self.verifiers = tuple(verifiers)
        self.metadata = metadata

    def still_releaser(self, label: str) -> bool:
        """Whether the identity ``label`` may still approve: a token identity whose entry is gone or no longer a
        releaser may not. OIDC identities cannot be asked offline; their approvals hold until they expire."""
        source, _, name = label.partition(":")
        if source != "token":
            return True
        files = [verifier.tokens for verifier in self.verifiers if isinstance(verifier, TokenFileVerifier)]
        return any(tokens.role_of(name) is Role.RELEASER for tokens in files)

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self.verifiers:
            found = await verifier.verify_token(token)
            if found is not None:
                return found
        return None


def access_token(token: str, identity: Identity, expires_at: int | None = None) -> AccessToken:
    return AccessToken(
        token=token,
        client_id=identity.label,
        subject=identity.name,
        scopes=[identity.role.value],
        expires_at=expires_at,
        claims=identity.claims(),
    )


WELL_KNOWN = "/.well-known/oauth-protected-resource"


class OidcMetadata:
    """RFC 9728 protected resource metadata for OIDC clients, served with the SDK's own routes: it tells a client
    which authorization server issues tokens for this server, and the 401 challenge points to it."""

    def __init__(self, resource: str, issuer: str) -> None:
        from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
        from pydantic import AnyHttpUrl
        from starlette.routing import Router

        resource_url, issuer_url = AnyHttpUrl(resource), AnyHttpUrl(issuer)
        routes = create_protected_resource_routes(resource_url, [issuer_url], resource_name="deploy-mcp")
        self.router = Router(routes=routes)
        metadata_url = build_resource_metadata_url(resource_url)
        self.challenge = f'Bearer realm="deploy-mcp", resource_metadata="{metadata_url}"'


class IdentityAuth:
    """Pure ASGI middleware: every request but ``GET /health`` must carry a bearer token a verifier accepts."""

    def __init__(
        self, app: ASGIApp, verifier: IdentityVerifier, project: Any, oidc: OidcMetadata | None = None
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.project = project  # the App approvals are recorded in
        self.oidc = oidc

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "GET" and scope.get("path") == HEALTH_PATH:
            await _healthy(send)
            return
        if self.oidc is not None and str(scope.get("path", "")).startswith(WELL_KNOWN):
            await self.oidc.router(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = given.partition(" ")
        access = await self.verifier.verify_token(token.strip()) if scheme.lower() == "bearer" and token else None
        identity = identity_from_claims(access.claims) if access else None
        if access is None or identity is None:
            challenge = self.oidc.challenge if self.oidc is not None else None
            payload = {"error": "unauthorized", "error_description": "send Authorization: Bearer TOKEN"}
            await _json(send, 401, payload, challenge=challenge)
            return
        scope["user"] = AuthenticatedUser(access)
        scope["auth"] = AuthCredentials(access.scopes)
        if scope.get("path") == APPROVALS_PATH:
            await self._approve(identity, scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _approve(self, identity: Identity, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("method") != "POST":
            await _json(send, 405, {"error": "method_not_allowed", "error_description": "POST an approval"})
            return
        if identity.role is not Role.RELEASER:
            await _json(
                send,
                403,
                {
                    "error": "forbidden",
                    "error_description": f"{identity.label} has the {identity.role} role; only a releaser approves "
                    "changes",
                },
            )
            return
        body = await _body(receive)
        try:
            request = json.loads(body) if body is not None else None
            if not isinstance(request, dict):
                raise ValueError
        except ValueError:
            await _json(send, 400, {"error": "invalid_request", "error_description": _APPROVAL_SHAPE})
            return
        try:
            text = await anyio.to_thread.run_sync(lambda: record_approval(self.project, identity, request))
        except UserError as exc:
            await _json(send, 400, {"error": "invalid_request", "error_description": str(exc)})
            return
        await _json(send, 200, {"approved": text, "approved_by": identity.label})


_APPROVAL_SHAPE = (
    "the body is a JSON object: change_id, service, environment, and optionally version and expires_in (seconds)"
)


def record_approval(project: Any, identity: Identity, request: dict[str, Any]) -> str:
    """Record the approval of ``request`` under ``identity`` (a releaser); the line to show the person."""
    from deploy_mcp.tools.approvals import approve, describe_approval

    allowed = {"change_id", "service", "environment", "version", "expires_in"}
    unknown = sorted(set(request) - allowed)
    if unknown:
        raise UserError(f"unknown field {', '.join(unknown)}: {_APPROVAL_SHAPE}; the approver is who sent the token")
    for name in ("change_id", "service", "environment"):
        if not isinstance(request.get(name), str):
            raise UserError(f"{name}: required text; {_APPROVAL_SHAPE}")
    expires_in = request.get("expires_in", 24 * 3600)
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        raise UserError(f"expires_in: seconds as a number (got {expires_in!r})")
    version = request.get("version")
    if version is not None and not isinstance(version, str):
        raise UserError(f"version: text such as 2.1.0 (got {version!r})")
    approval = approve(
        project,
        request["change_id"],
        request["service"],
        request["environment"],
        identity.label,
        expires_in,
        version=version,
        authenticated=True,
    )
    return describe_approval(approval)


async def _body(receive: Any) -> bytes | None:
    """The request body, or None when it is larger than an approval can be."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_APPROVAL_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _json(send: Any, status: int, payload: dict[str, Any], *, challenge: str | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", (challenge or 'Bearer realm="deploy-mcp"').encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
