"""Issue 9 item 3: secrets never reach output an agent reads or the ledger keeps, and state files are private.

One masking function (deploy_mcp.core.masking) serves deploy://config, DEPLOY.md, preflight's evidence and the
CLI; a crashing instance's output is redacted before it becomes a deployment's reason.
"""

from __future__ import annotations

import json
import stat
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hostile_project import cli, config, spy_project
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server

__all__ = ["spy_project"]  # the fixture, imported so pytest finds it

pytestmark = pytest.mark.anyio

DB_PASSWORD = "db-pw-7f3a9c"
TOKEN = "tok-5b2e8d11aa"
URL_PASSWORD = "url-pw-0c4f2e"


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Path], Client]]:
    apps: list[App] = []

    def open_project(root: Path) -> Client:
        app = App.load(root / "deploy.toml")
        apps.append(app)
        return Client(build_server(app))

    try:
        yield open_project
    finally:
        for app in apps:
            app.close()


def secret_project(root: Path) -> None:
    """Commands with secrets in flags, assignments and URLs, and a test command that fails printing them."""
    failing_tests = (
        f"import sys; print('connecting to postgresql://app:{URL_PASSWORD}@db/x as', sys.argv[1:]); sys.exit(1)"
    )
    command = ["{python}", "-m", "app", "--db-password", DB_PASSWORD, "--port", "{port}"]
    test_command = [
        "{python}",
        "-c",
        failing_tests,
        f"--token={TOKEN}",
        f"DATABASE_URL=postgresql://u:{URL_PASSWORD}@h/d",
    ]
    (root / "deploy.toml").write_text(
        textwrap.dedent(f"""\
        mode = "greenfield"
        [services.web]
        command = {json.dumps(command)}
        test_command = {json.dumps(test_command)}
        env = {{ API_KEY = "{TOKEN}" }}
        [services.web.environments.staging]
        strategy = "rolling"
        """),
        encoding="utf-8",
    )


def assert_masked(text: str, where: str) -> None:
    for secret in (DB_PASSWORD, TOKEN, URL_PASSWORD):
        assert secret not in text, f"{secret} leaked in {where}"
    assert "****" in text, where


async def test_deploy_md_and_deploy_config_mask_the_same_secrets(tmp_path: Path, connect) -> None:
    secret_project(tmp_path)
    async with connect(tmp_path) as client:
        generated = await client.call_tool("generate_deploy_md", {})
        assert not generated.is_error, generated.content[0].text
        content = generated.structured_content["content"]
        assert "--db-password" in content and "--token=" in content  # the commands are still there, readable
        assert_masked(content, "DEPLOY.md")
        resource = await client.read_resource("deploy://config")
        assert_masked(resource.contents[0].text, "deploy://config")


async def test_preflight_evidence_masks_the_test_command_and_redacts_its_output(tmp_path: Path, connect) -> None:
    secret_project(tmp_path)
    async with connect(tmp_path) as client:
        result = await client.call_tool("preflight", {"service": "web", "version": "1.0.0", "environment": "staging"})
    text = json.dumps(result.structured_content) if result.structured_content else result.content[0].text
    assert "connecting to postgresql://****@db/x" in text  # the test ran, failed, and its output is shown
    assert_masked(text, "preflight")


def test_a_crashing_instance_output_is_redacted_before_the_ledger_and_files_are_private(spy_project: Path) -> None:
    port = int((spy_project / "port").read_text())
    crash = (
        "fatal: cannot start with API_KEY={API_KEY} against postgresql://app:"
        + URL_PASSWORD
        + "@db/x (Authorization: Bearer abcdefghijklmnopqrstuv, key AKIA"
        + "Z" * 16
        + ")"
    )
    extra = f"env = {{ API_KEY = {json.dumps(TOKEN)}, CRASH_WITH = {json.dumps(crash)} }}"
    (spy_project / "deploy.toml").write_text(config(port, extra=extra), encoding="utf-8")

    deployed = cli("deploy", "spy", "1.0.0", "--environment", "staging", cwd=spy_project)
    assert deployed.returncode != 0
    output = deployed.stdout + deployed.stderr
    assert "exited with code 3" in output and "fatal: cannot start" in output, output  # still says why
    assert_masked(output, "the CLI's output")
    assert "abcdefghijklmnopqrstuv" not in output and "AKIA" + "Z" * 16 not in output

    app = App.load(spy_project / "deploy.toml")
    try:
        records = app.ledger().list(service="spy")
        recorded = json.dumps([r.model_dump(mode="json") for r in records])
        events = json.dumps([e.model_dump(mode="json") for r in records for e in app.ledger().events(r.id)])
    finally:
        app.close()
    assert records, "the failed deployment is recorded"
    status = cli("status", records[0].id, cwd=spy_project)
    assert status.returncode in (0, 1), status.stderr
    assert_masked(status.stdout, "deploy-mcp status")
    assert "exited with code 3" in recorded + events
    assert_masked(recorded + events, "the ledger")

    state_dir = spy_project / ".deploy"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    ledger = state_dir / "ledger.db"
    logs = [p for p in (state_dir / "local").rglob("*.log")]
    assert logs, "the instance and supervisor logs"
    for private in (ledger, *logs):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
