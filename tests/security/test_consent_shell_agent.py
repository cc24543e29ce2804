"""Issue 9, item 1: an agent with a shell and the stdio launch configuration cannot get production started.

The agent runs the exact commands of the issue: `script -qec "deploy-mcp approve ..."` gives `deploy-mcp` a
terminal so the isatty check passes, and `(sleep 4; printf 'production\\n') | script -qec "deploy-mcp resume ID"`
types the confirmation. Then it calls the deploy tool over stdio, as its MCP client was configured to launch the
server, with a client that cannot ask the user. Nothing of it may start a production deployment.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from shell_agent import (
    agent_env,
    agent_shell,
    hello_project,
    production_processes,
    production_records,
    require_script,
)

from deploy_mcp.app import App
from deploy_mcp.core.records import Status

pytestmark = pytest.mark.anyio

APPROVE = (
    'script -qec "deploy-mcp approve CHG-1 --service hello --environment production --approved-by anyone" /dev/null'
)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    require_script()
    with hello_project(tmp_path / "project") as folder:
        yield folder


def stdio(project: Path) -> StdioServerParameters:
    """The launch configuration of the user's MCP client, which the agent can read and reuse."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "deploy_mcp", "serve"],
        env=agent_env({"DEPLOY_MCP_CONFIG": str(project / "deploy.toml")}),
        cwd=str(project),
    )


async def test_an_approval_the_agent_typed_through_script_does_not_start_production(project: Path) -> None:
    approved = agent_shell(APPROVE, project)
    assert approved.returncode == 0, approved.stdout + approved.stderr  # the fake terminal still fools isatty

    async with Client(stdio(project)) as client:  # no elicitation: nobody can be asked
        result = await client.call_tool(
            "deploy",
            {"service": "hello", "version": "1.0.0", "environment": "production", "change_id": "CHG-1"},
        )
    message = result.content[0].text
    assert result.is_error, message
    assert "this MCP client cannot ask the user" in message
    assert production_records(project) == []
    assert production_processes(project) == []
    # What the approval is now, as the command told whoever ran it: a change record, not consent.
    assert "does not let a production change go ahead by itself" in approved.stdout


def test_the_cli_does_not_take_an_approval_the_agent_typed_through_script(project: Path) -> None:
    assert agent_shell(APPROVE, project).returncode == 0
    deployed = agent_shell(
        'script -qec "deploy-mcp deploy hello 1.0.0 --environment production --change-id CHG-1" /dev/null', project
    )
    assert deployed.returncode == 2, deployed.stdout + deployed.stderr
    assert "a terminal command cannot give it" in deployed.stdout
    assert production_records(project) == []
    assert production_processes(project) == []


@pytest.mark.parametrize(
    "command",
    [
        "(sleep 4; printf 'production\\n') | script -qec \"deploy-mcp resume {id}\" /dev/null",
        "(sleep 4; printf 'production\\n') | script -qec \"deploy-mcp promote {id}\" /dev/null",
        "(sleep 4; printf 'production\\n') | script -qec "
        '"deploy-mcp rollback hello --environment production --reason drill" /dev/null',
    ],
    ids=["resume", "promote", "rollback"],
)
def test_a_typed_confirmation_through_script_does_not_move_production(project: Path, command: str) -> None:
    """A production deployment the person left interrupted: the agent types 'production' at the prompt."""
    app = App.load(project / "deploy.toml")
    try:
        ledger = app.ledger()
        ledger.create(
            service="hello",
            version="1.0.0",
            environment="production",
            strategy="canary",
            status=Status.SUCCEEDED,
            validation={"passed": True},
        )
        left = ledger.create(
            service="hello", version="2.0.0", environment="production", strategy="canary", status=Status.INTERRUPTED
        )
    finally:
        app.close()

    typed = agent_shell(command.format(id=left.id), project)

    assert typed.returncode == 2, typed.stdout + typed.stderr
    assert "a terminal command cannot give it" in typed.stdout
    assert "Traceback" not in typed.stdout + typed.stderr
    after = {record.id: record for record in production_records(project)}
    assert after[left.id].status is Status.INTERRUPTED and len(after) == 2  # nothing resumed, no rollback record
    assert production_processes(project) == []
