"""Review of issue 9 item 5 on the local platform: a process that leaves its instance's process group.

An instance is stopped with its process group. A service whose child starts a session of its own (``setsid``, a
daemonizing worker, ``start_new_session=True``) left that child running after ``deploy-mcp local stop``: nothing
managed it any more, and a child holding the service's port made it "already in use" for every later start. The
child still carries the platform's marker in its environment, so stopping the service now stops it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_project import cli
from local_fixtures import free_port

from deploy_mcp.targets.local.environment import find

ESCAPING = "setsid sleep 3000 >/dev/null 2>&1 </dev/null & exec python3 -m http.server --bind 127.0.0.1 $PORT"


@pytest.fixture
def escaping_project(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "deploy.toml").write_text(
        f"""
[services.esc]
command = {json.dumps(["sh", "-c", ESCAPING])}
replicas = 1
health = "/"
smoke = ["/"]

[services.esc.environments.staging]
strategy = "rolling"
port = {free_port()}
analysis = {{ interval = "1s", bake = "1s", min_requests = 1 }}
""",
        encoding="utf-8",
    )
    try:
        yield tmp_path
    finally:
        cli("local", "stop", "esc", cwd=tmp_path)
        for found in find(tmp_path / ".deploy"):  # only what this test started: it carries this folder's marker
            with contextlib.suppress(ProcessLookupError):
                os.kill(found.pid, signal.SIGKILL)


def escaped(project: Path) -> list[int]:
    return [f.pid for f in find(project / ".deploy", "esc", "staging") if _command(f.pid).startswith("sleep 3000")]


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_local_stop_stops_a_child_that_left_its_instances_process_group(escaping_project: Path) -> None:
    cli("deploy", "esc", "1.0.0", "--environment", "staging", cwd=escaping_project)
    deadline = time.monotonic() + 30
    while not escaped(escaping_project):
        assert time.monotonic() < deadline, "the instance's child did not start"
        time.sleep(0.1)

    stopped = cli("local", "stop", "esc", cwd=escaping_project)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 15
    while escaped(escaping_project) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert escaped(escaping_project) == [], "a process of the service outlived `deploy-mcp local stop`"
