"""Shared fixtures: sample projects on disk, and the rule for tests that need an external component.

A test that needs Prometheus, PostgreSQL, Chromium, moto or node calls `require_component`: on a laptop without
it the test skips with the reason; under CI=true it fails, because a skipped check is a check that did not run.
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

SAMPLE_CONFIG = textwrap.dedent(
    """\
    mode = "greenfield"

    [thresholds]
    error_rate = { warn = 0.01, critical = 0.05 }
    latency_p95_ms = { warn = 500, critical = 2000 }

    [services.web]
    command = ["python", "-m", "examples.hello", "--port", "{port}"]
    replicas = 3
    health = "/health"
    smoke = ["/health", "/", "!/nonexistent"]
    env = { API_TOKEN = "s3cr3t-value", LOG_LEVEL = "info" }

    [services.web.versions."3.0.0"]
    env = { ERROR_RATE = "0.3" }

    [services.web.environments.staging]
    strategy = "rolling"
    port = 18081

    [services.web.environments.production]
    strategy = "canary"
    steps = [5, 25, 50, 100]
    port = 18080
    analysis = { interval = "30s", bake = "2m", min_requests = 100 }
    requires = ["staging"]
    """
)


def require_component(name: str, available: bool, how: str) -> None:
    """Skip without the component on a laptop; fail under CI, which must have installed it."""
    if available:
        return
    message = f"{name} is not available: {how}"
    if IN_CI:
        pytest.fail(f"CI must provide every component, but {message}")
    pytest.skip(message)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked `anyio`, the plugin the MCP SDK itself uses) run on asyncio."""
    return "asyncio"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Opt-in tests (a real cluster, a real AWS account) are deselected, not skipped, unless their switch is on.

    A skip under CI=true fails the run, because it hides a component CI should have; an opt-in test needs
    something CI never has (a person's cloud account), so it is left out of the run and named in the summary.
    Mark one with ``@pytest.mark.opt_in(enabled=<bool>, reason="set ... to run it")``.
    """
    chosen, left_out = [], []
    for item in items:
        marker = item.get_closest_marker("opt_in")
        if marker is not None and not marker.kwargs.get("enabled", False):
            left_out.append(item)
        else:
            chosen.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = chosen
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for item in left_out:
                reporter.write_line(
                    f"opt-in, not run: {item.nodeid} ({item.get_closest_marker('opt_in').kwargs.get('reason', '')})"
                )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {skipped} test(s) skipped; every component must be installed in CI", red=True)
        session.exitstatus = 1


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A project with the sample deploy.toml; tests chdir nowhere, they pass the path."""
    (tmp_path / "deploy.toml").write_text(SAMPLE_CONFIG, encoding="utf-8")
    return tmp_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
