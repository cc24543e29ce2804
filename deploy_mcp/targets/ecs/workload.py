"""What runs: one ECS service per version, each behind its slot's target group (blue or green).

Starting a version registers its task definition revision and creates its service with the deployment circuit
breaker on; readiness is what the ALB says (healthy targets in the slot's target group) together with the
service's running count, and a crash is what ECS decides (the primary deployment FAILED, or as many failed tasks
as would trip the circuit breaker). A version that fails to start is removed again, so nothing of it is left.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from deploy_mcp.core.target import (
    START_ALLOWANCE_SECONDS,
    ErrorCode,
    InstancePhase,
    InstanceState,
    Release,
    TargetError,
    TargetState,
    VersionState,
)
from deploy_mcp.targets.ecs.aws import Aws, calling, error_code
from deploy_mcp.targets.ecs.fleet import Fleet, RunningVersion
from deploy_mcp.targets.ecs.layout import (
    TAG_DEPLOYMENT,
    TAG_ENVIRONMENT,
    TAG_SERVICE,
    TAG_SLOT,
    TAG_VERSION,
    Layout,
    Place,
    Slot,
)
from deploy_mcp.targets.ecs.taskdef import register_release

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project

POLL_SECONDS = 0.25
START_TIMEOUT = 10 * START_ALLOWANCE_SECONDS
"""ECS pulls images and waits for the ALB's health checks: minutes, not seconds, is normal."""


def _instances(running: RunningVersion) -> list[InstanceState]:
    phases = {"healthy": InstancePhase.READY, "initial": InstancePhase.STARTING, "draining": InstancePhase.DRAINING}
    return [
        InstanceState(
            id=target.name,
            version=running.version,
            phase=phases.get(target.state, InstancePhase.UNREADY),
            url=None,
            last_error=target.reason or None,
        )
        for target in running.targets
    ]


class EcsWorkload:
    """The Workload of the platform contract on ECS."""

    kind = "ecs"

    def __init__(self, project: Project, aws: Aws, layout: Layout, fleet: Fleet) -> None:
        self.project = project
        self.aws = aws
        self.layout = layout
        self.fleet = fleet
        self.router: Any = None  # the AlbRouter, set by create_platform: a first version takes all traffic

    # -- reading -------------------------------------------------------------------------------------------------

    def state(self, service: str, environment: str) -> TargetState:
        place = self.layout.place(service, environment)
        versions = self.fleet.versions(place)
        weights = self.fleet.weights(place, versions) if versions else {}
        return TargetState(
            service=service,
            environment=environment,
            kind=self.kind,
            running=bool(versions),
            endpoint=place.routing.url,
            versions=[
                VersionState(
                    version=v.version,
                    replicas=v.desired,
                    ready=min(v.healthy, v.running) if v.running else v.healthy,
                    weight=weights.get(v.version, 0),
                    restarts=v.failed_tasks,
                    crash_loop=v.crash_loop,
                    problem=v.problem,
                    instances=_instances(v),
                )
                for v in versions
            ],
        )

    # -- changing ------------------------------------------------------------------------------------------------

    def start_version(
        self, service: str, environment: str, release: Release, replicas: int, *, timeout: float | None = None
    ) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise TargetError(
                f"{service}/{environment}: a version starts with at least 1 task, got {replicas!r}",
                ErrorCode.START_FAILED,
            )
        place = self.layout.place(service, environment)
        versions = self.fleet.versions(place, with_targets=False)
        if any(v.version == release.version for v in versions):
            raise TargetError(
                f"{place.where}: {release.version} already runs; scale it instead", ErrorCode.ALREADY_RUNNING
            )
        used = {v.slot for v in versions}
        free = [slot for slot in Slot if slot not in used]
        if not free:
            running = ", ".join(f"{v.version} ({v.slot})" for v in versions)
            raise TargetError(
                f"{place.where}: both target groups are taken ({running}); a release runs beside one other version "
                "only: stop one of them first",
                ErrorCode.START_FAILED,
            )
        slot = free[0]
        name = place.ecs_name(slot, release.version)
        self.layout.check_service_name(place, name)
        first = not versions
        if not first:
            self._keep_slot_dark(place, slot, versions)
        task_definition = register_release(
            self.aws, place, release, self.project.root, self.project.config.targets.ecs.launch_type
        )
        self._create_service(place, slot, name, release, task_definition, replicas)
        try:
            self._wait(place, release.version, lambda v: v.healthy >= replicas and v.running >= replicas, timeout)
        except TargetError:
            self._remove(place, name, slot, drain_timeout=5.0)
            raise
        if first and self.router is not None:
            self.router.set_weights(service, environment, {release.version: 100})

    def _keep_slot_dark(self, place: Place, slot: Slot, versions: list[RunningVersion]) -> None:
        """A new version takes no traffic: if the listener still sends some to this slot's target group (left from
        an earlier release), give that share to the version that runs."""
        weights = self.fleet.forward_weights(place.routing.listener, f"{place.where}: reading the listener")
        if weights.get(place.target_group(slot), 0) == 0:
            return
        other = versions[0]
        self.fleet.set_forward(
            place.routing.listener,
            {place.target_group(other.slot): 100, place.target_group(slot): 0},
            f"{place.where}: taking the {slot} target group out of traffic",
        )

    def _create_service(
        self, place: Place, slot: Slot, name: str, release: Release, task_definition: str, replicas: int
    ) -> None:
        ecs_config = self.project.config.targets.ecs
        container = place.config.container or place.service
        if place.config.task_definition:
            described = self.aws.ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
            container = place.config.container or described["containerDefinitions"][0]["name"]
        tags = [
            {"key": TAG_SERVICE, "value": place.service},
            {"key": TAG_ENVIRONMENT, "value": place.environment},
            {"key": TAG_VERSION, "value": release.version},
            {"key": TAG_SLOT, "value": str(slot)},
        ]
        deployment_id = getattr(release, "deployment_id", None)  # set by runners that label what they create
        if deployment_id:
            tags.append({"key": TAG_DEPLOYMENT, "value": deployment_id})
        arguments: dict[str, Any] = {
            "cluster": place.cluster,
            "serviceName": name,
            "taskDefinition": task_definition,
            "desiredCount": replicas,
            "loadBalancers": [
                {
                    "targetGroupArn": place.target_group(slot),
                    "containerName": container,
                    "containerPort": place.config.container_port,
                }
            ],
            "deploymentConfiguration": {
                "minimumHealthyPercent": 100,
                "maximumPercent": 200,
                "deploymentCircuitBreaker": {"enable": True, "rollback": False},
            },
            "tags": tags,
            "propagateTags": "SERVICE",
        }
        if ecs_config.launch_type:
            arguments["launchType"] = ecs_config.launch_type
        if ecs_config.subnets:
            arguments["networkConfiguration"] = {
                "awsvpcConfiguration": {
                    "subnets": ecs_config.subnets,
                    "securityGroups": ecs_config.security_groups,
                    "assignPublicIp": "ENABLED" if ecs_config.assign_public_ip else "DISABLED",
                }
            }
        with calling(f"{place.where}: creating ECS service {name}"):
            self.aws.ecs.create_service(**arguments)

    def scale(
        self, service: str, environment: str, version: str, replicas: int, *, timeout: float | None = None
    ) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise TargetError(
                f"{service}/{environment}: the size of {version} must be a whole number of tasks, 0 or more, "
                f"got {replicas!r}",
                ErrorCode.START_FAILED,
            )
        place = self.layout.place(service, environment)
        running = self.fleet.version(place, version)
        self.layout.check_service_name(place, running.name)
        with calling(f"{place.where}: scaling {version} to {replicas}"):
            self.aws.ecs.update_service(cluster=place.cluster, service=running.name, desiredCount=replicas)
        if replicas >= running.desired:
            self._wait(place, version, lambda v: v.healthy >= replicas and v.running >= replicas, timeout)
        else:  # a shrink returns once the surplus tasks left the target group
            self._wait(place, version, lambda v: v.running <= replicas and len(v.targets) <= replicas, timeout)

    def stop_version(self, service: str, environment: str, version: str, *, drain_timeout: float = 10.0) -> None:
        place = self.layout.place(service, environment)
        versions = self.fleet.versions(place)
        running = next((v for v in versions if v.version == version), None)
        if running is None:
            known = ", ".join(v.version for v in versions) or "none"
            raise TargetError(f"{place.where} has no version {version} (running: {known})", ErrorCode.UNKNOWN_VERSION)
        weights = self.fleet.weights(place, versions)
        others_ready = any(v.healthy for v in versions if v.version != version)
        if weights.get(version, 0) > 0 and others_ready:
            raise TargetError(
                f"{place.where}: {version} still takes {weights[version]}% of traffic; move it to another version "
                "first",
                ErrorCode.STILL_SERVING,
            )
        self.layout.check_service_name(place, running.name)
        self._remove(place, running.name, running.slot, drain_timeout=drain_timeout)

    def _remove(self, place: Place, name: str, slot: Slot, *, drain_timeout: float) -> None:
        """Scale to 0, delete the service, and wait (up to drain_timeout) for its targets to leave."""
        with calling(f"{place.where}: removing ECS service {name}"):
            try:
                self.aws.ecs.update_service(cluster=place.cluster, service=name, desiredCount=0)
                self.aws.ecs.delete_service(cluster=place.cluster, service=name, force=True)
            except Exception as exc:
                if error_code(exc) not in {"ServiceNotFoundException", "ServiceNotActiveException"}:
                    raise
        deadline = time.monotonic() + max(drain_timeout, 1.0) + 5.0
        while time.monotonic() < deadline:
            if not [t for t in self.fleet.targets(place, slot) if t.state != "draining"]:
                return
            time.sleep(POLL_SECONDS)

    def _wait(self, place: Place, version: str, done: Any, timeout: float | None) -> None:
        limit = START_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            running = self.fleet.version(place, version)
            if running.crash_loop:
                raise TargetError(
                    f"{place.where}: {version} does not start: {running.problem} (ECS's deployment circuit breaker "
                    "counts these as failed tasks)",
                    ErrorCode.CRASH_LOOP,
                )
            if done(running):
                return
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"{place.where}: {version} has {running.healthy} healthy of {running.desired} task(s) after "
                    f"{limit:g} s" + (f" ({running.problem})" if running.problem else ""),
                    ErrorCode.HEALTH_TIMEOUT,
                )
            time.sleep(POLL_SECONDS)

    # -- ECS's own rollouts (rolling and recreate) ---------------------------------------------------------------

    def rollout(
        self,
        service: str,
        environment: str,
        release: Release,
        replicas: int,
        *,
        strategy: str = "rolling",
        timeout: float | None = None,
        progress: Any = None,
    ) -> int:
        """``update_service`` to the release's revision, waited on as ECS decides; see ``native``."""
        from deploy_mcp.targets.ecs import native

        return native.rollout(
            self, service, environment, release, replicas, strategy=strategy, timeout=timeout, progress=progress
        )

    def undo(self, service: str, environment: str, *, timeout: float | None = None, progress: Any = None) -> str | None:
        """Back to the task definition of the last COMPLETED deployment; see ``native``."""
        from deploy_mcp.targets.ecs import native

        return native.undo(self, service, environment, timeout=timeout, progress=progress)
