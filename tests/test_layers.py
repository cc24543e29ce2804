"""Which package may import which: the services under both faces load neither face, and the CLI starts without
the MCP SDK. Each check runs in a fresh interpreter, where sys.modules shows what an import really pulled in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVICES = ["approvals", "launch", "plans", "steering", "subjects"]


def loaded_after(code: str) -> list[str]:
    """The modules loaded after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def under(modules: list[str], *packages: str) -> list[str]:
    return [name for name in modules if any(name == p or name.startswith(f"{p}.") for p in packages)]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_loads_neither_face_nor_the_mcp_sdk(service: str) -> None:
    modules = loaded_after(f"import deploy_mcp.services.{service}")
    assert under(modules, "mcp", "deploy_mcp.tools", "deploy_mcp.cli", "deploy_mcp.server.consent") == []


def test_the_consent_gate_uses_the_services_not_the_tools() -> None:
    """server.consent -> tools -> server.consent was a cycle; the gate now asks the services only."""
    assert under(loaded_after("import deploy_mcp.server.consent"), "deploy_mcp.tools") == []


def test_the_cli_parser_loads_no_mcp_sdk_and_no_command_bodies() -> None:
    modules = loaded_after("from deploy_mcp.cli import build_parser\nbuild_parser().format_help()")
    assert under(modules, "mcp", "pydantic", "rich", "deploy_mcp.services", "deploy_mcp.server") == []
