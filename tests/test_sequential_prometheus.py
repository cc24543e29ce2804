"""The sequential method on a real Prometheus: one look per scrape, and the same decisions as on the router.

Prometheus scrapes the local router of a canary (10% of 100 requests/s) every second; the sequential analysis
reads it through PrometheusMetrics with ``scrape_interval = "1s"``, so it asks once a second and never more. A
release failing one request in five is stopped well before its bake is over; a good one passes when it is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import free_port
from local_fixtures import teardown
from prometheus_fixture import PrometheusServer, prometheus_factory

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.config.schema import Analysis, PrometheusSource, Thresholds
from deploy_mcp.core.analysis import Measurement
from deploy_mcp.core.records import Phase
from deploy_mcp.core.sequential import run_sequential, sample_seconds
from deploy_mcp.core.target import Release
from deploy_mcp.signals.metrics import PrometheusMetrics
from deploy_mcp.targets.local.loadgen import BackgroundLoad
from deploy_mcp.targets.local.platform import LocalPlatform, create_platform

__all__ = ["prometheus_factory"]  # a fixture: imported for pytest, not used by name

HELLO = Path(__file__).resolve().parent.parent / "examples" / "hello" / "server.py"
STABLE = "1.0.0"


class Canary:
    def __init__(self, project: Project, target: LocalPlatform, port: int) -> None:
        self.project = project
        self.target = target
        self.port = port

    def start(self, version: str) -> None:
        service = self.project.config.services["hello"]
        self.target.workload.start_version("hello", "production", Release.resolve("hello", service, version), 1)
        self.target.router.set_weights("hello", "production", {STABLE: 90, version: 10})

    def end(self, version: str) -> None:
        self.target.router.set_weights("hello", "production", {STABLE: 100, version: 0})
        self.target.workload.stop_version("hello", "production", version, drain_timeout=0.5)


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Canary]:
    folder = tmp_path_factory.mktemp("sequential-prometheus")
    port = free_port()
    (folder / "deploy.toml").write_text(
        f"""
[services.hello]
command = {json.dumps(["{python}", str(HELLO), "--port", "{port}"])}
replicas = 1
health = "/health"

[services.hello.versions."2.0.0"]
env = {{ ERROR_RATE = "0.2" }}

[services.hello.environments.production]
port = {port}
""",
        encoding="utf-8",
    )
    project = load_project(folder / "deploy.toml")
    target = create_platform(project, health_interval=0.5)
    try:
        yield Canary(project, target, port)
    finally:
        teardown(target)


@pytest.fixture(scope="module")
def prometheus(prometheus_factory: Callable[..., PrometheusServer], canary: Canary) -> Iterator[PrometheusServer]:
    server = prometheus_factory([f"127.0.0.1:{canary.port}"])
    service = canary.project.config.services["hello"]
    canary.target.workload.start_version("hello", "production", Release.resolve("hello", service, STABLE), 1)
    load = BackgroundLoad(canary.target.endpoint("hello", "production").rstrip("/") + "/", rate=100.0).start()
    try:
        server.wait_for('deploy_mcp_requests_total{version="1.0.0"}', lambda result: bool(result), timeout=30)
        yield server
    finally:
        load.stop()


def judge_live(server: PrometheusServer, canary: Canary, version: str, bake: float) -> tuple:
    source = PrometheusMetrics(server.url, PrometheusSource(url=server.url, scrape_interval="1s"))
    looks: list[Measurement] = []
    canary.start(version)
    try:
        # The first scrape that sees the new version makes its series; the analysis starts with the traffic.
        server.wait_for(f'deploy_mcp_requests_total{{version="{version}"}}', lambda result: bool(result), timeout=30)
        started = time.monotonic()
        outcome = run_sequential(
            source,
            "hello",
            "production",
            version,
            STABLE,
            Thresholds(),
            Analysis(min_requests=20),
            bake,
            5.0,
            look_every_s=sample_seconds(source),
            lookback_s=2.0,
            on_look=lambda measurement, run: looks.append(measurement),
        )
        return outcome, looks, time.monotonic() - started
    finally:
        canary.end(version)


def test_a_bad_canary_is_stopped_from_prometheus_long_before_its_bake_ends(
    prometheus: PrometheusServer, canary: Canary
) -> None:
    outcome, looks, _ = judge_live(prometheus, canary, "2.0.0", bake=60.0)
    assert outcome.phase is Phase.FAILED, outcome.reason
    assert "above the critical 5%" in outcome.reason
    assert looks[-1].elapsed < 30.0  # decided on the evidence, not at the end of the 60 s bake
    assert all(look.phase is not Phase.ERROR for look in looks)


def test_a_good_canary_passes_from_prometheus_looking_once_per_scrape(
    prometheus: PrometheusServer, canary: Canary
) -> None:
    outcome, looks, took = judge_live(prometheus, canary, "1.1.0", bake=6.0)
    assert outcome.phase is Phase.SUCCESSFUL, outcome.reason
    assert outcome.metrics["requests"] >= 20 and outcome.metrics["baseline"]["version"] == STABLE
    # One look per scrape (1 s): six for a 6 s bake, never the ten a second the router gets.
    assert len(looks) <= 7 and took >= 6.0
