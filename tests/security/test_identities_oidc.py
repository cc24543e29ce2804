"""OIDC access tokens as identities, against a local issuer that publishes its keys (JWKS) over real HTTP.

The issuer here is a small HTTP server with a discovery document and an RSA key; tokens are signed with PyJWT as
an identity provider would sign them. The deploy-mcp server is started with --oidc-issuer and checks signature,
issuer, audience, expiry and role; anything else gets 401.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import free_port
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from shell_agent import agent_env, agent_shell, hello_project, production_records

pytestmark = pytest.mark.anyio


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Issuer:
    url: str
    key: rsa.RSAPrivateKey

    def token(self, audience: str, roles: Any, name: str = "carol", lifetime: int = 300, **extra: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": audience, "sub": f"user-{name}", "preferred_username": name}
        claims |= {"iat": now, "exp": now + lifetime, "roles": roles} | extra
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test-key"})


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    key = new_key()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    documents = {
        "/.well-known/openid-configuration": {"issuer": url, "jwks_uri": f"{url}/jwks.json"},
        "/jwks.json": {"keys": [public | {"kid": "test-key", "use": "sig", "alg": "RS256"}]},
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            document = documents.get(self.path)
            body = json.dumps(document).encode() if document else b"{}"
            self.send_response(200 if document else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Issuer(url, key)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Server:
    url: str
    project: Path


@pytest.fixture(scope="module")
def server(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("oidc")
    with hello_project(root / "server") as project:
        port = free_port()
        url = f"http://127.0.0.1:{port}/mcp"
        command = [sys.executable, "-m", "deploy_mcp", "serve", "--http", "--port", str(port)]
        command += ["--oidc-issuer", issuer.url, "--oidc-resource", url]
        process = subprocess.Popen(
            command,
            cwd=project,
            env=agent_env({"DEPLOY_MCP_CONFIG": str(project / "deploy.toml")}),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.1)
            yield Server(url, project)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


async def call(server: Server, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    transport = streamable_http_client(
        server.url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    )
    async with Client(transport) as client:
        return await client.call_tool(tool, arguments)


def test_the_server_says_which_issuer_to_ask(server: Server, issuer: Issuer) -> None:
    base = server.url.removesuffix("/mcp")
    metadata = httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    assert metadata["resource"] == server.url and metadata["authorization_servers"] == [issuer.url + "/"]
    refused = httpx.post(server.url, json={}, timeout=10)
    assert refused.status_code == 401
    assert "resource_metadata=" in refused.headers["www-authenticate"]


@pytest.mark.parametrize(
    "forge",
    ["another key", "another audience", "expired", "no role", "unknown role", "another issuer"],
)
def test_a_token_that_does_not_check_out_gets_401(server: Server, issuer: Issuer, forge: str) -> None:
    token = {
        "another key": lambda: Issuer(issuer.url, new_key()).token(server.url, "releaser"),
        "another audience": lambda: issuer.token("http://elsewhere.example/mcp", "releaser"),
        "expired": lambda: issuer.token(server.url, "releaser", lifetime=-60),
        "no role": lambda: issuer.token(server.url, None),
        "unknown role": lambda: issuer.token(server.url, ["admin"]),
        "another issuer": lambda: issuer.token(server.url, "releaser", iss="http://127.0.0.1:1"),
    }[forge]()
    response = httpx.post(server.url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401, forge


async def test_the_role_claim_decides_and_the_record_names_the_oidc_identity(server: Server, issuer: Issuer) -> None:
    deployer = issuer.token(server.url, ["viewer", "deployer"], name="dave")
    refused = await call(
        server, deployer, "deploy", {"service": "hello", "version": "1.0.0", "environment": "production"}
    )
    assert refused.is_error and "oidc:dave has the deployer role" in refused.content[0].text

    releaser = issuer.token(server.url, ["releaser"], name="carol")
    command = f"deploy-mcp approve CHG-5 --service hello --environment production --server {server.url}"
    approved = agent_shell(command, server.project, {"DEPLOY_MCP_TOKEN": releaser})
    assert approved.returncode == 0, approved.stderr
    assert "by oidc:carol" in approved.stdout
    as_deployer = agent_shell(command.replace("CHG-5", "CHG-6"), server.project, {"DEPLOY_MCP_TOKEN": deployer})
    assert as_deployer.returncode == 2 and "only a releaser approves" in as_deployer.stderr
    assert production_records(server.project) == []
