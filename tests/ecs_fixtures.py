"""ECS on moto, played by the fleet harness: the AWS side of a project (cluster, ALB, listeners, target groups)
and a deploy.toml whose services run there.

The driver gets only the endpoint and AWS credentials from the environment (moto accepts any key), as it would
get them on a real account; everything it learns, it learns over the API.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecs_fleet import EcsFleet
from ecs_fleet.fleet import REGION

from deploy_mcp.config.loader import Project, load_project

CLUSTER = "shop"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-never-shown",
    "AWS_DEFAULT_REGION": REGION,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lane:
    """One environment's ALB side: its listener, test listener and the blue and green target groups."""

    environment: str
    listener: str
    test_listener: str
    target_groups: list[str]
    port: int
    test_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def test_url(self) -> str:
        return f"http://127.0.0.1:{self.test_port}"


@dataclass
class World:
    fleet: EcsFleet
    lanes: dict[str, Lane] = field(default_factory=dict)


@contextlib.contextmanager
def aws_credentials() -> Iterator[None]:
    """AWS credentials in the environment, the standard way, for the life of the block."""
    saved = {k: os.environ.get(k) for k in (*CREDENTIALS, "AWS_PROFILE", "AWS_ENDPOINT_URL")}
    os.environ.update(CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build_world(fleet: EcsFleet, environments: list[str], service: str = "hello") -> World:
    """A cluster and one ALB with, per environment, a listener and a test listener forwarding to two target
    groups: what a team sets up once (Terraform, CloudFormation) before deploy-mcp deploys there."""
    ecs, ec2, elbv2 = fleet.client("ecs"), fleet.client("ec2"), fleet.client("elbv2")
    ecs.create_cluster(clusterName=CLUSTER)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    balancer = elbv2.create_load_balancer(Name=CLUSTER, Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    world = World(fleet)
    for environment in environments:
        groups = [
            elbv2.create_target_group(
                Name=f"{service}-{environment}-{slot}"[:32],
                Protocol="HTTP",
                Port=8080,
                VpcId=vpc,
                TargetType="ip",
                HealthCheckPath="/health",
            )["TargetGroups"][0]["TargetGroupArn"]
            for slot in ("blue", "green")
        ]
        forward = {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": groups[0], "Weight": 1}]}}
        port, test_port = free_port(), free_port()
        listener = elbv2.create_listener(
            LoadBalancerArn=balancer, Protocol="HTTP", Port=port, DefaultActions=[forward]
        )["Listeners"][0]["ListenerArn"]
        test_listener = elbv2.create_listener(
            LoadBalancerArn=balancer, Protocol="HTTP", Port=test_port, DefaultActions=[forward]
        )["Listeners"][0]["ListenerArn"]
        world.lanes[environment] = Lane(environment, listener, test_listener, groups, port, test_port)
    return world


def project_toml(
    world: World,
    *,
    settings: dict[str, str] | None = None,
    extra: str = "",
    replicas: int = 2,
    image: str = "hello:{version}",
    ecs_extra: str = "",
) -> str:
    """deploy.toml for the hello service on ECS, with the bad releases the tests need; ``settings`` adds lines to
    an environment's table (strategy, analysis...)."""
    environments = ""
    for name, lane in world.lanes.items():
        groups = ", ".join(f'"{arn}"' for arn in lane.target_groups)
        environments += f"""
[services.hello.environments.{name}]
{(settings or {}).get(name, "")}
ecs = {{ listener = "{lane.listener}", target_groups = [{groups}], url = "{lane.url}", \
test_listener = "{lane.test_listener}", test_url = "{lane.test_url}" }}
"""
    return f"""\
[targets.ecs]
cluster = "{CLUSTER}"
region = "{REGION}"
endpoint_url = "{world.fleet.endpoint}"
allowed_services = ["hello-*"]
metrics_period = 1
{ecs_extra}

[services.hello]
target = "ecs"
image = "{image}"
replicas = {replicas}
health = "/health"
smoke = ["/health", "/", "!/nonexistent"]

[services.hello.versions."3.0.0"]
env = {{ ERROR_RATE = "0.2" }}

[services.hello.versions."4.0.0"]
env = {{ CRASH_ON_START = "1" }}

[services.hello.versions."5.0.0"]
env = {{ LATENCY_MS = "3000" }}
{extra}{environments}"""


def write_project(folder: Path, world: World, **kwargs: object) -> Project:
    (folder / "deploy.toml").write_text(project_toml(world, **kwargs), encoding="utf-8")  # type: ignore[arg-type]
    return load_project(folder / "deploy.toml")


def running_version(ecs: Any, task_definition: str) -> str:
    """The version a task definition revision runs, from the tag deploy-mcp puts on every revision it registers
    (what a service runs after ECS's own rollout or rollback, whatever the service was created with)."""
    answer = ecs.describe_task_definition(taskDefinition=task_definition, include=["TAGS"])
    return str(next(t["value"] for t in answer["tags"] if t["key"] == "deploy-mcp.version"))
