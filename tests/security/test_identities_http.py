"""Issue 12's identities and issue 9's strong consent path, on a real HTTP server with a token file.

The agent holds a deployer token and a shell on the same machine as the server (the worst case: it can even run
`deploy-mcp approve` in the server's own project folder). It cannot approve through the server, cannot get
production started on its own, and no approval it can write counts. A releaser's approval through the server lets
the deployer's production change start, and the record names both identities. A releaser's own approval does
not count for their own call.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from conftest import free_port
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from shell_agent import agent_env, agent_shell, hello_project, production_records, require_script

from deploy_mcp.app import App
from deploy_mcp.core.records import Status

pytestmark = pytest.mark.anyio
PRODUCTION = {"service": "hello", "version": "1.0.0", "environment": "production", "wait_seconds": 0}


@dataclass
class TeamServer:
    url: str
    project: Path
    tokens: dict[str, str]  # name -> token
    token_file: Path


def add_token(token_file: Path, name: str, role: str) -> str:
    added = subprocess.run(
        [sys.executable, "-m", "deploy_mcp", "token", "add", name, "--role", role, "--token-file", str(token_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env=agent_env(),
    )
    assert added.returncode == 0, added.stderr
    return added.stdout.strip()


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    root = tmp_path_factory.mktemp("team")
    token_file = root / "secrets" / "tokens.toml"
    tokens = {
        "alice": add_token(token_file, "alice", "releaser"),
        "bob": add_token(token_file, "bob", "releaser"),
        "erin": add_token(token_file, "erin", "releaser"),
        "ci-agent": add_token(token_file, "ci-agent", "deployer"),
        "auditor": add_token(token_file, "auditor", "viewer"),
    }
    with hello_project(root / "server") as project:
        port = free_port()
        env = agent_env({"DEPLOY_MCP_CONFIG": str(project / "deploy.toml"), "DEPLOY_MCP_TOKEN_FILE": str(token_file)})
        server = subprocess.Popen(
            [sys.executable, "-m", "deploy_mcp", "serve", "--http", "--port", str(port)],
            cwd=project,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.1)
            yield TeamServer(f"http://127.0.0.1:{port}/mcp", project, tokens, token_file)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()


class Person:
    """Answers the question the server asks through the client: the agent itself, when it drives the client."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    async def __call__(self, context: Any, params: Any) -> Any:
        import mcp_types as types

        self.questions.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})


async def call(
    team: TeamServer,
    who: str,
    tool: str,
    arguments: dict[str, Any],
    person: Person | None = None,
    protocol: str = "legacy",
) -> Any:
    headers = {"Authorization": f"Bearer {team.tokens[who]}"}
    transport = streamable_http_client(team.url, http_client=create_mcp_http_client(headers=headers))
    options = {"elicitation_callback": person} if person is not None else {}
    async with Client(transport, mode=protocol, **options) as client:
        return await client.call_tool(tool, arguments)


def text(result: Any) -> str:
    return result.content[0].text


def approve_on_server(team: TeamServer, who: str, change: str, **extra: str) -> subprocess.CompletedProcess[str]:
    command = f"deploy-mcp approve {change} --service hello --environment production --server {team.url}"
    return agent_shell(command, team.project, {"DEPLOY_MCP_TOKEN": team.tokens[who], **extra})


@pytest.fixture
async def ledger(team: TeamServer) -> AsyncIterator[App]:
    app = App.load(team.project / "deploy.toml")
    try:
        yield app
    finally:
        app.close()


def test_a_token_is_shown_once_and_the_file_keeps_only_its_hash(team: TeamServer) -> None:
    content = team.token_file.read_text(encoding="utf-8")
    assert all(token not in content for token in team.tokens.values())
    assert 'name = "alice"' in content and 'role = "releaser"' in content and "sha256 = " in content
    assert stat.S_IMODE(team.token_file.stat().st_mode) == 0o600
    again = subprocess.run(
        [sys.executable, "-m", "deploy_mcp", "token", "add", "alice", "--role", "viewer"],
        capture_output=True,
        text=True,
        env=agent_env({"DEPLOY_MCP_TOKEN_FILE": str(team.token_file)}),
        timeout=60,
    )
    assert again.returncode == 2 and "already has a token for 'alice'" in again.stderr


def test_an_unknown_token_gets_401(team: TeamServer) -> None:
    for header in ({}, {"Authorization": "Bearer dmcp_not-a-token"}, {"Authorization": f"Basic {team.tokens['bob']}"}):
        response = httpx.post(team.url, headers=header, json={}, timeout=10)
        assert response.status_code == 401, header
    assert httpx.get(team.url.removesuffix("/mcp") + "/health", timeout=10).status_code == 200


async def test_a_viewer_reads_and_changes_nothing(team: TeamServer) -> None:
    plan = await call(
        team, "auditor", "plan_deployment", {"service": "hello", "version": "1.0.0", "environment": "staging"}
    )
    assert not plan.is_error, text(plan)
    refused = await call(team, "auditor", "deploy", {**PRODUCTION, "environment": "staging"}, Person())
    assert refused.is_error and "token:auditor has the viewer role" in text(refused)
    approve = approve_on_server(team, "auditor", "CHG-V")
    assert approve.returncode == 2 and "only a releaser approves" in approve.stderr
    # generate_deploy_md writes outside the consent gate: it holds too (validate: see the shipping test).
    written = await call(team, "auditor", "generate_deploy_md", {"write": True})
    assert written.is_error and "viewer role" in text(written)
    assert not (team.project / "DEPLOY.md").exists()


async def test_a_deployer_with_a_shell_cannot_get_production_started(team: TeamServer) -> None:
    require_script()
    before = production_records(team.project)
    # What the agent can do with its shell: approve in the server's own folder, claim to be alice, use its token.
    local = agent_shell(
        'script -qec "deploy-mcp approve CHG-1 --service hello --environment production --approved-by anyone" '
        "/dev/null",
        team.project,
    )
    assert local.returncode == 0, local.stdout
    claimed = agent_shell(
        'script -qec "deploy-mcp approve CHG-1 --service hello --environment production --approved-by token:alice" '
        "/dev/null",
        team.project,
    )
    assert claimed.returncode == 2 and "only the server records those" in claimed.stdout
    through_server = approve_on_server(team, "ci-agent", "CHG-1")
    assert through_server.returncode == 2 and "token:ci-agent has the deployer role" in through_server.stderr

    # Then the deploy, with a client that asks "the user", which the agent answers itself.
    agent_as_user = Person()
    refused = await call(team, "ci-agent", "deploy", {**PRODUCTION, "change_id": "CHG-1"}, agent_as_user)
    assert refused.is_error and "token:ci-agent has the deployer role" in text(refused)
    assert "deploy-mcp approve CHG-1 --service hello --environment production --server URL" in text(refused)
    assert agent_as_user.questions == []  # its own answer is not asked for, so it cannot count
    assert production_records(team.project) == before


async def test_on_the_newer_protocol_too_the_deployer_is_never_asked(team: TeamServer) -> None:
    """From 2026-07-28 the question rides the result and the call is retried; the role is checked each time."""
    agent_as_user = Person()
    refused = await call(team, "ci-agent", "deploy", PRODUCTION, agent_as_user, protocol="2026-07-28")
    assert refused.is_error and "token:ci-agent has the deployer role" in text(refused)
    assert agent_as_user.questions == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"change_id": "CHG-9", "service": "hello", "environment": "production", "approved_by": "token:bob"},
            "unknown field approved_by",
        ),
        ({"change_id": "CHG-9", "service": "hello", "environment": "prod"}, "'prod'"),
        ({"change_id": "CHG 9", "service": "hello", "environment": "production"}, "contains spaces"),
        ({"change_id": "CHG-9", "service": "hello"}, "environment: required text"),
        ({"change_id": "CHG-9", "service": "hello", "environment": "production", "expires_in": "soon"}, "expires_in"),
        ([1, 2], "the body is a JSON object"),
    ],
)
def test_the_approvals_endpoint_refuses_what_it_cannot_record_and_records_nothing(
    team: TeamServer, body: object, expected: str
) -> None:
    before = approvals_of(team, "CHG-9")
    response = httpx.post(
        team.url.removesuffix("/mcp") + "/approvals",
        json=body,
        headers={"Authorization": f"Bearer {team.tokens['alice']}"},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert expected in response.json()["error_description"]
    assert approvals_of(team, "CHG-9") == before == []


def approvals_of(team: TeamServer, change: str) -> list[str]:
    app = App.load(team.project / "deploy.toml")
    try:
        ledger = app.existing_ledger()
        return [a.approved_by for a in ledger.list_approvals(change_id=change)] if ledger else []
    finally:
        app.close()


async def test_a_releaser_cannot_approve_their_own_call(team: TeamServer) -> None:
    before = production_records(team.project)
    assert approve_on_server(team, "bob", "CHG-3").returncode == 0
    refused = await call(team, "bob", "deploy", {**PRODUCTION, "change_id": "CHG-3"})
    assert refused.is_error and "Another releaser (not token:bob)" in text(refused)
    assert production_records(team.project) == before


async def test_an_approval_stops_counting_when_the_approvers_token_is_removed(team: TeamServer) -> None:
    before = production_records(team.project)
    assert approve_on_server(team, "erin", "CHG-4").returncode == 0
    tokens = tomllib.loads(team.token_file.read_text(encoding="utf-8"))
    tokens["tokens"] = [entry for entry in tokens["tokens"] if entry["name"] != "erin"]
    team.token_file.write_text(tomli_w.dumps(tokens), encoding="utf-8")  # revoked, no restart

    refused = await call(team, "ci-agent", "deploy", {**PRODUCTION, "change_id": "CHG-4"})
    assert refused.is_error and "token:ci-agent has the deployer role" in text(refused)
    assert production_records(team.project) == before
    response = httpx.post(team.url, json={}, headers={"Authorization": f"Bearer {team.tokens['erin']}"}, timeout=10)
    assert response.status_code == 401


async def test_a_releasers_approval_lets_the_deployer_ship_and_the_record_names_both(
    team: TeamServer, ledger: App
) -> None:
    before = production_records(team.project)
    approved = approve_on_server(team, "alice", "CHG-2")
    assert approved.returncode == 0, approved.stderr
    assert "by token:alice" in approved.stdout

    started = await call(team, "ci-agent", "deploy", {**PRODUCTION, "change_id": "CHG-2"})
    assert not started.is_error, text(started)
    record = started.structured_content["record"]
    assert record["deployed_by"] == "token:ci-agent, approved by token:alice"
    assert record["enterprise"]["change_id"] == "CHG-2" and record["enterprise"]["approved_by"] == "token:alice"

    again = await call(team, "ci-agent", "deploy", {**PRODUCTION, "version": "2.0.0", "change_id": "CHG-2"})
    assert again.is_error  # one approval, one deployment
    checked = await call(team, "auditor", "validate", {"service": "hello", "environment": "production"})
    assert not checked.is_error, text(checked)
    assert "viewer role" in checked.structured_content["record_note"]  # a viewer's verdict is not recorded
    stopped = await call(team, "alice", "abort", {"deployment_id": record["id"], "reason": "end of the test"})
    assert not stopped.is_error, text(stopped)
    deadline = time.monotonic() + 60
    while ledger.ledger().get(record["id"]).status not in (Status.ABORTED, Status.ROLLED_BACK, Status.FAILED):
        assert time.monotonic() < deadline, "the abort did not finish"
        time.sleep(0.2)
    assert [r.id for r in production_records(team.project)] == [record["id"]] + [r.id for r in before]


def test_a_malformed_token_file_stops_the_server_naming_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.toml"
    bad.write_text('[[tokens]]\nname = "x"\nrole = "admin"\nsha256 = "00"\n', encoding="utf-8")
    project = tmp_path / "p"
    project.mkdir()
    (project / "deploy.toml").write_text("[services.web]\ncommand = ['x']\n", encoding="utf-8")
    started = subprocess.run(
        [sys.executable, "-m", "deploy_mcp", "serve", "--http", "--token-file", str(bad)],
        cwd=project,
        env={**agent_env(), "DEPLOY_MCP_CONFIG": str(project / "deploy.toml")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert "role 'admin': must be one of viewer, deployer, releaser" in started.stderr
