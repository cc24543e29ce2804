"""ECS's own rollouts (rolling and recreate) through the driver, on moto with the fleet harness: update_service
with deploymentConfiguration and the circuit breaker, watched through deployments[] as ECS decides; ECS's own
rollback by the circuit breaker is reported as a rollback to the last COMPLETED revision, and ``undo`` goes back
to it, the way ``aws ecs update-service --task-definition <previous>`` would.

These are the workload's ``rollout`` and ``undo``, the same hooks the Kubernetes driver offers the runner for its
Deployment's native strategies.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_component
from ecs_fixtures import CLUSTER, World, aws_credentials, build_world, project_toml

from deploy_mcp.config.loader import load_project
from deploy_mcp.core.platform import Platform
from deploy_mcp.core.target import ErrorCode, Release, TargetError
from deploy_mcp.targets.local.loadgen import BackgroundLoad

V1, V2, ERRORS, CRASH = "1.0.0", "2.0.0", "3.0.0", "4.0.0"


@pytest.fixture
def ecs(tmp_path: Path) -> Iterator[tuple[World, Platform]]:
    require_component("moto", importlib.util.find_spec("moto") is not None, 'pip install "moto[server]"')
    from ecs_fleet import EcsFleet

    from deploy_mcp.targets.ecs import create_platform

    with aws_credentials(), EcsFleet(workdir=tmp_path / "fleet") as fleet:
        world = build_world(fleet, ["staging"])
        (tmp_path / "deploy.toml").write_text(project_toml(world), encoding="utf-8")
        platform = create_platform(load_project(tmp_path / "deploy.toml"), "hello")
        try:
            yield world, platform
        finally:
            platform.close()


def release(platform: Platform, version: str) -> Release:
    project = platform.workload.project  # type: ignore[attr-defined]
    return Release.resolve("hello", project.config.services["hello"], version)


def rollout(platform: Platform, version: str, strategy: str = "rolling", said: list[str] | None = None) -> int:
    lines = said if said is not None else []
    revision: int = platform.workload.rollout(  # type: ignore[attr-defined]
        "hello", "staging", release(platform, version), 2, strategy=strategy, timeout=90, progress=lines.append
    )
    return revision


def described(world: World) -> dict[str, Any]:
    ecs = world.fleet.client("ecs")
    name = ecs.list_services(cluster=CLUSTER)["serviceArns"][0].rsplit("/", 1)[-1]
    service: dict[str, Any] = ecs.describe_services(cluster=CLUSTER, services=[name])["services"][0]
    return service


def live(platform: Platform) -> list[tuple[str, int, int]]:
    return [(v.version, v.ready, v.weight) for v in platform.workload.state("hello", "staging").versions]


def test_a_rolling_update_is_ecs_own_deployment_without_a_failed_request(ecs: tuple[World, Platform]) -> None:
    world, platform = ecs
    first = rollout(platform, V1)
    load = BackgroundLoad(world.lanes["staging"].url + "/", rate=40, concurrency=8).start()
    said: list[str] = []
    try:
        second = rollout(platform, V2, said=said)
    finally:
        result = load.stop()
    assert second == first + 1, "one task definition revision per release"
    service = described(world)
    assert service["taskDefinition"].endswith(f":{second}")
    assert [(d["status"], d["rolloutState"]) for d in service["deployments"]] == [("PRIMARY", "COMPLETED")]
    assert live(platform) == [(V2, 2, 100)]
    # max_surge 1 and max_unavailable 0 of 2 tasks, in ECS's words
    assert any("minimumHealthyPercent 100, maximumPercent 150" in line and "circuit breaker" in line for line in said)
    assert result.failures == 0 and result.versions[V2] > 0, result.summary()


def test_recreate_stops_every_old_task_first(ecs: tuple[World, Platform]) -> None:
    _, platform = ecs
    rollout(platform, V1)
    said: list[str] = []
    rollout(platform, V2, strategy="recreate", said=said)
    assert any("minimumHealthyPercent 0, maximumPercent 100" in line for line in said), said
    assert live(platform) == [(V2, 2, 100)]


def test_the_circuit_breaker_rollback_is_reported_and_undo_keeps_it(ecs: tuple[World, Platform]) -> None:
    world, platform = ecs
    rollout(platform, V1)
    load = BackgroundLoad(world.lanes["staging"].url + "/", rate=40, concurrency=8).start()
    try:
        with pytest.raises(TargetError) as caught:
            rollout(platform, CRASH)
    finally:
        result = load.stop()
    message = str(caught.value)
    assert caught.value.code is ErrorCode.CRASH_LOOP
    assert "circuit breaker" in message and f"rolled the service back to {V1}" in message, message
    assert "exit code 3" in message or "failed to start" in message, message
    assert result.failures == 0 and CRASH not in result.versions, result.summary()
    events = [e["message"] for e in described(world)["events"]]
    assert any("rolling back to deployment" in e for e in events), events
    # what the runner's undo then does: nothing to change, ECS already went back; it waits for COMPLETED
    assert platform.workload.undo("hello", "staging", timeout=60) == V1  # type: ignore[attr-defined]
    assert [(d["status"], d["rolloutState"]) for d in described(world)["deployments"]] == [("PRIMARY", "COMPLETED")]
    assert live(platform) == [(V1, 2, 100)]


def test_undo_goes_back_to_the_last_completed_revision(ecs: tuple[World, Platform]) -> None:
    """A release that starts fine and fails its analysis: undo is update_service to the revision before it."""
    world, platform = ecs
    first = rollout(platform, V1)
    rollout(platform, ERRORS)
    assert live(platform) == [(ERRORS, 2, 100)]
    before = time.monotonic()
    assert platform.workload.undo("hello", "staging", timeout=90) == V1  # type: ignore[attr-defined]
    print(f"\nundo took {time.monotonic() - before:.1f} s")
    assert described(world)["taskDefinition"].endswith(f":{first}")
    assert live(platform) == [(V1, 2, 100)]
