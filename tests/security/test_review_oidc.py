"""Review of issue 12's OIDC tokens: the classic JWT forgeries, against a real issuer and a real server.

Each gets 401: a token that names no algorithm (alg none), one signed with HS256 using the issuer's *public* key as
the HMAC secret (the key-confusion attack), one whose key id is not in the issuer's JWKS, one with no key id, and
one whose claims were edited after signing (a deployer raising itself to releaser). And garbage JWTs sent while
the issuer does not answer no longer freeze the server for everyone.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import jwt
import pytest
from conftest import free_port
from cryptography.hazmat.primitives import serialization
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from shell_agent import agent_env, agent_shell, hello_project
from test_identities_http import add_token
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


@pytest.fixture
def silent_issuer() -> Iterator[str]:
    """An issuer that accepts connections and never answers, as one that is down behind a load balancer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


@pytest.mark.anyio
async def test_garbage_bearer_tokens_while_the_issuer_is_down_do_not_freeze_the_server(
    silent_issuer: str, tmp_path: Path
) -> None:
    """Sixty requests with a JWT-shaped token, no credential needed, each made the server ask the silent issuer
    (10 s), one after another, on the worker threads the tools run on: for ten minutes nobody's tool call, a
    token-file user's included, was answered. OIDC verification now has threads of its own, and a failed
    discovery is not retried for a while."""
    token_file = tmp_path / "tokens.toml"
    token = add_token(token_file, "alice", "releaser")
    with hello_project(tmp_path / "server") as project:
        port = free_port()
        url = f"http://127.0.0.1:{port}/mcp"
        command = [sys.executable, "-m", "deploy_mcp", "serve", "--http", "--port", str(port)]
        command += ["--token-file", str(token_file), "--oidc-issuer", silent_issuer, "--oidc-resource", url]
        env = agent_env({"DEPLOY_MCP_CONFIG": str(project / "deploy.toml")})
        with open(tmp_path / "server.log", "w") as log:
            process = subprocess.Popen(command, cwd=project, env=env, stderr=log)
        try:
            wait_for_health(port, process)
            garbage = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJ4In0.c2ln"
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as attacker:

                async def one() -> None:
                    with contextlib.suppress(httpx.HTTPError):
                        await attacker.post(url, json={}, headers={"Authorization": f"Bearer {garbage}"}, timeout=120)

                async with anyio.create_task_group() as attack:
                    for _ in range(60):
                        attack.start_soon(one)
                    await anyio.sleep(2)  # every one of them is in the server now
                    transport = streamable_http_client(
                        url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
                    )
                    with anyio.fail_after(60):  # a generous bound on a loaded machine; it was ten minutes
                        async with Client(transport) as client:
                            planned = await client.call_tool(
                                "plan_deployment", {"service": "hello", "version": "1.0.0", "environment": "staging"}
                            )
                    assert not planned.is_error, planned.content[0].text
                    attack.cancel_scope.cancel()
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for_health(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "the server exited"
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


def test_an_unverified_email_does_not_name_the_caller(server: Server, issuer: Issuer) -> None:
    """Without preferred_username the name came from ``email``, which many issuers let a user set to anything:
    a releaser typing a colleague's address was recorded as that colleague. Only a verified email names anyone."""
    command = f"deploy-mcp approve CHG-E{{n}} --service hello --environment production --server {server.url}"
    typed = issuer.token(server.url, "releaser", name="x", preferred_username=None, email="alice@example.com")
    approved = agent_shell(command.format(n=1), server.project, {"DEPLOY_MCP_TOKEN": typed})
    assert approved.returncode == 0, approved.stderr
    assert "by oidc:user-x" in approved.stdout and "alice@example.com" not in approved.stdout
    verified = issuer.token(
        server.url, "releaser", name="y", preferred_username=None, email="bob@example.com", email_verified=True
    )
    approved = agent_shell(command.format(n=2), server.project, {"DEPLOY_MCP_TOKEN": verified})
    assert approved.returncode == 0, approved.stderr
    assert "by oidc:bob@example.com" in approved.stdout
