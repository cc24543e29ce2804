"""The CLI mirrors of the deployment tools, as a person at a terminal uses them: real subprocesses, the real
local platform, a real ledger. Staging rolls without confirmation; a production change that needs confirmation is
not done from a terminal at all, typed answer or terminal approval (issue 9: no terminal tells a person from a
program).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_fixtures import HELLO, free_port, processes_in, wait_until_gone

from deploy_mcp.app import App
from deploy_mcp.config.loader import load_project
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.targets.local import cli as local_cli
from deploy_mcp.targets.local.loadgen import BackgroundLoad

DEPLOYMENT_ID = re.compile(r"deploy-\d{4}-\d{2}-\d{2}-\d{3,}")
PERSON = f"{getpass.getuser()} at a terminal"
TIMEOUT = 120


def config(staging_port: int, production_port: int) -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    analysis = '{ interval = "1s", bake = "2s", min_requests = 10 }'
    return f"""
[services.hello]
command = {command}
replicas = 1
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.environments.staging]
strategy = "rolling"
port = {staging_port}
analysis = {analysis}

[services.hello.environments.production]
strategy = "canary"
steps = [50, 100]
port = {production_port}
analysis = {analysis}
scale_down_delay = "1s"
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    staging_port = free_port()
    (tmp_path / "deploy.toml").write_text(config(staging_port, free_port()), encoding="utf-8")
    (tmp_path / "staging-port").write_text(str(staging_port))
    try:
        yield tmp_path
    finally:
        local_cli.stop(load_project(tmp_path / "deploy.toml"), "hello")
        left = wait_until_gone(tmp_path)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes outlived the test: {left}"


def run(*args: str, cwd: Path, answer: str | None = None) -> subprocess.CompletedProcess[str]:
    """``deploy-mcp ARGS`` without a terminal (an agent's shell), or with ``answer`` typed on a terminal."""
    command = [sys.executable, "-m", "deploy_mcp", *args]
    env = {**{k: v for k, v in os.environ.items() if k != "DEPLOY_MCP_CONFIG"}, "COLUMNS": "200"}
    if answer is None:
        return subprocess.run(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT
        )
    controller, terminal = os.openpty()  # a person's terminal: stdin is a tty, output still captured
    try:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        os.write(controller, f"{answer}\n".encode())
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    finally:
        os.close(controller)
        os.close(terminal)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def deployment_id(result: subprocess.CompletedProcess[str]) -> str:
    found = DEPLOYMENT_ID.search(result.stdout)
    assert found, result.stdout + result.stderr
    return found.group(0)


def record(folder: Path, deployment: str) -> DeploymentRecord:
    app = App.load(folder / "deploy.toml")
    try:
        found = app.ledger().get(deployment)
        assert found is not None
        return found
    finally:
        app.close()


def records(folder: Path) -> list[DeploymentRecord]:
    app = App.load(folder / "deploy.toml")
    try:
        ledger = app.existing_ledger()
        return ledger.list(limit=100) if ledger else []
    finally:
        app.close()


def one_line_error(result: subprocess.CompletedProcess[str], *, after_prompt: bool = False) -> str:
    """The error line; ``after_prompt``: the question asked on the terminal comes first (on stderr)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    text = result.stderr.rpartition("anything else stops: ")[2] if after_prompt else result.stderr
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deploy-mcp: error: "), result.stderr
    return lines[0]


def test_mistakes_and_production_without_a_terminal_are_refused_and_change_nothing(project: Path) -> None:
    unknown = one_line_error(run("deploy", "nope", "1.0.0", "--environment", "staging", cwd=project))
    assert "'nope'" in unknown and "hello" in unknown  # names the services there are
    missing = one_line_error(run("status", "deploy-2026-01-01-001", cwd=project))
    assert "deploy-mcp history" in missing

    refused = one_line_error(run("deploy", "hello", "1.0.0", "--environment", "production", cwd=project))
    assert "Deploy hello 1.0.0 to production" in refused
    assert "a terminal command cannot give it" in refused and "--server URL" in refused
    unapproved = one_line_error(
        run("deploy", "hello", "1.0.0", "--environment", "production", "--change-id", "CHG-1", cwd=project)
    )
    assert "deploy-mcp approve CHG-1 --service hello --environment production --server URL" in unapproved
    assert not (project / ".deploy" / "ledger.db").exists()
    assert processes_in(project) == []


def test_staging_deploy_status_validate_rollback_and_history(project: Path) -> None:
    url = f"http://127.0.0.1:{(project / 'staging-port').read_text()}/"
    with BackgroundLoad(url, rate=50, concurrency=2):  # analysis needs traffic: no data is never a pass
        first = run("deploy", "hello", "1.0.0", "--environment", "staging", cwd=project)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "no confirmation needed" in first.stdout
        assert "step_started" in first.stdout and "analyze" in first.stdout  # each step as it happens
        first_id = deployment_id(first)
        assert f"{first_id}: succeeded" in first.stdout

        second = run("deploy", "hello", "2.0.0", "--environment", "staging", cwd=project)
        assert second.returncode == 0, second.stdout + second.stderr
        second_id = deployment_id(second)
        assert second_id != first_id

        status = run("status", second_id, cwd=project)
        assert status.returncode == 0, status.stderr
        for shown in ("start", "wait_ready", "analyze", "succeeded", "Verdicts", "Successful", "Running now"):
            assert shown in status.stdout, shown
        assert f"deployed by {PERSON}" in status.stdout and "over 1.0.0" in status.stdout
        assert re.search(r"2\.0\.0\s+100%", status.stdout), status.stdout  # the live weights

        validated = run("validate", "hello", "--environment", "staging", cwd=project)
        assert validated.returncode == 0, validated.stdout + validated.stderr
        assert "hello in staging: pass" in validated.stdout and "recommendation: continue" in validated.stdout

        rollback = run("rollback", "hello", "--environment", "staging", "--reason", "drill from the CLI", cwd=project)
        assert rollback.returncode == 0, rollback.stdout + rollback.stderr
        rollback_id = deployment_id(rollback)
        assert f"reverts {second_id}" in rollback.stdout

    history = run("history", "--service", "hello", cwd=project)
    assert history.returncode == 0, history.stderr
    assert all(shown in history.stdout for shown in (first_id, second_id, rollback_id, f"reverts {second_id}"))
    assert record(project, first_id).deployed_by == PERSON
    reverted = record(project, rollback_id)
    assert reverted.rollback_of == second_id and reverted.version == "1.0.0" and reverted.deployed_by == PERSON
    assert record(project, second_id).status is Status.ROLLED_BACK


def test_production_is_not_done_on_a_typed_answer_or_a_terminal_approval(project: Path) -> None:
    """Issue 9: a terminal cannot tell a person from a program (`script`, a pipe), so neither the typed environment
    name nor an approval from `deploy-mcp approve` lets a production change start from the CLI any more."""
    args = ("deploy", "hello", "1.0.0", "--environment", "production")
    typed = run(*args, cwd=project, answer="production")
    assert "a terminal command cannot give it" in one_line_error(typed)
    assert records(project) == []

    approval = run("approve", "CHG-7", "--service", "hello", "--environment", "production", "--approved-by", "Ana",
                   cwd=project, answer="")  # fmt: skip
    assert approval.returncode == 0, approval.stderr
    assert "does not let a production change go ahead by itself" in approval.stderr
    for answer in (None, "production"):
        refused = run(*args, "--change-id", "CHG-7", cwd=project, answer=answer)
        assert "a terminal command cannot give it" in one_line_error(refused)
    assert [r.environment for r in records(project)] == []
    assert processes_in(project) == []
