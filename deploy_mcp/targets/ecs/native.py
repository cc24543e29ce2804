"""ECS's own rollouts, for rolling and recreate: one ECS service whose task definition becomes the new revision,
replaced by ECS itself with ``deploymentConfiguration`` (minimumHealthyPercent / maximumPercent) and the deployment
circuit breaker with rollback on. The wait reads ``deployments[]`` as ECS decides: the PRIMARY deployment's
rolloutState COMPLETED is done, FAILED (the circuit breaker tripped) is a failure, and when ECS rolled the service
back by itself, that is reported, so the runner records it as the deployment's rollback.

``undo`` goes back to the task definition of the last deployment that COMPLETED before ours (kept as a tag on the
service when the rollout starts, since ECS forgets finished deployments); when the circuit breaker already did it,
nothing is changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from deploy_mcp.core.target import ErrorCode, Release, TargetError
from deploy_mcp.targets.ecs.aws import calling
from deploy_mcp.targets.ecs.taskdef import register_release

if TYPE_CHECKING:
    from deploy_mcp.targets.ecs.fleet import RunningVersion
    from deploy_mcp.targets.ecs.layout import Place
    from deploy_mcp.targets.ecs.workload import EcsWorkload

TAG_LAST_COMPLETED = "deploy-mcp.last-completed"
POLL_SECONDS = 0.25
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _revision(task_definition: str) -> int:
    try:
        return int(task_definition.rsplit(":", 1)[-1])
    except ValueError:
        return 0


def deployment_configuration(strategy: str, max_surge: int, max_unavailable: int, replicas: int) -> dict[str, object]:
    """ECS's percentages from the environment's max_surge / max_unavailable (recreate: all down, then all up)."""
    if strategy == "recreate":
        minimum, maximum = 0, 100
    else:
        minimum = max(0, 100 - (100 * max_unavailable) // max(1, replicas))
        maximum = 100 + max(1, -(-100 * max_surge // max(1, replicas))) if max_surge else 100
    return {
        "minimumHealthyPercent": minimum,
        "maximumPercent": maximum,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    }


def _one(workload: EcsWorkload, place: Place) -> RunningVersion | None:
    versions = workload.fleet.versions(place, with_targets=False)
    if len(versions) > 1:
        running = ", ".join(v.version for v in versions)
        raise TargetError(
            f"{place.where}: an ECS rollout replaces one running version, but {running} run side by side; finish or "
            "roll back the deployment that started them first",
            ErrorCode.START_FAILED,
        )
    return versions[0] if versions else None


def rollout(
    workload: EcsWorkload,
    service: str,
    environment: str,
    release: Release,
    replicas: int,
    *,
    strategy: str = "rolling",
    timeout: float | None = None,
    progress: Say | None = None,
) -> int:
    """Roll ``release`` out with ECS's own deployment; returns the task definition revision it runs."""
    say = progress or _quiet
    place = workload.layout.place(service, environment)
    current = _one(workload, place)
    if current is None:  # the first version: a new ECS service, as a canary's first step would make it
        workload.start_version(service, environment, release, replicas, timeout=timeout)
        started = workload.fleet.version(place, release.version)
        return _revision(started.task_definition)
    workload.layout.check_service_name(place, current.name)
    if current.version == release.version and current.rollout_state == "COMPLETED":
        say(f"{release.version} already runs in ECS service {current.name}; nothing to roll out")
        return _revision(current.task_definition)
    env = place.config.environments[environment]
    config = deployment_configuration(strategy, env.max_surge, env.max_unavailable, replicas)
    project = workload.project
    task_definition = register_release(
        workload.aws, place, release, project.root, project.config.targets.ecs.launch_type
    )
    ecs = workload.aws.ecs
    with calling(f"{place.where}: starting ECS's rollout of {release.version}"):
        if current.rollout_state == "COMPLETED":
            arn = ecs.describe_services(cluster=place.cluster, services=[current.name])["services"][0]["serviceArn"]
            ecs.tag_resource(resourceArn=arn, tags=[{"key": TAG_LAST_COMPLETED, "value": current.task_definition}])
        ecs.update_service(
            cluster=place.cluster,
            service=current.name,
            taskDefinition=task_definition,
            desiredCount=replicas,
            deploymentConfiguration=config,
        )
    say(
        f"ECS service {current.name}: deployment of {task_definition.rsplit('/', 1)[-1]} started "
        f"(minimumHealthyPercent {config['minimumHealthyPercent']}, maximumPercent {config['maximumPercent']}, "
        "circuit breaker with rollback)"
    )
    _wait(workload, place, current.name, task_definition, current.task_definition, timeout, say)
    return _revision(task_definition)


def _wait(
    workload: EcsWorkload,
    place: Place,
    name: str,
    task_definition: str,
    previous: str,
    timeout: float | None,
    say: Say,
) -> None:
    """Until the PRIMARY deployment of ``task_definition`` COMPLETED; raises when it FAILED or ECS rolled back."""
    from deploy_mcp.targets.ecs.workload import START_TIMEOUT

    limit = START_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + limit
    said = ""
    while True:
        with calling(f"{place.where}: reading ECS service {name}"):
            described = workload.aws.ecs.describe_services(cluster=place.cluster, services=[name])["services"][0]
        deployments = described.get("deployments") or []
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
        ours = next((d for d in deployments if d.get("taskDefinition") == task_definition), {})
        events = [e.get("message", "") for e in (described.get("events") or [])[:3]]
        if primary.get("taskDefinition") != task_definition:
            version = workload.fleet.version_of(str(primary.get("taskDefinition", ""))) or "the previous revision"
            raise TargetError(
                f"{place.where}: ECS's deployment circuit breaker stopped the rollout after "
                f"{ours.get('failedTasks', '?')} failed task(s) and rolled the service back to {version} by itself"
                + (f" ({'; '.join(events[:2])})" if events else ""),
                ErrorCode.CRASH_LOOP,
            )
        state = primary.get("rolloutState")
        if state == "COMPLETED":
            say(f"ECS service {name}: {primary.get('rolloutStateReason') or 'deployment completed'}")
            return
        if state == "FAILED":
            raise TargetError(
                f"{place.where}: ECS's rollout FAILED: {primary.get('rolloutStateReason', '')}"
                + (f" ({events[0]})" if events else ""),
                ErrorCode.CRASH_LOOP,
            )
        now = f"{primary.get('runningCount', 0)} of {primary.get('desiredCount', 0)} new task(s) running"
        if now != said:
            say(f"ECS service {name}: {now}")
            said = now
        if time.monotonic() >= deadline:
            raise TargetError(
                f"{place.where}: ECS's rollout did not complete within {limit:g} s ({now})", ErrorCode.HEALTH_TIMEOUT
            )
        time.sleep(POLL_SECONDS)


def undo(
    workload: EcsWorkload,
    service: str,
    environment: str,
    *,
    timeout: float | None = None,
    progress: Say | None = None,
) -> str | None:
    """Back to the last COMPLETED task definition; the version that runs afterwards (None: nothing to go back to)."""
    say = progress or _quiet
    place = workload.layout.place(service, environment)
    current = _one(workload, place)
    if current is None:
        return None
    with calling(f"{place.where}: reading ECS service {current.name}"):
        described = workload.aws.ecs.describe_services(
            cluster=place.cluster, services=[current.name], include=["TAGS"]
        )["services"][0]
    tags = {t["key"]: t["value"] for t in described.get("tags") or []}
    previous = tags.get(TAG_LAST_COMPLETED)
    if not previous:
        return None
    version = workload.fleet.version_of(previous)
    primary = next((d for d in described.get("deployments") or [] if d.get("status") == "PRIMARY"), {})
    if primary.get("taskDefinition") == previous:
        say(f"ECS already rolled {current.name} back to {version}; waiting for it to complete")
    else:
        workload.layout.check_service_name(place, current.name)
        with calling(f"{place.where}: rolling ECS service {current.name} back to {version}"):
            workload.aws.ecs.update_service(cluster=place.cluster, service=current.name, taskDefinition=previous)
        say(f"ECS service {current.name}: back to {previous.rsplit('/', 1)[-1]} ({version})")
    _wait(workload, place, current.name, previous, previous, timeout, say)
    return version
