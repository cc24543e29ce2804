"""A project whose deployments stay in their analysis: a canary on the real local platform with a 600 s bake, for
tests that need a deployment under way (interrupted, promoted, handed back)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from local_fixtures import HELLO, free_port, wait_until_gone

from deploy_mcp.config.loader import load_project
from deploy_mcp.core.records import DeploymentRecord
from deploy_mcp.targets.local import cli as local_cli

TIMEOUT = 90.0


def config(port: int) -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    # A bake far longer than the test: the analysis ends only because someone promotes past it.
    return f"""
[services.hello]
command = {command}
replicas = 1
health = "/health"
smoke = ["/health"]

[services.hello.environments.staging]
strategy = "canary"
steps = [50, 100]
port = {port}
analysis = {{ interval = "1s", bake = "600s", min_requests = 10 }}
"""


@contextlib.contextmanager
def canary_project(tmp_path: Path) -> Iterator[Path]:
    """A project on the real local platform whose staging canary analyses for 600 s; its services are stopped after."""
    (tmp_path / "deploy.toml").write_text(config(free_port()), encoding="utf-8")
    try:
        yield tmp_path / "deploy.toml"
    finally:
        local_cli.stop(load_project(tmp_path / "deploy.toml"), "hello")
        left = wait_until_gone(tmp_path)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes outlived the test: {left}"


def analyzing(record: DeploymentRecord) -> bool:
    step = record.steps[record.current_step - 1] if record.current_step else None
    return step is not None and step.name == "analyze" and step.status == "running"
