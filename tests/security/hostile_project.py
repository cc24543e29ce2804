"""A project on disk whose service is tests/security/hostile_service.py, driven through the real CLI.

Shared by the hostile-input tests of the local platform (environment, secrets in crash output, lost state).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_fixtures import free_port, wait_until_gone

from deploy_mcp.config.loader import load_project
from deploy_mcp.targets.local import cli as local_cli

SERVICE = Path(__file__).resolve().parent / "hostile_service.py"
TIMEOUT = 120
ANALYSIS = '{ interval = "1s", bake = "2s", min_requests = 5 }'


def config(port: int, *, extra: str = "") -> str:
    command = json.dumps([sys.executable, str(SERVICE), "--port", "{port}"])
    return f"""
[services.spy]
command = {command}
replicas = 1
health = "/health"
smoke = ["/health"]
{extra}

[services.spy.environments.staging]
strategy = "rolling"
port = {port}
analysis = {ANALYSIS}
"""


@pytest.fixture
def spy_project(tmp_path: Path) -> Iterator[Path]:
    """A project with the spy service on a free staging port (in ``port``); everything it started is stopped."""
    port = free_port()
    (tmp_path / "deploy.toml").write_text(config(port), encoding="utf-8")
    (tmp_path / "port").write_text(str(port))
    try:
        yield tmp_path
    finally:
        with contextlib.suppress(Exception):
            local_cli.stop(load_project(tmp_path / "deploy.toml"), "spy")
        left = wait_until_gone(tmp_path)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes outlived the test: {left}"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``deploy-mcp ARGS`` as an agent's shell runs it: no terminal, the caller's environment plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k != "DEPLOY_MCP_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "deploy_mcp", *args],
        cwd=cwd,
        env={**base, "COLUMNS": "200", **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
