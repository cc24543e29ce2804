"""One task definition revision per release: the service's definition (a family registered on AWS, or a JSON
file kept in the repo) with the release's image and environment set on its container.

Registering a revision per version is what ECS expects (revisions are immutable), and it is what rollback needs:
the revision of the last good deployment is still there to go back to.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from deploy_mcp.core.target import ErrorCode, Release, TargetError
from deploy_mcp.targets.ecs.aws import Aws, calling
from deploy_mcp.targets.ecs.layout import TAG_ENVIRONMENT, TAG_SERVICE, TAG_VERSION, Place

if TYPE_CHECKING:
    from pathlib import Path

READ_ONLY_FIELDS = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
)
DEFAULT_CPU = "256"
DEFAULT_MEMORY = "512"


def _base_definition(aws: Aws, place: Place, root: Path, launch_type: str | None) -> dict[str, Any]:
    """The definition every revision of this service starts from."""
    source = place.config.task_definition
    field = f"services.{place.service}.task_definition"
    if source and source.endswith(".json"):
        path = root / source
        try:
            definition = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TargetError(f"{field}: {source} does not exist beside deploy.toml", ErrorCode.START_FAILED) from None
        except json.JSONDecodeError as exc:
            raise TargetError(f"{field}: {source} is not valid JSON ({exc})", ErrorCode.START_FAILED) from None
        definition = definition.get("taskDefinition", definition)  # describe-task-definition output works too
    elif source:
        with calling(f"{field}: reading the task definition family {source!r}"):
            definition = aws.ecs.describe_task_definition(taskDefinition=source)["taskDefinition"]
    else:
        name = place.config.container or place.service
        definition = {
            "family": f"{place.service}-{place.environment}",
            "containerDefinitions": [
                {
                    "name": name,
                    "essential": True,
                    "portMappings": [{"containerPort": place.config.container_port, "protocol": "tcp"}],
                }
            ],
            "cpu": DEFAULT_CPU,
            "memory": DEFAULT_MEMORY,
        }
        if launch_type == "FARGATE":
            definition["networkMode"] = "awsvpc"
            definition["requiresCompatibilities"] = ["FARGATE"]
    if not isinstance(definition, dict) or not definition.get("containerDefinitions"):
        raise TargetError(f"{field}: the task definition has no containerDefinitions", ErrorCode.START_FAILED)
    return {k: v for k, v in definition.items() if k not in READ_ONLY_FIELDS}


def container_of(definition: dict[str, Any], place: Place) -> dict[str, Any]:
    containers: list[dict[str, Any]] = definition["containerDefinitions"]
    wanted = place.config.container
    if wanted is None:
        return containers[0]
    for container in containers:
        if container.get("name") == wanted:
            return container
    names = ", ".join(str(c.get("name")) for c in containers)
    raise TargetError(
        f"services.{place.service}.container: no container {wanted!r} in the task definition (it has: {names})",
        ErrorCode.START_FAILED,
    )


def register_release(aws: Aws, place: Place, release: Release, root: Path, launch_type: str | None) -> str:
    """Register the release's revision; returns its ARN."""
    if not release.image:
        raise TargetError(
            f'services.{place.service}.image: required for the ECS target, e.g. image = "123456789012.dkr.ecr.'
            'eu-west-1.amazonaws.com/web:{version}"',
            ErrorCode.NO_COMMAND,
        )
    definition = _base_definition(aws, place, root, launch_type)
    container = container_of(definition, place)
    container["image"] = release.image
    environment = {item["name"]: item["value"] for item in container.get("environment", [])}
    environment.update(release.env)
    environment["VERSION"] = release.version
    container["environment"] = [{"name": k, "value": v} for k, v in sorted(environment.items())]
    tags = [
        {"key": TAG_SERVICE, "value": place.service},
        {"key": TAG_ENVIRONMENT, "value": place.environment},
        {"key": TAG_VERSION, "value": release.version},
    ]
    with calling(f"{place.where}: registering the task definition of {release.version}"):
        registered = aws.ecs.register_task_definition(**definition, tags=tags)["taskDefinition"]
    return str(registered["taskDefinitionArn"])
