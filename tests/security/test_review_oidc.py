"""Review of issue 12's OIDC tokens: the classic JWT forgeries, against a real issuer and a real server.

Each gets 401: a token that names no algorithm (alg none), one signed with HS256 using the issuer's *public* key as
the HMAC secret (the key-confusion attack), one whose key id is not in the issuer's JWKS, one with no key id, and
one whose claims were edited after signing (a deployer raising itself to releaser).
"""

from __future__ import annotations

import base64
import json

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from test_identities_oidc import Issuer, Server, issuer, new_key, server

__all__ = ["issuer", "server"]  # the fixtures, imported so pytest finds them


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forge(issuer: Issuer, audience: str, how: str) -> str:
    honest = issuer.token(audience, "deployer", name="mallory")
    header, _payload, signature = honest.split(".")
    claims = jwt.decode(honest, options={"verify_signature": False})
    if how == "alg none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'test-key'})}.{_b64(claims | {'roles': 'releaser'})}."
    if how == "HS256 with the public key":
        public = issuer.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _hs256(claims | {"roles": "releaser"}, public)
    if how == "unknown key id":
        return jwt.encode(claims | {"roles": "releaser"}, new_key(), algorithm="RS256", headers={"kid": "other"})
    if how == "no key id":
        return jwt.encode(claims | {"roles": "releaser"}, new_key(), algorithm="RS256")
    if how == "claims edited after signing":
        return f"{header}.{_b64(claims | {'roles': 'releaser'})}.{signature}"
    raise AssertionError(how)


def _hs256(claims: dict[str, object], secret: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret, an attacker's code does not."""
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'test-key'})}.{_b64(claims)}"
    digest = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    "how", ["alg none", "HS256 with the public key", "unknown key id", "no key id", "claims edited after signing"]
)
def test_a_forged_oidc_token_gets_401(server: Server, issuer: Issuer, how: str) -> None:
    honest = issuer.token(server.url, "deployer", name="mallory")
    assert httpx.post(server.url, json={}, headers={"Authorization": f"Bearer {honest}"}, timeout=10).status_code != 401
    token = forge(issuer, server.url, how)
    response = httpx.post(server.url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401, how
    approval = httpx.post(
        server.url.removesuffix("/mcp") + "/approvals",
        json={"change_id": "CHG-F", "service": "hello", "environment": "production"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert approval.status_code == 401, how
