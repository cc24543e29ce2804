"""Fixtures for tests of the local platform: a project on disk, a LocalPlatform, and a teardown that proves it.

Import the fixtures into a test module (``from local_fixtures import local_target``). Teardown stops every
service the test started and then checks the processes themselves: every process whose working directory is
the test's project folder (supervisors and instances run there) must be gone, even when the test failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.core.target import Release
from deploy_mcp.targets.local.platform import LocalPlatform, create_platform

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "hello" / "server.py"
HEALTH_INTERVAL = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_config(staging_port: int | None = None) -> str:
    """A hello service with one good release per version and the bad ones the tests need."""
    command = json.dumps(["{python}", str(HELLO), "--port", "{port}"])
    port = f"port = {staging_port}\n" if staging_port else ""
    return f"""\
[services.hello]
command = {command}
replicas = 2
health = "/health"

[services.hello.versions."3.0.0"]
env = {{ ERROR_RATE = "0.2" }}

[services.hello.versions."4.0.0"]
env = {{ CRASH_ON_START = "1" }}

[services.hello.versions."5.0.0"]
command = ["deploy-mcp-no-such-program", "--port", "{{port}}"]

[services.hello.versions."6.0.0"]
env = {{ SLOW_START_S = "60" }}

[services.hello.environments.staging]
{port}
[services.hello.environments.production]
"""


def write_project(folder: Path, staging_port: int | None = None) -> Project:
    (folder / "deploy.toml").write_text(project_config(staging_port), encoding="utf-8")
    return load_project(folder / "deploy.toml")


def release(project: Project, version: str, service: str = "hello") -> Release:
    return Release.resolve(service, project.config.services[service], version)


def processes_in(folder: Path) -> list[int]:
    """Live (non-zombie) processes whose working directory is ``folder``: everything a project started."""
    found = []
    target = str(folder.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        if cwd == target and stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def wait_until_gone(folder: Path, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_in(folder)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def teardown(target: LocalPlatform) -> None:
    """Stop everything; then fail loudly (after killing them) if any process of the project survived."""
    root = target.project.root
    for service, environment in target.environments():
        try:
            target.stop(service, environment, drain_timeout=1.0)
        except Exception as exc:  # keep tearing down; the process check below is the verdict
            print(f"teardown: stopping {service}/{environment} failed: {exc}")
    left = wait_until_gone(root)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived stop: {left}"


@pytest.fixture
def local_project(tmp_path: Path) -> Project:
    return write_project(tmp_path, staging_port=free_port())


@pytest.fixture
def local_target(local_project: Project) -> Iterator[LocalPlatform]:
    target = create_platform(local_project, health_interval=HEALTH_INTERVAL, start_timeout=20.0, kill_timeout=3.0)
    try:
        yield target
    finally:
        teardown(target)
