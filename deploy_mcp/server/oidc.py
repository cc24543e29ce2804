"""OIDC / OAuth 2.1 access tokens as identities: a JWT verified against the issuer's published keys (JWKS).

As the MCP authorization spec has it, this server is a resource server: it does not issue tokens, it checks them.
The issuer's discovery document names its JWKS; PyJWT fetches and caches the keys and checks the signature, the
issuer, the audience (this server's resource URL, RFC 8707) and the expiry. The role comes from a claim the issuer
sets (``roles`` by default: a string or a list; the highest of viewer < deployer < releaser wins), the name from
``preferred_username``, else ``email``, else ``sub``. A token without a known role is refused: no role, no access.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import jwt
from mcp.server.auth.provider import AccessToken

from deploy_mcp.errors import UserError
from deploy_mcp.server.auth import access_token
from deploy_mcp.server.identities import Identity, Role

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
_RANK = {Role.VIEWER: 0, Role.DEPLOYER: 1, Role.RELEASER: 2}
NAME_CLAIMS = ("preferred_username", "email", "sub")
VERIFY_THREADS = 4
"""Threads that may verify OIDC tokens at once; the tools' own worker threads are never spent on it."""
DISCOVERY_RETRY_SECONDS = 30.0
"""After the issuer's discovery document could not be read, how long tokens are refused without asking again."""


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    resource: str  # this server's MCP URL as clients use it; the audience tokens must be issued for
    role_claim: str = "roles"


class OidcVerifier:
    """The SDK's TokenVerifier for JWT access tokens of one issuer."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._retry_at = 0.0  # after a failed discovery, when to ask the issuer again
        self._limiter: anyio.CapacityLimiter | None = None

    def _keys(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._jwks is None:
                discovery = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
                if time.monotonic() < self._retry_at:
                    raise UserError(f"--oidc-issuer: {discovery} did not answer; asking again shortly")
                try:
                    document = httpx.get(discovery, timeout=10.0).raise_for_status().json()
                    jwks_uri = document["jwks_uri"]
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    self._retry_at = time.monotonic() + DISCOVERY_RETRY_SECONDS
                    raise UserError(f"--oidc-issuer: cannot read {discovery}: {exc}") from None
                self._jwks = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=300, timeout=10)
            return self._jwks

    def identity(self, token: str) -> tuple[Identity, int | None] | None:
        """The identity a valid token carries, with its expiry; None for anything else (not a JWT, another
        issuer or audience, expired, a bad signature, no known role)."""
        try:
            jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None  # not a JWT: e.g. a token of the token file, or garbage
        try:
            key = self._keys().get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.settings.resource,
                issuer=self.settings.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, UserError):
            return None
        role = highest_role(claims.get(self.settings.role_claim))
        name = identity_name(claims)
        if role is None or name is None:
            return None
        expires = claims.get("exp")
        return Identity(name=name, role=role, source="oidc"), int(expires) if isinstance(expires, int) else None

    async def verify_token(self, token: str) -> AccessToken | None:
        # Verifying may wait on the issuer (discovery, JWKS) for up to its timeout. On threads of its own, so that
        # requests with JWT-shaped garbage while the issuer is slow or down (anyone can send them, no token needed)
        # queue here instead of taking every worker thread the tools run on.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(VERIFY_THREADS)
        found = await anyio.to_thread.run_sync(lambda: self.identity(token), limiter=self._limiter)
        if found is None:
            return None
        identity, expires_at = found
        return access_token(token, identity, expires_at)


def identity_name(claims: dict[str, Any]) -> str | None:
    """The name records give the caller. An ``email`` counts only when the issuer verified it
    (``email_verified``): many issuers let a user type any address, and the name is what records and the
    self-approval check compare."""
    for claim in NAME_CLAIMS:
        value = claims.get(claim)
        if claim == "email" and claims.get("email_verified") is not True:
            continue
        if isinstance(value, str) and value:
            return value
    return None


def check_issuer(issuer: str) -> None:
    """An issuer is reached over https, so its keys cannot be swapped on the way; plain http only on loopback."""
    from urllib.parse import urlsplit

    from deploy_mcp.server.http import is_loopback

    parts = urlsplit(issuer)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return
    raise UserError(f"--oidc-issuer: {issuer!r}: give the issuer's https URL (plain http only on a loopback address)")


def highest_role(value: Any) -> Role | None:
    """The highest known role in a claim that is one role name or a list of them; None when none is known."""
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    roles = [Role(name) for name in names if isinstance(name, str) and name in tuple(Role)]
    return max(roles, key=_RANK.__getitem__, default=None)
