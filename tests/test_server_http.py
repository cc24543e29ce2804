"""Streamable HTTP: a bearer token is required, Host and Origin are checked, and a refused request changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

pytestmark = pytest.mark.anyio
TOKEN = "test-token-0123456789abcdef"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _spawn(project: Path, *extra: str, token: str | None = TOKEN, port: int | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DEPLOY_MCP_TOKEN"}
    env["DEPLOY_MCP_CONFIG"] = str(project / "deploy.toml")
    if token is not None:
        env["DEPLOY_MCP_TOKEN"] = token
    args = [sys.executable, "-m", "deploy_mcp", "serve", "--http", *extra]
    if port is not None:
        args += ["--port", str(port)]
    return subprocess.Popen(args, env=env, cwd=project, stderr=subprocess.PIPE, text=True)


def _wait_listening(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not start listening")


@pytest.fixture
def http_server(project_dir: Path) -> Iterator[str]:
    port = free_port()
    proc = _spawn(project_dir, port=port)
    try:
        _wait_listening(proc, port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_client_with_token_works_on_both_protocols(http_server: str, protocol: str) -> None:
    transport = streamable_http_client(
        http_server, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    )
    async with Client(transport, mode=protocol) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        plan = await client.call_tool("plan_deployment", {"service": "web", "version": "2", "environment": "staging"})
    assert "plan_deployment" in tools
    assert plan.structured_content["strategy"] == "rolling"


def test_requests_without_or_with_a_wrong_token_get_401(http_server: str, project_dir: Path) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        response = httpx.post(http_server, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=5)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert not (project_dir / ".deploy").exists(), "a refused request must change nothing"


async def test_client_without_token_cannot_connect(http_server: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any failure will do; success would be the bug
        async with Client(http_server, mode="legacy") as client:
            await client.list_tools()


def test_foreign_host_and_origin_are_refused(http_server: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    evil_host = httpx.post(
        http_server, json=INITIALIZE, headers={**MCP_HEADERS, **auth, "host": "evil.example:80"}, timeout=5
    )
    evil_origin = httpx.post(
        http_server, json=INITIALIZE, headers={**MCP_HEADERS, **auth, "origin": "http://evil.example"}, timeout=5
    )
    good = httpx.post(http_server, json=INITIALIZE, headers={**MCP_HEADERS, **auth}, timeout=5)
    assert evil_host.status_code == 421
    assert evil_origin.status_code == 403
    assert good.status_code == 200


def test_refuses_to_start_without_a_token(project_dir: Path) -> None:
    proc = _spawn(project_dir, token=None, port=free_port())
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "DEPLOY_MCP_TOKEN" in err and "Traceback" not in err


def test_insecure_no_auth_only_on_loopback(project_dir: Path) -> None:
    proc = _spawn(project_dir, "--insecure-no-auth", "--host", "0.0.0.0", token=None, port=free_port())
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "loopback" in err


def test_insecure_no_auth_on_loopback_serves(project_dir: Path) -> None:
    port = free_port()
    proc = _spawn(project_dir, "--insecure-no-auth", token=None, port=port)
    try:
        _wait_listening(proc, port)
        response = httpx.post(f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers=MCP_HEADERS, timeout=5)
        assert response.status_code == 200
    finally:
        proc.kill()
        proc.wait()


def test_short_token_is_refused(project_dir: Path) -> None:
    proc = _spawn(project_dir, token="short", port=free_port())
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "too short" in err


def test_health_answers_without_the_token_and_says_nothing_else(http_server: str, project_dir: Path) -> None:
    base = http_server.removesuffix("/mcp")
    health = httpx.get(f"{base}/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert set(health.json()) == {"status", "version"}
    assert httpx.post(f"{base}/health", timeout=5).status_code == 401
    assert httpx.get(f"{base}/other", timeout=5).status_code == 401


def test_wildcard_bind_is_refused_without_allowed_host(project_dir: Path) -> None:
    proc = _spawn(project_dir, "--host", "0.0.0.0", port=free_port())
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "--allowed-host NAME[:PORT]" in err and "0.0.0.0" in err and "Traceback" not in err


def test_allowed_host_that_is_not_a_host_name_is_refused(project_dir: Path) -> None:
    proc = _spawn(project_dir, "--allowed-host", "https://deploy.example/mcp", port=free_port())
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "--allowed-host" in err and "NAME:PORT" in err and "Traceback" not in err


def test_wildcard_bind_serves_the_allowed_host_and_refuses_others(project_dir: Path) -> None:
    """Binds every interface for a moment, token required; requests go to 127.0.0.1 only."""
    port = free_port()
    proc = _spawn(project_dir, "--host", "0.0.0.0", "--allowed-host", "127.0.0.1", port=port)
    try:
        _wait_listening(proc, port)
        url = f"http://127.0.0.1:{port}/mcp"
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
        allowed = httpx.post(url, json=INITIALIZE, headers={**headers, "host": f"127.0.0.1:{port}"}, timeout=5)
        other = httpx.post(url, json=INITIALIZE, headers={**headers, "host": f"other.example:{port}"}, timeout=5)
        assert allowed.status_code == 200, allowed.text
        assert other.status_code == 421
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
