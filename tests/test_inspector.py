"""A client nobody here wrote: the MCP Inspector CLI lists our tools and reads a resource over stdio."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_component

REPO = Path(__file__).resolve().parents[1]
LOCAL_INSPECTOR = REPO / ".tools" / "node_modules" / ".bin" / "mcp-inspector"


def inspector(project: Path, *method: str) -> dict:
    if LOCAL_INSPECTOR.exists():
        command = [str(LOCAL_INSPECTOR)]
    else:
        require_component("node", shutil.which("npx") is not None, "install Node.js; scripts/setup.sh caches the CLI")
        command = ["npx", "-y", "@modelcontextprotocol/inspector@0.15"]
    server = [sys.executable, "-m", "deploy_mcp", "serve"]
    env_arg = ["-e", f"DEPLOY_MCP_CONFIG={project / 'deploy.toml'}"]
    result = subprocess.run(
        [*command, "--cli", *env_arg, *server, *method], capture_output=True, text=True, timeout=180, cwd=project
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import SAMPLE_CONFIG

    folder = tmp_path_factory.mktemp("inspected")
    (folder / "deploy.toml").write_text(SAMPLE_CONFIG)
    return folder


def test_inspector_lists_tools_with_schemas(project: Path) -> None:
    tools = {tool["name"]: tool for tool in inspector(project, "--method", "tools/list")["tools"]}
    assert {"plan_deployment", "deployment_history"} <= set(tools)
    assert tools["plan_deployment"]["inputSchema"]["required"] == ["service", "version", "environment"]
    assert tools["deployment_history"]["annotations"]["readOnlyHint"] is True


def test_inspector_reads_a_checklist(project: Path) -> None:
    body = inspector(project, "--method", "resources/read", "--uri", "deploy://checklists/pre-deployment")
    text = body["contents"][0]["text"]
    assert text.startswith("# ") and "- [ ]" in text


def test_inspector_calls_a_tool(project: Path) -> None:
    body = inspector(
        project,
        "--method",
        "tools/call",
        "--tool-name",
        "plan_deployment",
        "--tool-arg",
        "service=web",
        "--tool-arg",
        "version=2.0.0",
        "--tool-arg",
        "environment=production",
    )
    assert body["structuredContent"]["strategy"] == "canary"
