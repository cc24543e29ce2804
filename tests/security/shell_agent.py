"""What a hostile agent has in the consent tests: a shell as the user, the MCP client's credentials, real `script`.

The project is the hello service with a staging and a production environment on the local platform. The agent's
shell runs exactly the commands of issue 9 through bash and util-linux `script`, with `deploy-mcp` on its PATH as
the user's own shell would have it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from conftest import require_component
from local_fixtures import HELLO, free_port, processes_in, wait_until_gone

from deploy_mcp.app import App
from deploy_mcp.config.loader import load_project
from deploy_mcp.core.records import DeploymentRecord
from deploy_mcp.targets.local import cli as local_cli

TIMEOUT = 120
VENV_BIN = Path(sys.executable).parent


def project_config(staging_port: int, production_port: int) -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    analysis = '{ interval = "1s", bake = "2s", min_requests = 10 }'
    return f"""
[services.hello]
command = {command}
replicas = 1
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.versions."9.0.0"]
env = {{ SLOW_START_S = "60" }}

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


@contextlib.contextmanager
def hello_project(folder: Path) -> Iterator[Path]:
    """The project on disk; afterwards every process it started is stopped, and the test fails if one survived."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "deploy.toml").write_text(project_config(free_port(), free_port()), encoding="utf-8")
    try:
        yield folder
    finally:
        with contextlib.suppress(Exception):
            local_cli.stop(load_project(folder / "deploy.toml"), "hello")
        left = wait_until_gone(folder)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes outlived the test: {left}"


def require_script() -> None:
    require_component("script", shutil.which("script") is not None, "install util-linux (it provides `script`)")


def agent_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The agent's environment: the user's, with deploy-mcp on PATH, and no config or token chosen for it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOY_MCP_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SHELL"] = "/bin/bash"
    env["COLUMNS"] = "200"
    return env | (extra or {})


def agent_shell(command: str, cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as the agent's shell tool does: bash, no terminal, stdin closed."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=agent_env(extra_env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def production_records(folder: Path) -> list[DeploymentRecord]:
    app = App.load(folder / "deploy.toml")
    try:
        ledger = app.existing_ledger()
        return ledger.list(service="hello", environment="production", limit=100) if ledger else []
    finally:
        app.close()


def production_processes(folder: Path) -> list[int]:
    """Everything the project runs (instances and routers run in its folder): empty means nothing was started."""
    return processes_in(folder)
