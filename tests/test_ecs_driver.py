"""The ECS driver's own promises, on moto with the fleet harness: the allowlist refuses before anything changes,
credentials come only from the AWS chain, a task definition kept in the repo is what gets registered, a listener
rule can carry the weights, CloudWatch gives back the requests the ALB served, the ALB's health check is what
readiness means, and the IAM policy in the docs covers every call the driver makes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import require_component
from ecs_fixtures import CLUSTER, World, aws_credentials, build_world, project_toml

from deploy_mcp.config.loader import load_project
from deploy_mcp.core.platform import Platform
from deploy_mcp.core.target import ErrorCode, MetricSnapshot, Release, TargetError

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "docs" / "public" / "ecs-iam-policy.json"
V1, V2 = "1.0.0", "2.0.0"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    require_component("moto", importlib.util.find_spec("moto") is not None, 'pip install "moto[server]"')
    from ecs_fleet import EcsFleet

    with aws_credentials(), EcsFleet(workdir=tmp_path / "fleet") as fleet:
        yield build_world(fleet, ["staging"])


def platform_for(folder: Path, world: World, **kwargs: object) -> Platform:
    from deploy_mcp.targets.ecs import create_platform

    (folder / "deploy.toml").write_text(project_toml(world, **kwargs), encoding="utf-8")  # type: ignore[arg-type]
    return create_platform(load_project(folder / "deploy.toml"), "hello")


def release(platform: Platform, version: str) -> Release:
    project = platform.workload.project  # type: ignore[attr-defined]
    return Release.resolve("hello", project.config.services["hello"], version)


# -- safety --------------------------------------------------------------------------------------------------------


def test_a_service_outside_allowed_services_is_refused_with_nothing_changed(tmp_path: Path, world: World) -> None:
    platform = platform_for(tmp_path, world)
    platform.workload.project.config.targets.ecs.allowed_services = ["payments-*"]  # type: ignore[attr-defined]
    with pytest.raises(TargetError, match=r"allowed_services.*nothing was changed") as caught:
        platform.workload.start_version("hello", "staging", release(platform, V1), 1)
    assert "hello-staging-blue-1-0-0" in str(caught.value)
    ecs = world.fleet.client("ecs")
    assert ecs.list_task_definitions()["taskDefinitionArns"] == []
    assert ecs.list_services(cluster=CLUSTER)["serviceArns"] == []
    platform.close()


def test_without_credentials_the_error_says_where_they_come_from(tmp_path: Path, world: World) -> None:
    platform = platform_for(tmp_path, world)
    saved = {k: os.environ.pop(k, None) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        with pytest.raises(TargetError) as caught:
            platform.workload.state("hello", "staging")
    finally:
        for key in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED"):
            os.environ.pop(key, None)
        os.environ.update({k: v for k, v in saved.items() if v})
        platform.close()
    message = str(caught.value)
    assert "no AWS credentials" in message and "AWS_PROFILE" in message, message
    assert "Traceback" not in message


def test_boto3_is_imported_only_when_an_ecs_service_is_used() -> None:
    code = (
        "import sys, deploy_mcp.server.app, deploy_mcp.targets.registry, deploy_mcp.extras; "
        "print('boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert answer.stdout.split() == ["False", "False"], answer


def _driver_calls() -> set[str]:
    """Every AWS API the driver calls, as IAM action names (ecs:CreateService...)."""
    prefixes = {"ecs": "ecs", "elbv2": "elasticloadbalancing", "cloudwatch": "cloudwatch", "ssm": "ssm"}
    found = set()
    for path in (REPO / "deploy_mcp" / "targets" / "ecs").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for client, method in re.findall(r"\b(ecs|elbv2|cloudwatch|ssm)\.([a-z_]+)\(", text):
            if method in {"get_paginator", "close"}:
                continue
            found.add(f"{prefixes[client]}:{''.join(part.title() for part in method.split('_'))}")
        for method in re.findall(r'get_paginator\("([a-z_]+)"\)', text):
            found.add(f"ecs:{''.join(part.title() for part in method.split('_'))}")
    return found


def test_the_iam_policy_in_the_docs_covers_every_call_the_driver_makes() -> None:
    policy = json.loads(POLICY.read_text(encoding="utf-8"))
    allowed = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        allowed.update([actions] if isinstance(actions, str) else actions)
    calls = _driver_calls()
    assert {"ecs:CreateService", "elasticloadbalancing:ModifyListener", "cloudwatch:GetMetricData"} <= calls
    assert calls - allowed == set(), f"the documented policy misses {sorted(calls - allowed)}"
    assert not any(a.endswith(":*") or a == "*" for a in allowed), "the policy must stay minimal: no wildcards"


# -- what gets registered and where traffic goes -------------------------------------------------------------------


def test_a_task_definition_kept_in_the_repo_is_registered_with_the_release(tmp_path: Path, world: World) -> None:
    definition = {
        "family": "hello-web",
        "cpu": "512",
        "memory": "1024",
        "containerDefinitions": [
            {"name": "sidecar", "image": "envoy:1.30", "essential": False},
            {"name": "web", "image": "placeholder", "environment": [{"name": "LOG_LEVEL", "value": "info"}]},
        ],
    }
    (tmp_path / "ecs").mkdir()
    (tmp_path / "ecs" / "taskdef.json").write_text(json.dumps(definition), encoding="utf-8")
    text = project_toml(world).replace(
        'image = "hello:{version}"',
        'image = "hello:{version}"\ntask_definition = "ecs/taskdef.json"\ncontainer = "web"',
    )
    (tmp_path / "deploy.toml").write_text(text, encoding="utf-8")
    from deploy_mcp.targets.ecs.aws import Aws
    from deploy_mcp.targets.ecs.layout import Layout
    from deploy_mcp.targets.ecs.taskdef import register_release

    project = load_project(tmp_path / "deploy.toml")
    place = Layout(project).place("hello", "staging")
    aws = Aws(project.config.targets.ecs)
    bad = Release.resolve("hello", project.config.services["hello"], "3.0.0")
    arn = register_release(aws, place, bad, tmp_path, None)
    registered = world.fleet.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
    aws.close()
    assert registered["family"] == "hello-web" and registered["cpu"] == "512"
    sidecar, web = registered["containerDefinitions"]
    assert sidecar["image"] == "envoy:1.30", "only the named container gets the release's image"
    assert web["image"] == "hello:3.0.0"
    environment = {item["name"]: item["value"] for item in web["environment"]}
    assert environment == {"LOG_LEVEL": "info", "ERROR_RATE": "0.2", "VERSION": "3.0.0"}


def test_a_listener_rule_can_carry_the_weights(tmp_path: Path, world: World) -> None:
    lane = world.lanes["staging"]
    elbv2 = world.fleet.client("elbv2")
    rule = elbv2.create_rule(
        ListenerArn=lane.listener,
        Priority=10,
        Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]}],
        Actions=[{"Type": "forward", "TargetGroupArn": lane.target_groups[0]}],
    )["Rules"][0]["RuleArn"]
    text = project_toml(world, replicas=1).replace(f'listener = "{lane.listener}"', f'listener = "{rule}"')
    (tmp_path / "deploy.toml").write_text(text, encoding="utf-8")
    from deploy_mcp.targets.ecs import create_platform

    platform = create_platform(load_project(tmp_path / "deploy.toml"), "hello")
    try:
        platform.workload.start_version("hello", "staging", release(platform, V1), 1)
        platform.workload.start_version("hello", "staging", release(platform, V2), 1)
        platform.router.set_weights("hello", "staging", {V1: 90, V2: 10})
        assert platform.router.verify_weights("hello", "staging") == {V1: 90, V2: 10}
        forward = elbv2.describe_rules(RuleArns=[rule])["Rules"][0]["Actions"][0]["ForwardConfig"]["TargetGroups"]
        assert [g["Weight"] for g in forward] == [90, 10]
        default = elbv2.describe_listeners(ListenerArns=[lane.listener])["Listeners"][0]["DefaultActions"][0]
        assert [g["Weight"] for g in default["ForwardConfig"]["TargetGroups"]] == [1], "the listener is untouched"
    finally:
        platform.close()


# -- health and metrics come from the load balancer ----------------------------------------------------------------


def test_readiness_is_the_albs_health_check(tmp_path: Path, world: World) -> None:
    platform = platform_for(tmp_path, world, replicas=1)
    try:
        platform.workload.start_version("hello", "staging", release(platform, V1), 2)
        assert [p.healthy for p in platform.prober.health("hello", "staging")] == [True, True]
        world.fleet.fail_health(V1)
        deadline = time.monotonic() + 20
        while platform.workload.state("hello", "staging").version(V1).ready:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the failed health check never showed"
            time.sleep(0.3)
        probes = platform.prober.health("hello", "staging")
        assert [p.status for p in probes] == ["unhealthy", "unhealthy"], probes
        assert "Health checks failed" in probes[0].detail
        with pytest.raises(TargetError) as caught:  # no traffic to a version the ALB finds unhealthy
            platform.router.set_weights("hello", "staging", {V1: 100})
        assert caught.value.code is ErrorCode.NO_INSTANCES
        world.fleet.fail_health(V1, failing=False)
    finally:
        platform.close()


def test_cloudwatch_gives_back_the_requests_the_alb_served(tmp_path: Path, world: World) -> None:
    platform = platform_for(tmp_path, world, replicas=1)
    lane = world.lanes["staging"]
    try:
        platform.workload.start_version("hello", "staging", release(platform, "3.0.0"), 1)  # one in five fails
        with httpx.Client(base_url=lane.url, timeout=10) as client:
            statuses = [client.get("/").status_code for _ in range(100)]
        metrics = _metrics_when_published(platform, len(statuses), "3.0.0")
        assert metrics.requests == len(statuses)
        assert metrics.errors == statuses.count(500) and metrics.errors > 0
        assert metrics.p95_ms is not None and metrics.p95_ms >= metrics.p50_ms  # type: ignore[operator]
    finally:
        platform.close()


def _metrics_when_published(platform: Platform, expected: int, version: str) -> MetricSnapshot:
    assert platform.metrics is not None
    deadline = time.monotonic() + 20
    while True:
        snapshot = platform.metrics.metrics("hello", "staging", 30.0).get(version)
        if snapshot is not None and snapshot.requests >= expected:
            return snapshot
        assert time.monotonic() < deadline, f"CloudWatch never showed {expected} requests: {snapshot}"
        time.sleep(0.5)


def test_a_release_does_not_inherit_the_numbers_of_the_one_before_it_in_its_target_group(
    tmp_path: Path, world: World
) -> None:
    """Target groups are reused release after release: a good release in the slot a bad one just left must not be
    judged on the bad one's errors."""
    platform = platform_for(tmp_path, world, replicas=1)
    lane = world.lanes["staging"]
    workload = platform.workload
    try:
        workload.start_version("hello", "staging", release(platform, V1), 1)
        workload.start_version("hello", "staging", release(platform, "3.0.0"), 1)  # one in five fails
        platform.router.set_weights("hello", "staging", {"3.0.0": 100})
        with httpx.Client(base_url=lane.url, timeout=10) as client:
            assert 500 in [client.get("/").status_code for _ in range(60)]
        bad = _metrics_when_published(platform, 60, "3.0.0")
        assert bad.errors > 0
        platform.router.set_weights("hello", "staging", {V1: 100})
        workload.stop_version("hello", "staging", "3.0.0", drain_timeout=1.0)
        workload.start_version("hello", "staging", release(platform, V2), 1)  # the slot 3.0.0 left
        platform.router.set_weights("hello", "staging", {V2: 100})
        with httpx.Client(base_url=lane.url, timeout=10) as client:
            assert {client.get("/").status_code for _ in range(40)} == {200}
        good = _metrics_when_published(platform, 40, V2)
        assert (good.requests, good.errors) == (40, 0), good
    finally:
        platform.close()
